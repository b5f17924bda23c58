"""The Google-compatible face: reCAPTCHA Enterprise's own `CreateAssessment` and
`AnnotateAssessment`, answered the way Google answers them, over the core's use cases.

Wire-neutral: the gRPC door (`google_grpc`) and the REST door (`google_rest`) both hand a
decoded Google request here and render what comes back (`FaceAnswer`): the response message
as bytes, or Google's error, and the decision headers beside either.

What it adds to Google's semantics, and how each answer is made:
- a fresh assessment is Google's own answer, whole (`Decision.passthrough`), the app's clear
  account id restored in the echoed event (upstream saw the protected one);
- a repeat of a token is what Google answers for one: `tokenProperties.valid = false`,
  `invalidReason = DUPE`, with no upstream call and no `name` (there is no new assessment, and
  an app that annotates the answer must not label the original one);
- a repeat with the same `x-recaptcha-idempotency-key` and the same request gets the original
  answer, rebuilt from what the sidecar remembers (name, token properties, risk analysis,
  account-defender labels) and the request's own event: the replay store never keeps Google's
  whole answer, which echoes the token and the user's data;
- an empty token is `MISSING`, a token that cannot be real `MALFORMED` (answered locally);
- when no answer could be had the face answers what Google would have: UNAVAILABLE,
  DEADLINE_EXCEEDED or RESOURCE_EXHAUSTED with `RetryInfo`, never a fabricated valid
  assessment; the decision headers still say what the policy would allow;
- `parent` (or an annotated name's project) must be the configured project, by id or by
  number: another is PERMISSION_DENIED, as Google answers a project the caller cannot use.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import grpc
from google.cloud.recaptchaenterprise_v1.types import recaptchaenterprise as types
from google.rpc import error_details_pb2

from sidecar.core.annotate import Annotator
from sidecar.core.errors import InvalidArgument, Overloaded, UpstreamRejected
from sidecar.core.model import (
    AnnotationRequest,
    AssessmentRequest,
    Decision,
    TokenStatus,
    TransactionEvent,
    UserId,
    UserIdKind,
)
from sidecar.core.ports import CallContext
from sidecar.core.verify import Verifier
from sidecar.googleapi import errors
from sidecar.googleapi.errors import GoogleError
from sidecar.googleapi.service import SERVICE
from sidecar.server.decision_headers import decision_headers

CREATE_CALL = CallContext(SERVICE, "CreateAssessment")
ANNOTATE_CALL = CallContext(SERVICE, "AnnotateAssessment")
# gRPC metadata key / HTTP header of the idempotency key (the request's own fields are Google's).
IDEMPOTENCY_HEADER = "x-recaptcha-idempotency-key"
# How long a client is told to wait before trying again when the sidecar had no answer.
RETRY_DELAY_SECONDS = 1.0
# ErrorInfo domain of the sidecar's own failures (Google's are `googleapis.com`).
SIDECAR_DOMAIN = "recaptcha-sidecar"

CreateAssessmentRequestPb: Any = types.CreateAssessmentRequest.pb()
AnnotateAssessmentRequestPb: Any = types.AnnotateAssessmentRequest.pb()
AnnotateAssessmentResponsePb: Any = types.AnnotateAssessmentResponse.pb()
AssessmentPb: Any = types.Assessment.pb()
_EventPb: Any = types.Event.pb()
_TokenPb: Any = types.TokenProperties.pb()
_RiskPb: Any = types.RiskAnalysis.pb()
_DefenderPb: Any = types.AccountDefenderAssessment.pb()
_TransactionEventPb: Any = types.TransactionEvent.pb()
_EMPTY_ANNOTATE_RESPONSE = AnnotateAssessmentResponsePb().SerializeToString()

_PARENT = re.compile(r"projects/([^/]+)")
_ASSESSMENT_NAME = re.compile(r"projects/([^/]+)/assessments/[^/]+")
_USER_ID_KIND = {
    "email": UserIdKind.EMAIL,
    "phone_number": UserIdKind.PHONE_NUMBER,
    "username": UserIdKind.USERNAME,
}
# Domain field → the field path Google's BadRequest names.
_EVENT_FIELD = {
    "token": "token",
    "expected_action": "expected_action",
    "site_key": "site_key",
    "user_ip_address": "user_ip_address",
    "user_agent": "user_agent",
    "ja3": "ja3",
    "ja4": "ja4",
    "requested_uri": "requested_uri",
    "account_id": "user_info.account_id",
}
_ANNOTATE_FIELD = {"assessment_name": "name"}


@dataclass(frozen=True, slots=True)
class FaceAnswer:
    """What a door sends back: the response message (serialized) or Google's error, and the
    decision headers (gRPC metadata, HTTP headers) beside either."""

    body: bytes = b""
    error: GoogleError | None = None
    headers: tuple[tuple[str, str], ...] = ()


class ProjectNames:
    """The configured project by id and by number. The number comes from `project_number`,
    else from a numeric `project`, else it is learned from the names of upstream's
    assessments (`projects/NUMBER/assessments/ID`); until then a numeric parent is taken on
    trust and checked against the name of the answer."""

    def __init__(self, project: str, number: str | None = None) -> None:
        self.id = project
        self.number = number or (project if project.isdigit() else None)

    def owns(self, project: str) -> bool | None:
        """True for ours, False for another's, None for a number not known yet."""
        if project == self.id or project == self.number:
            return True
        if self.number is None and project.isdigit():
            return None
        return False

    def learn(self, assessment_name: str) -> str | None:
        """The project number in an assessment name upstream gave (learned if new)."""
        match = _ASSESSMENT_NAME.fullmatch(assessment_name)
        if match is None:
            return None
        number = match[1]
        if self.number is None and number.isdigit():
            self.number = number
        return number


