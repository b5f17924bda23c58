"""Account defender and the policy rules end to end: emulator tokens carrying labels, app ids and
ages, through the sidecar's gRPC API, decided by the shipped sample config."""

from __future__ import annotations

import base64
import os
import time
from pathlib import Path

import pytest
from recaptcha.sidecar.v1 import sidecar_pb2 as pb

from sidecar.emulator import mint_token
from sidecar.policy.tools import load_policy_file
from tests.conftest import SidecarFactory, SidecarHandle

ROOT = Path(__file__).resolve().parents[2]
SAMPLE = ROOT / "deploy" / "config" / "account-protection.yaml"


async def assess(handle: SidecarHandle, **fields: object) -> pb.AssessResponse:
    return await handle.stub.Assess(pb.AssessRequest(**fields), timeout=5)


@pytest.fixture
async def sample_sidecar(make_sidecar: SidecarFactory, tmp_path: Path) -> SidecarHandle:
    """The shipped account-protection sample, with its key file pointed at a test key."""
    key_file = tmp_path / "account-id-key"
    key_file.write_text(base64.b64encode(os.urandom(64)).decode())
    return await make_sidecar(SAMPLE, account_id_key_file=key_file)


ACTIONS = [
    "LOGIN",
    "REGISTRATION",
    "SECURITY_QUESTION_CHANGE",
    "PASSWORD_RESET",
    "PHONE_NUMBER_UPDATE",
    "EMAIL_UPDATE",
    "ACCOUNT_UPDATE",
    "TRIGGER_MFA",
    "REDEEM_CODE",
    "LIST_PAYMENT_METHODS",
]


@pytest.mark.parametrize("action", ACTIONS)
async def test_sample_config_serves_every_account_defender_action(
    sample_sidecar: SidecarHandle, action: str
) -> None:
    expected = load_policy_file(SAMPLE).for_action(action)
    answer = await assess(
        sample_sidecar,
        token=mint_token(score=0.9, action=action),
        expected_action=action,
        account_id="user-1",
    )
    assert (answer.allowed, answer.verdict, answer.recommended_action) == (
        True,
        pb.VERDICT_PASSED,
        pb.RECOMMENDED_ACTION_ALLOW,
    )
    assert answer.threshold == pytest.approx(expected.threshold)
    assert answer.policy_version == load_policy_file(SAMPLE).version
    low = await assess(
        sample_sidecar, token=mint_token(score=0.1, action=action), expected_action=action
    )
    assert (low.allowed, low.decided_by) == (False, "score_below_threshold")


@pytest.mark.parametrize(
    ("action", "labels", "allowed", "verdict", "recommended", "decided_by"),
    [
        (
            "LOGIN",
            ["SUSPICIOUS_LOGIN_ACTIVITY"],
            True,
            pb.VERDICT_PASSED,
            pb.RECOMMENDED_ACTION_CHALLENGE,
            "account_defender:SUSPICIOUS_LOGIN_ACTIVITY",
        ),
        (
            "login",  # action names ignore case
            ["RELATED_ACCOUNTS_NUMBER_HIGH"],
            True,
            pb.VERDICT_PASSED,
            pb.RECOMMENDED_ACTION_CHALLENGE,
            "account_defender:RELATED_ACCOUNTS_NUMBER_HIGH",
        ),
        (
            "LOGIN",
            ["PROFILE_MATCH"],
            True,
            pb.VERDICT_PASSED,
            pb.RECOMMENDED_ACTION_ALLOW,
            "passed",
        ),
        (
            "REGISTRATION",
            ["SUSPICIOUS_ACCOUNT_CREATION"],
            False,
            pb.VERDICT_FAILED_ENFORCE,
            pb.RECOMMENDED_ACTION_BLOCK,
            "account_defender:SUSPICIOUS_ACCOUNT_CREATION",
        ),
        (
            "REGISTRATION",
            ["RELATED_ACCOUNTS_NUMBER_HIGH", "SUSPICIOUS_ACCOUNT_CREATION"],
            False,
            pb.VERDICT_FAILED_ENFORCE,
            pb.RECOMMENDED_ACTION_BLOCK,
            "account_defender:SUSPICIOUS_ACCOUNT_CREATION",
        ),
        (
            "LIST_PAYMENT_METHODS",
            ["SUSPICIOUS_LOGIN_ACTIVITY"],
            False,
            pb.VERDICT_FAILED_ENFORCE,
            pb.RECOMMENDED_ACTION_BLOCK,
            "account_defender:SUSPICIOUS_LOGIN_ACTIVITY",
        ),
        (
            "EMAIL_UPDATE",  # inherits the default's rules
            ["SUSPICIOUS_ACCOUNT_CREATION"],
            False,
            pb.VERDICT_FAILED_ENFORCE,
            pb.RECOMMENDED_ACTION_BLOCK,
            "account_defender:SUSPICIOUS_ACCOUNT_CREATION",
        ),
    ],
)
async def test_account_defender_labels_become_recommended_actions(
    sample_sidecar: SidecarHandle,
    action: str,
    labels: list[str],
    allowed: bool,
    verdict: int,
    recommended: int,
    decided_by: str,
) -> None:
    answer = await assess(
        sample_sidecar,
        token=mint_token(score=0.9, action=action, labels=labels),
        expected_action=action,
        account_id="user-1",
    )
    assert (answer.allowed, answer.verdict, answer.recommended_action, answer.decided_by) == (
        allowed,
        verdict,
        recommended,
        decided_by,
    )
    assert list(answer.account_defender_labels) == labels
    assert answer.token_status == pb.TOKEN_STATUS_VALID


