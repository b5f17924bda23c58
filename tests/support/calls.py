"""Assess calls the replay tests make over and over: one token, the `login` action."""

from __future__ import annotations

from recaptcha.sidecar.v1 import sidecar_pb2 as pb
from recaptcha.sidecar.v1 import sidecar_pb2_grpc


async def assess(
    stub: sidecar_pb2_grpc.VerificationServiceStub,
    token: str,
    key: str = "",
    timeout: float = 10.0,
) -> pb.AssessResponse:
    """Assess `token` for `login`, with idempotency key `key` when given."""
    request = pb.AssessRequest(token=token, expected_action="login", idempotency_key=key)
    return await stub.Assess(request, timeout=timeout)  # type: ignore[no-any-return]
