"""The one contract every `Upstream` passes: the Google client on the emulator, the retry
wrapper around it, the account-id protector around it, and the per-attempt telemetry around
it. What the core relies on: answers as domain values, failures as `UpstreamError` carrying a
classified `UpstreamFailure` (kind, reached), never a gRPC type, never a hang."""

from __future__ import annotations

import os
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass

import pytest

from sidecar.accountid.protected import AccountIdProtectingUpstream
from sidecar.accountid.protection import HmacSha256Protector
from sidecar.core.model import AnnotationRequest, AssessmentRequest
from sidecar.core.ports import FailureKind, Upstream, UpstreamError
from sidecar.emulator import mint_token
from sidecar.telemetry.metrics import ActionLabels
from sidecar.telemetry.providers import Telemetry
from sidecar.telemetry.upstream import InstrumentedUpstream
from sidecar.upstream.client import GoogleUpstream
from sidecar.upstream.retry import ResilientUpstream
from tests.conftest import EmulatorHandle
from tests.support.defaults import BREAKER, BUDGET, RETRY, TELEMETRY
from tests.support.network import free_port

KEY = os.urandom(32)
PROTECTOR = HmacSha256Protector(KEY)


@dataclass
class Shape:
    """One implementation: how to build it over an endpoint, and what account id reaches
    Google for the one the app sent."""

    build: Callable[[str], Upstream]
    account_id: Callable[[str], str]


def google(endpoint: str) -> GoogleUpstream:
    return GoogleUpstream(project="test-project", endpoint=endpoint, plaintext=True)


def _instrumented(endpoint: str) -> Upstream:
    telemetry = Telemetry(TELEMETRY, ActionLabels(lambda: ()))
    return InstrumentedUpstream(
        google(endpoint), tracer=telemetry.tracer, instruments=telemetry.instruments
    )


SHAPES = {
    "google": Shape(google, lambda a: a),
    "retry": Shape(
        lambda e: ResilientUpstream(google(e), retry=RETRY, budget=BUDGET, breaker=BREAKER),
        lambda a: a,
    ),
    "protector": Shape(
        lambda e: AccountIdProtectingUpstream(google(e), PROTECTOR), PROTECTOR.protect
    ),
    "telemetry": Shape(_instrumented, lambda a: a),
}


@pytest.fixture(params=sorted(SHAPES))
def shape(request: pytest.FixtureRequest) -> Shape:
    return SHAPES[str(request.param)]


@pytest.fixture
async def upstream(shape: Shape, emulator: EmulatorHandle) -> AsyncIterator[Upstream]:
    built = shape.build(emulator.address)
    yield built
    await built.close()


def assessing(token: str, **fields: str) -> AssessmentRequest:
    return AssessmentRequest(token=token, expected_action="login", **fields)


async def test_a_valid_token_is_answered_as_domain_values(
    upstream: Upstream, emulator: EmulatorHandle, shape: Shape
) -> None:
    token = mint_token(score=0.7, action="login", hostname="shop.example.com")
    answer = await upstream.create_assessment(
        assessing(token, account_id="alice"), site_key="", timeout=5.0
    )
    assert answer.valid and answer.invalid_reason == ""
    assert (answer.action, answer.hostname) == ("login", "shop.example.com")
    assert answer.score == pytest.approx(0.7, abs=1e-6)
    assert answer.name.startswith("projects/") and "/assessments/" in answer.name
    assert answer.create_time is not None
    event = (await emulator.control.stats())["recent_creates"][-1]["event"]
    assert event["user_info"]["account_id"] == shape.account_id("alice")
    assert event["expected_action"] == "login"


async def test_invalid_and_repeated_tokens_are_answers_not_errors(upstream: Upstream) -> None:
    broken = await upstream.create_assessment(
        assessing(mint_token(invalid_reason="MALFORMED")), site_key="", timeout=5.0
    )
    assert (broken.valid, broken.invalid_reason) == (False, "MALFORMED")
    token = mint_token(action="login")
    await upstream.create_assessment(assessing(token), site_key="", timeout=5.0)
    again = await upstream.create_assessment(assessing(token), site_key="", timeout=5.0)
    assert (again.valid, again.invalid_reason) == (False, "DUPE")


async def test_annotations_arrive_and_unknown_ones_are_refused_as_requests(
    upstream: Upstream, emulator: EmulatorHandle
) -> None:
    answer = await upstream.create_assessment(
        assessing(mint_token(action="login")), site_key="", timeout=5.0
    )
    await upstream.annotate(
        AnnotationRequest(assessment_name=answer.name, annotation="LEGITIMATE"), timeout=5.0
    )
    assert answer.name in (await emulator.control.stats())["annotated_names"]
    with pytest.raises(UpstreamError) as caught:
        await upstream.annotate(
            AnnotationRequest(assessment_name="projects/1/assessments/unknown"), timeout=5.0
        )
    # An unknown assessment is the annotation's own fault (docs/failures.md), not the sidecar's.
    failure = caught.value.failure
    assert (failure.kind, failure.code, failure.reached) == (
        FailureKind.REQUEST,
        "NOT_FOUND",
        False,
    )


async def test_quota_is_its_own_kind_and_never_reached(
    upstream: Upstream, emulator: EmulatorHandle
) -> None:
    await emulator.control.set_faults("create", error_rate=1.0, error_code="RESOURCE_EXHAUSTED")
    with pytest.raises(UpstreamError) as caught:
        await upstream.create_assessment(assessing(mint_token()), site_key="", timeout=5.0)
    failure = caught.value.failure
    assert (failure.kind, failure.code, failure.reached) == (
        FailureKind.QUOTA,
        "RESOURCE_EXHAUSTED",
        False,
    )


async def test_a_slow_upstream_ends_the_call_within_its_timeout(
    upstream: Upstream, emulator: EmulatorHandle
) -> None:
    await emulator.control.set_faults("create", latency_ms=5_000)
    with pytest.raises(UpstreamError) as caught:
        await upstream.create_assessment(assessing(mint_token()), site_key="", timeout=0.3)
    failure = caught.value.failure
    assert failure.kind is FailureKind.TRANSIENT
    assert failure.code == "DEADLINE_EXCEEDED"
    assert failure.reached is not False  # it may have reached Google: the token may be spent


async def test_an_upstream_nobody_listens_on_was_never_reached(shape: Shape) -> None:
    upstream = shape.build(f"127.0.0.1:{free_port()}")
    try:
        with pytest.raises(UpstreamError) as caught:
            await upstream.create_assessment(assessing(mint_token()), site_key="", timeout=2.0)
    finally:
        await upstream.close()
    failure = caught.value.failure
    assert (failure.kind, failure.reached) == (FailureKind.TRANSIENT, False)
