"""The drain gate wraps each method's handler once: an interceptor outside it (telemetry)
caches by handler identity, so a fresh handler per call would defeat that cache too."""

from __future__ import annotations

from typing import Any

import grpc

from sidecar.server.drain import DrainGate

METHOD = "/recaptcha.sidecar.v1.VerificationService/Assess"


class Details:
    def __init__(self, method: str) -> None:
        self.method = method
        self.invocation_metadata = ()


async def behavior(request: Any, context: Any) -> Any:
    return request


async def test_the_same_handler_is_wrapped_once() -> None:
    gate = DrainGate(("recaptcha.sidecar.v1.VerificationService",))
    handler = grpc.unary_unary_rpc_method_handler(behavior)

    async def continuation(details: Any) -> Any:
        return handler

    first = await gate.intercept_service(continuation, Details(METHOD))
    second = await gate.intercept_service(continuation, Details(METHOD))
    assert first is second
    assert first is not handler  # gated, not passed through
    assert await first.unary_unary("request", None) == "request"


async def test_ungated_services_pass_untouched() -> None:
    gate = DrainGate(("recaptcha.sidecar.v1.VerificationService",))
    handler = grpc.unary_unary_rpc_method_handler(behavior)

    async def continuation(details: Any) -> Any:
        return handler

    health = await gate.intercept_service(continuation, Details("/grpc.health.v1.Health/Check"))
    assert health is handler
