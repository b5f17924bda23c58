"""Google's error shapes as the emulator answers them: credentials, project, quota, and the
fault knobs. The shapes every side shares (`GoogleError`, permission, bad request, not found,
plain failures) live in `sidecar.googleapi.errors`, re-exported here; sidecar/emulator/README.md
cites the source of each one.
"""

from __future__ import annotations

from typing import Any

import grpc
from google.rpc import error_details_pb2

from sidecar.googleapi.errors import (
    DOMAIN,
    LOCALE,
    METHOD_PREFIX,
    SERVICE,
    STATUS_DETAILS_KEY,
    GoogleError,
    abort,
    bad_request,
    not_found,
    permission_denied,
    permission_for,
    plain,
)
from sidecar.googleapi.errors import error_info as _info
from sidecar.googleapi.errors import help_link as _help
from sidecar.googleapi.errors import localized as _localized
from sidecar.googleapi.errors import method as _method

__all__ = [
    "DOMAIN",
    "LOCALE",
    "METHOD_PREFIX",
    "REASONS",
    "SERVICE",
    "STATUS_DETAILS_KEY",
    "GoogleError",
    "abort",
    "bad_request",
    "injected",
    "not_found",
    "permission_denied",
    "permission_for",
    "plain",
    "rate_limit_exceeded",
    "reason_code",
]

SERVICE_TITLE = "reCAPTCHA Enterprise API"
# The message Google sends with every authentication failure (HTTP 401).
_AUTH_HELP = (
    "Expected OAuth 2 access token, login cookie or other valid authentication credential. "
    "See https://developers.google.com/identity/sign-in/web/devconsole-project."
)
QUOTA_METRIC = f"{SERVICE}/assessments"
QUOTA_LIMIT = "AssessmentsPerMinutePerProject"
QUOTA_LIMIT_VALUE = 60_000


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
