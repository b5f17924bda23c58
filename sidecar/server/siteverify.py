"""The legacy siteverify front door's wire format: Google's `/recaptcha/api/siteverify`
parameters in, its JSON answer out (with Turnstile's `idempotency_key` and `internal-error`).

Pure functions: the HTTP glue reads the request and hands over what it read; the decision
comes from the core like every other door's. `success` keeps its legacy meaning, a valid
token seen for the first time: score and action are the app's to check, as the libraries that
call this endpoint do.
"""

from __future__ import annotations

import datetime
import json
import urllib.parse
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from sidecar.core.model import AssessmentRequest, Decision, TokenStatus

FORM = "application/x-www-form-urlencoded"
JSON = "application/json"
# Google's siteverify takes a few short parameters; the largest is a token (≤ 10,000 bytes).
MAX_BODY_BYTES = 64 * 1024
PARAMETERS = ("secret", "response", "remoteip", "idempotency_key")
MAX_FIELDS = 100  # past this a form is not a siteverify request

MISSING_SECRET = "missing-input-secret"  # noqa: S105 (error codes)
INVALID_SECRET = "invalid-input-secret"  # noqa: S105
MISSING_RESPONSE = "missing-input-response"
INVALID_RESPONSE = "invalid-input-response"
BAD_REQUEST = "bad-request"
TIMEOUT_OR_DUPLICATE = "timeout-or-duplicate"
INTERNAL_ERROR = "internal-error"

_CODES = {
    TokenStatus.MISSING: MISSING_RESPONSE,
    TokenStatus.INVALID: INVALID_RESPONSE,
    TokenStatus.EXPIRED: TIMEOUT_OR_DUPLICATE,
    TokenStatus.DUPLICATE: TIMEOUT_OR_DUPLICATE,
    TokenStatus.UNCHECKED: INTERNAL_ERROR,
}


class BadRequest(Exception):
    """A request that is not siteverify's: answered `bad-request`; the message says why (for
    the log, never the parameters' values)."""


@dataclass(frozen=True, slots=True)
class SiteverifyRequest:
    """The parameters that matter; every other one (google/recaptcha sends `version`) is
    ignored, as Google ignores it."""

    secret: str = ""
    response: str = ""
    remoteip: str = ""
    idempotency_key: str = ""


def _media_type(content_type: str) -> str:
    return content_type.split(";", 1)[0].strip().lower()


def _form(body: bytes) -> list[tuple[str, str]]:
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError:
        raise BadRequest("the form is not UTF-8") from None
    try:
        return urllib.parse.parse_qsl(
            text, keep_blank_values=True, errors="strict", max_num_fields=MAX_FIELDS
        )
    except (UnicodeDecodeError, ValueError):
        raise BadRequest("the form does not parse") from None


def _json(body: bytes) -> list[tuple[str, str]]:
    try:
        document = json.loads(body)
    except (UnicodeDecodeError, ValueError):
        raise BadRequest("the body is not JSON") from None
    if not isinstance(document, dict):
        raise BadRequest("the JSON body is not an object")
    pairs = []
    for name in PARAMETERS:
        value = document.get(name)
        if value is None:
            continue
        if not isinstance(value, str):
            raise BadRequest(f"{name}: not a string")
        pairs.append((name, value))
    return pairs


def parse_request(
    method: str, content_type: str, query: Sequence[tuple[str, str]], body: bytes
) -> SiteverifyRequest:
    """The parameters of a GET (query string) or a POST (form or JSON body, and the query
    string: some clients POST with the parameters in the URL). A parameter given twice, in one
    place or across both, is a `BadRequest`: which copy counts would be a guess, and a proxy
    that read the other one would disagree with us."""
    pairs = list(query)
    if method == "POST" and body:
        media = _media_type(content_type)
        if media in ("", FORM):
            pairs += _form(body)
        elif media == JSON:
            pairs += _json(body)
        else:
            raise BadRequest(f"content type {media!r}: expected {FORM} or {JSON}")
    elif method not in ("GET", "POST"):
        raise BadRequest(f"method {method}: expected GET or POST")
    values: dict[str, str] = {}
    for name, value in pairs:
        if name not in PARAMETERS:
            continue
        if name in values:
            raise BadRequest(f"{name}: given more than once")
        values[name] = value
    return SiteverifyRequest(**values)


def to_assessment_request(request: SiteverifyRequest, site_key: str) -> AssessmentRequest:
    """The core's request: the legacy API has no expected action (the app compares it), no
    user agent and no JA3."""
    return AssessmentRequest(
        token=request.response,
        site_key=site_key,
        user_ip_address=request.remoteip.strip(),
        idempotency_key=request.idempotency_key,
    )


def invalid_argument_code(field: str) -> str:
    """The error code for a parameter the core refused (`InvalidArgument.field`): a token it
    cannot read is `invalid-input-response`, anything else (remoteip that is no IP address, an
    idempotency key over 128 bytes) `bad-request`."""
    return INVALID_RESPONSE if field == "token" else BAD_REQUEST


def _challenge_ts(create_time: float) -> str:
    stamp = datetime.datetime.fromtimestamp(create_time, tz=datetime.UTC)
    return stamp.strftime("%Y-%m-%dT%H:%M:%SZ")


def answer(decision: Decision) -> dict[str, Any]:
    """The legacy JSON for a decision. A valid token: `success` with its challenge time,
    hostname (or Android package), score and action; anything else: `success: false` and the
    one error code that says why."""
    code = _CODES.get(decision.token_status)
    if code is not None:
        return failure(code)
    body: dict[str, Any] = {"success": True}
    if decision.create_time is not None:
        body["challenge_ts"] = _challenge_ts(decision.create_time)
    if decision.android_package_name:
        body["apk_package_name"] = decision.android_package_name
    else:
        body["hostname"] = decision.hostname
    body["score"] = round(decision.score, 6)  # float32 upstream: give back the value meant
    body["action"] = decision.action
    return body


def failure(*codes: str) -> dict[str, Any]:
    """`success: false` with the given error codes, in the order given."""
    return {"success": False, "error-codes": list(codes)}


def precheck(request: SiteverifyRequest, site_key: str | None) -> list[str]:
    """The error codes decided before the core is asked, in Google's order: the secret
    (missing, or unknown to `siteverify_secrets_file`), then a missing response. Empty when
    the core should decide."""
    codes = []
    if not request.secret:
        codes.append(MISSING_SECRET)
    elif site_key is None:
        codes.append(INVALID_SECRET)
    if codes and not request.response:
        codes.append(MISSING_RESPONSE)
    return codes
