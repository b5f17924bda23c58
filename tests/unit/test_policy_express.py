"""Express assessments in the rules: no token, so the token rules (validity, action match,
where it comes from, age) are skipped and the score decides, then account defender; the token
status is `express`; in both modes."""

from __future__ import annotations

from typing import Any

import pytest

from sidecar.core.model import RecommendedAction, TokenStatus, UpstreamAssessment, Verdict
from sidecar.policy.rules import as_float32, decide
from sidecar.policy.schema import ActionPolicy

NOW = 1_700_000_000.0
# What an express answer looks like: a name and a score, no token properties at all.
EXPRESS = UpstreamAssessment(
    name="projects/1/assessments/x", valid=False, score=as_float32(0.9), express=True
)
# Rules that would fail every tokenless answer if they were applied.
STRICT = {
    "require_action_match": True,
    "allowed_hostnames": ["shop.example"],
    "allowed_android_packages": ["com.example.shop"],
    "max_token_age": 30,
}


def rules(mode: str, **fields: Any) -> ActionPolicy:
    return ActionPolicy.model_validate({"mode": mode, **STRICT, **fields})


@pytest.mark.parametrize("mode", ["enforce", "audit"])
def test_the_token_rules_are_skipped_and_a_good_score_passes(mode: str) -> None:
    decision = decide(rules(mode, threshold=0.5), "checkout", EXPRESS, "v", now=NOW)
    assert (decision.allowed, decision.verdict, decision.decided_by) == (
        True,
        Verdict.PASSED,
        "passed",
    )
    assert decision.token_status is TokenStatus.EXPRESS
    assert (decision.invalid_reason, decision.assessment_name) == ("", EXPRESS.name)


@pytest.mark.parametrize(
    ("mode", "allowed", "verdict", "recommended"),
    [
        ("enforce", False, Verdict.FAILED_ENFORCE, RecommendedAction.BLOCK),
        ("audit", True, Verdict.FAILED_AUDIT, RecommendedAction.ALLOW),
    ],
)
def test_the_score_decides_by_the_actions_threshold(
    mode: str, allowed: bool, verdict: Verdict, recommended: RecommendedAction
) -> None:
    low = decide(rules(mode, threshold=0.95), "checkout", EXPRESS, now=NOW)
    assert (low.allowed, low.verdict, low.recommended_action, low.decided_by) == (
        allowed,
        verdict,
        recommended,
        "score_below_threshold",
    )
    assert low.token_status is TokenStatus.EXPRESS
    # float32-aware, as for tokens: a 0.9 score passes a 0.9 threshold
    assert decide(rules(mode, threshold=0.9), "checkout", EXPRESS, now=NOW).verdict is (
        Verdict.PASSED
    )


@pytest.mark.parametrize(
    ("mode", "expected"),
    [
        ("enforce", (False, Verdict.FAILED_ENFORCE, RecommendedAction.BLOCK)),
        ("audit", (True, Verdict.FAILED_AUDIT, RecommendedAction.ALLOW)),
    ],
)
def test_account_defender_still_applies(mode: str, expected: tuple[Any, ...]) -> None:
    labelled = UpstreamAssessment(
        name="n",
        valid=False,
        score=0.9,
        express=True,
        account_defender_labels=("SUSPICIOUS_ACCOUNT_CREATION",),
    )
    policy = rules(mode, account_defender={"SUSPICIOUS_ACCOUNT_CREATION": "block"})
    decision = decide(policy, "signup", labelled, now=NOW)
    assert (decision.allowed, decision.verdict, decision.recommended_action) == expected
    assert decision.decided_by == "account_defender:SUSPICIOUS_ACCOUNT_CREATION"


def test_the_same_answer_without_express_fails_the_token_rules() -> None:
    """The skip is what `express` buys: the same tokenless answer for a token is INVALID."""
    token_answer = UpstreamAssessment(name="n", valid=False, score=0.9)
    decision = decide(rules("enforce"), "checkout", token_answer, now=NOW)
    assert (decision.token_status, decision.allowed) == (TokenStatus.INVALID, False)
