"""The outbox as the Annotate use case's sink (`AnnotationSink`), when `outbox` is set."""

from __future__ import annotations

import asyncio

from sidecar.core.model import AnnotationRequest, Delivery
from sidecar.outbox.flusher import Flusher
from sidecar.outbox.queue import OutboxQueue


class OutboxSink:
    """Append durably, acknowledge (QUEUED). With `wait_for_upstream` (per request or for
    every request) the row is sent at once and the answer says DELIVERED, or carries
    upstream's refusal, or QUEUED when upstream could not be reached in time. The annotation
    arrives validated and with its account id protected (`core.annotate`)."""

    def __init__(
        self,
        outbox: OutboxQueue,
        flusher: Flusher,
        *,
        wait_for_upstream: bool,
        upstream_timeout: float,
        deadline_margin: float,
    ) -> None:
        self._outbox = outbox
        self._flusher = flusher
        self._wait_for_upstream = wait_for_upstream
        self._upstream_timeout = upstream_timeout
        self._deadline_margin = deadline_margin

    async def deliver(self, request: AnnotationRequest, timeout: float | None) -> Delivery:
        wait = request.wait_for_upstream or self._wait_for_upstream
        loop = asyncio.get_running_loop()
        started = loop.time()
        row_id = await self._outbox.append(request, lease=wait)
        if not wait:
            return Delivery.QUEUED
        budget = self._upstream_timeout
        if timeout is not None:
            budget = min(budget, timeout - (loop.time() - started) - self._deadline_margin)
        return await self._flusher.deliver_now(row_id, request, budget)
