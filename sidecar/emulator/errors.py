"""Google's error shapes: a status code, a message and `google.rpc.Status` details.

Google's API front end answers every failure with a `google.rpc.Status` carried in the
`grpc-status-details-bin` trailer (AIP-193): an `ErrorInfo` whose `reason` is one of
`google.api.ErrorReason` in the `googleapis.com` domain, and beside it `LocalizedMessage`,
`Help`, `RetryInfo`, `QuotaFailure`, `BadRequest` or `ResourceInfo` as the case calls for.
The shapes here follow the examples in googleapis' `google/api/error_reason.proto` and
payloads users have posted from real calls; sidecar/emulator/README.md cites each one.

A client should decide by `ErrorInfo.reason` and field violations, never by the message text;
the messages are Google's own wording so that logs read the same as in production.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import grpc
from google.protobuf import any_pb2, duration_pb2
from google.rpc import error_details_pb2, status_pb2

SERVICE = "recaptchaenterprise.googleapis.com"
SERVICE_TITLE = "reCAPTCHA Enterprise API"
DOMAIN = "googleapis.com"
METHOD_PREFIX = "google.cloud.recaptchaenterprise.v1.RecaptchaEnterpriseService."
STATUS_DETAILS_KEY = "grpc-status-details-bin"
LOCALE = "en-US"
# The message Google sends with every authentication failure (HTTP 401).
_AUTH_HELP = (
    "Expected OAuth 2 access token, login cookie or other valid authentication credential. "
    "See https://developers.google.com/identity/sign-in/web/devconsole-project."
)
QUOTA_METRIC = f"{SERVICE}/assessments"
QUOTA_LIMIT = "AssessmentsPerMinutePerProject"
QUOTA_LIMIT_VALUE = 60_000


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


async def abort(context: Any, error: GoogleError) -> None:
    """End the call with ``error``, details and all (raises, as `context.abort` does)."""
    await context.abort(error.code, error.message, trailing_metadata=error.trailing_metadata())


def _info(reason: str, metadata: Mapping[str, str]) -> Any:
    return error_details_pb2.ErrorInfo(reason=reason, domain=DOMAIN, metadata=dict(metadata))


def _localized(message: str) -> Any:
    return error_details_pb2.LocalizedMessage(locale=LOCALE, message=message)


def _help(description: str, url: str) -> Any:
    return error_details_pb2.Help(
        links=[error_details_pb2.Help.Link(description=description, url=url)]
    )


def _method(rpc: str) -> str:
    return METHOD_PREFIX + rpc


# ---- credentials ---------------------------------------------------------------------------


def api_key_invalid() -> GoogleError:
    """A key that is malformed, unknown, deleted or expired (HTTP 400, not 401)."""
    message = "API key not valid. Please pass a valid API key."
    return GoogleError(
        grpc.StatusCode.INVALID_ARGUMENT,
        message,
        (_info("API_KEY_INVALID", {"service": SERVICE}), _localized(message)),
    )


def credentials_missing(rpc: str) -> GoogleError:
    """Neither an API key nor a bearer token came with the call."""
    message = f"Request is missing required authentication credential. {_AUTH_HELP}"
    return GoogleError(
        grpc.StatusCode.UNAUTHENTICATED,
        message,
        (_info("CREDENTIALS_MISSING", {"service": SERVICE, "method": _method(rpc)}),),
    )


def access_token_type_unsupported(rpc: str) -> GoogleError:
    """A bearer value that is not an access token Google issued (an ID token, junk)."""
    message = f"Request had invalid authentication credentials. {_AUTH_HELP}"
    return GoogleError(
        grpc.StatusCode.UNAUTHENTICATED,
        message,
        (_info("ACCESS_TOKEN_TYPE_UNSUPPORTED", {"service": SERVICE, "method": _method(rpc)}),),
    )


def access_token_expired(rpc: str) -> GoogleError:
    """An access token past its `expires_in`."""
    message = f"Request had invalid authentication credentials. {_AUTH_HELP}"
    return GoogleError(
        grpc.StatusCode.UNAUTHENTICATED,
        message,
        (_info("ACCESS_TOKEN_EXPIRED", {"service": SERVICE, "method": _method(rpc)}),),
    )


def access_token_scope_insufficient(rpc: str) -> GoogleError:
    """An access token minted without the cloud-platform scope."""
    message = "Request had insufficient authentication scopes."
    return GoogleError(
        grpc.StatusCode.PERMISSION_DENIED,
        message,
        (_info("ACCESS_TOKEN_SCOPE_INSUFFICIENT", {"service": SERVICE, "method": _method(rpc)}),),
    )


# ---- project and permission ----------------------------------------------------------------


def permission_denied(permission: str, resource: str) -> GoogleError:
    """IAM refuses ``permission`` on ``resource``: another project, or a missing role."""
    message = f"Permission '{permission}' denied on resource '{resource}' (or it may not exist)."
    return GoogleError(
        grpc.StatusCode.PERMISSION_DENIED,
        message,
        (
            _info("IAM_PERMISSION_DENIED", {"permission": permission, "resource": resource}),
            _localized(message),
        ),
    )


def consumer_invalid(project: str) -> GoogleError:
    """The project the call is billed to does not exist (deleted, mistyped)."""
    message = f"Permission denied on resource project {project}."
    return GoogleError(
        grpc.StatusCode.PERMISSION_DENIED,
        message,
        (
            _info(
                "CONSUMER_INVALID",
                {"consumer": f"projects/{project}", "containerInfo": project, "service": SERVICE},
            ),
            _localized(message),
            _help("Google developers console", "https://console.developers.google.com"),
        ),
    )


def service_disabled(project: str) -> GoogleError:
    """The reCAPTCHA Enterprise API is not enabled in the project."""
    url = f"https://console.developers.google.com/apis/api/{SERVICE}/overview?project={project}"
    message = (
        f"{SERVICE_TITLE} has not been used in project {project} before or it is disabled. "
        f"Enable it by visiting {url} then retry. If you enabled this API recently, wait a few "
        "minutes for the action to propagate to our systems and retry."
    )
    metadata = {
        "consumer": f"projects/{project}",
        "containerInfo": project,
        "service": SERVICE,
        "serviceTitle": SERVICE_TITLE,
        "activationUrl": url,
    }
    return GoogleError(
        grpc.StatusCode.PERMISSION_DENIED,
        message,
        (
            _info("SERVICE_DISABLED", metadata),
            _localized(message),
            _help("Google developers console API activation", url),
        ),
    )


def billing_disabled(project: str) -> GoogleError:
    """Billing is off for the project (past the free tier, every call fails)."""
    url = f"https://console.developers.google.com/billing/enable?project={project}"
    message = (
        f"This API method requires billing to be enabled. Please enable billing on project "
        f"#{project} by visiting {url} then retry. If you enabled billing for this project "
        "recently, wait a few minutes for the action to propagate to our systems and retry."
    )
    return GoogleError(
        grpc.StatusCode.PERMISSION_DENIED,
        message,
        (
            _info("BILLING_DISABLED", {"consumer": f"projects/{project}", "service": SERVICE}),
            _localized(message),
            _help("Google developers console billing", url),
        ),
    )


# ---- quota ---------------------------------------------------------------------------------


def rate_limit_exceeded(project_number: str, retry_delay: float | None = None) -> GoogleError:
    """Over the per-project assessments quota (HTTP 429): ErrorInfo, QuotaFailure, Help and,
    when Google knows when the window reopens, RetryInfo."""
    consumer = f"projects/{project_number}"
    message = (
        "Quota exceeded for quota metric 'Assessments' and limit 'Assessments per minute' of "
        f"service '{SERVICE}' for consumer 'project_number:{project_number}'."
    )
    info = _info(
        "RATE_LIMIT_EXCEEDED",
        {
            "consumer": consumer,
            "service": SERVICE,
            "quota_metric": QUOTA_METRIC,
            "quota_limit": QUOTA_LIMIT,
            "quota_limit_value": str(QUOTA_LIMIT_VALUE),
            "quota_location": "global",
        },
    )
    violation = error_details_pb2.QuotaFailure.Violation(
        subject=f"project_number:{project_number}", description=message
    )
    # Newer common protos carry the quota's identity in typed fields; set them where they exist.
    extra = {
        "api_service": SERVICE,
        "quota_metric": QUOTA_METRIC,
        "quota_id": QUOTA_LIMIT,
        "quota_value": QUOTA_LIMIT_VALUE,
    }
    known = violation.DESCRIPTOR.fields_by_name
    for field, value in extra.items():
        if field in known:
            setattr(violation, field, value)
    error = GoogleError(
        grpc.StatusCode.RESOURCE_EXHAUSTED,
        message,
        (
            info,
            error_details_pb2.QuotaFailure(violations=[violation]),
            _help(
                "Request a higher quota limit.",
                "https://cloud.google.com/docs/quotas/help/request_increase",
            ),
        ),
    )
    return error.with_retry_delay(retry_delay)


# ---- the request itself --------------------------------------------------------------------


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


# ---- infrastructure ------------------------------------------------------------------------

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


def plain(code: grpc.StatusCode) -> GoogleError:
    """A failure with Google's wording for ``code`` and no details (UNAVAILABLE and kin)."""
    return GoogleError(code, _PLAIN_MESSAGES.get(code, "The request failed."))


