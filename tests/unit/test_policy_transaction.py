"""Fraud prevention in the rules: `max_transaction_risk` fails a request like a low score, in
audit and enforce mode, only when upstream assessed the transaction; float32-aware; after the
SMS rule; the other signals pass through to the decision untouched."""

from __future__ import annotations

import dataclasses
from typing import Any

import pytest

from sidecar.core.model import RecommendedAction, Signals, UpstreamAssessment, Verdict
from sidecar.policy.rules import as_float32, decide
from sidecar.policy.schema import ActionPolicy

SIGNALS = Signals(
    transaction_risk=as_float32(0.6),
    transaction_risk_reasons=("HIGH_TRANSACTION_VELOCITY",),
    stolen_instrument_risk=as_float32(0.2),
    card_testing_risk=as_float32(0.1),
    behavioral_trust=as_float32(0.8),
    account_takeover_risk=as_float32(0.3),
    account_takeover_risk_reasons=("CLIENT_ACCESSED_MANY_ACCOUNTS",),
    account_takeover_trust_reasons=("PROFILE_MATCH",),
    extended_verdict_reasons=("some_new_reason",),
    challenge="PASSED",
)
GOOD = UpstreamAssessment(
    name="projects/1/assessments/a", valid=True, score=0.9, action="pay", signals=SIGNALS
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
def test_a_transaction_risk_above_the_maximum_fails(mode: str, expected: tuple[Any, ...]) -> None:
    decision = decide(rules(mode=mode, max_transaction_risk=0.5), "pay", GOOD)
    assert (decision.allowed, decision.verdict, decision.recommended_action) == expected
    assert decision.decided_by == "transaction_risk_above_max"
    assert decision.signals == SIGNALS


@pytest.mark.parametrize("mode", ["enforce", "audit"])
def test_at_or_below_the_maximum_passes(mode: str) -> None:
    for maximum in (0.6, 0.9):
        decision = decide(rules(mode=mode, max_transaction_risk=maximum), "pay", GOOD)
        assert decision.verdict is Verdict.PASSED


def test_not_assessed_never_fails_and_the_signals_pass_through() -> None:
    no_signals = dataclasses.replace(GOOD, signals=None)
    decision = decide(rules(max_transaction_risk=0.0), "pay", no_signals)
    assert (decision.verdict, decision.signals) == (Verdict.PASSED, None)
    other_only = dataclasses.replace(GOOD, signals=Signals(challenge="NOCAPTCHA"))
    assert decide(rules(max_transaction_risk=0.0), "pay", other_only).verdict is Verdict.PASSED
    assert decide(rules(), "pay", GOOD).signals == SIGNALS


def test_the_order_score_then_sms_then_transaction() -> None:
    both = dataclasses.replace(GOOD, sms_toll_fraud_risk=0.9)
    policy = rules(max_sms_toll_fraud_risk=0.5, max_transaction_risk=0.5)
    assert decide(policy, "pay", both).decided_by == "sms_toll_fraud_risk_above_max"
    low = dataclasses.replace(both, score=0.1)
    assert decide(policy, "pay", low).decided_by == "score_below_threshold"
