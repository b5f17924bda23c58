"""The one rule, whatever the failure policy (issue 13 item 2): a token is allowed at most once.

An allowed answer (an UNCHECKED one an open policy let through included) settles the claim;
only a not-allowed answer whose token never reached Google releases it. Repeats of a token
still in flight that run out of time are DUPLICATE, or, with the same idempotency key and the
same request, UNCHECKED under a closed decision: never let through by the open policy.
"""

from __future__ import annotations

import asyncio

import grpc
from recaptcha.sidecar.v1 import sidecar_pb2 as pb

from sidecar.emulator import mint_token
from tests.conftest import EmulatorHandle, SidecarFactory
from tests.support.network import free_port

OPEN = {"actions": {"login": {"on_upstream_failure": "open"}}}
PRESENTATIONS = 10


async def present(
    stub: object, token: str, key: str = "", timeout: float = 1.0
) -> pb.AssessResponse:
    message = pb.AssessRequest(token=token, expected_action="login", idempotency_key=key)
    return await stub.Assess(message, timeout=timeout)  # type: ignore[attr-defined,no-any-return]


async def test_in_flight_repeats_that_time_out_are_duplicates_under_an_open_policy(
    make_sidecar: SidecarFactory, emulator: EmulatorHandle, store_url: str
) -> None:
    """Upstream answers in 1.5 s, callers wait 1 s: the first presentation is UNCHECKED and the
    open policy lets it through; the nine repeats knew they were repeats, so they are DUPLICATE,
    and so is every later presentation."""
    # A wide margin: on a loaded machine the answers must still beat the callers' deadline.
    handle = await make_sidecar(replay_store=store_url, policy=OPEN, deadline_margin=0.25)
    await emulator.control.set_faults("create", latency_ms=1500)
    token = mint_token(action="login")
    answers = await asyncio.gather(*(present(handle.stub, token) for _ in range(PRESENTATIONS)))
    allowed = [a for a in answers if a.allowed]
    assert len(allowed) == 1, answers
    assert allowed[0].token_status == pb.TOKEN_STATUS_UNCHECKED
    assert allowed[0].decided_by.startswith("transient:deadline")
    repeats = [a for a in answers if not a.allowed]
    assert {a.token_status for a in repeats} == {pb.TOKEN_STATUS_DUPLICATE}, repeats
    await emulator.control.clear_faults()
    later = await present(handle.stub, token, timeout=10)
    assert (later.allowed, later.token_status) == (False, pb.TOKEN_STATUS_DUPLICATE)
    assert await emulator.control.calls_for(token) == 1


async def test_in_flight_retries_with_the_same_key_are_unchecked_and_closed(
    make_sidecar: SidecarFactory, emulator: EmulatorHandle, store_url: str
) -> None:
    """The same presentations with one idempotency key (the same request): the retries get no
    answer in time, so they are UNCHECKED, but closed; once upstream answered, a retry gets the
    stored answer."""
    handle = await make_sidecar(replay_store=store_url, policy=OPEN, deadline_margin=0.25)
    await emulator.control.set_faults("create", latency_ms=1500)
    token = mint_token(action="login")
    answers = await asyncio.gather(
        *(present(handle.stub, token, key="order-1") for _ in range(PRESENTATIONS))
    )
    assert sum(a.allowed for a in answers) == 1, answers
    closed = [a for a in answers if not a.allowed]
    assert len(closed) == PRESENTATIONS - 1
    assert {(a.token_status, a.verdict) for a in closed} == {
        (pb.TOKEN_STATUS_UNCHECKED, pb.VERDICT_FAILED_ENFORCE)
    }
    # The flight goes on for the keyed call; its answer becomes the stored one.
    for _ in range(100):
        retry = await present(handle.stub, token, key="order-1", timeout=10)
        if retry.replayed:
            break
        await asyncio.sleep(0.05)
    assert retry.replayed and retry.token_status == pb.TOKEN_STATUS_VALID
    # A presentation without the key is a repeat: never allowed.
    other = await present(handle.stub, token, timeout=10)
    assert (other.allowed, other.token_status) == (False, pb.TOKEN_STATUS_DUPLICATE)
    assert await emulator.control.calls_for(token) == 1


async def test_an_answer_let_through_while_upstream_is_unreachable_settles_the_claim(
    make_sidecar: SidecarFactory, store_url: str
) -> None:
    """Upstream refuses connections (the token provably never reached Google) and the policy
    is open: the first presentation is let through, and that settles the claim, so the token
    cannot be let through a second time."""
    handle = await make_sidecar(
        replay_store=store_url,
        policy=OPEN,
        upstream_endpoint=f"127.0.0.1:{free_port()}",  # nobody listens there
        retry_max_attempts=1,
    )
    token = mint_token(action="login")
    first = await present(handle.stub, token, timeout=10)
    assert first.allowed and first.token_status == pb.TOKEN_STATUS_UNCHECKED, first
    for _ in range(3):
        again = await present(handle.stub, token, timeout=10)
        assert (again.allowed, again.token_status) == (False, pb.TOKEN_STATUS_DUPLICATE), again


async def test_a_closed_answer_whose_token_never_reached_google_is_released(
    make_sidecar: SidecarFactory, store_url: str
) -> None:
    """The other half of the rule: with the default (closed) policy nothing was allowed, so the
    claim is released and the real user may present the token again."""
    handle = await make_sidecar(
        replay_store=store_url,
        upstream_endpoint=f"127.0.0.1:{free_port()}",
        retry_max_attempts=1,
    )
    token = mint_token(action="login")
    for _ in range(2):
        answer = await present(handle.stub, token, timeout=10)
        assert (answer.allowed, answer.token_status) == (False, pb.TOKEN_STATUS_UNCHECKED)


async def test_a_caller_without_time_left_never_lets_a_token_through_twice(
    make_sidecar: SidecarFactory, emulator: EmulatorHandle, store_url: str
) -> None:
    """A deadline shorter than the sidecar's margin: the answer (UNCHECKED, let through by the
    open policy) must still settle a claim, so a second such call is DUPLICATE."""
    handle = await make_sidecar(replay_store=store_url, policy=OPEN, deadline_margin=0.5)
    token = mint_token(action="login")
    allowed = 0
    for _ in range(3):
        try:
            answer = await present(handle.stub, token, timeout=0.4)
        except grpc.aio.AioRpcError as error:
            assert error.code() == grpc.StatusCode.DEADLINE_EXCEEDED
            continue
        allowed += answer.allowed
    assert allowed <= 1
    later = await present(handle.stub, token, timeout=10)
    assert later.allowed is False
