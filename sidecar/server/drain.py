"""Graceful shutdown's gate: once draining, new calls are refused with UNAVAILABLE while the
calls already running finish.

Stopping the gRPC server outright closes the listener, but a call that gRPC core accepted a
moment before and the application had not picked up yet is cancelled (CANCELLED), which
clients do not retry. Refusing at the application first, and stopping the server only once
the running calls are done, gives every new call the same clean, retryable UNAVAILABLE.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable
from typing import Any

import grpc


class DrainGate(grpc.aio.ServerInterceptor):  # type: ignore[misc]
    """Counts the calls of the gated services and refuses new ones once `close` was called.
    Health and reflection pass untouched, so probes still read NOT_SERVING while draining."""

    def __init__(self, services: tuple[str, ...]) -> None:
        self._prefixes = tuple(f"/{service}/" for service in services)
        self._draining = False
        self._in_flight = 0
        self._idle = asyncio.Event()
        self._idle.set()
        # Handlers are looked up per call but are the same objects each time: wrap each once.
        self._wrapped: dict[str, tuple[Any, grpc.RpcMethodHandler]] = {}

    def in_flight(self) -> int:
        return self._in_flight

    @property
    def draining(self) -> bool:
        return self._draining

    def close(self) -> None:
        """Refuse every new call from now on."""
        self._draining = True

    async def wait_idle(self, timeout: float) -> bool:
        """Wait at most `timeout` seconds for the running calls; True when none is left."""
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._idle.wait(), max(0.0, timeout))
        return self._in_flight == 0

    async def intercept_service(
        self,
        continuation: Callable[[grpc.HandlerCallDetails], Awaitable[Any]],
        handler_call_details: grpc.HandlerCallDetails,
    ) -> Any:
        handler = await continuation(handler_call_details)
        method: str = handler_call_details.method
        if handler is None or handler.unary_unary is None or not method.startswith(self._prefixes):
            return handler
        cached = self._wrapped.get(method)
        if cached is not None and cached[0] is handler:
            return cached[1]
        behaviour = handler.unary_unary

        async def gated(request: Any, context: grpc.aio.ServicerContext) -> Any:
            if self._draining:
                await context.abort(grpc.StatusCode.UNAVAILABLE, "the sidecar is shutting down")
            self._in_flight += 1
            self._idle.clear()
            try:
                return await behaviour(request, context)
            finally:
                self._in_flight -= 1
                if self._in_flight == 0:
                    self._idle.set()

        wrapped = grpc.unary_unary_rpc_method_handler(
            gated,
            request_deserializer=handler.request_deserializer,
            response_serializer=handler.response_serializer,
        )
        self._wrapped[method] = (handler, wrapped)
        return wrapped