async def test_a_repeat_keeps_the_challenge_it_was_given(sample_sidecar: SidecarHandle) -> None:
    """An app retrying with its idempotency key gets the same advice, not a silent ALLOW."""
    token = mint_token(action="LOGIN", labels=["SUSPICIOUS_LOGIN_ACTIVITY"])
    fields = {"token": token, "expected_action": "LOGIN", "idempotency_key": "req-1"}
    first = await assess(sample_sidecar, **fields)
    again = await assess(sample_sidecar, **fields)
    assert first.recommended_action == again.recommended_action == pb.RECOMMENDED_ACTION_CHALLENGE
    assert again.replayed


async def test_audit_mode_never_challenges(make_sidecar: SidecarFactory, tmp_path: Path) -> None:
    config = tmp_path / "c.yaml"
    config.write_text(
        "policy:\n  default:\n    mode: audit\n"
        "    account_defender: {SUSPICIOUS_LOGIN_ACTIVITY: challenge,"
        " SUSPICIOUS_ACCOUNT_CREATION: block}\n"
    )
    handle = await make_sidecar(config)
    challenge = await assess(handle, token=mint_token(labels=["SUSPICIOUS_LOGIN_ACTIVITY"]))
    block = await assess(handle, token=mint_token(labels=["SUSPICIOUS_ACCOUNT_CREATION"]))
    assert (challenge.allowed, challenge.verdict, challenge.recommended_action) == (
        True,
        pb.VERDICT_PASSED,
        pb.RECOMMENDED_ACTION_ALLOW,
    )
    assert challenge.decided_by == "account_defender:SUSPICIOUS_LOGIN_ACTIVITY"
    assert (block.allowed, block.verdict, block.recommended_action) == (
        True,
        pb.VERDICT_FAILED_AUDIT,
        pb.RECOMMENDED_ACTION_ALLOW,
    )


APP_POLICY = """
policy:
  default:
    allowed_hostnames: ["*.example.com"]
    allowed_android_packages: ["com.example.*"]
    allowed_ios_bundles: [com.example.ios]
    max_token_age: 30
"""


@pytest.mark.parametrize(
    ("claims", "decided_by"),
    [
        ({"hostname": "shop.example.com"}, "passed"),
        ({"hostname": "example.com"}, "hostname_not_allowed"),
        ({"hostname": "evil.test"}, "hostname_not_allowed"),
        ({"android_package_name": "com.example.app"}, "passed"),
        ({"android_package_name": "com.evil.app"}, "android_package_not_allowed"),
        ({"ios_bundle_id": "com.example.ios"}, "passed"),
        ({"ios_bundle_id": "com.example.ios.beta"}, "ios_bundle_not_allowed"),
        ({"hostname": "shop.example.com", "age": 60}, "token_too_old"),
        ({"hostname": "shop.example.com", "age": 10}, "passed"),
    ],
)
async def test_app_ids_hostnames_and_token_age(
    make_sidecar: SidecarFactory, tmp_path: Path, claims: dict[str, object], decided_by: str
) -> None:
    config = tmp_path / "c.yaml"
    config.write_text(APP_POLICY)
    handle = await make_sidecar(config)
    age = float(claims.pop("age", 0))  # type: ignore[arg-type]
    token = mint_token(issued_at=time.time() - age, **claims)  # type: ignore[arg-type]
    answer = await assess(handle, token=token)
    assert answer.decided_by == decided_by
    assert answer.allowed is (decided_by == "passed")
    assert answer.token_status == pb.TOKEN_STATUS_VALID  # upstream's word; the policy said no
    assert answer.android_package_name == claims.get("android_package_name", "")
    assert answer.ios_bundle_id == claims.get("ios_bundle_id", "")
