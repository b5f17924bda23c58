"""The HTTP listener's counterpart of the gRPC interceptor: per request a server span that
continues the caller's trace, the request-duration metric and one access line.

HTTP-level concerns only: what the request decided reaches the span and the access line
through `CALL_FIELDS`, from the decision observer, as for gRPC. Only the method, the route
template and the status are recorded, never the URL: a siteverify GET carries the secret and
the token in its query string.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from typing import Any

from aiohttp import web
from opentelemetry import context as otel_context
from opentelemetry import trace
from opentelemetry.trace import SpanKind, Status, StatusCode, Tracer

from sidecar.telemetry import tracing
from sidecar.telemetry.logs import AccessLog
from sidecar.telemetry.metrics import Instruments
from sidecar.telemetry.observer import CALL_FIELDS

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
Middleware = Callable[[web.Request, Handler], Awaitable[web.StreamResponse]]


def _route(request: web.Request) -> str:
    """The matched route's template (`/forward-auth`), never the path the client sent."""
    resource = request.match_info.route.resource
    return resource.canonical if resource is not None else "unmatched"


def http_middleware(*, tracer: Tracer, instruments: Instruments, tracing_on: bool) -> Middleware:
    """An aiohttp middleware observing every request of the HTTP listener."""
    access = AccessLog()

    @web.middleware
    async def observe(request: web.Request, handler: Handler) -> web.StreamResponse:
        start = time.perf_counter()
        route = _route(request)
        span = None
        if tracing_on:
            parent = tracing.extract([(k.lower(), v) for k, v in request.headers.items()])
            span = tracer.start_span(
                f"{request.method} {route}",
                context=parent,
                kind=SpanKind.SERVER,
                attributes={tracing.HTTP_METHOD: request.method, tracing.HTTP_ROUTE: route},
            )
            attached = otel_context.attach(trace.set_span_in_context(span, parent))
        fields: dict[str, Any] = {}
        fields_token = CALL_FIELDS.set(fields)
        status = 500
        try:
            response = await handler(request)
            status = response.status
            return response
        except web.HTTPException as error:  # 404, 405, 413 raised by aiohttp itself
            status = error.status
            raise
        except asyncio.CancelledError:
            status = 499  # the client went away
            raise
        finally:
            CALL_FIELDS.reset(fields_token)
            elapsed = time.perf_counter() - start
            instruments.http_duration.record(
                elapsed,
                {"http.request.method": request.method, "http.route": route,
                 "http.response.status_code": status},
            )  # fmt: skip
            if span is not None:
                span.set_attribute(tracing.HTTP_STATUS, status)
                if status >= 500:
                    span.set_status(Status(StatusCode.ERROR, str(status)))
            if access.enabled():
                access.write(
                    {
                        "http_method": request.method,
                        "http_route": route,
                        "status": status,
                        "duration_ms": round(elapsed * 1000, 3),
                        **fields,
                    }
                )
            if span is not None:
                span.end()
                otel_context.detach(attached)

    return observe
