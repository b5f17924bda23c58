"""SMS defense in the rules: `max_sms_toll_fraud_risk` fails a request like a low score, in
audit and enforce mode, only when SMS defense assessed it; float32-aware; after the score."""

from __future__ import annotations

import dataclasses
from typing import Any

import pytest

from sidecar.core.model import RecommendedAction, TokenStatus, UpstreamAssessment, Verdict
from sidecar.policy.rules import as_float32, decide, risk_within
from sidecar.policy.schema import ActionPolicy

GOOD = UpstreamAssessment(
    name="projects/1/assessments/a",
    valid=True,
    score=as_float32(0.9),
    action="login",
    sms_toll_fraud_risk=as_float32(0.7),
    sms_toll_fraud_reasons=("INVALID_PHONE_NUMBER",),
)


def rules(**fields: Any) -> ActionPolicy:
    return ActionPolicy.model_validate(fields)


@pytest.mark.parametrize(
    ("mode", "expected"),
    [
        ("enforce", (False, Verdict.FAILED_ENFORCE, RecommendedAction.BLOCK)),
        ("audit", (True, Verdict.FAILED_AUDIT, RecommendedAction.ALLOW)),
    ],
)
def test_a_risk_above_the_maximum_fails_like_a_low_score(
    mode: str, expected: tuple[Any, ...]
) -> None:
    decision = decide(rules(mode=mode, max_sms_toll_fraud_risk=0.5), "login", GOOD)
    assert (decision.allowed, decision.verdict, decision.recommended_action) == expected
    assert decision.decided_by == "sms_toll_fraud_risk_above_max"
    assert decision.token_status is TokenStatus.VALID
    assert decision.sms_toll_fraud_risk == GOOD.sms_toll_fraud_risk
    assert decision.sms_toll_fraud_reasons == ("INVALID_PHONE_NUMBER",)


@pytest.mark.parametrize("mode", ["enforce", "audit"])
def test_a_risk_at_or_below_the_maximum_passes(mode: str) -> None:
    # 0.7 arrives as float32 0.69999998…: it must still pass a 0.7 maximum
    for maximum in (0.7, 0.8, 1.0):
        decision = decide(rules(mode=mode, max_sms_toll_fraud_risk=maximum), "login", GOOD)
        assert (decision.verdict, decision.decided_by) == (Verdict.PASSED, "passed")


def test_no_limit_or_no_assessment_never_fails() -> None:
    assert decide(rules(), "login", GOOD).verdict is Verdict.PASSED
    unassessed = dataclasses.replace(GOOD, sms_toll_fraud_risk=None, sms_toll_fraud_reasons=())
    decision = decide(rules(max_sms_toll_fraud_risk=0.0), "login", unassessed)
    assert decision.verdict is Verdict.PASSED
    assert decision.sms_toll_fraud_risk is None  # absent, never a 0.0 that reads as safe


def test_a_zero_risk_is_assessed_and_kept() -> None:
    safe = dataclasses.replace(GOOD, sms_toll_fraud_risk=0.0)
    decision = decide(rules(max_sms_toll_fraud_risk=0.0), "login", safe)
    assert (decision.verdict, decision.sms_toll_fraud_risk) == (Verdict.PASSED, 0.0)


def test_the_score_rule_comes_first_and_express_is_checked_too() -> None:
    low = dataclasses.replace(GOOD, score=0.1)
    assert decide(rules(max_sms_toll_fraud_risk=0.5), "login", low).decided_by == (
        "score_below_threshold"
    )
    express = dataclasses.replace(GOOD, valid=False, express=True)
    decision = decide(rules(max_sms_toll_fraud_risk=0.5), "login", express)
    assert (decision.decided_by, decision.token_status) == (
        "sms_toll_fraud_risk_above_max",
        TokenStatus.EXPRESS,
    )


def test_risk_within() -> None:
    assert risk_within(None, 0.1) and risk_within(0.9, None) and risk_within(None, None)
    assert not risk_within(float("nan"), 1.0)
    assert risk_within(as_float32(0.3), 0.3) and not risk_within(0.31, 0.3)


@pytest.mark.parametrize("bad", [-0.1, 1.5, "high"])
def test_the_maximum_is_a_risk(bad: object) -> None:
    with pytest.raises(ValueError, match="max_sms_toll_fraud_risk"):
        rules(max_sms_toll_fraud_risk=bad)
