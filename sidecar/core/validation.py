"""Input checks: a request the sidecar cannot read gets INVALID_ARGUMENT naming the field."""

from __future__ import annotations

import ipaddress
import re

from sidecar.core.errors import InvalidArgument
from sidecar.core.model import AnnotationRequest, AssessmentRequest

MAX_TOKEN_BYTES = 10_000
MAX_ACTION_CHARS = 100
MAX_IDEMPOTENCY_KEY_BYTES = 128
MAX_FIELD_BYTES = 8_192
MAX_HEADERS = 64

# reCAPTCHA's rule for action names: letters, digits, slashes and underscores.
_ACTION = re.compile(r"[A-Za-z0-9/_]*")
_SITE_KEY = re.compile(r"[A-Za-z0-9_\-]{0,100}")
_ASSESSMENT_NAME = re.compile(r"projects/[^/]{1,100}/assessments/[^/]{1,200}")


def _max_bytes(field: str, value: str, limit: int) -> None:
    # A character is at most 4 UTF-8 bytes: encode (a copy per field per call) only when the
    # character count alone cannot settle it.
    if len(value) > limit or (len(value) * 4 > limit and len(value.encode()) > limit):
        raise InvalidArgument(field, f"longer than {limit} bytes")


def validate_action(field: str, action: str) -> None:
    """Action names follow reCAPTCHA's rule, so a typo fails here rather than upstream."""
    if len(action) > MAX_ACTION_CHARS:
        raise InvalidArgument(field, f"longer than {MAX_ACTION_CHARS} characters")
    if not _ACTION.fullmatch(action):
        raise InvalidArgument(field, "may contain only letters, digits, '/' and '_'")


def validate_assessment(request: AssessmentRequest) -> None:
    """Raise InvalidArgument for the first field that cannot be used."""
    _max_bytes("token", request.token, MAX_TOKEN_BYTES)
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


def validate_annotation(request: AnnotationRequest) -> None:
    """Raise InvalidArgument for the first field that cannot be used."""
    if not request.assessment_name:
        raise InvalidArgument("assessment_name", "required")
    if not _ASSESSMENT_NAME.fullmatch(request.assessment_name):
        raise InvalidArgument(
            "assessment_name", "must be 'projects/PROJECT/assessments/ID' as Assess returned it"
        )
    _max_bytes("account_id", request.account_id, MAX_FIELD_BYTES)
    if request.transaction_event is not None:
        _max_bytes("transaction_event.reason", request.transaction_event.reason, MAX_FIELD_BYTES)
