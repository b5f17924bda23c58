"""Annotate's phone_authentication_event: validated at the edge of the core, carried through
the outbox unchanged, and built into Google's AnnotateAssessmentRequest."""

from __future__ import annotations

import pytest

from sidecar.core.errors import InvalidArgument
from sidecar.core.model import AnnotationRequest, PhoneAuthenticationEvent
from sidecar.core.validation import validate_annotation
from sidecar.outbox import codec
from sidecar.upstream.client import build_annotate_request

NAME = "projects/1/assessments/abc"


def request(**event: object) -> AnnotationRequest:
    return AnnotationRequest(
        assessment_name=NAME,
        reasons=("INITIATED_TWO_FACTOR",),
        phone_authentication_event=PhoneAuthenticationEvent(**event),  # type: ignore[arg-type]
    )


@pytest.mark.parametrize(
    ("event", "field"),
    [
        ({"phone_number": ""}, "phone_authentication_event.phone_number"),
        ({"phone_number": "+1" * 5000}, "phone_authentication_event.phone_number"),
        ({"phone_number": "+15555550100", "event_time": -1.0}, "event_time"),
        ({"phone_number": "+15555550100", "event_time": 253_402_300_800.0}, "event_time"),
        ({"phone_number": "+15555550100", "event_time": float("nan")}, "event_time"),
    ],
)
def test_bad_events_are_refused_naming_the_field(event: dict[str, object], field: str) -> None:
    with pytest.raises(InvalidArgument, match=field):
        validate_annotation(request(**event))


def test_a_good_event_survives_the_outbox_and_reaches_google_as_sent() -> None:
    sent = request(phone_number="+15555550100", event_time=1_700_000_000.5)
    validate_annotation(sent)
    stored = codec.decode(codec.encode(sent))
    assert stored == sent
    message = build_annotate_request(stored)
    event = message.phone_authentication_event  # type: ignore[attr-defined]
    assert event.phone_number == "+15555550100"
    assert event.event_time.ToNanoseconds() == 1_700_000_000_500_000_000
    without_time = build_annotate_request(request(phone_number="+15555550100"))
    assert not without_time.phone_authentication_event.HasField("event_time")  # type: ignore[attr-defined]


def test_no_event_is_no_event() -> None:
    plain = AnnotationRequest(assessment_name=NAME)
    assert codec.decode(codec.encode(plain)).phone_authentication_event is None
    assert not build_annotate_request(plain).HasField("phone_authentication_event")  # type: ignore[attr-defined]
