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
    )


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