def _enum_value(enum_type: Any, name: str) -> int | None:
    """A reCAPTCHA enum name back to its number; `NAME_<n>` (a value newer than this
    library, as `sidecar.upstream.client` names it) to n; None when neither."""
    try:
        return int(enum_type.Value(name))
    except ValueError:
        prefix, _, number = name.rpartition("_")
        return int(number) if prefix and number.isdigit() else None


def _enum_name(enum_type: Any, number: int, unknown: str) -> str:
    try:
        return str(enum_type.Name(number))
    except ValueError:
        return f"{unknown}_{number}"


def to_assessment_request(assessment: Any, idempotency_key: str) -> AssessmentRequest:
    """Google's `Assessment` (as the app sent it) → the domain request, carrying the whole
    message as its passthrough."""
    event = assessment.event
    info = event.user_info
    user_ids = []
    for user_id in info.user_ids:
        kind = user_id.WhichOneof("id_oneof")
        if kind is None:
            user_ids.append(UserId(UserIdKind.USERNAME, ""))  # refused by validation
        else:
            user_ids.append(UserId(_USER_ID_KIND[kind], getattr(user_id, kind)))
    return AssessmentRequest(
        token=event.token,
        expected_action=event.expected_action,
        site_key=event.site_key,
        user_ip_address=event.user_ip_address,
        user_agent=event.user_agent,
        ja3=event.ja3,
        ja4=event.ja4,
        requested_uri=event.requested_uri,
        account_id=info.account_id,
        user_ids=tuple(user_ids),
        idempotency_key=idempotency_key,
        headers=tuple(event.headers),
        express=event.express,
        passthrough=assessment.SerializeToString(),
    )


def to_annotation_request(request: Any) -> AnnotationRequest:
    """Google's `AnnotateAssessmentRequest` → the domain annotation; its passthrough is the
    whole request with `account_id` cleared (the domain field carries it, to be protected
    before anything is stored)."""
    account_id = request.account_id
    event = None
    if request.HasField("transaction_event"):
        te = request.transaction_event
        event = TransactionEvent(
            event_type=(
                _enum_name(_TransactionEventPb.TransactionEventType, te.event_type, "TYPE")
                if te.event_type
                else ""
            ),
            reason=te.reason,
            value=te.value,
            event_time=(
                te.event_time.seconds + te.event_time.nanos / 1e9
                if te.HasField("event_time")
                else None
            ),
        )
    request.account_id = ""
    passthrough = request.SerializeToString()
    request.account_id = account_id
    enums = AnnotateAssessmentRequestPb
    return AnnotationRequest(
        assessment_name=request.name,
        annotation=(
            _enum_name(enums.Annotation, request.annotation, "ANNOTATION")
            if request.annotation
            else ""
        ),
        reasons=tuple(_enum_name(enums.Reason, r, "REASON") for r in request.reasons),
        account_id=account_id,
        transaction_event=event,
        passthrough=passthrough,
    )


def invalid_argument(error: InvalidArgument, prefix: str, fields: dict[str, str]) -> GoogleError:
    """A domain InvalidArgument as Google's BadRequest, naming the field by its proto path."""
    field = error.field
    base, bracket, rest = field.partition("[")
    if base == "user_ids":
        path = f"{prefix}user_info.user_ids{bracket}{rest}"
    elif base == "headers":
        path = f"{prefix}headers{bracket}{rest}"
    elif base == "idempotency_key":
        path = IDEMPOTENCY_HEADER
    elif base in fields:
        path = prefix + fields[base]
    else:
        path = prefix + field
    return errors.bad_request([(path, error.problem)], f"Invalid {path}: {error.problem}.")


