"""Google's error shapes: a status code, a message and `google.rpc.Status` details.

Google's API front end answers every failure with a `google.rpc.Status` carried in the
`grpc-status-details-bin` trailer (AIP-193) over gRPC, and as `{"error": {"code", "message",
"status", "details"}}` over REST: an `ErrorInfo` whose `reason` is one of
`google.api.ErrorReason` in the `googleapis.com` domain, and beside it `LocalizedMessage`,
`Help`, `RetryInfo`, `QuotaFailure`, `BadRequest` or `ResourceInfo` as the case calls for.
The shapes follow the examples in googleapis' `google/api/error_reason.proto` and payloads
users have posted from real calls; sidecar/emulator/README.md cites each one.

A client should decide by `ErrorInfo.reason` and field violations, never by the message text;
the messages are Google's own wording so that logs read the same as in production.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import grpc
from google.protobuf import any_pb2, duration_pb2, json_format
from google.rpc import error_details_pb2, status_pb2

SERVICE = "recaptchaenterprise.googleapis.com"
DOMAIN = "googleapis.com"
METHOD_PREFIX = "google.cloud.recaptchaenterprise.v1.RecaptchaEnterpriseService."
STATUS_DETAILS_KEY = "grpc-status-details-bin"
LOCALE = "en-US"

# google.rpc.Code → the HTTP status Google's REST front end answers with (google/rpc/code.proto).
HTTP_STATUS: dict[grpc.StatusCode, int] = {
    grpc.StatusCode.OK: 200,
    grpc.StatusCode.CANCELLED: 499,
    grpc.StatusCode.UNKNOWN: 500,
    grpc.StatusCode.INVALID_ARGUMENT: 400,
    grpc.StatusCode.DEADLINE_EXCEEDED: 504,
    grpc.StatusCode.NOT_FOUND: 404,
    grpc.StatusCode.ALREADY_EXISTS: 409,
    grpc.StatusCode.PERMISSION_DENIED: 403,
    grpc.StatusCode.UNAUTHENTICATED: 401,
    grpc.StatusCode.RESOURCE_EXHAUSTED: 429,
    grpc.StatusCode.FAILED_PRECONDITION: 400,
    grpc.StatusCode.ABORTED: 409,
    grpc.StatusCode.OUT_OF_RANGE: 400,
    grpc.StatusCode.UNIMPLEMENTED: 501,
    grpc.StatusCode.INTERNAL: 500,
    grpc.StatusCode.UNAVAILABLE: 503,
    grpc.StatusCode.DATA_LOSS: 500,
}


@dataclass(frozen=True, slots=True)
class GoogleError:
    """One failure as Google answers it: code, message and the typed details."""

    code: grpc.StatusCode
    message: str
    details: tuple[Any, ...] = ()

    def status(self) -> Any:
        """The `google.rpc.Status` that travels in `grpc-status-details-bin`."""
        status = status_pb2.Status(code=self.code.value[0], message=self.message)
        for detail in self.details:
            packed = any_pb2.Any()
            packed.Pack(detail)
            status.details.append(packed)
        return status

    def trailing_metadata(self) -> tuple[tuple[str, bytes], ...]:
        return ((STATUS_DETAILS_KEY, self.status().SerializeToString()),)

    @property
    def http_status(self) -> int:
        return HTTP_STATUS.get(self.code, 500)

    def to_json(self) -> dict[str, Any]:
        """The REST body: `{"error": {"code": <HTTP status>, "message", "status": <code
        name>, "details": [{"@type": …, …}]}}`, details in protobuf's JSON mapping."""
        details = [json_format.MessageToDict(any_) for any_ in self.status().details]
        return {
            "error": {
                "code": self.http_status,
                "message": self.message,
                "status": self.code.name,
                "details": details,
            }
        }

    @property
    def reason(self) -> str:
        """The `ErrorInfo.reason`, or "" when Google sends none for this failure."""
        for detail in self.details:
            if isinstance(detail, error_details_pb2.ErrorInfo):
                return str(detail.reason)
        return ""

    def with_retry_delay(self, seconds: float | None) -> GoogleError:
        """The same error with a `RetryInfo` telling the client how long to wait."""
        if seconds is None:
            return self
        delay = duration_pb2.Duration()
        delay.FromNanoseconds(int(seconds * 1e9))
        info = error_details_pb2.RetryInfo(retry_delay=delay)
        kept = tuple(d for d in self.details if not isinstance(d, error_details_pb2.RetryInfo))
        return GoogleError(self.code, self.message, (*kept, info))


