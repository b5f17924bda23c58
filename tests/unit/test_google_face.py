"""The Google-compatible face's pure parts: the pass-through to upstream, how each decision is
answered, the project check, errors as Google shapes them."""

from __future__ import annotations

import dataclasses

import grpc
import pytest
from google.cloud.recaptchaenterprise_v1.types import recaptchaenterprise as types
from google.rpc import error_details_pb2

from sidecar.core.errors import InvalidArgument
from sidecar.core.model import (
    AnnotationRequest,
    Decision,
    RecommendedAction,
    TokenStatus,
    TransactionEvent,
    Verdict,
)
from sidecar.outbox import codec
from sidecar.server import google_face
from sidecar.server.google_face import ProjectNames, rebuilt_assessment, unanswered
from sidecar.upstream.client import build_annotate_request, build_passthrough_request

Assessment = types.Assessment.pb()
Event = types.Event.pb()
Annotate = types.AnnotateAssessmentRequest.pb()
InvalidReason = types.TokenProperties.InvalidReason
# Field 999 of a message, varint 7: what a Google release newer than this library may send.
UNKNOWN = b"\xb8\x3e\x07"


def _decision(**fields: object) -> Decision:
    base: dict[str, object] = {
        "allowed": True,
        "verdict": Verdict.PASSED,
        "token_status": TokenStatus.VALID,
        "recommended_action": RecommendedAction.ALLOW,
        "decided_by": "passed",
    }
    base.update(fields)
    return Decision(**base)  # type: ignore[arg-type]


def _unchecked(decided_by: str, *, allowed: bool) -> Decision:
    """A decision made without an answer, allowed (audit) or not (enforce) by the policy."""
    verdict = Verdict.FAILED_AUDIT if allowed else Verdict.FAILED_ENFORCE
    return _decision(
        allowed=allowed, verdict=verdict, token_status=TokenStatus.UNCHECKED, decided_by=decided_by
    )


def _event() -> object:
    event = Event(token="t" * 30, expected_action="login", user_agent="UA")
    event.user_info.account_id = "alice"
    return event


# ---- upstream pass-through -----------------------------------------------------------------


def test_the_apps_whole_assessment_goes_up_with_key_and_protected_id_merged() -> None:
    sent = Assessment()
    sent.event.CopyFrom(_event())
    sent.event.transaction_data.transaction_id = "tx"
    sent.private_password_leak_verification.lookup_hash_prefix = b"\x01\x02"
    sent.event.MergeFromString(UNKNOWN)
    request = google_face.to_assessment_request(sent, "")
    protected = dataclasses.replace(request, account_id="PROTECTED")
    message = build_passthrough_request(protected, "projects/p", "default-key")
    assert message.parent == "projects/p"  # type: ignore[attr-defined]
    event = message.assessment.event  # type: ignore[attr-defined]
    assert event.site_key == "default-key"
    assert event.user_info.account_id == "PROTECTED"
    assert event.transaction_data.transaction_id == "tx"
    assert UNKNOWN in event.SerializeToString()
    leak = message.assessment.private_password_leak_verification  # type: ignore[attr-defined]
    assert leak.lookup_hash_prefix == b"\x01\x02"


def test_an_event_without_an_account_gets_no_user_info() -> None:
    sent = Assessment()
    sent.event.token = "t" * 30
    sent.event.express = True
    request = google_face.to_assessment_request(sent, "key-1")
    assert request.idempotency_key == "key-1" and request.account_id == ""
    assert request.express
    message = build_passthrough_request(request, "projects/p", "k")
    assert not message.assessment.event.HasField("user_info")  # type: ignore[attr-defined]


def test_the_domain_request_is_read_from_the_event() -> None:
    sent = Assessment()
    sent.event.CopyFrom(_event())
    sent.event.user_info.user_ids.add(email="a@example.com")
    sent.event.user_info.user_ids.add(phone_number="+15550100")
    sent.event.user_info.user_ids.add()  # no id at all: validation refuses it
    sent.event.headers.append("accept: */*")
    request = google_face.to_assessment_request(sent, "")
    assert request.token == "t" * 30 and request.expected_action == "login"
    assert request.user_agent == "UA" and request.account_id == "alice"
    assert [(u.kind.value, u.value) for u in request.user_ids] == [
        ("email", "a@example.com"),
        ("phone_number", "+15550100"),
        ("username", ""),
    ]
    assert request.headers == ("accept: */*",)
    assert Assessment.FromString(request.passthrough) == sent


