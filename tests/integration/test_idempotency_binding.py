"""An idempotency key replays the stored answer only for the same request (issue 13 item 1).

A token accepted for `login` with key K must not be answered `allowed, replayed` when it comes
back with K for `transfer`, another site key, account, IP, …: that repeat is DUPLICATE. On
each replay store, on one sidecar and across two sidecars sharing Redis, races included.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable

import pytest
from recaptcha.sidecar.v1 import sidecar_pb2 as pb
from recaptcha.sidecar.v1 import sidecar_pb2_grpc

from sidecar.emulator import mint_token
from tests.conftest import EmulatorHandle, SidecarFactory

KEY = "order-4711"
BASE = {
    "expected_action": "login",
    "site_key": "site-key-a",
    "user_ip_address": "203.0.113.7",
    "user_agent": "Mozilla/5.0 (X11; Linux x86_64)",
    "ja3": "771,4865-4866,0-23,29-23,0",
    "ja4": "t13d1516h2_8daaf6152771_b186095e22b6",
    "requested_uri": "https://shop.example/login",
    "account_id": "account-1",
    "headers": ["accept-language: en"],
}
# One change per field that shapes the decision: each makes another request.
CHANGES: dict[str, Callable[[pb.AssessRequest], None]] = {
    "expected_action": lambda r: setattr(r, "expected_action", "transfer"),
    "site_key": lambda r: setattr(r, "site_key", "site-key-b"),
    "user_ip_address": lambda r: setattr(r, "user_ip_address", "198.51.100.9"),
    "user_agent": lambda r: setattr(r, "user_agent", "curl/8.5.0"),
    "ja3": lambda r: setattr(r, "ja3", "771,4865,0,29,0"),
    "ja4": lambda r: setattr(r, "ja4", "t13d1516h2_000000000000_000000000000"),
    "requested_uri": lambda r: setattr(r, "requested_uri", "https://shop.example/transfer"),
    "account_id": lambda r: setattr(r, "account_id", "account-2"),
    "user_ids": lambda r: r.user_ids.append(pb.UserId(email="other@example.org")),
    "headers": lambda r: r.headers.append("x-forwarded-for: 198.51.100.9"),
}
POLICY = {"actions": {"login": {"threshold": 0.5}, "transfer": {"threshold": 0.5}}}


def request(token: str, change: str | None = None) -> pb.AssessRequest:
    message = pb.AssessRequest(token=token, idempotency_key=KEY, **BASE)  # type: ignore[arg-type]
    if change is not None:
        CHANGES[change](message)
    return message


def assert_duplicate(answer: pb.AssessResponse, first: pb.AssessResponse, why: str) -> None:
    assert not answer.allowed, why
    assert not answer.replayed, why
    assert answer.token_status == pb.TOKEN_STATUS_DUPLICATE, why
    assert answer.verdict == pb.VERDICT_FAILED_ENFORCE, why
    # The original assessment's name stays, so the app can still annotate it.
    assert answer.assessment_name == first.assessment_name, why


@pytest.mark.parametrize("change", sorted(CHANGES))
async def test_a_key_reused_for_another_request_is_duplicate(
    make_sidecar: SidecarFactory, emulator: EmulatorHandle, store_url: str, change: str
) -> None:
    handle = await make_sidecar(replay_store=store_url, policy=POLICY)
    token = mint_token(action="login", site_key="site-key-a")
    first = await handle.stub.Assess(request(token), timeout=10)
    assert first.allowed and first.token_status == pb.TOKEN_STATUS_VALID and not first.replayed

    other = await handle.stub.Assess(request(token, change), timeout=10)
    assert_duplicate(other, first, f"{change} changed, same key")
    # The same request with the same key is still a retry: the stored answer.
    again = await handle.stub.Assess(request(token), timeout=10)
    assert again.allowed and again.replayed and again.assessment_name == first.assessment_name
    assert await emulator.control.calls_for(token) == 1


async def test_across_replicas_a_key_replays_only_the_same_request(
    make_sidecar: SidecarFactory, emulator: EmulatorHandle, redis_server: object
) -> None:
    url = redis_server.url  # type: ignore[attr-defined]
    first_replica = await make_sidecar(replay_store=url, policy=POLICY)
    second_replica = await make_sidecar(replay_store=url, policy=POLICY)
    tokens = [mint_token(action="login", site_key="site-key-a") for _ in CHANGES]
    firsts = [await first_replica.stub.Assess(request(t), timeout=10) for t in tokens]
    assert all(a.allowed and not a.replayed for a in firsts)
    for token, first, change in zip(tokens, firsts, sorted(CHANGES), strict=True):
        other = await second_replica.stub.Assess(request(token, change), timeout=10)
        assert_duplicate(other, first, f"{change} changed at another replica")
        again = await second_replica.stub.Assess(request(token), timeout=10)
        assert again.allowed and again.replayed, change


async def one_race(
    first: sidecar_pb2_grpc.VerificationServiceStub,
    second: sidecar_pb2_grpc.VerificationServiceStub,
    token: str,
) -> tuple[pb.AssessResponse, pb.AssessResponse]:
    login, transfer = await asyncio.gather(
        first.Assess(request(token), timeout=10),
        second.Assess(request(token, "expected_action"), timeout=10),
    )
    return login, transfer


@pytest.mark.parametrize("where", ["one sidecar", "two replicas"])
async def test_racing_calls_with_one_key_never_get_each_others_answer(
    make_sidecar: SidecarFactory, emulator: EmulatorHandle, redis_server: object, where: str
) -> None:
    """Two calls with one token and one key but different actions, at once: one is assessed,
    the other is DUPLICATE; neither is handed the other's answer as its own."""
    url = redis_server.url  # type: ignore[attr-defined]
    # A loaded machine must not turn a claim into a store timeout (UNCHECKED, no upstream).
    settings = {"replay_store": url, "policy": POLICY, "replay_timeout": 5.0}
    a = await make_sidecar(**settings)
    b = a if where == "one sidecar" else await make_sidecar(**settings)
    await emulator.control.set_faults("create", latency_ms=100)  # keep them overlapping
    tokens = [mint_token(action="login", site_key="site-key-a") for _ in range(20)]
    races = await asyncio.gather(*(one_race(a.stub, b.stub, t) for t in tokens))
    for token, (login, transfer) in zip(tokens, races, strict=True):
        answers = [login, transfer]
        fresh = [x for x in answers if x.token_status != pb.TOKEN_STATUS_DUPLICATE]
        assert len(fresh) == 1, answers
        assert not any(x.replayed for x in answers), answers
        assert sum(x.allowed for x in answers) <= 1, answers
        assert await emulator.control.calls_for(token) == 1
