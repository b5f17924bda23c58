"""Assess through generated stubs over real sockets, against the emulator as upstream."""

from __future__ import annotations

import time
from pathlib import Path

import grpc
import pytest
from recaptcha.sidecar.v1 import sidecar_pb2 as pb

from sidecar.emulator import mint_token
from tests.conftest import EmulatorHandle, SidecarFactory, SidecarHandle


async def assess(handle: SidecarHandle, **fields: object) -> pb.AssessResponse:
    return await handle.stub.Assess(pb.AssessRequest(**fields), timeout=5)


async def test_fresh_token_passes_once_then_duplicate_without_upstream_call(
    sidecar: SidecarHandle, emulator: EmulatorHandle
) -> None:
    token = mint_token(score=0.9, action="login")
    first = await assess(sidecar, token=token, expected_action="login")
    assert (first.allowed, first.verdict, first.token_status) == (
        True,
        pb.VERDICT_PASSED,
        pb.TOKEN_STATUS_VALID,
    )
    assert first.assessment_name.startswith("projects/")
    assert first.score == pytest.approx(0.9, abs=1e-6)
    assert first.action == "login" and first.hostname == "localhost"
    assert not first.replayed

    second = await assess(sidecar, token=token, expected_action="login")
    assert (second.allowed, second.verdict, second.token_status) == (
        False,
        pb.VERDICT_FAILED_ENFORCE,
        pb.TOKEN_STATUS_DUPLICATE,
    )
    assert second.assessment_name == first.assessment_name
    assert await emulator.control.calls_for(token) == 1


async def test_same_token_over_unix_socket_is_duplicate(sidecar: SidecarHandle) -> None:
    token = mint_token(action="login")
    tcp = await assess(sidecar, token=token, expected_action="login")
    uds = await sidecar.stub_for(sidecar.uds).Assess(
        pb.AssessRequest(token=token, expected_action="login"), timeout=5
    )
    assert tcp.token_status == pb.TOKEN_STATUS_VALID
    assert uds.token_status == pb.TOKEN_STATUS_DUPLICATE


async def test_missing_token_answered_locally(
    sidecar: SidecarHandle, emulator: EmulatorHandle
) -> None:
    before = (await emulator.control.stats())["create_calls"]
    answer = await assess(sidecar, token="", expected_action="login")
    assert (answer.allowed, answer.token_status, answer.verdict) == (
        False,
        pb.TOKEN_STATUS_MISSING,
        pb.VERDICT_FAILED_ENFORCE,
    )
    assert (await emulator.control.stats())["create_calls"] == before


@pytest.mark.parametrize(
    ("token", "status", "reason"),
    [
        ("not-a-token", pb.TOKEN_STATUS_INVALID, "MALFORMED"),
        (lambda: mint_token(issued_at=time.time() - 300), pb.TOKEN_STATUS_EXPIRED, "EXPIRED"),
        (
            lambda: mint_token(invalid_reason="BROWSER_ERROR"),
            pb.TOKEN_STATUS_INVALID,
            "BROWSER_ERROR",
        ),
        (lambda: mint_token(site_key="other-key"), pb.TOKEN_STATUS_INVALID, "KEY_MISMATCH"),
    ],
)
async def test_invalid_tokens(
    sidecar: SidecarHandle, token: object, status: int, reason: str
) -> None:
    value = token() if callable(token) else token
    answer = await assess(sidecar, token=value, site_key="my-key")
    assert (answer.allowed, answer.token_status, answer.invalid_reason) == (False, status, reason)
    assert answer.verdict == pb.VERDICT_FAILED_ENFORCE


async def test_upstream_dupe_for_token_never_seen_here_is_duplicate(
    make_sidecar: SidecarFactory,
) -> None:
    token = mint_token()
    one, two = await make_sidecar(), await make_sidecar()  # two sidecars, no shared store
    assert (await assess(one, token=token)).token_status == pb.TOKEN_STATUS_VALID
    answer = await assess(two, token=token)
    assert (answer.token_status, answer.invalid_reason, answer.allowed) == (
        pb.TOKEN_STATUS_DUPLICATE,
        "DUPE",
        False,
    )


async def test_unreachable_upstream_is_unchecked_and_closed(make_sidecar: SidecarFactory) -> None:
    from tests.support.network import free_port

    handle = await make_sidecar(upstream_endpoint=f"127.0.0.1:{free_port()}", upstream_timeout=1)
    answer = await assess(handle, token=mint_token())
    assert (answer.token_status, answer.allowed, answer.verdict) == (
        pb.TOKEN_STATUS_UNCHECKED,
        False,
        pb.VERDICT_FAILED_ENFORCE,
    )


POLICY = """
policy:
  default: {threshold: 0.5, mode: enforce, on_upstream_failure: closed}
  actions:
    login: {threshold: 0.7}
    signup: {mode: audit}
    checkout: {on_upstream_failure: open}
"""


@pytest.fixture
async def policy_sidecar(make_sidecar: SidecarFactory, tmp_path: Path) -> SidecarHandle:
    config = tmp_path / "sidecar.yaml"
    config.write_text(POLICY)
    return await make_sidecar(config)


