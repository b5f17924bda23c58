"""Input checks: a request the sidecar cannot read gets INVALID_ARGUMENT naming the field.

Every repeated field has a count limit and every value a range, and a request as a whole has a
byte bound (`MAX_REQUEST_BYTES`, the sum of its fields): with the admission limiter's bounds
(`max_in_flight` + `max_queued` calls) that bounds the memory all requests in flight may hold,
and it bounds what one Annotate can put into the outbox. The gRPC listeners refuse messages
above `MAX_MESSAGE_BYTES` before decoding them (RESOURCE_EXHAUSTED).
"""

from __future__ import annotations

import ipaddress
import math
import re
from collections.abc import Iterable

from sidecar.core.errors import InvalidArgument
from sidecar.core.model import (
    AnnotationRequest,
    AssessmentRequest,
    RelatedAccountsQuery,
    TransactionAddress,
    TransactionData,
    TransactionUser,
)

MAX_TOKEN_BYTES = 10_000
MAX_ACTION_CHARS = 100
MAX_IDEMPOTENCY_KEY_BYTES = 128
MAX_FIELD_BYTES = 8_192
MAX_HEADERS = 64
MAX_USER_IDS = 16
# Google's AnnotateAssessmentRequest.Reason has 14 values: more than this repeats one.
MAX_ANNOTATION_REASONS = 16
MAX_REQUEST_BYTES = 32 * 1024  # all of a request's fields together
MAX_MESSAGE_BYTES = 64 * 1024  # the wire: gRPC refuses larger messages before decoding them
# Timestamps a protobuf Timestamp (and Google) can hold: 1970 (no earlier event makes sense)
# to the end of year 9999.
MIN_EVENT_TIME = 0.0
MAX_EVENT_TIME = 253_402_300_800.0
# Transaction data: bounded like every repeated field (the sum of a request's fields is what a
# request may cost in memory).
MAX_TRANSACTION_LINES = 100  # items, merchants
MAX_ADDRESS_LINES = 10
_DIGITS = re.compile(r"[0-9]*")
_CURRENCY = re.compile(r"([A-Za-z]{3})?")

# reCAPTCHA's rule for action names: letters, digits, slashes and underscores.
_ACTION = re.compile(r"[A-Za-z0-9/_]*")
_SITE_KEY = re.compile(r"[A-Za-z0-9_\-]{0,100}")
_ASSESSMENT_NAME = re.compile(r"projects/[^/]{1,100}/assessments/[^/]{1,200}")


def _max_bytes(field: str, value: str, limit: int) -> None:
    # A character is at most 4 UTF-8 bytes: encode (a copy per field per call) only when the
    # character count alone cannot settle it.
    if len(value) > limit or (len(value) * 4 > limit and len(value.encode()) > limit):
        raise InvalidArgument(field, f"longer than {limit} bytes")


def _total_bytes(values: Iterable[str], limit: int) -> None:
    """The request-wide bound; like `_max_bytes`, encodes only when characters cannot tell."""
    texts = list(values)
    chars = sum(len(text) for text in texts)
    if chars > limit or (chars * 4 > limit and sum(len(t.encode()) for t in texts) > limit):
        raise InvalidArgument("request", f"its fields hold more than {limit} bytes in all")


def validate_action(field: str, action: str) -> None:
    """Action names follow reCAPTCHA's rule, so a typo fails here rather than upstream."""
    if len(action) > MAX_ACTION_CHARS:
        raise InvalidArgument(field, f"longer than {MAX_ACTION_CHARS} characters")
    if not _ACTION.fullmatch(action):
        raise InvalidArgument(field, "may contain only letters, digits, '/' and '_'")


