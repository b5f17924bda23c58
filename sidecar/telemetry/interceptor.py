"""The gRPC server interceptor: per RPC a server span that continues the caller's trace, the
RPC metrics, the decision metrics, the in-flight gauge and one access log line.

It is the one place where decisions are counted (from the AssessResponse the servicer built),
so the servicer and the core stay free of metrics. Health checks and reflection pass through
untouched: probes every few seconds would drown the traces and skew the latencies.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from typing import Any

import grpc
from opentelemetry import context as otel_context
from opentelemetry import trace
from opentelemetry.trace import SpanKind, Status, StatusCode, Tracer
from recaptcha.sidecar.v1 import sidecar_pb2

from sidecar.telemetry import tracing
from sidecar.telemetry.logs import AccessLog
from sidecar.telemetry.metrics import Instruments

UNTRACED_PREFIXES = ("/grpc.health.", "/grpc.reflection.")
# Server-side span status is ERROR only for codes that say the server failed, per the RPC
# semantic conventions; INVALID_ARGUMENT and the like are the caller's doing.
_SERVER_ERRORS = {
    grpc.StatusCode.UNKNOWN,
    grpc.StatusCode.DEADLINE_EXCEEDED,
    grpc.StatusCode.UNIMPLEMENTED,
    grpc.StatusCode.INTERNAL,
    grpc.StatusCode.UNAVAILABLE,
    grpc.StatusCode.DATA_LOSS,
}
_VERDICT = {
    v.number: v.name.removeprefix("VERDICT_") for v in sidecar_pb2.Verdict.DESCRIPTOR.values
}
_TOKEN_STATUS = {
    v.number: v.name.removeprefix("TOKEN_STATUS_")
    for v in sidecar_pb2.TokenStatus.DESCRIPTOR.values
}
_DELIVERY = {
    v.number: v.name.removeprefix("ANNOTATION_DELIVERY_")
    for v in sidecar_pb2.AnnotationDelivery.DESCRIPTOR.values
}

Behavior = Callable[[Any, grpc.aio.ServicerContext], Awaitable[Any]]


class TelemetryInterceptor(grpc.aio.ServerInterceptor):  # type: ignore[misc]
    """Observes every unary RPC except health checks and reflection."""

    def __init__(self, *, tracer: Tracer, instruments: Instruments, tracing_on: bool) -> None:
        self._tracer = tracer
        self._instruments = instruments
        self._tracing = tracing_on
        self._access = AccessLog()
        # Handlers are looked up per call but are the same objects each time: wrap each once.
        self._wrapped: dict[str, tuple[grpc.RpcMethodHandler, grpc.RpcMethodHandler]] = {}

    async def intercept_service(
        self,
        continuation: Callable[[grpc.HandlerCallDetails], Awaitable[grpc.RpcMethodHandler]],
        handler_call_details: grpc.HandlerCallDetails,
    ) -> grpc.RpcMethodHandler:
        handler = await continuation(handler_call_details)
        method: str = handler_call_details.method
        if handler is None or handler.unary_unary is None or method.startswith(UNTRACED_PREFIXES):
            return handler
        cached = self._wrapped.get(method)
        if cached is not None and cached[0] is handler:
            return cached[1]
        wrapped = grpc.unary_unary_rpc_method_handler(
            self._observe(method, handler.unary_unary),
            request_deserializer=handler.request_deserializer,
            response_serializer=handler.response_serializer,
        )
        self._wrapped[method] = (handler, wrapped)
        return wrapped

    def _observe(self, full_method: str, inner: Behavior) -> Behavior:
        service, _, method = full_method.lstrip("/").rpartition("/")
        span_name = f"{service}/{method}"
        labels = {"rpc.service": service, "rpc.method": method}
        span_attributes = {
            tracing.RPC_SYSTEM: "grpc",
            tracing.RPC_SERVICE: service,
            tracing.RPC_METHOD: method,
        }
        instruments, tracer, access = self._instruments, self._tracer, self._access
        tracing_on = self._tracing

        async def behavior(request: Any, context: grpc.aio.ServicerContext) -> Any:
            start = time.perf_counter()
            span = None
            if tracing_on:
                parent = tracing.extract(context.invocation_metadata())
                span = tracer.start_span(
                    span_name, context=parent, kind=SpanKind.SERVER, attributes=span_attributes
                )
                attached = otel_context.attach(trace.set_span_in_context(span, parent))
                tracer_token = tracing.CURRENT_TRACER.set(tracer)
            instruments.rpc_active.add(service, method)
            code = grpc.StatusCode.OK
            response = None
            try:
                response = await inner(request, context)
                return response
            except asyncio.CancelledError:
                code = grpc.StatusCode.CANCELLED
                raise
            except BaseException:
                code = context.code() or grpc.StatusCode.UNKNOWN
                raise
            finally:
                if code is grpc.StatusCode.OK:
                    code = context.code() or grpc.StatusCode.OK  # set_code without raising
                elapsed = time.perf_counter() - start
                instruments.rpc_active.add(service, method, amount=-1)
                instruments.rpc_duration.record(
                    elapsed, {**labels, "rpc.grpc.status_code": code.value[0]}
                )
                fields = self._outcome(request, response)
                if span is not None:
                    span.set_attribute(tracing.RPC_STATUS, code.value[0])
                    if fields:
                        span.set_attributes({f"recaptcha.{k}": v for k, v in fields.items()})
                    if code in _SERVER_ERRORS:
                        span.set_status(Status(StatusCode.ERROR, code.name))
                if access.enabled():
                    access.write(
                        {
                            "rpc_method": method,
                            "code": code.name,
                            "duration_ms": round(elapsed * 1000, 3),
                            **fields,
                        }
                    )
                if span is not None:
                    span.end()
                    tracing.CURRENT_TRACER.reset(tracer_token)
                    otel_context.detach(attached)

        return behavior

    def _outcome(self, request: Any, response: Any) -> dict[str, str | float | bool]:
        """What the answer says, as enum names and numbers, and the decision metrics."""
        if isinstance(response, sidecar_pb2.AssessResponse):
            action = self._instruments.actions(request.expected_action)
            verdict = _VERDICT.get(response.verdict, "UNSPECIFIED")
            status = _TOKEN_STATUS.get(response.token_status, "UNSPECIFIED")
            fresh_score = status == "VALID" and not response.replayed
            self._instruments.record_decision(
                verdict=verdict,
                token_status=status,
                action=action,
                score=response.score if fresh_score else None,
            )
            return {
                "action": action,
                "verdict": verdict,
                "token_status": status,
                "replayed": response.replayed,
                "threshold": round(response.threshold, 6),
                "score": round(response.score, 6),
                "decided_by": response.decided_by,
            }
        if isinstance(response, sidecar_pb2.AnnotateResponse):
            return {"delivery": _DELIVERY.get(response.delivery, "UNSPECIFIED")}
        return {}
