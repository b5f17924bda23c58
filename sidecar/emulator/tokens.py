"""The emulator's token format: readable, unsigned, and mintable by hand in any language.

A token is ``emu1.`` followed by the unpadded base64url encoding of a compact UTF-8 JSON
object. The claims tell the emulator what to answer, so a test states the assessment it wants
instead of scripting a fake. Tokens are not signed: the emulator is a local test double and
must never stand in for Google where the answer matters.

This module is stdlib-only on purpose, so minting a token (the CLI's ``mint-token``) stays
cheap to import; the name sets below are checked against the proto enums by a unit test.
"""

from __future__ import annotations

import base64
import binascii
import json
import math
import re
import secrets
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

TOKEN_PREFIX = "emu1."  # noqa: S105 - a format tag, not a secret
TOKEN_LIFETIME_SECONDS = 120
DEFAULT_SCORE = 0.9
DEFAULT_HOSTNAME = "localhost"
# Larger than any real reCAPTCHA token; a bound keeps junk input from costing much.
MAX_TOKEN_CHARS = 16_384

# TokenProperties.InvalidReason names a token may force (all but the UNSPECIFIED zero value).
INVALID_REASONS: frozenset[str] = frozenset(
    {
        "UNKNOWN_INVALID_REASON",
        "MALFORMED",
        "EXPIRED",
        "DUPE",
        "MISSING",
        "BROWSER_ERROR",
        "UNEXPECTED_ACTION",
        "KEY_MISMATCH",
        "DOMAIN_MISMATCH",
    }
)
# RiskAnalysis.ClassificationReason names.
CLASSIFICATION_REASONS: frozenset[str] = frozenset(
    {
        "AUTOMATION",
        "UNEXPECTED_ENVIRONMENT",
        "TOO_MUCH_TRAFFIC",
        "UNEXPECTED_USAGE_PATTERNS",
        "LOW_CONFIDENCE_SCORE",
        "SUSPECTED_CARDING",
        "SUSPECTED_CHARGEBACK",
    }
)
# AccountDefenderAssessment.AccountDefenderLabel names.
ACCOUNT_DEFENDER_LABELS: frozenset[str] = frozenset(
    {
        "PROFILE_MATCH",
        "SUSPICIOUS_LOGIN_ACTIVITY",
        "SUSPICIOUS_ACCOUNT_CREATION",
        "RELATED_ACCOUNTS_NUMBER_HIGH",
    }
)

# PhoneFraudAssessment.SmsTollFraudVerdict.SmsTollFraudReason names.
SMS_TOLL_FRAUD_REASONS: frozenset[str] = frozenset({"INVALID_PHONE_NUMBER"})
# SMS defense's risk for a phone number when the token does not say (low: a normal number).
DEFAULT_SMS_TOLL_FRAUD_RISK = 0.1
# FraudPreventionAssessment.RiskReason.Reason names.
TRANSACTION_RISK_REASONS: frozenset[str] = frozenset(
    {
        "HIGH_TRANSACTION_VELOCITY",
        "EXCESSIVE_ENUMERATION_PATTERN",
        "SHORT_IDENTITY_HISTORY",
        "GEOLOCATION_DISCREPANCY",
        "ASSOCIATED_WITH_FRAUD_CLUSTER",
    }
)
# Fraud prevention's answers for transaction data when the token does not say: a normal payment.
DEFAULT_TRANSACTION_RISK = 0.1
DEFAULT_BEHAVIORAL_TRUST = 0.9
# AccountDefenderAssessment.AccountRiskReason.RiskReason / AccountTrustReason.TrustReason names.
ACCOUNT_TAKEOVER_RISK_REASONS: frozenset[str] = frozenset(
    {
        "CLIENT_HISTORICAL_BOT_ACTIVITY",
        "ACCOUNT_IN_LARGE_RELATED_GROUP",
        "CLIENT_ACCESSED_MANY_ACCOUNTS",
        "DISPOSABLE_EMAIL_DOMAIN",
    }
)
ACCOUNT_TAKEOVER_TRUST_REASONS: frozenset[str] = frozenset(
    {
        "PROFILE_MATCH",
        "ACCOUNT_HISTORY_REPUTABLE",
        "IDENTITY_GLOBAL_ACTIVITY_REPUTABLE",
        "IDENTITY_HISTORY_REPUTABLE",
    }
)
# RiskAnalysis.Challenge names.
CHALLENGES: frozenset[str] = frozenset({"NOCAPTCHA", "PASSED", "FAILED"})

