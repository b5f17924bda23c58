"""Adapters from the retry layer, the outbox and the replay store to the gauge protocols of
`metrics.py`, so none of them imports OpenTelemetry and the metrics module knows none of
them."""

from __future__ import annotations

from dataclasses import dataclass

from sidecar.core.ports import RateLimiter, ReplayStore
from sidecar.core.shield import QuotaShield
from sidecar.outbox import Flusher, OutboxQueue
from sidecar.ratelimit import FallbackLimiter
from sidecar.ratelimit.meter import QuotaMeter
from sidecar.replay.checked import CheckedReplayStore
from sidecar.replay.memory import MemoryReplayStore
from sidecar.telemetry.metrics import Instruments
from sidecar.upstream.classify import RPC_ANNOTATE, RPC_CREATE
from sidecar.upstream.retry import ResilientUpstream


@dataclass(frozen=True, slots=True)
class _BreakerGauge:
    upstream: ResilientUpstream
    rpc: str

    def breaker_state(self) -> str:
        return self.upstream.breaker_state(self.rpc).value

    def retry_budget_level(self) -> float:
        return self.upstream.budget_level(self.rpc)


@dataclass(frozen=True, slots=True)
class _OutboxGauge:
    outbox: OutboxQueue
    flusher: Flusher | None = None

    def outbox_depth(self) -> int:
        return self.outbox.depth()

    def outbox_oldest_age(self) -> float:
        return self.outbox.oldest_age()

    def outbox_dead_letters(self) -> int:
        return self.outbox.dead_letter_count()

    def outbox_paused(self) -> bool:
        return self.flusher is not None and self.flusher.paused

    def outbox_damaged_files(self) -> int:
        return self.outbox.moved_aside


@dataclass(frozen=True, slots=True)
class _ShieldGauge:
    shield: QuotaShield
    limiter: RateLimiter
    meter: QuotaMeter

    def cap_shedding(self) -> bool | None:
        return self.shield.cap_shedding()

    def limiter_degraded(self) -> bool | None:
        if isinstance(self.limiter, FallbackLimiter):
            return self.limiter.degraded()
        return None

    def store_errors(self) -> int:
        return self.limiter.errors_total if isinstance(self.limiter, FallbackLimiter) else 0

    def quota_used(self) -> float:
        return self.meter.used()


def register_shield(
    instruments: Instruments, shield: QuotaShield, limiter: RateLimiter, meter: QuotaMeter
) -> None:
    """The global cap's state, the limiter's fallback and the quota used."""
    instruments.register_rate_limits(_ShieldGauge(shield, limiter, meter))


def register_gauges(
    instruments: Instruments,
    upstream: ResilientUpstream,
    outbox: OutboxQueue | None,
    replay: ReplayStore | None = None,
    flusher: Flusher | None = None,
) -> None:
    """Breaker state and retry budget per RPC (`assess`, `annotate`), the outbox and its
    dead letters, and the memory replay store's evictions."""
    if isinstance(replay, CheckedReplayStore):
        replay = replay.inner
    if isinstance(replay, MemoryReplayStore):
        instruments.register_replay_evictions(replay)
    if flusher is not None:
        instruments.register_dead_letters(flusher)
    for rpc, name in ((RPC_CREATE, "assess"), (RPC_ANNOTATE, "annotate")):
        gauge = _BreakerGauge(upstream, rpc)
        instruments.register_breaker(gauge, name)
        instruments.register_retry_budget(gauge, name)
    if outbox is not None:
        instruments.register_outbox(_OutboxGauge(outbox, flusher))
