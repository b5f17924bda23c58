"""Adapters from the retry layer and the outbox to the gauge protocols of `metrics.py`, so
neither of them imports OpenTelemetry and the metrics module knows neither of them."""

from __future__ import annotations

from dataclasses import dataclass

from sidecar.outbox import Flusher, Outbox
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
    outbox: Outbox
    flusher: Flusher | None = None

    def outbox_depth(self) -> int:
        return self.outbox.depth()

    def outbox_oldest_age(self) -> float:
        return self.outbox.oldest_age()

    def outbox_dead_letters(self) -> int:
        return self.outbox.dead_letter_count()

    def outbox_paused(self) -> bool:
        return self.flusher is not None and self.flusher.paused


def register_gauges(
    instruments: Instruments,
    upstream: ResilientUpstream,
    outbox: Outbox | None,
    flusher: Flusher | None = None,
) -> None:
    """Breaker state and retry budget per RPC (`assess`, `annotate`), and the outbox."""
    for rpc, name in ((RPC_CREATE, "assess"), (RPC_ANNOTATE, "annotate")):
        gauge = _BreakerGauge(upstream, rpc)
        instruments.register_breaker(gauge, name)
        instruments.register_retry_budget(gauge, name)
    if outbox is not None:
        instruments.register_outbox(_OutboxGauge(outbox, flusher))