# The end of year 9999, the last instant a protobuf Timestamp can hold.
_MAX_IAT = 253_402_300_800.0
_BASE64URL = re.compile(r"[A-Za-z0-9_-]*")


@dataclass(frozen=True, slots=True)
class TokenClaims:
    """What a token asks the emulator to answer; field names follow the assessment's."""

    score: float
    action: str
    hostname: str
    site_key: str | None
    issued_at: float
    nonce: str
    invalid_reason: str | None = None
    reasons: tuple[str, ...] = ()
    labels: tuple[str, ...] = ()
    android_package_name: str | None = None
    ios_bundle_id: str | None = None
    sms_toll_fraud_risk: float = DEFAULT_SMS_TOLL_FRAUD_RISK
    sms_toll_fraud_reasons: tuple[str, ...] = ()
    transaction_risk: float = DEFAULT_TRANSACTION_RISK
    transaction_risk_reasons: tuple[str, ...] = ()
    stolen_instrument_risk: float = DEFAULT_TRANSACTION_RISK
    card_testing_risk: float = DEFAULT_TRANSACTION_RISK
    behavioral_trust: float = DEFAULT_BEHAVIORAL_TRUST
    account_takeover_risk: float | None = None  # answered only when claimed
    account_takeover_risk_reasons: tuple[str, ...] = ()
    account_takeover_trust_reasons: tuple[str, ...] = ()
    extended_verdict_reasons: tuple[str, ...] = ()
    challenge: str | None = None
    device: str | None = None  # accounts assessed with one device form a related-account group

    def expired(self, now: float, lifetime: float = TOKEN_LIFETIME_SECONDS) -> bool:
        """Whether the token is past its lifetime, as upstream judges it at ``now``."""
        return now - self.issued_at > lifetime


def mint_token(
    *,
    score: float = DEFAULT_SCORE,
    action: str = "",
    hostname: str = DEFAULT_HOSTNAME,
    site_key: str | None = None,
    issued_at: float | None = None,
    invalid_reason: str | None = None,
    reasons: Iterable[str] = (),
    labels: Iterable[str] = (),
    android_package_name: str | None = None,
    ios_bundle_id: str | None = None,
    sms_toll_fraud_risk: float | None = None,
    sms_toll_fraud_reasons: Iterable[str] = (),
    **signals: Any,
) -> str:
    """Mint a fresh emulator token; every call returns a distinct token (random nonce).

    Raises ValueError for claims the emulator would reject, so a typo in a test fails at the
    mint rather than surfacing later as a puzzling MALFORMED.
    """
    claims: dict[str, Any] = {
        "score": score,
        "action": action,
        "hostname": hostname,
        "iat": time.time() if issued_at is None else issued_at,
        "nonce": secrets.token_hex(8),
    }
    if site_key is not None:
        claims["site_key"] = site_key
    if invalid_reason is not None:
        claims["invalid_reason"] = invalid_reason
    reasons = list(reasons)
    if reasons:
        claims["reasons"] = reasons
    labels = list(labels)
    if labels:
        claims["labels"] = labels
    if android_package_name is not None:
        claims["android_package_name"] = android_package_name
    if ios_bundle_id is not None:
        claims["ios_bundle_id"] = ios_bundle_id
    if sms_toll_fraud_risk is not None:
        claims["sms_toll_fraud_risk"] = sms_toll_fraud_risk
    sms_toll_fraud_reasons = list(sms_toll_fraud_reasons)
    if sms_toll_fraud_reasons:
        claims["sms_toll_fraud_reasons"] = sms_toll_fraud_reasons
    unknown = sorted(set(signals) - SIGNAL_CLAIMS)
    if unknown:
        raise ValueError(f"unknown claim(s) {unknown}; known: {sorted(SIGNAL_CLAIMS)}")
    for key, value in signals.items():
        if value is not None:
            claims[key] = list(value) if isinstance(value, tuple) else value
    _claims_from_mapping(claims)  # raises ValueError when invalid
    return encode_claims(claims)


