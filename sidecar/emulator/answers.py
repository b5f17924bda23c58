"""What an assessment says, built from the claims a token (or an express request) carries.

Kept apart from the gRPC service so that each output Google gives is one small function of
the claims: a new signal (SMS toll-fraud risk, transaction risk, related accounts) is a claim
in tokens.py and a function here, and the service does not change.
"""

from __future__ import annotations

from typing import Any

from google.cloud.recaptchaenterprise_v1.types import (
    AccountDefenderAssessment,
    Assessment,
    RiskAnalysis,
    TokenProperties,
)

from sidecar.emulator.keys import Origin
from sidecar.emulator.tokens import DEFAULT_SCORE, TokenClaims, parse_token

AssessmentPb: Any = Assessment.pb()
_InvalidReason: Any = TokenProperties.pb().InvalidReason
_ClassificationReason: Any = RiskAnalysis.pb().ClassificationReason
_AccountDefenderLabel: Any = AccountDefenderAssessment.pb().AccountDefenderLabel

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