def _retry_later(code: grpc.StatusCode, message: str, info: Any | None = None) -> GoogleError:
    details = () if info is None else (info,)
    return GoogleError(code, message, details).with_retry_delay(RETRY_DELAY_SECONDS)


_NO_KEY = frozenset({"keys_missing", "client_type_missing"})


def unanswered(decision: Decision) -> GoogleError:
    """The error for a decision made without an answer (UNCHECKED): what Google would have
    answered had it been out of reach (UNAVAILABLE), out of time (DEADLINE_EXCEEDED) or out
    of quota (RESOURCE_EXHAUSTED), with RetryInfo, and the sidecar's reason in an ErrorInfo
    of its own domain. `decided_by` is `kind:detail` (`FailureKind` values)."""
    kind, _, detail = decision.decided_by.partition(":")
    if kind in _NO_KEY:
        # The event names no key and none fits it: Google refuses such a request likewise.
        return errors.bad_request([("assessment.event.site_key", "A site key is required.")])
    if kind == "quota" or kind.startswith("rate_limit"):
        code = grpc.StatusCode.RESOURCE_EXHAUSTED
        message = "Quota exceeded: the sidecar made no assessment; retry later."
    elif detail.startswith("deadline"):
        code = grpc.StatusCode.DEADLINE_EXCEEDED
        message = "Deadline expired before operation could complete."
    else:
        code = grpc.StatusCode.UNAVAILABLE
        message = "The service is currently unavailable."
    info = error_details_pb2.ErrorInfo(
        reason=(kind or "unchecked").upper(),
        domain=SIDECAR_DOMAIN,
        metadata={"decided_by": decision.decided_by, "allowed": str(decision.allowed).lower()},
    )
    return _retry_later(code, message, info)


def _restore_account_id(answer: bytes, account_id: str) -> bytes:
    """Google echoes the event it received, with the protected account id: put the app's own
    back. Appending a message merges it over the one before (protobuf's wire rule), so the
    answer is neither parsed nor copied field by field."""
    if not account_id:
        return answer
    overlay = AssessmentPb()
    overlay.event.user_info.account_id = account_id
    return answer + bytes(overlay.SerializeToString())


def rebuilt_assessment(decision: Decision, event: Any) -> bytes:
    """The answer to a token the sidecar decided on without asking upstream (a repeat, a
    replay, an empty or impossible token), shaped as Google shapes its answers."""
    assessment = AssessmentPb()
    assessment.event.CopyFrom(event)
    tp = assessment.token_properties
    status = decision.token_status
    replayed = decision.replayed
    tp.valid = status is TokenStatus.VALID
    if not tp.valid:
        reason = decision.invalid_reason or _LOCAL_REASON.get(status, "UNKNOWN_INVALID_REASON")
        if status is TokenStatus.DUPLICATE and not replayed:
            reason = "DUPE"
        value = _enum_value(_TokenPb.InvalidReason, reason)
        if value is not None:
            tp.invalid_reason = value
    if not replayed:
        return bytes(assessment.SerializeToString())
    assessment.name = decision.assessment_name
    tp.hostname = decision.hostname
    tp.android_package_name = decision.android_package_name
    tp.ios_bundle_id = decision.ios_bundle_id
    tp.action = decision.action
    if decision.create_time is not None:
        tp.create_time.FromNanoseconds(int(decision.create_time * 1e9))
    risk = assessment.risk_analysis
    risk.score = decision.score
    for name in decision.reasons:
        value = _enum_value(_RiskPb.ClassificationReason, name)
        if value is not None:
            risk.reasons.append(value)
    for name in decision.account_defender_labels:
        value = _enum_value(_DefenderPb.AccountDefenderLabel, name)
        if value is not None:
            assessment.account_defender_assessment.labels.append(value)
    return bytes(assessment.SerializeToString())


_LOCAL_REASON = {
    TokenStatus.DUPLICATE: "DUPE",
    TokenStatus.MISSING: "MISSING",
    TokenStatus.EXPIRED: "EXPIRED",
    TokenStatus.INVALID: "MALFORMED",
}


