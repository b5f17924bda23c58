"""VERDICT_CLIENT_TYPE_MISSING and VERDICT_KEYS_MISSING: token UNCHECKED, and `allowed` from
the action's on_client_type_missing / on_keys_missing, in enforce and audit mode."""

from __future__ import annotations

import pytest

from sidecar.core.model import RecommendedAction, TokenStatus, Verdict
from sidecar.core.ports import FailureKind
from sidecar.policy.rules import decide_no_key
from sidecar.policy.schema import ActionPolicy, FailurePolicy, Policy

KINDS = {
    FailureKind.CLIENT_TYPE_MISSING: ("on_client_type_missing", Verdict.CLIENT_TYPE_MISSING),
    FailureKind.KEYS_MISSING: ("on_keys_missing", Verdict.KEYS_MISSING),
}


@pytest.mark.parametrize("kind", list(KINDS))
@pytest.mark.parametrize(
    ("mode", "failure_policy", "allowed"),
    [
        ("enforce", "closed", False),
        ("enforce", "open", True),
        ("audit", "closed", True),  # audit mode never refuses: it only counts
        ("audit", "open", True),
    ],
)
def test_no_key_verdicts_in_both_modes(
    kind: FailureKind, mode: str, failure_policy: str, allowed: bool
) -> None:
    key, verdict = KINDS[kind]
    policy = ActionPolicy.model_validate({"mode": mode, key: failure_policy, "threshold": 0.6})
    decision = decide_no_key(policy, kind, "android", "v7")
    assert (decision.allowed, decision.verdict, decision.token_status) == (
        allowed,
        verdict,
        TokenStatus.UNCHECKED,
    )
    expected_action = RecommendedAction.ALLOW if allowed else RecommendedAction.BLOCK
    assert decision.recommended_action is expected_action
    assert decision.decided_by == f"{kind.value}:android"
    assert (decision.threshold, decision.policy_version, decision.score) == (0.6, "v7", 0.0)
    assert decision.assessment_name == ""


def test_each_key_opens_only_its_own_verdict() -> None:
    policy = ActionPolicy.model_validate({"on_keys_missing": "open"})
    assert decide_no_key(policy, FailureKind.KEYS_MISSING).allowed
    assert not decide_no_key(policy, FailureKind.CLIENT_TYPE_MISSING).allowed
    policy = ActionPolicy.model_validate({"on_client_type_missing": "open"})
    assert decide_no_key(policy, FailureKind.CLIENT_TYPE_MISSING).allowed
    assert not decide_no_key(policy, FailureKind.KEYS_MISSING).allowed
    # the other failure policies do not open them
    policy = ActionPolicy.model_validate(
        {"on_upstream_failure": "open", "on_config_error": "open", "on_quota_exhausted": "open"}
    )
    assert not decide_no_key(policy, FailureKind.KEYS_MISSING).allowed
    assert not decide_no_key(policy, FailureKind.CLIENT_TYPE_MISSING).allowed


def test_both_default_closed_and_inherit_per_action() -> None:
    policy = Policy.model_validate(
        {"default": {"on_keys_missing": "open"}, "actions": {"login": {"threshold": 0.7}}}
    )
    assert policy.default.on_client_type_missing is FailurePolicy.CLOSED
    assert policy.for_action("login").on_keys_missing is FailurePolicy.OPEN
    assert ActionPolicy().on_keys_missing is FailurePolicy.CLOSED