def validate_assessment(request: AssessmentRequest) -> None:
    """Raise InvalidArgument for the first field that cannot be used."""
    _max_bytes("token", request.token, MAX_TOKEN_BYTES)
    if request.express and request.token:
        raise InvalidArgument("token", "must be empty for an express assessment")
    validate_action("expected_action", request.expected_action)
    if not _SITE_KEY.fullmatch(request.site_key):
        raise InvalidArgument("site_key", "must be a reCAPTCHA key id (letters, digits, '-', '_')")
    if request.user_ip_address:
        try:
            ipaddress.ip_address(request.user_ip_address)
        except ValueError:
            raise InvalidArgument("user_ip_address", "not an IPv4 or IPv6 address") from None
    _max_bytes("idempotency_key", request.idempotency_key, MAX_IDEMPOTENCY_KEY_BYTES)
    for name in ("user_agent", "ja3", "ja4", "requested_uri", "account_id"):
        _max_bytes(name, getattr(request, name), MAX_FIELD_BYTES)
    if len(request.user_ids) > MAX_USER_IDS:
        raise InvalidArgument("user_ids", f"more than {MAX_USER_IDS} entries")
    for index, user_id in enumerate(request.user_ids):
        if not user_id.value:
            raise InvalidArgument(
                f"user_ids[{index}]", "needs one of email, phone_number, username"
            )
        _max_bytes(f"user_ids[{index}]", user_id.value, MAX_FIELD_BYTES)
    if len(request.headers) > MAX_HEADERS:
        raise InvalidArgument("headers", f"more than {MAX_HEADERS} entries")
    for index, header in enumerate(request.headers):
        _max_bytes(f"headers[{index}]", header, MAX_FIELD_BYTES)
    _total_bytes(
        (
            request.token,
            request.expected_action,
            request.site_key,
            request.user_ip_address,
            request.user_agent,
            request.ja3,
            request.ja4,
            request.requested_uri,
            request.account_id,
            request.idempotency_key,
            *(user_id.value for user_id in request.user_ids),
            *request.headers,
            *_transaction_strings(request.transaction_data),
        ),
        MAX_REQUEST_BYTES,
    )
    if request.transaction_data is not None:
        _transaction("transaction_data", request.transaction_data)


def _transaction_strings(data: TransactionData | None) -> Iterable[str]:
    """Every string of a payment, for the request's total."""
    if data is None:
        return
    yield from (data.transaction_id, data.payment_method, data.card_bin, data.card_last_four)
    yield data.currency_code
    for address in (data.shipping_address, data.billing_address):
        if address is not None:
            yield from address.address
            yield address.recipient
            yield address.locality
            yield address.administrative_area
            yield address.region_code
            yield address.postal_code
    for user in (data.user, *data.merchants):
        if user is not None:
            yield from (user.account_id, user.email, user.phone_number)
    for item in data.items:
        yield from (item.name, item.merchant_account_id)
    if data.gateway_info is not None:
        info = data.gateway_info
        yield from (info.name, info.gateway_response_code)
        yield from (info.avs_response_code, info.cvv_response_code)


def _amount(field: str, value: float) -> None:
    if not math.isfinite(value) or value < 0:
        raise InvalidArgument(field, "must be a finite amount, not negative")


def _count(field: str, value: int) -> None:
    if not 0 <= value < 2**63:
        raise InvalidArgument(field, "must not be negative")


def _strings(prefix: str, owner: object, names: tuple[str, ...]) -> None:
    for name in names:
        _max_bytes(f"{prefix}.{name}", getattr(owner, name), MAX_FIELD_BYTES)


def _address(field: str, address: TransactionAddress | None) -> None:
    if address is None:
        return
    if len(address.address) > MAX_ADDRESS_LINES:
        raise InvalidArgument(f"{field}.address", f"more than {MAX_ADDRESS_LINES} lines")
    for index, line in enumerate(address.address):
        _max_bytes(f"{field}.address[{index}]", line, MAX_FIELD_BYTES)
    _strings(
        field,
        address,
        ("recipient", "locality", "administrative_area", "region_code", "postal_code"),
    )


def _user(field: str, user: TransactionUser | None) -> None:
    if user is None:
        return
    _strings(field, user, ("account_id", "email", "phone_number"))
    _count(f"{field}.creation_ms", user.creation_ms)