# ---- the fault knobs -----------------------------------------------------------------------

# `error_reason` knob → the error Google sends for that reason, for one RPC and project.
REASONS: dict[str, Any] = {
    "API_KEY_INVALID": lambda rpc, project: api_key_invalid(),
    "CREDENTIALS_MISSING": lambda rpc, project: credentials_missing(rpc),
    "ACCESS_TOKEN_TYPE_UNSUPPORTED": lambda rpc, project: access_token_type_unsupported(rpc),
    "ACCESS_TOKEN_EXPIRED": lambda rpc, project: access_token_expired(rpc),
    "ACCESS_TOKEN_SCOPE_INSUFFICIENT": lambda rpc, project: access_token_scope_insufficient(rpc),
    "IAM_PERMISSION_DENIED": lambda rpc, project: permission_denied(
        permission_for(rpc), f"projects/{project}"
    ),
    "CONSUMER_INVALID": lambda rpc, project: consumer_invalid(project),
    "SERVICE_DISABLED": lambda rpc, project: service_disabled(project),
    "BILLING_DISABLED": lambda rpc, project: billing_disabled(project),
    "RATE_LIMIT_EXCEEDED": lambda rpc, project: rate_limit_exceeded(project),
}
# The reason Google gives by default for a code (the `error_code` knob alone).
DEFAULT_REASON: dict[grpc.StatusCode, str] = {
    grpc.StatusCode.UNAUTHENTICATED: "ACCESS_TOKEN_EXPIRED",
    grpc.StatusCode.PERMISSION_DENIED: "IAM_PERMISSION_DENIED",
    grpc.StatusCode.RESOURCE_EXHAUSTED: "RATE_LIMIT_EXCEEDED",
}
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


def reason_code(reason: str) -> grpc.StatusCode:
    """The status code Google pairs with an ErrorInfo reason."""
    code: grpc.StatusCode = REASONS[reason]("CreateAssessment", "0").code
    return code


def injected(
    code: grpc.StatusCode,
    *,
    rpc: str,
    project: str,
    reason: str | None = None,
    field: str | None = None,
) -> GoogleError:
    """The error a fault knob injects, shaped as Google shapes that failure."""
    if field is not None:
        return bad_request([(field, "Invalid value.")])
    reason = reason or DEFAULT_REASON.get(code)
    if reason is not None:
        error: GoogleError = REASONS[reason](rpc, project)
        return error
    if code is grpc.StatusCode.INVALID_ARGUMENT:
        return bad_request([("assessment.event", "Invalid value.")])
    if code is grpc.StatusCode.NOT_FOUND:
        return not_found("Assessment", "", "Requested entity was")
    return plain(code)