@pytest.mark.parametrize(
    ("action", "score", "allowed", "verdict", "threshold"),
    [
        ("login", 0.7, True, pb.VERDICT_PASSED, 0.7),
        ("login", 0.6, False, pb.VERDICT_FAILED_ENFORCE, 0.7),
        ("LOGIN", 0.6, False, pb.VERDICT_FAILED_ENFORCE, 0.7),  # action names ignore case
        ("search", 0.6, True, pb.VERDICT_PASSED, 0.5),  # default policy
        ("search", 0.4, False, pb.VERDICT_FAILED_ENFORCE, 0.5),
        ("signup", 0.1, True, pb.VERDICT_FAILED_AUDIT, 0.5),  # audit lets failures through
        ("signup", 0.9, True, pb.VERDICT_PASSED, 0.5),
    ],
)
async def test_thresholds_and_modes_per_action(
    policy_sidecar: SidecarHandle,
    action: str,
    score: float,
    allowed: bool,
    verdict: int,
    threshold: float,
) -> None:
    answer = await assess(
        policy_sidecar, token=mint_token(score=score, action=action), expected_action=action
    )
    assert (answer.allowed, answer.verdict) == (allowed, verdict)
    assert answer.token_status == pb.TOKEN_STATUS_VALID
    assert answer.threshold == pytest.approx(threshold)
    assert answer.policy_version


async def test_float32_score_passes_equal_threshold(
    make_sidecar: SidecarFactory, tmp_path: Path
) -> None:
    config = tmp_path / "c.yaml"
    config.write_text("policy:\n  default: {threshold: 0.9}\n")
    handle = await make_sidecar(config)
    answer = await assess(handle, token=mint_token(score=0.9))
    assert answer.score < 0.9  # it really arrives as a float32 below 0.9
    assert answer.verdict == pb.VERDICT_PASSED


async def test_action_mismatch_fails_and_duplicates_audit_in_audit_mode(
    policy_sidecar: SidecarHandle,
) -> None:
    token = mint_token(action="login")
    answer = await assess(policy_sidecar, token=token, expected_action="search")
    assert (answer.allowed, answer.verdict, answer.decided_by) == (
        False,
        pb.VERDICT_FAILED_ENFORCE,
        "action_mismatch",
    )
    repeat = await assess(policy_sidecar, token=token, expected_action="signup")
    assert (repeat.allowed, repeat.verdict, repeat.token_status) == (
        True,
        pb.VERDICT_FAILED_AUDIT,
        pb.TOKEN_STATUS_DUPLICATE,
    )


async def test_failure_policy_open_per_action(make_sidecar: SidecarFactory, tmp_path: Path) -> None:
    from tests.support.network import free_port

    config = tmp_path / "c.yaml"
    config.write_text(POLICY)
    handle = await make_sidecar(
        config, upstream_endpoint=f"127.0.0.1:{free_port()}", upstream_timeout=1
    )
    closed = await assess(handle, token=mint_token(), expected_action="login")
    opened = await assess(handle, token=mint_token(), expected_action="checkout")
    assert (closed.token_status, closed.allowed) == (pb.TOKEN_STATUS_UNCHECKED, False)
    assert (opened.token_status, opened.allowed, opened.verdict) == (
        pb.TOKEN_STATUS_UNCHECKED,
        True,
        pb.VERDICT_FAILED_AUDIT,
    )


async def test_request_fields_reach_upstream(
    sidecar: SidecarHandle, emulator: EmulatorHandle
) -> None:
    await assess(
        sidecar,
        token=mint_token(action="login"),
        expected_action="login",
        site_key="site-key-1",
        user_ip_address="2001:db8::1",
        user_agent="Mozilla/5.0 test",
        ja3="771,4865-4866,0-23,29-23,0",
        ja4="t13d1516h2_8daaf6152771_e5627efa2ab1",
        requested_uri="https://example.com/login",
        account_id="acct-42",
        user_ids=[pb.UserId(email="a@example.com"), pb.UserId(phone_number="+15550100")],
        headers=["accept-language: en"],
    )
    create = (await emulator.control.stats())["recent_creates"][-1]
    assert create["parent"] == "projects/test-project"
    event = create["event"]
    assert event["site_key"] == "site-key-1"
    assert event["user_ip_address"] == "2001:db8::1"
    assert event["user_agent"] == "Mozilla/5.0 test"
    assert event["ja3"].startswith("771,") and event["ja4"].startswith("t13d")
    assert event["requested_uri"] == "https://example.com/login"
    assert event["expected_action"] == "login"
    assert event["headers"] == ["accept-language: en"]
    assert event["user_info"]["account_id"] == "acct-42"
    assert event["user_info"]["user_ids"] == [
        {"email": "a@example.com"},
        {"phone_number": "+15550100"},
    ]


@pytest.mark.parametrize(
    ("fields", "field"),
    [
        ({"token": "x" * 10_001}, "token"),
        ({"token": "t", "expected_action": "log in"}, "expected_action"),
        ({"token": "t", "expected_action": "login!"}, "expected_action"),
        ({"token": "t", "expected_action": "a" * 101}, "expected_action"),
        ({"token": "t", "user_ip_address": "999.1.1.1"}, "user_ip_address"),
        ({"token": "t", "user_ip_address": "localhost"}, "user_ip_address"),
        ({"token": "t", "site_key": "bad key"}, "site_key"),
        ({"token": "t", "idempotency_key": "k" * 129}, "idempotency_key"),
        ({"token": "t", "user_ids": [pb.UserId()]}, "user_ids[0]"),
        ({"token": "t", "headers": ["h: v"] * 65}, "headers"),
    ],
)
async def test_assess_input_checks(sidecar: SidecarHandle, fields: dict, field: str) -> None:
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await assess(sidecar, **fields)
    assert caught.value.code() is grpc.StatusCode.INVALID_ARGUMENT
    assert caught.value.details().startswith(field + ":")