def test_an_annotation_is_stored_without_its_clear_account_id() -> None:
    sent = Annotate(name="projects/1/assessments/a", account_id="alice", hashed_account_id=b"h")
    sent.annotation = Annotate.Annotation.LEGITIMATE
    sent.reasons.append(Annotate.Reason.PASSED_TWO_FACTOR)
    sent.reasons.append(99)  # newer than this library
    sent.transaction_event.event_type = types.TransactionEvent.TransactionEventType.REFUND
    sent.transaction_event.value = 3.5
    sent.phone_authentication_event.phone_number = "+15550100"
    request = google_face.to_annotation_request(sent)
    assert sent.account_id == "alice"  # the caller's message is left as it was
    assert request.account_id == "alice"
    assert request.annotation == "LEGITIMATE"
    assert request.reasons == ("PASSED_TWO_FACTOR", "REASON_99")
    assert request.transaction_event == TransactionEvent("REFUND", "", 3.5, None)
    assert b"alice" not in request.passthrough
    stored = codec.decode(codec.encode(dataclasses.replace(request, account_id="PROTECTED")))
    assert b"alice" not in codec.encode(dataclasses.replace(request, account_id="PROTECTED"))
    upstream = build_annotate_request(stored)
    assert upstream.account_id == "PROTECTED"  # type: ignore[attr-defined]
    assert upstream.hashed_account_id == b"h"  # type: ignore[attr-defined]
    assert list(upstream.reasons) == [Annotate.Reason.PASSED_TWO_FACTOR, 99]  # type: ignore[attr-defined]
    phone = upstream.phone_authentication_event  # type: ignore[attr-defined]
    assert phone.phone_number == "+15550100"


def test_the_outbox_reads_back_what_it_stored() -> None:
    request = AnnotationRequest(assessment_name="projects/1/assessments/a", passthrough=b"\x00\xff")
    assert codec.decode(codec.encode(request)) == request
    with pytest.raises(ValueError):
        codec.decode(b'{"v":1,"name":"projects/1/assessments/a","passthrough":"%%"}')


# ---- answers -------------------------------------------------------------------------------


def test_a_repeat_is_dupe_with_no_name_even_though_the_decision_keeps_it() -> None:
    duplicate = _decision(
        allowed=False,
        verdict=Verdict.FAILED_ENFORCE,
        token_status=TokenStatus.DUPLICATE,
        invalid_reason="DUPE",
        assessment_name="projects/1/assessments/original",
        hostname="example.com",
        score=0.9,
    )
    answer = Assessment.FromString(rebuilt_assessment(duplicate, _event()))
    assert answer.name == ""
    assert not answer.token_properties.valid
    assert answer.token_properties.invalid_reason == InvalidReason.DUPE.value
    assert answer.token_properties.hostname == "" and answer.risk_analysis.score == 0
    assert answer.event.token == "t" * 30


@pytest.mark.parametrize(
    ("status", "reason", "expected"),
    [
        (TokenStatus.MISSING, "MISSING", InvalidReason.MISSING),
        (TokenStatus.INVALID, "MALFORMED", InvalidReason.MALFORMED),
        (TokenStatus.INVALID, "", InvalidReason.MALFORMED),
    ],
)
def test_tokens_answered_locally_are_invalid_with_googles_reason(
    status: TokenStatus, reason: str, expected: InvalidReason
) -> None:
    decision = _decision(allowed=False, token_status=status, invalid_reason=reason)
    answer = Assessment.FromString(rebuilt_assessment(decision, _event()))
    assert not answer.token_properties.valid and answer.name == ""
    assert answer.token_properties.invalid_reason == expected.value


def test_a_replay_is_the_original_answer_rebuilt() -> None:
    decision = _decision(
        replayed=True,
        assessment_name="projects/1/assessments/a",
        score=0.7,
        reasons=("AUTOMATION", "REASON_77"),
        action="login",
        hostname="example.com",
        create_time=1_700_000_000.5,
        account_defender_labels=("PROFILE_MATCH",),
    )
    answer = Assessment.FromString(rebuilt_assessment(decision, _event()))
    assert answer.name == "projects/1/assessments/a"
    tp = answer.token_properties
    assert tp.valid and tp.action == "login" and tp.hostname == "example.com"
    assert tp.create_time.seconds == 1_700_000_000 and tp.create_time.nanos == 500_000_000
    assert answer.risk_analysis.score == pytest.approx(0.7)
    assert list(answer.risk_analysis.reasons) == [
        types.RiskAnalysis.ClassificationReason.AUTOMATION.value,
        77,
    ]
    assert list(answer.account_defender_assessment.labels) == [
        types.AccountDefenderAssessment.AccountDefenderLabel.PROFILE_MATCH.value
    ]


