"""Span helpers shared by the interceptor and the instrumented wrappers: attribute names and
W3C trace-context propagation over gRPC metadata.

The tracer is not a process global: each sidecar has its own providers (tests run several in
one process), handed to the interceptor and the wrappers that make spans. The decision's
attributes (`recaptcha.verdict`, …) are added by the decision observer (`observer.py`).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

from opentelemetry import baggage, propagate
from opentelemetry.propagators.textmap import Getter
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

if TYPE_CHECKING:
    from opentelemetry.context import Context

# Attribute names: RPC semantic conventions, then our own under `recaptcha.`.
RPC_SYSTEM = "rpc.system"
RPC_SERVICE = "rpc.service"
RPC_METHOD = "rpc.method"
RPC_STATUS = "rpc.grpc.status_code"
HTTP_METHOD = "http.request.method"
HTTP_ROUTE = "http.route"
HTTP_STATUS = "http.response.status_code"
ERROR_TYPE = "error.type"
ATTEMPT = "recaptcha.upstream.attempt"
RETRY_REASON = "recaptcha.upstream.retry_reason"
RETRYABLE = "recaptcha.upstream.retryable"
REACHED = "recaptcha.upstream.reached"
REPLAY_RESULT = "recaptcha.replay.result"


class _MetadataGetter(Getter[Sequence[tuple[str, str | bytes]]]):
    """Reads W3C trace context headers from gRPC invocation metadata (a sequence of pairs)."""

    def get(self, carrier: Sequence[tuple[str, str | bytes]], key: str) -> list[str] | None:
        values = [v for k, v in carrier if k == key and isinstance(v, str)]
        return values or None

    def keys(self, carrier: Sequence[tuple[str, str | bytes]]) -> list[str]:
        return [k for k, _ in carrier]


METADATA_GETTER = _MetadataGetter()
# What goes upstream: W3C `traceparent` / `tracestate` only. The default propagators
# (`OTEL_PROPAGATORS=tracecontext,baggage`) would also forward the caller's baggage, which apps
# fill with user data (e-mail, session ids): it must never leave the pod.
_UPSTREAM_PROPAGATOR = TraceContextTextMapPropagator()


def extract(metadata: Sequence[tuple[str, str | bytes]] | None) -> Context:
    """The caller's trace context (the configured propagators, W3C `traceparent` by default),
    without its baggage: nothing the sidecar records or sends may carry it."""
    return baggage.clear(propagate.extract(metadata or (), getter=METADATA_GETTER))


def inject() -> tuple[tuple[str, str], ...]:
    """The current trace context as gRPC metadata for an outgoing call: `traceparent` and
    `tracestate`, never baggage."""
    carrier: dict[str, str] = {}
    _UPSTREAM_PROPAGATOR.inject(carrier)
    return tuple(carrier.items())
