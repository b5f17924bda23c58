"""The gRPC server interceptor: per RPC a server span that continues the caller's trace, the
RPC metrics, the in-flight gauge and one access log line.

RPC-level concerns only: what the call decided is reported by the use cases to the decision
observer (`observer.py`), which adds it to this call's span and access line through
`CALL_FIELDS`. Health checks and reflection pass through untouched: probes every few seconds
would drown the traces and skew the latencies.
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

from sidecar.telemetry import tracing
from sidecar.telemetry.logs import AccessLog
from sidecar.telemetry.metrics import Instruments
from sidecar.telemetry.observer import CALL_FIELDS

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
            instruments.rpc_active.add(service, method)
            fields: dict[str, Any] = {}
            fields_token = CALL_FIELDS.set(fields)
            code = grpc.StatusCode.OK
            try:
                return await inner(request, context)
            except asyncio.CancelledError:
                code = grpc.StatusCode.CANCELLED
                raise
            except BaseException:
                code = context.code() or grpc.StatusCode.UNKNOWN
                raise
            finally:
                CALL_FIELDS.reset(fields_token)
                if code is grpc.StatusCode.OK:
                    code = context.code() or grpc.StatusCode.OK  # set_code without raising
                elapsed = time.perf_counter() - start
                instruments.rpc_active.add(service, method, amount=-1)
                instruments.rpc_duration.record(
                    elapsed, {**labels, "rpc.grpc.status_code": code.value[0]}
                )
                if span is not None:
                    span.set_attribute(tracing.RPC_STATUS, code.value[0])
                    if code in _SERVER_ERRORS:
                        span.set_status(Status(StatusCode.ERROR, code.name))
                if access.enabled():
                    ids: tuple[int, int] | tuple[()] = ()
                    if span is not None:
                        span_context = span.get_span_context()
                        ids = (span_context.trace_id, span_context.span_id)
                    access.write(
                        {
                            "rpc_method": method,
                            "code": code.name,
                            "duration_ms": round(elapsed * 1000, 3),
                            **fields,
                        },
                        ids,
                    )
                if span is not None:
                    span.end()
                    otel_context.detach(attached)

        return behavior