def test_a_replayed_valid_token_with_a_wrong_action_stays_valid() -> None:
    """UNEXPECTED_ACTION is the policy's reason, not upstream's verdict on the token."""
    decision = _decision(replayed=True, invalid_reason="UNEXPECTED_ACTION", allowed=False)
    answer = Assessment.FromString(rebuilt_assessment(decision, _event()))
    assert answer.token_properties.valid
    assert answer.token_properties.invalid_reason == 0


@pytest.mark.parametrize(
    ("decided_by", "code"),
    [
        ("transient:unavailable", grpc.StatusCode.UNAVAILABLE),
        ("transient:breaker_open", grpc.StatusCode.UNAVAILABLE),
        ("replay_store:unavailable", grpc.StatusCode.UNAVAILABLE),
        ("config:permission_denied", grpc.StatusCode.UNAVAILABLE),
        ("transient:outcome_unknown", grpc.StatusCode.UNAVAILABLE),
        ("transient:deadline", grpc.StatusCode.DEADLINE_EXCEEDED),
        ("transient:deadline_exceeded", grpc.StatusCode.DEADLINE_EXCEEDED),
        ("quota:resource_exhausted", grpc.StatusCode.RESOURCE_EXHAUSTED),
    ],
)
def test_no_answer_is_what_google_would_have_said_with_retry_info(
    decided_by: str, code: grpc.StatusCode
) -> None:
    error = unanswered(_unchecked(decided_by, allowed=True))
    assert error.code is code
    kinds = {type(d) for d in error.details}
    assert error_details_pb2.RetryInfo in kinds
    info = next(d for d in error.details if isinstance(d, error_details_pb2.ErrorInfo))
    assert info.domain == google_face.SIDECAR_DOMAIN
    assert info.metadata["decided_by"] == decided_by
    assert info.metadata["allowed"] == "true"
    body = error.to_json()["error"]
    assert body["status"] == code.name
    assert body["code"] == {"UNAVAILABLE": 503, "DEADLINE_EXCEEDED": 504}.get(code.name, 429)
    assert any(d["@type"].endswith("google.rpc.RetryInfo") for d in body["details"])


@pytest.mark.parametrize("decided_by", ["keys_missing:default", "client_type_missing"])
def test_no_key_for_the_event_is_what_google_says_of_a_missing_key(decided_by: str) -> None:
    error = unanswered(_unchecked(decided_by, allowed=False))
    assert error.code is grpc.StatusCode.INVALID_ARGUMENT
    assert error.details[0].field_violations[0].field == "assessment.event.site_key"


def test_the_apps_account_id_comes_back_in_the_echo() -> None:
    upstream = Assessment(name="projects/1/assessments/a")
    upstream.event.CopyFrom(_event())
    upstream.event.user_info.account_id = "PROTECTED"
    upstream.event.user_info.user_ids.add(email="a@example.com")
    restored = google_face._restore_account_id(upstream.SerializeToString(), "alice")
    answer = Assessment.FromString(restored)
    assert answer.event.user_info.account_id == "alice"
    assert answer.event.user_info.user_ids[0].email == "a@example.com"
    assert answer.name == "projects/1/assessments/a"
    plain = upstream.SerializeToString()
    assert google_face._restore_account_id(plain, "") is plain


# ---- project, errors -----------------------------------------------------------------------


def test_the_project_is_owned_by_id_or_number() -> None:
    project = ProjectNames("my-project", "123")
    assert project.owns("my-project") and project.owns("123")
    assert project.owns("456") is False and project.owns("other") is False
    assert ProjectNames("123").owns("123") is True  # a numeric project is its number


def test_the_number_is_taken_on_trust_until_upstream_names_it() -> None:
    project = ProjectNames("my-project")
    assert project.owns("123") is None
    assert project.owns("other") is False
    assert project.learn("projects/123/assessments/x") == "123"
    assert project.owns("123") is True and project.owns("456") is False
    assert project.learn("projects/999/assessments/y") == "999"  # reported, not relearned
    assert project.number == "123"
    assert project.learn("not a name") is None


@pytest.mark.parametrize(
    ("field", "path"),
    [
        ("user_ip_address", "assessment.event.user_ip_address"),
        ("account_id", "assessment.event.user_info.account_id"),
        ("user_ids[2]", "assessment.event.user_info.user_ids[2]"),
        ("headers[0]", "assessment.event.headers[0]"),
        ("idempotency_key", "x-recaptcha-idempotency-key"),
    ],
)
def test_a_bad_field_is_named_by_its_path(field: str, path: str) -> None:
    error = google_face.invalid_argument(
        InvalidArgument(field, "bad"), "assessment.event.", google_face._EVENT_FIELD
    )
    assert error.code is grpc.StatusCode.INVALID_ARGUMENT
    violation = error.details[0].field_violations[0]
    assert violation.field == path and violation.description == "bad"
    assert error.to_json()["error"]["code"] == 400
