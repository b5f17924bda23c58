"""Replay store operations as metrics and attributes of the caller's span: a decorator
around any `ReplayStore`.

Not spans of their own: a claim and a settle as child spans were half the spans of a cache
miss, and every span is built, queued and serialised under the GIL by the exporter, which
stalls the event loop (docs/benchmark.md). The span of the call says what the lookup found
(`recaptcha.replay.result`) and which operation failed and why (`recaptcha.replay.<op>.error`);
how long each operation took is the `replay_duration` metric.

Keys are SHA-256 digests of tokens; even so, no key is recorded (a digest of a known token
would identify it). Only the operation, its outcome and its time are.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from typing import TypeVar

from opentelemetry import trace
from opentelemetry.trace import Tracer

from sidecar.core.ports import ReplayEntry, ReplayStore
from sidecar.telemetry import tracing
from sidecar.telemetry.metrics import Instruments

T = TypeVar("T")


class InstrumentedReplayStore:
    """A `ReplayStore` that records claim (hit or miss), settle, release and get. `tracer`
    is kept for symmetry with the other wrappers; no span is started."""

    def __init__(self, inner: ReplayStore, *, tracer: Tracer, instruments: Instruments) -> None:
        self._inner = inner
        self._tracer = tracer
        self._instruments = instruments

    async def claim(
        self, key: str, idempotency_digest: str, claim_id: str, ttl: float
    ) -> ReplayEntry | None:
        result = "error"
        try:
            existing = await self._timed(
                "claim", lambda: self._inner.claim(key, idempotency_digest, claim_id, ttl)
            )
            result = "miss" if existing is None else "hit"
            return existing
        finally:
            self._instruments.replay_lookups.add(result)

    async def settle(self, key: str, claim_id: str, entry: ReplayEntry, ttl: float) -> bool:
        return await self._timed("settle", lambda: self._inner.settle(key, claim_id, entry, ttl))

    async def release(self, key: str, claim_id: str) -> bool:
        return await self._timed("release", lambda: self._inner.release(key, claim_id))

    async def get(self, key: str) -> ReplayEntry | None:
        return await self._timed("get", lambda: self._inner.get(key))

    async def ping(self) -> None:
        await self._inner.ping()  # health probes: not traced, like health-check RPCs

    async def close(self) -> None:
        await self._inner.close()

    async def _timed(self, operation: str, call: Callable[[], Awaitable[T]]) -> T:
        outcome = "ok"
        start = time.perf_counter()
        try:
            value = await call()
        except BaseException as error:
            # A timeout in the caller (asyncio.wait_for) arrives here as a cancellation.
            outcome = "cancelled" if isinstance(error, asyncio.CancelledError) else "error"
            span = trace.get_current_span()
            if span.is_recording():
                span.set_attribute(f"recaptcha.replay.{operation}.error", type(error).__name__)
            raise
        finally:
            self._instruments.replay_duration.record(
                time.perf_counter() - start, {"operation": operation, "outcome": outcome}
            )
        if operation == "claim":
            span = trace.get_current_span()
            if span.is_recording():
                span.set_attribute(tracing.REPLAY_RESULT, "miss" if value is None else "hit")
        return value
