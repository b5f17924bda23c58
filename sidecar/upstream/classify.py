"""What an upstream failure means, decided once: its kind (which failure policy applies),
whether it may have reached Google, whether a repeat could cure it, whether it says anything
about upstream's availability (the breaker), and how long the server asked us to wait.

The tables are data, keyed by gRPC status name and by `google.rpc.ErrorInfo.reason`: a reason
Google documents (e.g. `API_KEY_INVALID` under INVALID_ARGUMENT) overrides what its status
code alone would say, so teaching the sidecar a new reason is one table row. Everything
downstream (the retry loop, the Verifier, the outbox) reads the resulting `UpstreamFailure`
and never a message string.
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


@dataclass(frozen=True, slots=True)
class Meaning:
    """What a status code (or an ErrorInfo reason) says about a failed call."""

    kind: FailureKind
    reached: bool | None  # False: provably not processed, the token is still unused
    retryable: bool = False


_CONFIG_NOT_PROCESSED = Meaning(FailureKind.CONFIG, reached=False)
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
# By `google.rpc.ErrorInfo.reason`, consulted before the code. Empty today: the status code
# alone decides; add a reason here when it means more than its code does.
BY_REASON: Mapping[str, Meaning] = {}


def meaning(code: str, reason: str = "") -> Meaning:
    """The table row for a status name and an optional ErrorInfo reason."""
    found = BY_REASON.get(reason) if reason else None
    return found or BY_CODE.get(code, _TRANSIENT_UNKNOWN)


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


def _status_details(details: bytes) -> status_pb2.Status | None:
    try:
        return status_pb2.Status.FromString(details)
    except DecodeError:
        return None


def retry_info_delay(details: bytes) -> float | None:
    """The `google.rpc.RetryInfo.retry_delay` in a `grpc-status-details-bin` trailer, if any."""
    status = _status_details(details)
    if status is None:
        return None
    for detail in status.details:
        if detail.Is(error_details_pb2.RetryInfo.DESCRIPTOR):
            info = error_details_pb2.RetryInfo()
            detail.Unpack(info)
            delay: float = info.retry_delay.ToTimedelta().total_seconds()
            return max(0.0, delay)
    return None


def error_info_reason(details: bytes) -> str:
    """The `google.rpc.ErrorInfo.reason` in a `grpc-status-details-bin` trailer, or ""."""
    status = _status_details(details)
    if status is None:
        return ""
    for detail in status.details:
        if detail.Is(error_details_pb2.ErrorInfo.DESCRIPTOR):
            info = error_details_pb2.ErrorInfo()
            detail.Unpack(info)
            return str(info.reason)
    return ""


_NEVER_CONNECTED = ("failed to connect", "connection refused")


def classify(error: grpc.aio.AioRpcError) -> UpstreamError:
    """One place that turns a gRPC failure into the core's failure value."""
    code = error.code().name
    message = error.details() or ""
    pushback = None
    reason = ""
    for key, value in error.trailing_metadata() or ():
        if key == "grpc-retry-pushback-ms":
            try:
                pushback = max(0.0, int(value) / 1000.0)
            except ValueError:
                pushback = None
        elif key == "grpc-status-details-bin" and isinstance(value, bytes):
            reason = error_info_reason(value)
            if pushback is None:
                pushback = retry_info_delay(value)
    found = meaning(code, reason)
    reached = found.reached
    lowered = message.lower()
    if code == "UNAVAILABLE" and (
        "failed to connect" in lowered or "connection refused" in lowered
    ):
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
            reason=reason,
        )
    )
