"""The emulator's claims for the signals beside the score (issue 18 item 7): each claim is
validated like the others and answered only when the request asks for it."""

from __future__ import annotations

from typing import Any

import pytest
from google.cloud.recaptchaenterprise_v1.types import Event

from sidecar.emulator import mint_token, parse_token
from sidecar.emulator.answers import AssessmentPb, signals
from sidecar.emulator.tokens import DEFAULT_SMS_TOLL_FRAUD_RISK, SMS_TOLL_FRAUD_REASONS

EventPb: Any = Event.pb()


def event(**fields: Any) -> Any:
    return EventPb(**fields)


def answered(token: str, request: Any, omit: frozenset[str] = frozenset()) -> Any:
    claims = parse_token(token)
    assert claims is not None
    assessment = AssessmentPb()
    signals(assessment, claims, request, omit)
    return assessment


PHONE = {"user_info": {"user_ids": [{"email": "a@example.org"}, {"phone_number": "+15555550100"}]}}


def test_sms_defense_answers_for_a_phone_number_only() -> None:
    token = mint_token(sms_toll_fraud_risk=0.8, sms_toll_fraud_reasons=["INVALID_PHONE_NUMBER"])
    with_phone = answered(token, event(**PHONE))
    verdict = with_phone.phone_fraud_assessment.sms_toll_fraud_verdict
    assert verdict.risk == pytest.approx(0.8)
    assert list(verdict.reasons) == [1]  # INVALID_PHONE_NUMBER
    no_phone = answered(token, event(user_info={"user_ids": [{"email": "a@example.org"}]}))
    assert not no_phone.HasField("phone_fraud_assessment")


def test_the_default_risk_and_the_omit_knob() -> None:
    default = answered(mint_token(), event(**PHONE))
    risk = default.phone_fraud_assessment.sms_toll_fraud_verdict.risk
    assert risk == pytest.approx(DEFAULT_SMS_TOLL_FRAUD_RISK)
    omitted = answered(mint_token(), event(**PHONE), frozenset({"phone_fraud_assessment"}))
    assert not omitted.HasField("phone_fraud_assessment")


@pytest.mark.parametrize(
    "kwargs",
    [
        {"sms_toll_fraud_risk": 1.5},
        {"sms_toll_fraud_risk": -0.01},
        {"sms_toll_fraud_reasons": ["TOO_EXPENSIVE"]},
    ],
)
def test_bad_claims_are_refused_at_the_mint(kwargs: dict[str, Any]) -> None:
    with pytest.raises(ValueError):
        mint_token(**kwargs)


def test_name_sets_match_the_upstream_enums() -> None:
    from google.cloud.recaptchaenterprise_v1.types import SmsTollFraudVerdict

    reasons = SmsTollFraudVerdict.pb().SmsTollFraudReason.DESCRIPTOR.values_by_name
    assert {n for n in reasons if not n.endswith("_UNSPECIFIED")} == SMS_TOLL_FRAUD_REASONS


PAYMENT = {"transaction_data": {"value": 10.0, "currency_code": "USD"}}


def test_fraud_prevention_answers_for_transaction_data_only() -> None:
    token = mint_token(
        transaction_risk=0.7,
        transaction_risk_reasons=["HIGH_TRANSACTION_VELOCITY"],
        stolen_instrument_risk=0.6,
        card_testing_risk=0.5,
        behavioral_trust=0.4,
    )
    fraud = answered(token, event(**PAYMENT)).fraud_prevention_assessment
    assert fraud.transaction_risk == pytest.approx(0.7)
    assert [r.reason for r in fraud.risk_reasons] == [1]  # HIGH_TRANSACTION_VELOCITY
    assert fraud.stolen_instrument_verdict.risk == pytest.approx(0.6)
    assert fraud.card_testing_verdict.risk == pytest.approx(0.5)
    assert fraud.behavioral_trust_verdict.trust == pytest.approx(0.4)
    assert not answered(token, event()).HasField("fraud_prevention_assessment")
    omitted = answered(token, event(**PAYMENT), frozenset({"fraud_prevention_assessment"}))
    assert not omitted.HasField("fraud_prevention_assessment")


def test_account_takeover_extended_reasons_and_challenge_when_claimed() -> None:
    token = mint_token(
        account_takeover_risk=0.8,
        account_takeover_risk_reasons=["CLIENT_ACCESSED_MANY_ACCOUNTS"],
        account_takeover_trust_reasons=["PROFILE_MATCH"],
        extended_verdict_reasons=["x.y"],
        challenge="FAILED",
    )
    with_account = answered(token, event(user_info={"account_id": "acct"}))
    takeover = with_account.account_defender_assessment.account_takeover_verdict
    assert takeover.risk == pytest.approx(0.8)
    assert [r.reason for r in takeover.risk_reasons] == [3]
    assert [r.reason for r in takeover.trust_reasons] == [1]
    assert list(with_account.risk_analysis.extended_verdict_reasons) == ["x.y"]
    assert with_account.risk_analysis.challenge == 3  # FAILED
    assert not answered(token, event()).HasField("account_defender_assessment")
    plain = answered(mint_token(), event(user_info={"account_id": "acct"}))
    assert not plain.HasField("account_defender_assessment")
    assert plain.risk_analysis.challenge == 0


@pytest.mark.parametrize(
    "kwargs",
    [
        {"transaction_risk": 2},
        {"transaction_risk_reasons": ["NOPE"]},
        {"behavioral_trust": -1},
        {"account_takeover_risk_reasons": ["PROFILE_MATCH"]},
        {"account_takeover_trust_reasons": ["DISPOSABLE_EMAIL_DOMAIN"]},
        {"challenge": "MAYBE"},
        {"extended_verdict_reasons": [""]},
        {"device": 7},
        {"not_a_claim": 1},
    ],
)
def test_bad_signal_claims_are_refused_at_the_mint(kwargs: dict[str, Any]) -> None:
    with pytest.raises(ValueError):
        mint_token(**kwargs)


def test_signal_name_sets_match_the_upstream_enums() -> None:
    from google.cloud.recaptchaenterprise_v1.types import (
        AccountDefenderAssessment,
        FraudPreventionAssessment,
        RiskAnalysis,
    )

    from sidecar.emulator import tokens

    def names(enum: Any) -> set[str]:
        return {n for n in enum.DESCRIPTOR.values_by_name if not n.endswith("_UNSPECIFIED")}

    defender = AccountDefenderAssessment.pb()
    assert names(FraudPreventionAssessment.pb().RiskReason.Reason) == (
        tokens.TRANSACTION_RISK_REASONS
    )
    assert names(defender.AccountRiskReason.RiskReason) == tokens.ACCOUNT_TAKEOVER_RISK_REASONS
    assert names(defender.AccountTrustReason.TrustReason) == tokens.ACCOUNT_TAKEOVER_TRUST_REASONS
    assert names(RiskAnalysis.pb().Challenge) == tokens.CHALLENGES
