"""Requests that cannot be decoded are answered INVALID_ARGUMENT, never UNKNOWN.

gRPC decodes a request before any interceptor's behavior runs; a `DecodeError` there (random
bytes, a truncated message, bad UTF-8 in a string field, nesting past protobuf's limit) ends
the call UNKNOWN with an ERROR traceback per call, and no interceptor ever sees it, so it
is neither counted nor logged as a call. `DecodeGuard` wraps each handler's deserializer so
that it never raises: an undecodable request becomes a marker, and the handler answers it
INVALID_ARGUMENT like any other bad request, inside the telemetry interceptor (counted in
the RPC metrics, one access line, no traceback).

It must be the innermost interceptor, after the bearer-token check: a denied call gets a
handler that never decodes at all (`security._denying`), so unauthenticated bytes are not
even parsed.
"""

from __future__ import annotations

import inspect
import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import grpc

log = logging.getLogger(__name__)

UNDECODABLE_DETAILS = "request could not be decoded"


class _Undecodable:
    """What the guarded deserializer returns for bytes it cannot decode."""

    __slots__ = ("error",)

    def __init__(self, error: str) -> None:
        self.error = error


def _guarded(deserializer: Callable[[bytes], Any]) -> Callable[[bytes], Any]:
    def decode(data: bytes) -> Any:
        try:
            return deserializer(data)
        except Exception as error:  # DecodeError, RecursionError, …: the caller's bytes
            return _Undecodable(type(error).__name__)

    return decode


async def _refuse(context: grpc.aio.ServicerContext, request: _Undecodable) -> None:
    await context.abort(grpc.StatusCode.INVALID_ARGUMENT, UNDECODABLE_DETAILS)


def _unary(behavior: Callable[..., Awaitable[Any]]) -> Callable[..., Awaitable[Any]]:
    async def guarded(request: Any, context: grpc.aio.ServicerContext) -> Any:
        if type(request) is _Undecodable:
            await _refuse(context, request)
        return await behavior(request, context)

    return guarded


def _streaming(behavior: Callable[..., Any]) -> Callable[..., Any]:
    """A unary-stream behavior: an async generator, or a coroutine that writes itself."""
    if inspect.isasyncgenfunction(behavior):

        async def generate(request: Any, context: grpc.aio.ServicerContext) -> AsyncIterator[Any]:
            if type(request) is _Undecodable:
                await _refuse(context, request)
            async for item in behavior(request, context):
                yield item

        return generate
    return _unary(behavior)


class DecodeGuard(grpc.aio.ServerInterceptor):  # type: ignore[misc]
    """Makes every unary-request handler answer undecodable bytes INVALID_ARGUMENT."""

    def __init__(self) -> None:
        # Handlers are the same objects on every call: wrap each once.
        self._wrapped: dict[str, tuple[grpc.RpcMethodHandler, grpc.RpcMethodHandler]] = {}

    async def intercept_service(
        self,
        continuation: Callable[[grpc.HandlerCallDetails], Awaitable[grpc.RpcMethodHandler]],
        handler_call_details: grpc.HandlerCallDetails,
    ) -> grpc.RpcMethodHandler:
        handler = await continuation(handler_call_details)
        if handler is None or handler.request_deserializer is None or handler.request_streaming:
            return handler
        method: str = handler_call_details.method
        cached = self._wrapped.get(method)
        if cached is not None and cached[0] is handler:
            return cached[1]
        codecs = {
            "request_deserializer": _guarded(handler.request_deserializer),
            "response_serializer": handler.response_serializer,
        }
        if handler.unary_unary is not None:
            wrapped = grpc.unary_unary_rpc_method_handler(_unary(handler.unary_unary), **codecs)
        else:
            wrapped = grpc.unary_stream_rpc_method_handler(
                _streaming(handler.unary_stream), **codecs
            )
        self._wrapped[method] = (handler, wrapped)
        return wrapped
