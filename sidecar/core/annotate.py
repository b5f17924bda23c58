"""Annotate: validate once → (admission) → protect the account id → hand to the sink.

Validation happens here and only here, on what the app sent: the protected form of an account
id is longer than the id (AES-SIV adds 16 bytes, then base64), so a limit checked after
protection would refuse legal ids. Protection happens before the sink, so the durable outbox
never holds a clear id at rest. The sink is the outbox (`sidecar.outbox.sink`) or
`DirectDelivery` (straight upstream, before answering).
"""

from __future__ import annotations

import dataclasses

from sidecar.core.limits import AdmissionLimiter, admitted
from sidecar.core.model import AnnotationRequest, Delivery
from sidecar.core.ports import (
    AccountIdProtector,
    AnnotationSink,
    CallContext,
    DecisionObserver,
    NullObserver,
    Upstream,
    UpstreamError,
    rejected,
)
from sidecar.core.validation import validate_annotation


class DirectDelivery:
    """The sink without an outbox: each annotation goes upstream before Annotate answers."""

    def __init__(self, upstream: Upstream, upstream_timeout: float) -> None:
        self._upstream = upstream
        self._upstream_timeout = upstream_timeout

    async def deliver(self, request: AnnotationRequest, timeout: float | None) -> Delivery:
        budget = self._upstream_timeout if timeout is None else min(self._upstream_timeout, timeout)
        try:
            await self._upstream.annotate(request, timeout=budget)
        except UpstreamError as error:
            raise rejected(error) from None
        return Delivery.DELIVERED


class Annotator:
    """The Annotate use case, shared by every front door."""

    def __init__(
        self,
        sink: AnnotationSink,
        *,
        protector: AccountIdProtector | None = None,
        limiter: AdmissionLimiter | None = None,
        observer: DecisionObserver | None = None,
    ) -> None:
        self._sink = sink
        self._protector = protector
        self._limiter = limiter
        self._observer = observer or NullObserver()

    async def annotate(
        self, request: AnnotationRequest, timeout: float | None = None, *, call: CallContext
    ) -> Delivery:
        """Accept one annotation. `timeout` is what remains of the caller's deadline; raises
        InvalidArgument, Overloaded (past the limiter's bounds, or a full outbox) or
        UpstreamRejected (a synchronous delivery that upstream refused)."""
        validate_annotation(request)
        delivery = await admitted(self._limiter, timeout, lambda left: self._deliver(request, left))
        self._observer.annotated(call, request, delivery)
        return delivery

    async def _deliver(self, request: AnnotationRequest, timeout: float | None) -> Delivery:
        if request.account_id and self._protector is not None:
            protected = self._protector.protect(request.account_id)
            request = dataclasses.replace(request, account_id=protected)
        return await self._sink.deliver(request, timeout)
