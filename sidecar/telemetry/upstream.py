"""Upstream attempts as spans and metrics: a decorator around the innermost (raw) upstream.

Sitting innermost, it sees every attempt the retry layer makes: one CLIENT span per attempt
(attempt number from `sidecar.core.ports.ATTEMPT`, status, why it failed, why it is a retry)
and one latency/attempt/error record, and it passes the trace context on to Google in the
attempt's `traceparent`. It holds nothing of the request: no token, IP or account reaches it.
"""

from __future__ import annotations

import asyncio
import contextvars
import time
from collections.abc import Awaitable, Callable, Sequence
from typing import Protocol, TypeVar

import grpc
from opentelemetry.trace import SpanKind, Status, StatusCode, Tracer

from sidecar.core.model import (
    AnnotationRequest,
    AssessmentRequest,
    RelatedAccountsPage,
    RelatedAccountsQuery,
    UpstreamAssessment,
)
from sidecar.core.ports import ATTEMPT, UpstreamError
from sidecar.telemetry import tracing
from sidecar.telemetry.metrics import Instruments

SERVICE = "google.cloud.recaptchaenterprise.v1.RecaptchaEnterpriseService"
GRPC_CODES: dict[str, int] = {code.name: code.value[0] for code in grpc.StatusCode}
T = TypeVar("T")

# The outcome of the previous attempt in this context (None after a success), so attempt n > 1
# can say why it exists. Seen when the retry layer awaits its attempts one after another in one
# task, as a retry loop does; if it runs each attempt in a task of its own, the reason is absent.
_LAST_FAILURE: contextvars.ContextVar[str | None] = contextvars.ContextVar(
    "recaptcha_sidecar_upstream_last_failure", default=None
)


class RawUpstream(Protocol):
    """The innermost upstream: GoogleUpstream, whose calls accept extra request metadata."""

    async def create_assessment(
        self,
        request: AssessmentRequest,
        *,
        site_key: str,
        timeout: float,
        metadata: Sequence[tuple[str, str]] = (),
    ) -> UpstreamAssessment: ...

    async def annotate(
        self,
        request: AnnotationRequest,
        *,
        timeout: float,
        metadata: Sequence[tuple[str, str]] = (),
    ) -> None: ...

    async def search_related_accounts(
        self,
        query: RelatedAccountsQuery,
        *,
        timeout: float,
        metadata: Sequence[tuple[str, str]] = (),
    ) -> RelatedAccountsPage: ...

    async def close(self) -> None: ...


class InstrumentedUpstream:
    """An `Upstream` that records each attempt of the wrapped raw upstream."""

    def __init__(
        self,
        inner: RawUpstream,
        *,
        tracer: Tracer,
        instruments: Instruments,
        propagate: bool = True,
    ) -> None:
        self._inner = inner
        self._tracer = tracer
        self._instruments = instruments
        self._propagate = propagate

    async def create_assessment(
        self, request: AssessmentRequest, *, site_key: str, timeout: float
    ) -> UpstreamAssessment:
        return await self._attempt(
            "CreateAssessment",
            lambda metadata: self._inner.create_assessment(
                request, site_key=site_key, timeout=timeout, metadata=metadata
            ),
        )

    async def annotate(self, request: AnnotationRequest, *, timeout: float) -> None:
        await self._attempt(
            "AnnotateAssessment",
            lambda metadata: self._inner.annotate(request, timeout=timeout, metadata=metadata),
        )

    async def search_related_accounts(
        self, query: RelatedAccountsQuery, *, timeout: float
    ) -> RelatedAccountsPage:
        return await self._attempt(
            "SearchRelatedAccountGroupMemberships",
            lambda metadata: self._inner.search_related_accounts(
                query, timeout=timeout, metadata=metadata
            ),
        )

    async def close(self) -> None:
        await self._inner.close()

    async def _attempt(
        self, method: str, call: Callable[[Sequence[tuple[str, str]]], Awaitable[T]]
    ) -> T:
        attempt = ATTEMPT.get()
        previous = _LAST_FAILURE.get() if attempt > 1 else None
        attributes: dict[str, str | int] = {
            tracing.RPC_SYSTEM: "grpc",
            tracing.RPC_SERVICE: SERVICE,
            tracing.RPC_METHOD: method,
            tracing.ATTEMPT: attempt,
        }
        if previous:
            attributes[tracing.RETRY_REASON] = previous
        code = "OK"
        start = time.perf_counter()
        with self._tracer.start_as_current_span(
            f"{SERVICE}/{method}",
            kind=SpanKind.CLIENT,
            attributes=attributes,
            record_exception=False,
            set_status_on_exception=False,
        ) as span:
            metadata = tracing.inject() if self._propagate and span.is_recording() else ()
            try:
                result = await call(metadata)
            except UpstreamError as error:
                code = error.code
                _LAST_FAILURE.set(code)
                if span.is_recording():
                    span.set_attributes(
                        {
                            tracing.RPC_STATUS: GRPC_CODES.get(code, GRPC_CODES["UNKNOWN"]),
                            tracing.ERROR_TYPE: code,
                            tracing.RETRYABLE: error.retryable,
                            tracing.REACHED: _reached(error.reached),
                        }
                    )
                    span.set_status(Status(StatusCode.ERROR, code))
                raise
            except BaseException as error:  # cancelled (the caller gave up) or a bug
                code = "CANCELLED" if isinstance(error, asyncio.CancelledError) else "UNKNOWN"
                if span.is_recording():
                    span.set_attributes(
                        {tracing.RPC_STATUS: GRPC_CODES[code], tracing.ERROR_TYPE: code}
                    )
                    span.set_status(Status(StatusCode.ERROR, code))
                raise
            else:
                _LAST_FAILURE.set(None)
                if span.is_recording():
                    span.set_attribute(tracing.RPC_STATUS, 0)
                return result
            finally:
                elapsed = time.perf_counter() - start
                labels = {"method": method, "code": code}
                self._instruments.upstream_duration.record(elapsed, labels)
                self._instruments.upstream_attempts.add(
                    method, code, "true" if attempt > 1 else "false"
                )
                if code != "OK":
                    self._instruments.upstream_errors.add(method, code)


def _reached(reached: bool | None) -> str:
    """Whether the failed attempt may have reached Google (and so consumed the token)."""
    return "unknown" if reached is None else str(reached).lower()
