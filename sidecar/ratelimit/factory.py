"""Pick the rate limiter from the replay store's URL: the limits live where single use does."""

from __future__ import annotations

from sidecar.core.ports import RateLimiter
from sidecar.ratelimit.fallback import FallbackLimiter
from sidecar.ratelimit.memory import MemoryRateLimiter
from sidecar.redisconn.url import SCHEMES as REDIS_SCHEMES


def open_rate_limiter(
    url: str,
    *,
    max_keys: int = 100_000,
    pool_size: int = 50,
    timeout: float = 1.0,
    password: str | None = None,
) -> RateLimiter:
    """`memory://`: this process's counters (the global cap is then per replica). Any Redis
    form of `sidecar.redisconn.url`: counters shared by every replica on that Redis, with
    this replica's own while it cannot answer. No I/O until the first call."""
    scheme = url.partition("://")[0].lower()
    local = MemoryRateLimiter(max_keys=max_keys)
    if scheme == "memory":
        return local
    if scheme not in REDIS_SCHEMES:
        raise ValueError(f"replay_store: unsupported scheme {scheme!r}")
    from sidecar.ratelimit.redis import RedisRateLimiter
    from sidecar.redisconn.keyspace import open_keyspace

    keyspace = open_keyspace(url, pool_size=pool_size, timeout=timeout, password=password)
    return FallbackLimiter(RedisRateLimiter(keyspace), local)