async def abort(
    context: Any, error: GoogleError, metadata: Sequence[tuple[str, str | bytes]] = ()
) -> None:
    """End the call with ``error``, details and all, and any extra trailing ``metadata``
    (raises, as `context.abort` does)."""
    await context.abort(
        error.code, error.message, trailing_metadata=(*metadata, *error.trailing_metadata())
    )


def error_info(reason: str, metadata: Mapping[str, str]) -> Any:
    return error_details_pb2.ErrorInfo(reason=reason, domain=DOMAIN, metadata=dict(metadata))


def localized(message: str) -> Any:
    return error_details_pb2.LocalizedMessage(locale=LOCALE, message=message)


def help_link(description: str, url: str) -> Any:
    return error_details_pb2.Help(
        links=[error_details_pb2.Help.Link(description=description, url=url)]
    )


def method(rpc: str) -> str:
    """The full method name Google's ErrorInfo metadata names (`…Service.CreateAssessment`)."""
    return METHOD_PREFIX + rpc


_PERMISSIONS = {
    "CreateAssessment": "recaptchaenterprise.assessments.create",
    "AnnotateAssessment": "recaptchaenterprise.assessments.annotate",
    "SearchRelatedAccountGroupMemberships": (
        "recaptchaenterprise.relatedaccountgroupmemberships.list"
    ),
}


def permission_for(rpc: str) -> str:
    """The IAM permission an RPC needs (`roles/recaptchaenterprise.agent` grants both)."""
    return _PERMISSIONS.get(rpc, "recaptchaenterprise.assessments.create")


def permission_denied(permission: str, resource: str) -> GoogleError:
    """IAM refuses ``permission`` on ``resource``: another project, or a missing role."""
    message = f"Permission '{permission}' denied on resource '{resource}' (or it may not exist)."
    return GoogleError(
        grpc.StatusCode.PERMISSION_DENIED,
        message,
        (
            error_info("IAM_PERMISSION_DENIED", {"permission": permission, "resource": resource}),
            localized(message),
        ),
    )


def bad_request(
    violations: Sequence[tuple[str, str]],
    message: str = "Request contains an invalid argument.",
) -> GoogleError:
    """INVALID_ARGUMENT naming each offending field (proto field paths, as AIP-193 asks)."""
    request = error_details_pb2.BadRequest(
        field_violations=[
            error_details_pb2.BadRequest.FieldViolation(field=field, description=description)
            for field, description in violations
        ]
    )
    return GoogleError(grpc.StatusCode.INVALID_ARGUMENT, message, (request,))


def not_found(resource_type: str, name: str, what: str) -> GoogleError:
    """A resource named by the request does not exist (an unknown assessment id)."""
    message = f"{what} not found."
    info = error_details_pb2.ResourceInfo(
        resource_type=f"{SERVICE}/{resource_type}", resource_name=name, description=message
    )
    return GoogleError(grpc.StatusCode.NOT_FOUND, message, (info,))


# What Google's front end says for failures that carry no ErrorInfo.
_PLAIN_MESSAGES: dict[grpc.StatusCode, str] = {
    grpc.StatusCode.UNAVAILABLE: "The service is currently unavailable.",
    grpc.StatusCode.INTERNAL: "Internal error encountered.",
    grpc.StatusCode.UNKNOWN: "Unknown error.",
    grpc.StatusCode.DEADLINE_EXCEEDED: "Deadline expired before operation could complete.",
    grpc.StatusCode.ABORTED: "The operation was aborted.",
    grpc.StatusCode.CANCELLED: "The operation was cancelled.",
    grpc.StatusCode.FAILED_PRECONDITION: "Precondition check failed.",
    grpc.StatusCode.UNIMPLEMENTED: "Operation is not implemented, or supported, or enabled.",
    grpc.StatusCode.DATA_LOSS: "Unrecoverable data loss or corruption.",
    grpc.StatusCode.OUT_OF_RANGE: "Operation was attempted past the valid range.",
    grpc.StatusCode.ALREADY_EXISTS: "Resource already exists.",
}


def plain(code: grpc.StatusCode, message: str | None = None) -> GoogleError:
    """A failure with Google's wording for ``code`` (or ``message``) and no details."""
    return GoogleError(code, message or _PLAIN_MESSAGES.get(code, "The request failed."))
