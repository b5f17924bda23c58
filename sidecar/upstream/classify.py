"""What an upstream failure means, decided once: its kind (which failure policy applies, or
that the request itself was refused), whether it may have reached Google, whether a repeat
could cure it, whether it says anything about upstream's availability (the breaker), and how
long the server asked us to wait.

The tables are data, keyed by gRPC status name, by RPC where the two differ, and by
`google.rpc.ErrorInfo.reason`: a reason Google documents (e.g. `API_KEY_INVALID` under
INVALID_ARGUMENT) overrides what its status code alone would say, so teaching the sidecar a new
reason is one table row. `BadRequest` field violations split the rest of INVALID_ARGUMENT on
CreateAssessment: about the site key or the parent it is the sidecar's configuration, about a
field the app sent it is that request's problem. Everything downstream (the retry loop, the
Verifier, the outbox) reads the resulting `UpstreamFailure` and never a message string.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import grpc
from google.protobuf.message import DecodeError
from google.rpc import error_details_pb2, status_pb2

from sidecar.core.ports import FailureKind, UpstreamError, UpstreamFailure

# Failures the retry layer makes itself.
BREAKER_OPEN = "BREAKER_OPEN"  # answered at once, nothing sent: the breaker is open
NO_TIME_LEFT = "DEADLINE_EXCEEDED"  # the call's deadline passed before an attempt could start
CANCELLED = "CANCELLED"

RPC_CREATE = "create"
RPC_ANNOTATE = "annotate"
RPC_SEARCH = "search"  # SearchRelatedAccountGroupMemberships


@dataclass(frozen=True, slots=True)
class Meaning:
    """What a status code (or an ErrorInfo reason) says about a failed call."""

    kind: FailureKind
    reached: bool | None  # False: provably not processed, the token is still unused
    retryable: bool = False


_CONFIG_NOT_PROCESSED = Meaning(FailureKind.CONFIG, reached=False)
_QUOTA_NOT_PROCESSED = Meaning(FailureKind.QUOTA, reached=False)
_REQUEST_REFUSED = Meaning(FailureKind.REQUEST, reached=False)
_TRANSIENT_UNKNOWN = Meaning(FailureKind.TRANSIENT, reached=None)

# By status name. Codes that prove Google did not act on the request leave the token unused;
# the transient ones are worth another attempt (the retry layer still checks `reached` before
# repeating CreateAssessment, which is not idempotent).
BY_CODE: Mapping[str, Meaning] = {
    "INVALID_ARGUMENT": _CONFIG_NOT_PROCESSED,
    "UNAUTHENTICATED": _CONFIG_NOT_PROCESSED,
    "PERMISSION_DENIED": _CONFIG_NOT_PROCESSED,
    "NOT_FOUND": _CONFIG_NOT_PROCESSED,
    "FAILED_PRECONDITION": _CONFIG_NOT_PROCESSED,
    "UNIMPLEMENTED": _CONFIG_NOT_PROCESSED,
    "RESOURCE_EXHAUSTED": Meaning(FailureKind.QUOTA, reached=False),
    "UNAVAILABLE": Meaning(FailureKind.TRANSIENT, reached=None, retryable=True),
    "DEADLINE_EXCEEDED": Meaning(FailureKind.TRANSIENT, reached=None, retryable=True),
    "INTERNAL": Meaning(FailureKind.TRANSIENT, reached=None, retryable=True),
    "UNKNOWN": Meaning(FailureKind.TRANSIENT, reached=None, retryable=True),
    "ABORTED": Meaning(FailureKind.TRANSIENT, reached=None, retryable=True),
}
# Where a code means something else for Annotate: the annotation names an assessment and
# carries reasons, so NOT_FOUND (an unknown assessment), INVALID_ARGUMENT (a malformed name, a
# reason Google refuses) and FAILED_PRECONDITION are about that one request, not the sidecar.
BY_RPC_CODE: Mapping[str, Mapping[str, Meaning]] = {
    RPC_ANNOTATE: {
        "NOT_FOUND": _REQUEST_REFUSED,
        "INVALID_ARGUMENT": _REQUEST_REFUSED,
        "FAILED_PRECONDITION": _REQUEST_REFUSED,
    },
}
# By `google.rpc.ErrorInfo.reason` (domain googleapis.com, `google.api.ErrorReason`),
# consulted before the code: each says the sidecar's credentials, project or quota are wrong,
# whatever request carried it, so none is ever a row's or a request's fault.
BY_REASON: Mapping[str, Meaning] = {
    "API_KEY_INVALID": _CONFIG_NOT_PROCESSED,
    "API_KEY_SERVICE_BLOCKED": _CONFIG_NOT_PROCESSED,
    "API_KEY_HTTP_REFERRER_BLOCKED": _CONFIG_NOT_PROCESSED,
    "API_KEY_IP_ADDRESS_BLOCKED": _CONFIG_NOT_PROCESSED,
    "API_KEY_ANDROID_APP_BLOCKED": _CONFIG_NOT_PROCESSED,
    "API_KEY_IOS_APP_BLOCKED": _CONFIG_NOT_PROCESSED,
    "CREDENTIALS_MISSING": _CONFIG_NOT_PROCESSED,
    "ACCESS_TOKEN_EXPIRED": _CONFIG_NOT_PROCESSED,
    "ACCESS_TOKEN_TYPE_UNSUPPORTED": _CONFIG_NOT_PROCESSED,
    "ACCESS_TOKEN_SCOPE_INSUFFICIENT": _CONFIG_NOT_PROCESSED,
    "ACCOUNT_STATE_INVALID": _CONFIG_NOT_PROCESSED,
    "IAM_PERMISSION_DENIED": _CONFIG_NOT_PROCESSED,
    "SERVICE_DISABLED": _CONFIG_NOT_PROCESSED,
    "BILLING_DISABLED": _CONFIG_NOT_PROCESSED,
    "CONSUMER_INVALID": _CONFIG_NOT_PROCESSED,
    "CONSUMER_SUSPENDED": _CONFIG_NOT_PROCESSED,
    "USER_PROJECT_DENIED": _CONFIG_NOT_PROCESSED,
    "RESOURCE_PROJECT_INVALID": _CONFIG_NOT_PROCESSED,
    "SECURITY_POLICY_VIOLATED": _CONFIG_NOT_PROCESSED,
    "RATE_LIMIT_EXCEEDED": _QUOTA_NOT_PROCESSED,
    "RESOURCE_QUOTA_EXCEEDED": _QUOTA_NOT_PROCESSED,
}
# `BadRequest` fields (last path segment) that come from the sidecar's settings, not from the
# app: a violation on one of them is configuration, whoever sent the request.
CONFIG_FIELDS = frozenset({"parent", "site_key"})


def meaning(
    code: str, reason: str = "", *, rpc: str = RPC_CREATE, fields: tuple[str, ...] = ()
) -> Meaning:
    """The table row for a status name, an optional ErrorInfo reason and the `BadRequest`
    fields, on one RPC."""
    found = BY_REASON.get(reason) if reason else None
    if found is not None:
        return found
    found = BY_RPC_CODE.get(rpc, {}).get(code)
    if found is not None:
        return found
    if code == "INVALID_ARGUMENT" and fields and not any(_configured(f) for f in fields):
        return _REQUEST_REFUSED  # only fields the app sent: that request's problem
    return BY_CODE.get(code, _TRANSIENT_UNKNOWN)


def _configured(field: str) -> bool:
    return field.rsplit(".", 1)[-1] in CONFIG_FIELDS


# ---- the predicates the retry layer asks ------------------------------------------------------


def is_retryable(failure: UpstreamFailure) -> bool:
    """Worth another attempt at all: a transient failure of a kind a repeat can cure.

    Quota and credential errors are not (another attempt costs quota and answers the same),
    and neither is the breaker's own refusal.
    """
    return (
        failure.kind is FailureKind.TRANSIENT and failure.retryable and failure.code != BREAKER_OPEN
    )


def may_repeat_create(failure: UpstreamFailure, retry_ambiguous: bool) -> bool:
    """CreateAssessment is repeatable when the token cannot have been consumed, or, when
    `retry_ambiguous`, after a failure that may have reached Google (a DUPE that answers the
    repeat is then marked `ambiguous_retry`, and the policy treats it as outcome unknown)."""
    return failure.reached is False or retry_ambiguous


def says_upstream_is_down(failure: UpstreamFailure) -> bool:
    """Counts against upstream's availability (the breaker): a transient failure that is not
    our own cancellation. Quota, credentials and cancellations say nothing about it."""
    return failure.kind is FailureKind.TRANSIENT and failure.code != CANCELLED


def local_failure(code: str, message: str) -> UpstreamError:
    """A failure the retry layer answers itself, without sending anything (never reached)."""
    return UpstreamError(UpstreamFailure(FailureKind.TRANSIENT, code, message, reached=False))


# ---- reading a gRPC failure -------------------------------------------------------------------

_NEVER_CONNECTED = ("failed to connect", "connection refused")


def _status_details(details: bytes) -> status_pb2.Status | None:
    try:
        return status_pb2.Status.FromString(details)
    except DecodeError:
        return None


@dataclass(frozen=True, slots=True)
class Details:
    """What Google put in `grpc-status-details-bin` that the sidecar reads."""

    reason: str = ""  # ErrorInfo.reason
    retry_delay: float | None = None  # RetryInfo.retry_delay, seconds
    fields: tuple[str, ...] = ()  # BadRequest field violations


def status_details(details: bytes) -> Details:
    """The typed details of one `google.rpc.Status` (empty when it does not decode)."""
    status = _status_details(details)
    if status is None:
        return Details()
    reason, delay = "", None
    fields: list[str] = []
    for detail in status.details:
        if not reason and detail.Is(error_details_pb2.ErrorInfo.DESCRIPTOR):
            info = error_details_pb2.ErrorInfo()
            detail.Unpack(info)
            reason = str(info.reason)
        elif delay is None and detail.Is(error_details_pb2.RetryInfo.DESCRIPTOR):
            retry = error_details_pb2.RetryInfo()
            detail.Unpack(retry)
            delay = max(0.0, retry.retry_delay.ToTimedelta().total_seconds())
        elif detail.Is(error_details_pb2.BadRequest.DESCRIPTOR):
            request = error_details_pb2.BadRequest()
            detail.Unpack(request)
            fields.extend(v.field for v in request.field_violations)
    return Details(reason, delay, tuple(fields))


def retry_info_delay(details: bytes) -> float | None:
    """The `google.rpc.RetryInfo.retry_delay` in a `grpc-status-details-bin` trailer, if any."""
    return status_details(details).retry_delay


def error_info_reason(details: bytes) -> str:
    """The `google.rpc.ErrorInfo.reason` in a `grpc-status-details-bin` trailer, or ""."""
    return status_details(details).reason


def classify(error: grpc.aio.AioRpcError, rpc: str = RPC_CREATE) -> UpstreamError:
    """One place that turns a gRPC failure of ``rpc`` into the core's failure value."""
    code = error.code().name
    message = error.details() or ""
    pushback = None
    details = Details()
    for key, value in error.trailing_metadata() or ():
        if key == "grpc-retry-pushback-ms":
            try:
                pushback = max(0.0, int(value) / 1000.0)
            except ValueError:
                pushback = None
        elif key == "grpc-status-details-bin" and isinstance(value, bytes):
            details = status_details(value)
    if pushback is None:
        pushback = details.retry_delay
    found = meaning(code, details.reason, rpc=rpc, fields=details.fields)
    reached = found.reached
    lowered = message.lower()
    if code == "UNAVAILABLE" and any(text in lowered for text in _NEVER_CONNECTED):
        # The connection was never made, so nothing was sent. gRPC gives no typed way to tell
        # this UNAVAILABLE from one after the request left; its message is all there is.
        reached = False
    return UpstreamError(
        UpstreamFailure(
            found.kind,
            code,
            message,
            reached=reached,
            retryable=found.retryable,
            pushback=pushback,
            reason=details.reason,
        )
    )
