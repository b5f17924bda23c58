"""The Assess use case on its own (a scripted upstream, the memory store): every answer is
reported to the decision observer once, with the front door that asked."""

from __future__ import annotations

import asyncio
import dataclasses

from sidecar.core.model import (
    AnnotationRequest,
    AssessmentRequest,
    Decision,
    Delivery,
    TokenStatus,
    UpstreamAssessment,
)
from sidecar.core.ports import CallContext, FailureKind, UpstreamError, UpstreamFailure
from sidecar.core.verify import Verifier, token_digest
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


class Unreachable(Upstream):
    """Every call refused before it reached Google (the token was not consumed)."""

    async def create_assessment(
        self, request: AssessmentRequest, *, site_key: str, timeout: float
    ) -> UpstreamAssessment:
        self.calls += 1
        raise UpstreamError(
            UpstreamFailure(FailureKind.TRANSIENT, "UNAVAILABLE", "refused", reached=False)
        )


class SlowRelease(MemoryReplayStore):
    """A store whose release takes a while (a Redis round trip on a busy network)."""

    async def release(self, key: str, claim_id: str) -> bool:
        await asyncio.sleep(0.2)
        return await super().release(key, claim_id)


async def test_a_token_answered_unchecked_may_be_presented_again_at_once() -> None:
    """The closed answer releases the claim; a presentation arriving while that release is
    still on its way waits for it, and is checked again: never DUPLICATE for a token that
    never reached Google."""
    upstream, observer = Unreachable(VALID), Observer()
    policy = Policy()
    verify = Verifier(
        upstream=upstream,
        replay=SlowRelease(),
        policy=lambda: policy,
        settings=dataclasses.replace(VERIFY, default_site_key="unit-key"),
        observer=observer,
    )
    request = AssessmentRequest(token="03A" + "t2" * 20, expected_action="login")
    first = await verify.assess(request, 5.0, call=FRONT)
    again = await verify.assess(request, 5.0, call=FRONT)
    assert (first.allowed, first.token_status) == (False, TokenStatus.UNCHECKED)
    assert (again.allowed, again.token_status) == (False, TokenStatus.UNCHECKED)
    assert upstream.calls == 2


async def test_upstreams_whole_answer_reaches_the_caller_but_never_the_store() -> None:
    """A passthrough answer echoes the token and the user's data: the caller gets it, the
    replay store keeps the decision without it."""
    whole = b"\x0a\x05hello"
    upstream = Upstream(dataclasses.replace(VALID, passthrough=whole))
    store = MemoryReplayStore()
    policy = Policy()
    verify = Verifier(
        upstream=upstream,
        replay=store,
        policy=lambda: policy,
        settings=dataclasses.replace(VERIFY, default_site_key="unit-key"),
    )
    request = AssessmentRequest(
        token="t-whole-answer-0123456789", expected_action="login", passthrough=b"\x12\x00"
    )
    decision = await verify.assess(request, 5.0, call=FRONT)
    assert decision.passthrough == whole
    for _ in range(100):  # the claim is settled after the callers have their answer
        entry = await store.get(token_digest("t-whole-answer-0123456789"))
        if entry is not None and entry.decision is not None:
            break
        await asyncio.sleep(0.01)
    assert entry is not None and entry.decision is not None
    assert entry.decision.token_status is TokenStatus.VALID
    assert entry.decision.passthrough == b""


class SlowClaim(MemoryReplayStore):
    """A store whose claim answers after the caller's time is gone (a Redis round trip on a
    loaded machine); its settle is prompt."""

    async def claim(self, key: str, idempotency_digest: str, claim_id: str, ttl: float):  # type: ignore[no-untyped-def]
        await asyncio.sleep(0.5)
        return await super().claim(key, idempotency_digest, claim_id, ttl)


async def test_an_open_policy_without_a_claim_answer_allows_a_token_only_once() -> None:
    """No time left for the claim's answer, an open policy: the first presentation may be let
    through (its settle confirms it is the first), every later one is DUPLICATE, because the
    settle finds the first answer there."""
    upstream, observer = Upstream(VALID), Observer()
    policy = Policy.model_validate({"actions": {"login": {"on_upstream_failure": "open"}}})
    verify = Verifier(
        upstream=upstream,
        replay=SlowClaim(),
        policy=lambda: policy,
        settings=dataclasses.replace(
            VERIFY, default_site_key="unit-key", replay_timeout=5.0, deadline_margin=0.0
        ),
        observer=observer,
    )
    request = AssessmentRequest(token="03A" + "t3" * 20, expected_action="login")
    answers = [await verify.assess(request, 0.2, call=FRONT) for _ in range(3)]
    assert [a.allowed for a in answers] == [True, False, False]
    assert answers[0].token_status is TokenStatus.UNCHECKED
    assert {a.token_status for a in answers[1:]} == {TokenStatus.DUPLICATE}
    assert upstream.calls == 0
