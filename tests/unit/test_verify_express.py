"""Express assessments in the Assess use case: no token, so no claim and no single flight
(each call is one upstream call with the express key), no idempotent replay, no token status
whatever the answer; `express` with a token is INVALID_ARGUMENT."""

from __future__ import annotations

import asyncio
import dataclasses
from typing import Any

import pytest

from sidecar.core.errors import InvalidArgument
from sidecar.core.model import (
    AnnotationRequest,
    AssessmentRequest,
    Decision,
    Delivery,
    TokenStatus,
    UpstreamAssessment,
    Verdict,
)
from sidecar.core.ports import CallContext, FailureKind, UpstreamError, UpstreamFailure
from sidecar.core.verify import Verifier
from sidecar.policy.schema import Policy
from sidecar.replay.memory import MemoryReplayStore
from tests.support.defaults import VERIFY

CALL = CallContext("test.FrontDoor", "Assess")
# Upstream need not echo `express` (the verifier marks the answer itself).
SCORED = UpstreamAssessment(name="projects/1/assessments/e", valid=False, score=0.9)
REQUEST = AssessmentRequest(token="", express=True, expected_action="checkout", idempotency_key="k")


class Upstream:
    def __init__(self, answer: UpstreamAssessment | UpstreamError = SCORED) -> None:
        self.answer = answer
        self.calls: list[tuple[AssessmentRequest, str, float]] = []

    async def create_assessment(
        self, request: AssessmentRequest, *, site_key: str, timeout: float
    ) -> UpstreamAssessment:
        self.calls.append((request, site_key, timeout))
        await asyncio.sleep(0)
        if isinstance(self.answer, UpstreamError):
            raise self.answer
        return self.answer

    async def annotate(self, request: AnnotationRequest, *, timeout: float) -> None:
        raise AssertionError("not used")

    async def close(self) -> None:
        return None


class Store(MemoryReplayStore):
    """The memory store, counting claims: an express call must make none."""

    def __init__(self) -> None:
        super().__init__()
        self.claims = 0

    async def claim(self, *args: Any, **kwargs: Any) -> Any:
        self.claims += 1
        return await super().claim(*args, **kwargs)


class Observer:
    def __init__(self) -> None:
        self.statuses: list[TokenStatus] = []

    def assessed(self, call: CallContext, request: AssessmentRequest, decision: Decision) -> None:
        self.statuses.append(decision.token_status)

    def annotated(self, call: CallContext, request: AnnotationRequest, delivery: Delivery) -> None:
        raise AssertionError("not used")


def verifier(
    upstream: Upstream, store: Store, observer: Observer | None = None, **settings: Any
) -> Verifier:
    policy = Policy.model_validate({"default": {"threshold": 0.5, "max_token_age": 10}})
    settings.setdefault("site_keys", {"web": "k-web", "express": "k-express"})
    return Verifier(
        upstream=upstream,
        replay=store,
        policy=lambda: policy,
        settings=dataclasses.replace(VERIFY, default_site_key="k-default", **settings),
        observer=observer,
    )


async def test_each_express_call_is_one_upstream_call_with_the_express_key() -> None:
    upstream, store, observer = Upstream(), Store(), Observer()
    assess = verifier(upstream, store, observer).assess
    answers = await asyncio.gather(*(assess(REQUEST, 5.0, call=CALL) for _ in range(3)))
    again = await assess(REQUEST, 5.0, call=CALL)
    for answer in (*answers, again):
        assert (answer.allowed, answer.verdict, answer.token_status, answer.replayed) == (
            True,
            Verdict.PASSED,
            TokenStatus.EXPRESS,
            False,  # no token, no replay: the idempotency key means nothing here
        )
    assert [site_key for _, site_key, _ in upstream.calls] == ["k-express"] * 4
    assert all(request.express and not request.token for request, _, _ in upstream.calls)
    assert store.claims == 0
    assert observer.statuses == [TokenStatus.EXPRESS] * 4


async def test_the_request_may_name_its_express_key() -> None:
    upstream = Upstream()
    own = dataclasses.replace(REQUEST, site_key="k-own-express")
    await verifier(upstream, Store()).assess(own, 5.0, call=CALL)
    assert upstream.calls[0][1] == "k-own-express"


async def test_without_an_express_key_it_is_keys_missing_and_nothing_goes_upstream() -> None:
    upstream = Upstream()
    answer = await verifier(upstream, Store(), site_keys={"web": "k-web"}).assess(
        REQUEST, 5.0, call=CALL
    )
    assert (answer.allowed, answer.verdict, answer.token_status, answer.decided_by) == (
        False,
        Verdict.KEYS_MISSING,
        TokenStatus.EXPRESS,
        "keys_missing:express",
    )
    assert upstream.calls == []


@pytest.mark.parametrize(
    ("policy_key", "kind", "code"),
    [
        ("on_upstream_failure", FailureKind.TRANSIENT, "UNAVAILABLE"),
        ("on_config_error", FailureKind.CONFIG, "INVALID_ARGUMENT"),
    ],
)
async def test_an_upstream_failure_follows_the_failure_policy(
    policy_key: str, kind: FailureKind, code: str
) -> None:
    failing = Upstream(UpstreamError(UpstreamFailure(kind, code, reached=False)))
    answer = await verifier(failing, Store()).assess(REQUEST, 5.0, call=CALL)
    assert (answer.allowed, answer.token_status, answer.decided_by) == (
        False,
        TokenStatus.EXPRESS,
        f"{kind.value}:{code.lower()}",
    )


async def test_the_upstream_call_is_bounded_by_the_callers_deadline() -> None:
    upstream = Upstream()
    await verifier(upstream, Store()).assess(REQUEST, 0.5, call=CALL)
    assert 0 < upstream.calls[0][2] <= 0.5


async def test_express_with_a_token_is_invalid_argument() -> None:
    upstream = Upstream()
    with pytest.raises(InvalidArgument, match="token"):
        await verifier(upstream, Store()).assess(
            dataclasses.replace(REQUEST, token="emu1.abcdefghijklmnopqrstuvwxyz"), call=CALL
        )
    assert upstream.calls == []