def encode_claims(claims: Mapping[str, Any]) -> str:
    """Encode raw claims without validation (tests use it to build deliberately bad tokens)."""
    payload = json.dumps(claims, separators=(",", ":"), ensure_ascii=False).encode("utf-8")
    return TOKEN_PREFIX + base64.urlsafe_b64encode(payload).rstrip(b"=").decode("ascii")


def parse_token(token: str) -> TokenClaims | None:
    """Decode a token; None when it is not a well-formed emulator token (upstream MALFORMED).

    Unknown JSON keys are ignored so newer minters keep working with older emulators.
    """
    if not token.startswith(TOKEN_PREFIX) or len(token) > MAX_TOKEN_CHARS:
        return None
    body = token[len(TOKEN_PREFIX) :]
    if not body or len(body) % 4 == 1 or not _BASE64URL.fullmatch(body):
        return None
    try:
        raw = base64.urlsafe_b64decode(body + "=" * (-len(body) % 4))
        decoded = _DECODER.decode(raw.decode("utf-8"))
    except (binascii.Error, UnicodeDecodeError, ValueError, RecursionError):
        return None
    if not isinstance(decoded, dict):
        return None
    try:
        return _claims_from_mapping(decoded)
    except ValueError:
        return None


def _reject_constant(name: str) -> Any:
    """Refuse NaN and Infinity, which are not JSON and make no sense as a score or time."""
    raise ValueError(f"non-finite number {name}")


# One decoder for all tokens: json.loads with options builds a new one per call.
_DECODER = json.JSONDecoder(parse_constant=_reject_constant)


def _claims_from_mapping(raw: Mapping[str, Any]) -> TokenClaims:
    """Validate raw claims; ``iat`` is required so that every token can expire."""
    score = raw.get("score", DEFAULT_SCORE)
    if not _is_number(score) or not 0.0 <= score <= 1.0:
        raise ValueError("score must be a number in [0, 1]")
    issued_at = raw.get("iat")
    if not isinstance(issued_at, int | float) or isinstance(issued_at, bool):
        raise ValueError("iat must be a unix time in seconds")
    try:
        issued_at = float(issued_at)
    except OverflowError:  # an integer too large for a float
        raise ValueError("iat must be a unix time in seconds") from None
    if not math.isfinite(issued_at) or not 0.0 <= issued_at < _MAX_IAT:
        raise ValueError("iat must be a unix time in seconds")
    invalid_reason = _optional_str(raw, "invalid_reason")
    if invalid_reason is not None and invalid_reason not in INVALID_REASONS:
        raise ValueError(f"unknown invalid_reason {invalid_reason!r}")
    android = _optional_str(raw, "android_package_name")
    ios = _optional_str(raw, "ios_bundle_id")
    if android is not None and ios is not None:
        raise ValueError("a token comes from an Android app or an iOS app, not both")
    return TokenClaims(
        score=float(score),
        action=_str(raw, "action", ""),
        hostname=_str(raw, "hostname", DEFAULT_HOSTNAME),
        site_key=_optional_str(raw, "site_key"),
        issued_at=issued_at,
        nonce=_str(raw, "nonce", ""),
        invalid_reason=invalid_reason,
        reasons=_names(raw, "reasons", CLASSIFICATION_REASONS),
        labels=_names(raw, "labels", ACCOUNT_DEFENDER_LABELS),
        android_package_name=android,
        ios_bundle_id=ios,
        sms_toll_fraud_risk=_risk(raw, "sms_toll_fraud_risk", DEFAULT_SMS_TOLL_FRAUD_RISK),
        sms_toll_fraud_reasons=_names(raw, "sms_toll_fraud_reasons", SMS_TOLL_FRAUD_REASONS),
        transaction_risk=_risk(raw, "transaction_risk", DEFAULT_TRANSACTION_RISK),
        transaction_risk_reasons=_names(raw, "transaction_risk_reasons", TRANSACTION_RISK_REASONS),
        stolen_instrument_risk=_risk(raw, "stolen_instrument_risk", DEFAULT_TRANSACTION_RISK),
        card_testing_risk=_risk(raw, "card_testing_risk", DEFAULT_TRANSACTION_RISK),
        behavioral_trust=_risk(raw, "behavioral_trust", DEFAULT_BEHAVIORAL_TRUST),
        account_takeover_risk=(
            None
            if raw.get("account_takeover_risk") is None
            else _risk(raw, "account_takeover_risk", 0.0)
        ),
        account_takeover_risk_reasons=_names(
            raw, "account_takeover_risk_reasons", ACCOUNT_TAKEOVER_RISK_REASONS
        ),
        account_takeover_trust_reasons=_names(
            raw, "account_takeover_trust_reasons", ACCOUNT_TAKEOVER_TRUST_REASONS
        ),
        extended_verdict_reasons=_free_names(raw, "extended_verdict_reasons"),
        challenge=_choice(raw, "challenge", CHALLENGES),
        device=_optional_str(raw, "device"),
    )