def _transaction(field: str, data: TransactionData) -> None:
    """Every string bounded, amounts finite and not negative, lists counted, card digits
    digits (a BIN is 6 to 8 of them, the last four at most 4), a currency ISO 4217."""
    _strings(field, data, ("transaction_id", "payment_method"))
    if len(data.card_bin) > 8 or not _DIGITS.fullmatch(data.card_bin):
        raise InvalidArgument(f"{field}.card_bin", "at most 8 digits")
    if len(data.card_last_four) > 4 or not _DIGITS.fullmatch(data.card_last_four):
        raise InvalidArgument(f"{field}.card_last_four", "at most 4 digits")
    if not _CURRENCY.fullmatch(data.currency_code):
        raise InvalidArgument(f"{field}.currency_code", "an ISO 4217 code of 3 letters")
    _amount(f"{field}.value", data.value)
    _amount(f"{field}.shipping_value", data.shipping_value)
    _address(f"{field}.shipping_address", data.shipping_address)
    _address(f"{field}.billing_address", data.billing_address)
    _user(f"{field}.user", data.user)
    for name, lines in (("merchants", data.merchants), ("items", data.items)):
        if len(lines) > MAX_TRANSACTION_LINES:
            raise InvalidArgument(f"{field}.{name}", f"more than {MAX_TRANSACTION_LINES} entries")
    for index, merchant in enumerate(data.merchants):
        _user(f"{field}.merchants[{index}]", merchant)
    for index, item in enumerate(data.items):
        where = f"{field}.items[{index}]"
        _strings(where, item, ("name", "merchant_account_id"))
        _amount(f"{where}.value", item.value)
        _count(f"{where}.quantity", item.quantity)
    if data.gateway_info is not None:
        _strings(
            f"{field}.gateway_info",
            data.gateway_info,
            ("name", "gateway_response_code", "avs_response_code", "cvv_response_code"),
        )


def validate_annotation(request: AnnotationRequest) -> None:
    """Raise InvalidArgument for the first field that cannot be used."""
    if not request.assessment_name:
        raise InvalidArgument("assessment_name", "required")
    if not _ASSESSMENT_NAME.fullmatch(request.assessment_name):
        raise InvalidArgument(
            "assessment_name", "must be 'projects/PROJECT/assessments/ID' as Assess returned it"
        )
    _max_bytes("account_id", request.account_id, MAX_FIELD_BYTES)
    if len(request.reasons) > MAX_ANNOTATION_REASONS:
        raise InvalidArgument("reasons", f"more than {MAX_ANNOTATION_REASONS} entries")
    event = request.transaction_event
    if event is not None:
        _max_bytes("transaction_event.reason", event.reason, MAX_FIELD_BYTES)
        if not math.isfinite(event.value) or event.value < 0:
            raise InvalidArgument("transaction_event.value", "must be a finite amount, 0 or more")
        if event.event_time is not None and not (
            MIN_EVENT_TIME <= event.event_time < MAX_EVENT_TIME
        ):
            raise InvalidArgument(
                "transaction_event.event_time", "must lie between 1970 and the end of year 9999"
            )
    phone = request.phone_authentication_event
    if phone is not None:
        field = "phone_authentication_event"
        if not phone.phone_number:
            raise InvalidArgument(f"{field}.phone_number", "required")
        _max_bytes(f"{field}.phone_number", phone.phone_number, MAX_FIELD_BYTES)
        if phone.event_time is not None and not (
            MIN_EVENT_TIME <= phone.event_time < MAX_EVENT_TIME
        ):
            raise InvalidArgument(
                f"{field}.event_time", "must lie between 1970 and the end of year 9999"
            )


def validate_related_accounts(query: RelatedAccountsQuery) -> None:
    """Raise InvalidArgument for the first field that cannot be used."""
    if not query.account_id:
        raise InvalidArgument("account_id", "required")
    _max_bytes("account_id", query.account_id, MAX_FIELD_BYTES)
    if query.page_size < 0:
        raise InvalidArgument("page_size", "must not be negative")
    _max_bytes("page_token", query.page_token, MAX_FIELD_BYTES)
