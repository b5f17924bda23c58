"""Domain values passed between the front doors, the core, the replay store and upstream.

Frozen and slotted: they cross task boundaries and are cached, so they must never change.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass


class TokenStatus(enum.StrEnum):
    """What became of a token; mirrors Identity Platform's `token_count` metric."""

    VALID = "VALID"
    EXPIRED = "EXPIRED"
    DUPLICATE = "DUPLICATE"
    INVALID = "INVALID"
    MISSING = "MISSING"
    UNCHECKED = "UNCHECKED"


class Verdict(enum.StrEnum):
    """The policy's verdict; mirrors Identity Platform's `verdict_count` metric."""

    PASSED = "PASSED"
    FAILED_AUDIT = "FAILED_AUDIT"
    FAILED_ENFORCE = "FAILED_ENFORCE"
    # No key for the request: answered before any upstream call (`sidecar.core.keys`).
    CLIENT_TYPE_MISSING = "CLIENT_TYPE_MISSING"
    KEYS_MISSING = "KEYS_MISSING"


class ClientType(enum.StrEnum):
    """Which kind of client obtained the token; the values are the `site_keys` setting's keys.
    UNSPECIFIED is the empty string, so `if request.client_type:` reads as "said"."""

    UNSPECIFIED = ""
    WEB = "web"
    ANDROID = "android"
    IOS = "ios"


class RecommendedAction(enum.StrEnum):
    """Advice beside `allowed`: account defender may ask for a second factor."""

    ALLOW = "ALLOW"
    CHALLENGE = "CHALLENGE"
    BLOCK = "BLOCK"


class UserIdKind(enum.StrEnum):
    """The kinds of account identifier reCAPTCHA's `UserId` accepts."""

    EMAIL = "email"
    PHONE_NUMBER = "phone_number"
    USERNAME = "username"


class Delivery(enum.StrEnum):
    """How far an annotation has travelled when Annotate answers."""

    QUEUED = "QUEUED"
    DELIVERED = "DELIVERED"


@dataclass(frozen=True, slots=True)
class UserId:
    """One identifier of the end user's account."""

    kind: UserIdKind
    value: str


@dataclass(frozen=True, slots=True)
class AssessmentRequest:
    """What the app asks the sidecar to verify."""

    token: str
    expected_action: str = ""
    site_key: str = ""
    user_ip_address: str = ""
    user_agent: str = ""
    ja3: str = ""
    ja4: str = ""
    requested_uri: str = ""
    account_id: str = ""
    user_ids: tuple[UserId, ...] = ()
    idempotency_key: str = ""
    headers: tuple[str, ...] = ()
    client_type: ClientType = ClientType.UNSPECIFIED
    # An express assessment: no token, server-side signals only, the express key.
    express: bool = False


@dataclass(frozen=True, slots=True)
class UpstreamAssessment:
    """The parts of reCAPTCHA's `Assessment` the policy reads."""

    name: str
    valid: bool
    invalid_reason: str = ""
    score: float = 0.0
    reasons: tuple[str, ...] = ()
    action: str = ""
    hostname: str = ""
    android_package_name: str = ""
    ios_bundle_id: str = ""
    create_time: float | None = None
    account_defender_labels: tuple[str, ...] = ()
    # The answer to a retry after an attempt that may have reached Google: a DUPE then may be
    # our own earlier attempt, so it proves nothing about the token (`policy.rules.decide`).
    ambiguous_retry: bool = False


@dataclass(frozen=True, slots=True)
class Decision:
    """The sidecar's answer to one Assess call."""

    allowed: bool
    verdict: Verdict
    token_status: TokenStatus
    recommended_action: RecommendedAction
    decided_by: str
    invalid_reason: str = ""
    score: float = 0.0
    threshold: float = 0.0
    reasons: tuple[str, ...] = ()
    action: str = ""
    hostname: str = ""
    android_package_name: str = ""
    ios_bundle_id: str = ""
    create_time: float | None = None
    assessment_name: str = ""
    account_defender_labels: tuple[str, ...] = ()
    replayed: bool = False
    policy_version: str = ""


@dataclass(frozen=True, slots=True)
class TransactionEvent:
    """A payment event reported with an annotation; names are reCAPTCHA's enum names."""

    event_type: str = ""
    reason: str = ""
    value: float = 0.0
    event_time: float | None = None


@dataclass(frozen=True, slots=True)
class AnnotationRequest:
    """An outcome report for an earlier assessment; enum values are reCAPTCHA's names."""

    assessment_name: str
    annotation: str = ""
    reasons: tuple[str, ...] = ()
    account_id: str = ""
    transaction_event: TransactionEvent | None = None
    wait_for_upstream: bool = False
