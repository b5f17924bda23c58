"""Single use through a real sidecar, on each replay store: concurrency, idempotent retries,
and release of claims whose token never reached upstream. Upstream calls are counted at the
emulator."""

from __future__ import annotations

import asyncio
import hashlib

import grpc
import pytest
from recaptcha.sidecar.v1 import sidecar_pb2 as pb

from sidecar.emulator import mint_token
from tests.conftest import TEST_SITE_KEY, EmulatorHandle, SidecarFactory, SidecarHandle
from tests.support.calls import assess
from tests.support.polling import eventually

CONCURRENT = 200


@pytest.fixture
async def handle(make_sidecar: SidecarFactory, store_url: str) -> SidecarHandle:
    return await make_sidecar(replay_store=store_url)


async def test_concurrent_calls_with_one_token_allow_exactly_one(
    handle: SidecarHandle, emulator: EmulatorHandle
) -> None:
    token = mint_token(action="login")
    await emulator.control.set_faults("create", latency_ms=50)  # keep them overlapping
    answers = await asyncio.gather(*(assess(handle.stub, token) for _ in range(CONCURRENT)))
    allowed = [a for a in answers if a.allowed]
    assert len(allowed) == 1
    assert allowed[0].token_status == pb.TOKEN_STATUS_VALID and not allowed[0].replayed
    duplicates = [a for a in answers if a.token_status == pb.TOKEN_STATUS_DUPLICATE]
    assert len(duplicates) == CONCURRENT - 1
    assert {d.assessment_name for d in duplicates} == {allowed[0].assessment_name}
    assert all(d.verdict == pb.VERDICT_FAILED_ENFORCE for d in duplicates)
    assert await emulator.control.calls_for(token) == 1


async def test_concurrent_calls_with_one_idempotency_key_share_one_answer(
    handle: SidecarHandle, emulator: EmulatorHandle
) -> None:
    token = mint_token(action="login")
    await emulator.control.set_faults("create", latency_ms=50)
    answers = await asyncio.gather(*(assess(handle.stub, token, key="order-1") for _ in range(50)))
    assert {a.assessment_name for a in answers} == {answers[0].assessment_name}
    assert all(a.token_status == pb.TOKEN_STATUS_VALID and a.allowed for a in answers)
    assert sum(not a.replayed for a in answers) == 1
    assert await emulator.control.calls_for(token) == 1


async def test_retry_after_client_timeout_returns_the_original_decision(
    handle: SidecarHandle, emulator: EmulatorHandle
) -> None:
    token = mint_token(action="login")
    await emulator.control.set_faults("create", latency_ms=1500)
    try:
        first = await assess(handle.stub, token, key="checkout-7", timeout=0.3)
    except grpc.aio.AioRpcError as error:
        assert error.code() == grpc.StatusCode.DEADLINE_EXCEEDED
    else:  # the sidecar answered just inside the deadline: no answer could be had yet
        assert first.token_status == pb.TOKEN_STATUS_UNCHECKED and not first.allowed

    retry = await assess(handle.stub, token, key="checkout-7")
    assert (retry.allowed, retry.token_status, retry.replayed) == (
        True,
        pb.TOKEN_STATUS_VALID,
        True,
    )
    assert retry.assessment_name.startswith("projects/")

    other_key = await assess(handle.stub, token, key="checkout-8")
    no_key = await assess(handle.stub, token)
    for answer in (other_key, no_key):
        assert (answer.allowed, answer.token_status, answer.replayed) == (
            False,
            pb.TOKEN_STATUS_DUPLICATE,
            False,
        )
        assert answer.assessment_name == retry.assessment_name

    again = await assess(handle.stub, token, key="checkout-7")  # now from the store
    assert (again.allowed, again.replayed, again.assessment_name) == (
        True,
        True,
        retry.assessment_name,
    )
    assert await emulator.control.calls_for(token) == 1


async def test_first_presentation_with_a_key_is_not_a_replay(handle: SidecarHandle) -> None:
    token = mint_token(action="login")
    first = await assess(handle.stub, token, key="k")
    assert (first.allowed, first.replayed) == (True, False)


async def test_claim_is_released_when_the_token_never_reached_upstream(
    handle: SidecarHandle, emulator: EmulatorHandle
) -> None:
    token = mint_token(action="login")
    await emulator.control.set_faults("create", quota=True)  # refused before processing
    refused = await assess(handle.stub, token)
    assert (refused.allowed, refused.token_status) == (False, pb.TOKEN_STATUS_UNCHECKED)
    assert refused.decided_by.startswith("quota:")

    await emulator.control.clear_faults()
    retried = await assess(handle.stub, token)
    assert (retried.allowed, retried.token_status) == (True, pb.TOKEN_STATUS_VALID)
    assert (await assess(handle.stub, token)).token_status == pb.TOKEN_STATUS_DUPLICATE
    assert await emulator.control.calls_for(token) == 2  # the refused one and the real one


async def test_claim_is_kept_when_the_token_may_have_been_consumed(
    handle: SidecarHandle, emulator: EmulatorHandle
) -> None:
    token = mint_token(action="login")
    await emulator.control.set_faults("create", fail_after_consume_rate=1.0)
    lost = await assess(handle.stub, token)
    assert (lost.allowed, lost.token_status) == (False, pb.TOKEN_STATUS_UNCHECKED)
    spent = await emulator.control.calls_for(token)  # the first call and its retries
    assert spent >= 1

    await emulator.control.clear_faults()
    repeat = await assess(handle.stub, token)
    assert (repeat.allowed, repeat.token_status) == (False, pb.TOKEN_STATUS_DUPLICATE)
    assert await emulator.control.calls_for(token) == spent  # the repeat cost nothing upstream


async def test_store_keys_are_digests_never_tokens(
    make_sidecar: SidecarFactory, store_url: str
) -> None:
    """Whatever the store, what it is keyed by is SHA-256 of the token."""
    from sidecar.core.verify import token_digest

    token = mint_token(action="login")
    assert token_digest(token) == hashlib.sha256(token.encode()).hexdigest()
    handle = await make_sidecar(replay_store=store_url)
    await assess(handle.stub, token, key="secret-order-id")

    async def settled() -> bool:  # the claim is settled just after the caller is answered
        entry = await handle.sidecar.replay.get(token_digest(token))
        return entry is not None and entry.decision is not None

    await eventually(settled, timeout=5)
    entry = await handle.sidecar.replay.get(token_digest(token))
    assert entry is not None and entry.decision is not None
    # The key is kept only as a digest, bound to the request it came with (issue 13 item 1).
    from sidecar.core.model import AssessmentRequest
    from sidecar.core.verify import idempotency_digest

    sent = AssessmentRequest(token, expected_action="login", idempotency_key="secret-order-id")
    assert entry.idempotency_digest == idempotency_digest(sent, TEST_SITE_KEY)  # as applied
    assert "secret-order-id" not in entry.idempotency_digest
    assert entry.idempotency_digest != hashlib.sha256(b"secret-order-id").hexdigest()
