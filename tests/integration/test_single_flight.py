"""Single use inside one sidecar: concurrent calls for one token share one upstream call."""

from __future__ import annotations

import asyncio

from recaptcha.sidecar.v1 import sidecar_pb2 as pb

from sidecar.emulator import mint_token
from tests.conftest import EmulatorHandle, SidecarHandle


async def test_200_concurrent_calls_one_token_one_allowed_one_upstream_call(
    sidecar: SidecarHandle, emulator: EmulatorHandle
) -> None:
    token = mint_token(action="login")
    await emulator.control.set_faults("create", latency_ms=50)  # keep the leader in flight
    answers = await asyncio.gather(
        *(
            sidecar.stub.Assess(pb.AssessRequest(token=token, expected_action="login"), timeout=10)
            for _ in range(200)
        )
    )
    assert sum(a.allowed for a in answers) == 1
    statuses = sorted(a.token_status for a in answers)
    assert statuses.count(pb.TOKEN_STATUS_VALID) == 1
    assert statuses.count(pb.TOKEN_STATUS_DUPLICATE) == 199
    assert {a.assessment_name for a in answers} == {answers[0].assessment_name}
    assert await emulator.control.calls_for(token) == 1


async def test_concurrent_retries_with_the_same_key_share_the_answer(
    sidecar: SidecarHandle, emulator: EmulatorHandle
) -> None:
    token = mint_token(action="login")
    await emulator.control.set_faults("create", latency_ms=50)
    request = pb.AssessRequest(token=token, expected_action="login", idempotency_key="k1")
    answers = await asyncio.gather(*(sidecar.stub.Assess(request, timeout=10) for _ in range(20)))
    assert all(a.allowed and a.token_status == pb.TOKEN_STATUS_VALID for a in answers)
    assert sum(not a.replayed for a in answers) == 1
    other = await sidecar.stub.Assess(
        pb.AssessRequest(token=token, expected_action="login", idempotency_key="k2"), timeout=10
    )
    assert (other.allowed, other.token_status) == (False, pb.TOKEN_STATUS_DUPLICATE)
    assert await emulator.control.calls_for(token) == 1
