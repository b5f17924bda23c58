"""The Annotate use case: validated once (on what the app sent), the account id protected
before the sink sees it, every accepted annotation reported to the observer once."""

from __future__ import annotations

import base64
import os

import pytest

from sidecar.accountid.protection import DeterministicEncryptionProtector
from sidecar.core.annotate import Annotator, DirectDelivery
from sidecar.core.errors import InvalidArgument, Overloaded, UpstreamRejected
from sidecar.core.limits import AdmissionLimiter
from sidecar.core.model import AnnotationRequest, AssessmentRequest, Decision, Delivery
from sidecar.core.ports import (
    CallContext,
    FailureKind,
    UpstreamError,
    UpstreamFailure,
)

CALL = CallContext("test.FrontDoor", "Annotate")
NAME = "projects/1/assessments/abc"


class Sink:
    """Records what reaches it."""

    def __init__(self) -> None:
        self.received: list[AnnotationRequest] = []

    async def deliver(self, request: AnnotationRequest, timeout: float | None) -> Delivery:
        self.received.append(request)
        return Delivery.QUEUED


class Observer:
    def __init__(self) -> None:
        self.seen: list[tuple[CallContext, Delivery]] = []

    def assessed(self, call: CallContext, request: AssessmentRequest, decision: Decision) -> None:
        raise AssertionError("Annotate reports annotations only")

    def annotated(self, call: CallContext, request: AnnotationRequest, delivery: Delivery) -> None:
        self.seen.append((call, delivery))


async def test_an_invalid_annotation_never_reaches_the_sink() -> None:
    sink, observer = Sink(), Observer()
    annotator = Annotator(sink, observer=observer)
    for bad in (
        AnnotationRequest(assessment_name=""),
        AnnotationRequest(assessment_name="assessments/abc"),
        AnnotationRequest(assessment_name=NAME, account_id="a" * 8_193),
    ):
        with pytest.raises(InvalidArgument):
            await annotator.annotate(bad, call=CALL)
    assert sink.received == [] and observer.seen == []


async def test_the_id_is_validated_as_sent_and_protected_before_the_sink() -> None:
    key = os.urandom(64)
    protector = DeterministicEncryptionProtector(key)
    sink, observer = Sink(), Observer()
    annotator = Annotator(sink, protector=protector, observer=observer)
    account = "é" * 4_000  # 8,000 bytes: legal; its ciphertext is far longer
    delivery = await annotator.annotate(
        AnnotationRequest(assessment_name=NAME, account_id=account), 1.0, call=CALL
    )
    assert delivery is Delivery.QUEUED
    (stored,) = sink.received
    assert stored.account_id != account and len(stored.account_id) > 8_192
    assert DeterministicEncryptionProtector(key).reveal(stored.account_id) == account
    assert observer.seen == [(CALL, Delivery.QUEUED)]
    assert base64.urlsafe_b64decode(stored.account_id + "==")  # still base64url


async def test_no_account_no_protection_and_plain_mode_sends_as_given() -> None:
    sink = Sink()
    protector = DeterministicEncryptionProtector(os.urandom(32))
    await Annotator(sink, protector=protector).annotate(
        AnnotationRequest(assessment_name=NAME), call=CALL
    )
    await Annotator(sink).annotate(
        AnnotationRequest(assessment_name=NAME, account_id="bob"), call=CALL
    )
    assert [r.account_id for r in sink.received] == ["", "bob"]


async def test_the_limiter_sheds_past_its_bounds() -> None:
    limiter = AdmissionLimiter(1, 0)
    held = await limiter.acquire()
    annotator = Annotator(Sink(), limiter=limiter)
    with pytest.raises(Overloaded):
        await annotator.annotate(AnnotationRequest(assessment_name=NAME), 1.0, call=CALL)
    held.release()
    assert await annotator.annotate(AnnotationRequest(assessment_name=NAME), call=CALL) is (
        Delivery.QUEUED
    )


class RefusingUpstream:
    def __init__(self, error: UpstreamError | None) -> None:
        self.error = error
        self.timeouts: list[float] = []

    async def create_assessment(self, *args: object, **kwargs: object) -> object:
        raise AssertionError("not used")

    async def annotate(self, request: AnnotationRequest, *, timeout: float) -> None:
        self.timeouts.append(timeout)
        if self.error is not None:
            raise self.error

    async def close(self) -> None:
        return None


async def test_direct_delivery_answers_delivered_or_upstream_s_refusal() -> None:
    upstream = RefusingUpstream(None)
    sink = DirectDelivery(upstream, upstream_timeout=5.0)  # type: ignore[arg-type]
    assert await sink.deliver(AnnotationRequest(assessment_name=NAME), 1.5) is Delivery.DELIVERED
    assert await sink.deliver(AnnotationRequest(assessment_name=NAME), None) is Delivery.DELIVERED
    assert upstream.timeouts == [1.5, 5.0]  # never longer than the caller has, nor than 5 s
    refusal = UpstreamError(UpstreamFailure(FailureKind.CONFIG, "NOT_FOUND", "no such", False))
    with pytest.raises(UpstreamRejected) as caught:
        await DirectDelivery(RefusingUpstream(refusal), 5.0).deliver(  # type: ignore[arg-type]
            AnnotationRequest(assessment_name=NAME), None
        )
    assert caught.value.code == "NOT_FOUND"
