"""Span helpers shared by the interceptor, the instrumented wrappers and the core.

The tracer is not a process global: each sidecar has its own providers (tests run several in
one process), so the interceptor puts the serving sidecar's tracer in a context variable for
the length of the call and code that has no tracer of its own (the core's policy span) reads
it from there. Outside a traced call every helper here is a no-op.
"""

from __future__ import annotations

import contextvars
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from typing import TYPE_CHECKING

from opentelemetry import baggage, propagate, trace
from opentelemetry.propagators.textmap import Getter
from opentelemetry.trace import NonRecordingSpan, Span, Tracer
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

if TYPE_CHECKING:
    from opentelemetry.context import Context

    from sidecar.core.model import Decision

# Attribute names: RPC semantic conventions, then our own under `recaptcha.`.
RPC_SYSTEM = "rpc.system"
RPC_SERVICE = "rpc.service"
RPC_METHOD = "rpc.method"
RPC_STATUS = "rpc.grpc.status_code"
ERROR_TYPE = "error.type"
ACTION = "recaptcha.action"
VERDICT = "recaptcha.verdict"
TOKEN_STATUS = "recaptcha.token_status"  # noqa: S105 - an attribute name
REPLAYED = "recaptcha.replayed"
THRESHOLD = "recaptcha.threshold"
SCORE = "recaptcha.score"
DECIDED_BY = "recaptcha.decided_by"
POLICY_VERSION = "recaptcha.policy_version"
ATTEMPT = "recaptcha.upstream.attempt"
RETRY_REASON = "recaptcha.upstream.retry_reason"
RETRYABLE = "recaptcha.upstream.retryable"
REACHED = "recaptcha.upstream.reached"
REPLAY_RESULT = "recaptcha.replay.result"
REPLAY_OPERATION = "recaptcha.replay.operation"

CURRENT_TRACER: contextvars.ContextVar[Tracer | None] = contextvars.ContextVar(
    "recaptcha_sidecar_tracer", default=None
)
_NOOP_SPAN = NonRecordingSpan(trace.INVALID_SPAN_CONTEXT)


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


@contextmanager
def child_span(
    name: str, attributes: Mapping[str, str | int | float | bool] | None = None
) -> Iterator[Span]:
    """A span under the current one, made by the serving sidecar's tracer; a no-op span when
    the call is not traced (tracing off, sampled out, or outside an RPC)."""
    tracer = CURRENT_TRACER.get()
    if tracer is None or not trace.get_current_span().is_recording():
        yield _NOOP_SPAN
        return
    with tracer.start_as_current_span(name, attributes=attributes) as span:
        yield span


def decision_attributes(decision: Decision) -> dict[str, str | float | bool]:
    """The attributes a decision adds to a span: enum names and numbers, never user data."""
    return {
        VERDICT: decision.verdict.value,
        TOKEN_STATUS: decision.token_status.value,
        DECIDED_BY: decision.decided_by,
        REPLAYED: decision.replayed,
        THRESHOLD: decision.threshold,
        SCORE: decision.score,
    }


@contextmanager
def policy_span() -> Iterator[PolicySpan]:
    """Wraps the policy decision: `with policy_span() as span: d = decide(...); span.record(d)`."""
    with child_span("policy.decide") as span:
        yield PolicySpan(span)


class PolicySpan:
    """The policy span, to which the decision is added once it is made."""

    __slots__ = ("_span",)

    def __init__(self, span: Span) -> None:
        self._span = span

    def record(self, decision: Decision) -> None:
        if self._span.is_recording():
            self._span.set_attributes(decision_attributes(decision))
