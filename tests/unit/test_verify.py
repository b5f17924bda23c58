"""The Assess use case on its own (a scripted upstream, the memory store): every answer is
reported to the decision observer once, with the front door that asked."""

from __future__ import annotations

import dataclasses

from sidecar.core.model import (
    AnnotationRequest,
    AssessmentRequest,
    Decision,
    Delivery,
    TokenStatus,
    UpstreamAssessment,
)
from sidecar.core.ports import CallContext
from sidecar.core.verify import Verifier
from sidecar.policy.schema import Policy
from sidecar.replay.memory import MemoryReplayStore
from tests.support.defaults import VERIFY

FRONT = CallContext("test.FrontDoor", "Check")
OTHER = CallContext("other.FrontDoor", "Verify")
VALID = UpstreamAssessment(
    name="projects/1/assessments/aa", valid=True, score=0.9, action="login", hostname="x"
)


class Upstream:
    def __init__(self, answer: UpstreamAssessment) -> None:
        self.answer = answer
        self.calls = 0

    async def create_assessment(
        self, request: AssessmentRequest, *, site_key: str, timeout: float
    ) -> UpstreamAssessment:
        self.calls += 1
        return self.answer

    async def annotate(self, request: AnnotationRequest, *, timeout: float) -> None:
        raise AssertionError("not used")

    async def close(self) -> None:
        return None


class Observer:
    def __init__(self) -> None:
        self.seen: list[tuple[CallContext, str, TokenStatus]] = []

    def assessed(self, call: CallContext, request: AssessmentRequest, decision: Decision) -> None:
        self.seen.append((call, request.expected_action, decision.token_status))

    def annotated(self, call: CallContext, request: AnnotationRequest, delivery: Delivery) -> None:
        raise AssertionError("Assess reports assessments only")


def verifier(upstream: Upstream, observer: Observer) -> Verifier:
    policy = Policy()
    return Verifier(
        upstream=upstream,
        replay=MemoryReplayStore(),
        policy=lambda: policy,
        settings=dataclasses.replace(VERIFY, default_site_key="unit-key"),
        observer=observer,
    )


async def test_each_answer_is_observed_once_with_its_front_door() -> None:
    upstream, observer = Upstream(VALID), Observer()
    assess = verifier(upstream, observer).assess
    request = AssessmentRequest(token="03A" + "t1" * 20, expected_action="login")
    first = await assess(request, 5.0, call=FRONT)
    repeat = await assess(request, 5.0, call=OTHER)
    missing = await assess(dataclasses.replace(request, token=""), call=FRONT)
    assert (first.token_status, repeat.token_status, missing.token_status) == (
        TokenStatus.VALID,
        TokenStatus.DUPLICATE,
        TokenStatus.MISSING,
    )
    assert observer.seen == [
        (FRONT, "login", TokenStatus.VALID),
        (OTHER, "login", TokenStatus.DUPLICATE),
        (FRONT, "login", TokenStatus.MISSING),
    ]
    assert upstream.calls == 1
