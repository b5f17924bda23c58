"""What an assessment says, built from the claims a token (or an express request) carries.

Kept apart from the gRPC service so that each output Google gives is one small function of
the claims: a new signal is a claim in tokens.py and a function here, and the service does
not change.
"""

from __future__ import annotations

from typing import Any

from google.cloud.recaptchaenterprise_v1.types import (
    AccountDefenderAssessment,
    Assessment,
    FraudPreventionAssessment,
    RiskAnalysis,
    SmsTollFraudVerdict,
    TokenProperties,
)

from sidecar.emulator.keys import Origin
from sidecar.emulator.tokens import DEFAULT_SCORE, TokenClaims, parse_token

AssessmentPb: Any = Assessment.pb()
_InvalidReason: Any = TokenProperties.pb().InvalidReason
_ClassificationReason: Any = RiskAnalysis.pb().ClassificationReason
_AccountDefenderLabel: Any = AccountDefenderAssessment.pb().AccountDefenderLabel
_SmsTollFraudReason: Any = SmsTollFraudVerdict.pb().SmsTollFraudReason
_FraudRiskReason: Any = FraudPreventionAssessment.pb().RiskReason.Reason
_AccountRiskReason: Any = AccountDefenderAssessment.pb().AccountRiskReason.RiskReason
_AccountTrustReason: Any = AccountDefenderAssessment.pb().AccountTrustReason.TrustReason
_Challenge: Any = RiskAnalysis.pb().Challenge

# The parts of an assessment a project may not have enabled (SMS defense, fraud prevention,
# account defender): the `create` knob `omit` leaves them out, as Google does then.
OPTIONAL_PARTS = frozenset(
    {"phone_fraud_assessment", "fraud_prevention_assessment", "account_defender_assessment"}
)

# An express request has no token: its claims ride in one `event.headers` entry instead,
# `x-emulator-claims: emu1.…` (the token format, minted by `express_claims_header`).
EXPRESS_CLAIMS_HEADER = "x-emulator-claims"
_EXPRESS_PREFIX = EXPRESS_CLAIMS_HEADER + ":"


def invalid(assessment: Any, reason: str) -> None:
    """An invalid token: `valid=false` and the reason, nothing else (as Google answers)."""
    properties = assessment.token_properties
    properties.valid = False
    properties.invalid_reason = _InvalidReason.Value(reason)


def valid(assessment: Any, claims: TokenClaims, origin: Origin) -> None:
    """A valid token: where it came from, its action and age, then the risk signals."""
    properties = assessment.token_properties
    properties.valid = True
    setattr(properties, origin.field, origin.value)
    properties.action = claims.action
    properties.create_time.FromNanoseconds(int(claims.issued_at * 1e9))
    risk(assessment, claims)


def risk(assessment: Any, claims: TokenClaims) -> None:
    """Score, reasons and account defender labels: the signals tokens and express share."""
    analysis = assessment.risk_analysis
    analysis.score = claims.score
    if claims.reasons:
        analysis.reasons.extend(_ClassificationReason.Value(r) for r in claims.reasons)
    if claims.labels:
        assessment.account_defender_assessment.labels.extend(
            _AccountDefenderLabel.Value(label) for label in claims.labels
        )


def signals(assessment: Any, claims: TokenClaims, event: Any, omit: frozenset[str]) -> None:
    """What the request asked for beside the score, from the claims: SMS defense for a phone
    number in `user_info.user_ids`; fraud prevention for `transaction_data`; account
    defender's takeover verdict (when claimed, for a request with an account id); extended
    verdict reasons and a challenge's outcome (when claimed). `omit` leaves out the parts a
    project has not enabled."""
    if "phone_fraud_assessment" not in omit and any(
        user_id.phone_number for user_id in event.user_info.user_ids
    ):
        verdict = assessment.phone_fraud_assessment.sms_toll_fraud_verdict
        verdict.risk = claims.sms_toll_fraud_risk
        verdict.reasons.extend(_SmsTollFraudReason.Value(r) for r in claims.sms_toll_fraud_reasons)
    if "fraud_prevention_assessment" not in omit and event.HasField("transaction_data"):
        fraud = assessment.fraud_prevention_assessment
        fraud.transaction_risk = claims.transaction_risk
        for reason in claims.transaction_risk_reasons:
            fraud.risk_reasons.add(reason=_FraudRiskReason.Value(reason))
        fraud.stolen_instrument_verdict.risk = claims.stolen_instrument_risk
        fraud.card_testing_verdict.risk = claims.card_testing_risk
        fraud.behavioral_trust_verdict.trust = claims.behavioral_trust
    if claims.account_takeover_risk is not None and event.user_info.account_id:
        takeover = assessment.account_defender_assessment.account_takeover_verdict
        takeover.risk = claims.account_takeover_risk
        for reason in claims.account_takeover_risk_reasons:
            takeover.risk_reasons.add(reason=_AccountRiskReason.Value(reason))
        for reason in claims.account_takeover_trust_reasons:
            takeover.trust_reasons.add(reason=_AccountTrustReason.Value(reason))
    if "account_defender_assessment" in omit:
        assessment.ClearField("account_defender_assessment")
    analysis = assessment.risk_analysis
    analysis.extended_verdict_reasons.extend(claims.extended_verdict_reasons)
    if claims.challenge is not None:
        analysis.challenge = _Challenge.Value(claims.challenge)


def express_claims(event: Any) -> TokenClaims:
    """The claims of an express request: from its `x-emulator-claims` header, else defaults
    (score 0.9, no reasons). An unreadable header scores as if absent."""
    for header in event.headers:
        if header[: len(_EXPRESS_PREFIX)].lower() == _EXPRESS_PREFIX:
            claims = parse_token(header[len(_EXPRESS_PREFIX) :].strip())
            if claims is not None:
                return claims
    return TokenClaims(
        score=DEFAULT_SCORE, action="", hostname="", site_key=None, issued_at=0.0, nonce=""
    )


def express_claims_header(token: str) -> str:
    """The `event.headers` entry that carries ``token``'s claims for an express request."""
    return f"{EXPRESS_CLAIMS_HEADER}: {token}"
