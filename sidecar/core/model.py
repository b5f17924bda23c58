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
    # An express assessment has no token: TOKEN_STATUS_UNSPECIFIED on the wire, `express` in
    # token_count and the access line.
    EXPRESS = "express"


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
class TransactionAddress:
    """A postal address of a payment (reCAPTCHA's TransactionData.Address)."""

    recipient: str = ""
    address: tuple[str, ...] = ()
    locality: str = ""
    administrative_area: str = ""
    region_code: str = ""
    postal_code: str = ""


@dataclass(frozen=True, slots=True)
class TransactionUser:
    """The payer or a merchant (TransactionData.User). `account_id` is protected like the
    request's; e-mail and phone go upstream as given."""

    account_id: str = ""
    creation_ms: int = 0
    email: str = ""
    email_verified: bool = False
    phone_number: str = ""
    phone_verified: bool = False


@dataclass(frozen=True, slots=True)
class TransactionItem:
    """One line of a purchase (TransactionData.Item)."""

    name: str = ""
    value: float = 0.0
    quantity: int = 0
    merchant_account_id: str = ""


@dataclass(frozen=True, slots=True)
class TransactionGatewayInfo:
    """The payment gateway's answer (TransactionData.GatewayInfo)."""

    name: str = ""
    gateway_response_code: str = ""
    avs_response_code: str = ""
    cvv_response_code: str = ""


@dataclass(frozen=True, slots=True)
class TransactionData:
    """A payment, for fraud prevention (reCAPTCHA's TransactionData)."""

    transaction_id: str = ""
    payment_method: str = ""
    card_bin: str = ""
    card_last_four: str = ""
    currency_code: str = ""
    value: float = 0.0
    shipping_value: float = 0.0
    shipping_address: TransactionAddress | None = None
    billing_address: TransactionAddress | None = None
    user: TransactionUser | None = None
    merchants: tuple[TransactionUser, ...] = ()
    items: tuple[TransactionItem, ...] = ()
    gateway_info: TransactionGatewayInfo | None = None


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
    transaction_data: TransactionData | None = None
    # Google's own `Assessment` as the app sent it to the Google-compatible face, in Google's
    # wire format: upstream receives it whole (every field, even ones this sidecar's library
    # does not know) with the site key as applied and the account id as protected merged
    # over it. The fields above are read from it, for validation, policy and telemetry.
    # Opaque to the core; empty for every other front door.
    passthrough: bytes = b""


@dataclass(frozen=True, slots=True)
class Signals:
    """Upstream's outputs beside the score that an app can act on, passed through to it: fraud
    prevention's verdicts, account defender's takeover verdict, the extended verdict reasons
    and a challenge's outcome. None where upstream gave none (never a 0.0 that reads as safe).
    `transaction_risk` is also a policy rule (`max_transaction_risk`)."""

    transaction_risk: float | None = None
    transaction_risk_reasons: tuple[str, ...] = ()
    stolen_instrument_risk: float | None = None
    card_testing_risk: float | None = None
    behavioral_trust: float | None = None
    account_takeover_risk: float | None = None
    account_takeover_risk_reasons: tuple[str, ...] = ()
    account_takeover_trust_reasons: tuple[str, ...] = ()
    extended_verdict_reasons: tuple[str, ...] = ()
    challenge: str = ""


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
    # The answer to an express assessment (no token): the token rules do not apply.
    express: bool = False
    # SMS defense (phone_fraud_assessment.sms_toll_fraud_verdict): None when not assessed.
    sms_toll_fraud_risk: float | None = None
    sms_toll_fraud_reasons: tuple[str, ...] = ()
    signals: Signals | None = None  # the other outputs an app may act on, when upstream gave any
    # Google's `Assessment` as it arrived (wire format), when the request was a passthrough:
    # what the Google-compatible face hands back whole.
    passthrough: bytes = b""


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
    sms_toll_fraud_risk: float | None = None  # None: not assessed (never a 0.0 that reads safe)
    sms_toll_fraud_reasons: tuple[str, ...] = ()
    signals: Signals | None = None
    # Upstream's whole answer for a passthrough request (`UpstreamAssessment.passthrough`).
    # Never remembered by a replay store: it echoes the token and the user's data.
    passthrough: bytes = b""
    # What shed the call when a rate limit did (`ip`, `account`, `site_key`, `action`, or
    # `upstream` for the global cap): the observer counts it without reading decided_by.
    rate_limited: str = ""


@dataclass(frozen=True, slots=True)
class TransactionEvent:
    """A payment event reported with an annotation; names are reCAPTCHA's enum names."""

    event_type: str = ""
    reason: str = ""
    value: float = 0.0
    event_time: float | None = None


@dataclass(frozen=True, slots=True)
class PhoneAuthenticationEvent:
    """An SMS or call sent to verify a phone number, reported for SMS defense."""

    phone_number: str
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
    phone_authentication_event: PhoneAuthenticationEvent | None = None
    # Google's own `AnnotateAssessmentRequest` as the app sent it to the Google-compatible
    # face (wire format), its `account_id` cleared: the field above carries that, so the
    # outbox never stores a clear id. Upstream receives it whole with the (protected)
    # account id merged over it. Opaque to the core; empty for every other front door.
    passthrough: bytes = b""


@dataclass(frozen=True, slots=True)
class RelatedAccountsQuery:
    """Which account's related accounts to list, one page at a time."""

    account_id: str
    page_size: int = 0  # 0: upstream's default
    page_token: str = ""


@dataclass(frozen=True, slots=True)
class RelatedAccount:
    """One membership of a related-account group. `decrypted`: `account_id` is the app's own
    id, decrypted here; else it is what upstream holds (plain, or a hash to map back)."""

    account_id: str
    group: str
    decrypted: bool = False


@dataclass(frozen=True, slots=True)
class RelatedAccountsPage:
    """One page of related accounts; an empty `next_page_token` ends the list."""

    accounts: tuple[RelatedAccount, ...] = ()
    next_page_token: str = ""