def _upstream_refusal(error: UpstreamRejected) -> GoogleError:
    """A synchronous Annotate upstream refused: the request's own problem keeps Google's
    code; anything else is the sidecar's (credentials, quota, upstream down): UNAVAILABLE."""
    code = _CODES.get(error.code)
    if code in _REQUEST_CODES:
        return errors.plain(code, str(error))
    return _retry_later(grpc.StatusCode.UNAVAILABLE, "The service is currently unavailable.")


_CODES = {code.name: code for code in grpc.StatusCode}
_REQUEST_CODES = {
    grpc.StatusCode.INVALID_ARGUMENT,
    grpc.StatusCode.NOT_FOUND,
    grpc.StatusCode.FAILED_PRECONDITION,
}


class GoogleFace:
    """CreateAssessment and AnnotateAssessment over the Verifier and the Annotator."""

    def __init__(self, verifier: Verifier, annotator: Annotator, project: ProjectNames) -> None:
        self._verifier = verifier
        self._annotator = annotator
        self.project = project

    @staticmethod
    def _denied(resource: str, rpc: str) -> GoogleError:
        return errors.permission_denied(errors.permission_for(rpc), resource)

    async def create_assessment(
        self,
        request: Any,
        *,
        idempotency_key: str = "",
        timeout: float | None = None,
        call: CallContext = CREATE_CALL,
    ) -> FaceAnswer:
        """One `CreateAssessmentRequest` (plain protobuf) → Google's answer."""
        match = _PARENT.fullmatch(request.parent)
        if match is None:
            return FaceAnswer(
                error=errors.bad_request([("parent", "Must be of the form 'projects/{project}'.")])
            )
        owned = self.project.owns(match[1])
        if owned is False:
            return FaceAnswer(error=self._denied(request.parent, "CreateAssessment"))
        if not request.HasField("assessment") or not request.assessment.HasField("event"):
            return FaceAnswer(
                error=errors.bad_request([("assessment.event", "An event is required.")])
            )
        try:
            domain = to_assessment_request(request.assessment, idempotency_key)
            decision = await self._verifier.assess(domain, timeout, call=call)
        except InvalidArgument as error:
            return FaceAnswer(error=invalid_argument(error, "assessment.event.", _EVENT_FIELD))
        except Overloaded:
            return FaceAnswer(
                error=_retry_later(grpc.StatusCode.RESOURCE_EXHAUSTED, "The sidecar is overloaded.")
            )
        headers = tuple(decision_headers(decision))
        if decision.token_status is TokenStatus.UNCHECKED:
            return FaceAnswer(error=unanswered(decision), headers=headers)
        if decision.assessment_name:
            number = self.project.learn(decision.assessment_name)
            if owned is None and number is not None and number != match[1]:
                # A number taken on trust that upstream's answer shows to be another's.
                return FaceAnswer(
                    error=self._denied(request.parent, "CreateAssessment"), headers=headers
                )
        if decision.passthrough:
            body = _restore_account_id(decision.passthrough, domain.account_id)
        else:
            body = rebuilt_assessment(decision, request.assessment.event)
        return FaceAnswer(body=body, headers=headers)

    async def annotate_assessment(
        self, request: Any, *, timeout: float | None = None, call: CallContext = ANNOTATE_CALL
    ) -> FaceAnswer:
        """One `AnnotateAssessmentRequest` (plain protobuf) → Google's empty answer, once the
        annotation is queued (outbox) or delivered."""
        match = _ASSESSMENT_NAME.fullmatch(request.name)
        if match is not None and self.project.owns(match[1]) is False:
            return FaceAnswer(error=self._denied(request.name, "AnnotateAssessment"))
        try:
            await self._annotator.annotate(to_annotation_request(request), timeout, call=call)
        except InvalidArgument as error:
            return FaceAnswer(error=invalid_argument(error, "", _ANNOTATE_FIELD))
        except Overloaded:
            return FaceAnswer(
                error=_retry_later(grpc.StatusCode.RESOURCE_EXHAUSTED, "The sidecar is overloaded.")
            )
        except UpstreamRejected as error:
            return FaceAnswer(error=_upstream_refusal(error))
        return FaceAnswer(body=_EMPTY_ANNOTATE_RESPONSE)


def unserved(method: str, served: Sequence[str]) -> GoogleError:
    """Every method of Google's service but the two the sidecar serves: key management and
    the rest need Google's console or gcloud, and the sidecar never lends its credentials."""
    return errors.plain(
        grpc.StatusCode.UNIMPLEMENTED,
        f"{method} is not served by recaptcha-sidecar: it serves only {' and '.join(served)} "
        "(it never lends its credentials for key management; call Google for that).",
    )