# Claims `mint_token` takes as keyword arguments beside its named ones.
SIGNAL_CLAIMS: frozenset[str] = frozenset(
    {
        "transaction_risk",
        "transaction_risk_reasons",
        "stolen_instrument_risk",
        "card_testing_risk",
        "behavioral_trust",
        "account_takeover_risk",
        "account_takeover_risk_reasons",
        "account_takeover_trust_reasons",
        "extended_verdict_reasons",
        "challenge",
        "device",
    }
)


def _free_names(raw: Mapping[str, Any], key: str) -> tuple[str, ...]:
    value = raw.get(key, ())
    if not isinstance(value, list | tuple) or not all(isinstance(v, str) and v for v in value):
        raise ValueError(f"{key} must be a list of names")
    return tuple(value)


def _choice(raw: Mapping[str, Any], key: str, allowed: frozenset[str]) -> str | None:
    value = _optional_str(raw, key)
    if value is not None and value not in allowed:
        raise ValueError(f"{key} must be one of {sorted(allowed)}")
    return value


def _risk(raw: Mapping[str, Any], key: str, default: float) -> float:
    """A risk (or trust) claim: a number in [0, 1]."""
    value = raw.get(key, default)
    if not _is_number(value) or not 0.0 <= value <= 1.0:
        raise ValueError(f"{key} must be a number in [0, 1]")
    return float(value)


def _is_number(value: object) -> bool:
    """JSON numbers only: bool is an int in Python but not a score."""
    return isinstance(value, int | float) and not isinstance(value, bool)


def _str(raw: Mapping[str, Any], key: str, default: str) -> str:
    value = raw.get(key, default)
    if not isinstance(value, str):
        raise ValueError(f"{key} must be a string")
    return value


def _optional_str(raw: Mapping[str, Any], key: str) -> str | None:
    value = raw.get(key)
    if value is not None and not isinstance(value, str):
        raise ValueError(f"{key} must be a string")
    return value


def _names(raw: Mapping[str, Any], key: str, allowed: frozenset[str]) -> tuple[str, ...]:
    value = raw.get(key, ())
    if not isinstance(value, list | tuple):
        raise ValueError(f"{key} must be a list of names")
    for name in value:
        if not isinstance(name, str) or name not in allowed:
            raise ValueError(f"unknown {key} entry {name!r}")
    return tuple(value)
