"""Rate limits behind `sidecar.core.ports.RateLimiter`: GCRA counters in this process
(`memory`) or in the replay store's Redis, whatever its shape (`redis`), with this replica's
own counters while Redis cannot answer (`fallback`); one factory picks them from the replay
store's URL (`factory`). `meter` counts upstream calls against the project's quota."""

from sidecar.ratelimit.factory import open_rate_limiter
from sidecar.ratelimit.fallback import FallbackLimiter
from sidecar.ratelimit.memory import MemoryRateLimiter

__all__ = ["FallbackLimiter", "MemoryRateLimiter", "open_rate_limiter"]
