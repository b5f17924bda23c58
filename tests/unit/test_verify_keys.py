"""Assess when no key can be chosen: no upstream call, the claim taken first, then released
(refused: the token never reached Google, so the user may present it again) or settled
(allowed: the one rule, so every repeat is DUPLICATE). And the chosen key is the one sent."""

from __future__ import annotations

import dataclasses
from typing import Any

from sidecar.core.model import (
    AnnotationRequest,
    AssessmentRequest,
    ClientType,
    TokenStatus,
    UpstreamAssessment,
    Verdict,
)
from sidecar.core.ports import CallContext
from sidecar.core.verify import Verifier
from sidecar.policy.schema import Policy
from sidecar.replay.memory import MemoryReplayStore
from tests.support.defaults import VERIFY

CALL = CallContext("test.FrontDoor", "Assess")
# Tokens the shape filter lets through (20 characters or more).
PAD = "x" * 24
T1, T2 = "t1-" + PAD, "t2-" + PAD
VALID = UpstreamAssessment(name="projects/1/assessments/a", valid=True, score=0.9, action="login")
KEYS = {"web": "k-web", "android": "k-android", "express": "k-express"}


class Upstream:
    def __init__(self) -> None:
        self.keys: list[str] = []

    async def create_assessment(
        self, request: AssessmentRequest, *, site_key: str, timeout: float
    ) -> UpstreamAssessment:
        self.keys.append(site_key)
        return VALID

    async def annotate(self, request: AnnotationRequest, *, timeout: float) -> None:
        raise AssertionError("not used")

    async def close(self) -> None:
        return None


def verifier(upstream: Upstream, policy: dict[str, Any] | None = None, **keys: Any) -> Verifier:
    rules = Policy.model_validate(policy or {})
    return Verifier(
        upstream=upstream,
        replay=MemoryReplayStore(),
        policy=lambda: rules,
        settings=dataclasses.replace(VERIFY, **keys),
    )


async def test_the_chosen_key_goes_upstream() -> None:
    upstream = Upstream()
    assess = verifier(upstream, default_site_key="k-default", site_keys=KEYS).assess
    for client_type in (ClientType.WEB, ClientType.ANDROID):
        request = AssessmentRequest(token=f"t-{client_type}-" + PAD, client_type=client_type)
        assert (await assess(request, call=CALL)).verdict is Verdict.PASSED
    own = AssessmentRequest(token="t-own-" + PAD, site_key="k-own", client_type=ClientType.IOS)
    assert (await assess(own, call=CALL)).verdict is Verdict.PASSED
    assert upstream.keys == ["k-web", "k-android", "k-own"]


async def test_a_refused_missing_key_never_goes_upstream_and_releases_the_token() -> None:
    upstream = Upstream()
    assess = verifier(upstream, site_keys=KEYS).assess
    request = AssessmentRequest(token=T1, expected_action="login")
    first = await assess(request, call=CALL)
    assert (first.allowed, first.verdict, first.token_status, first.decided_by) == (
        False,
        Verdict.CLIENT_TYPE_MISSING,
        TokenStatus.UNCHECKED,
        "client_type_missing",
    )
    ios = await assess(
        AssessmentRequest(token=T1, client_type=ClientType.IOS, expected_action="login"),
        call=CALL,
    )
    assert (ios.verdict, ios.decided_by) == (Verdict.KEYS_MISSING, "keys_missing:ios")
    assert upstream.keys == []
    # Released each time: the real user's retry with its client type is assessed.
    web = AssessmentRequest(token=T1, client_type=ClientType.WEB, expected_action="login")
    assert (await assess(web, call=CALL)).token_status is TokenStatus.VALID
    assert (await assess(web, call=CALL)).token_status is TokenStatus.DUPLICATE
    assert upstream.keys == ["k-web"]


async def test_an_allowed_missing_key_settles_the_token() -> None:
    upstream = Upstream()
    open_policy = {"default": {"on_keys_missing": "open"}}
    assess = verifier(upstream, open_policy).assess  # no key at all
    request = AssessmentRequest(token=T2)
    first = await assess(request, call=CALL)
    assert (first.allowed, first.verdict, first.token_status) == (
        True,
        Verdict.KEYS_MISSING,
        TokenStatus.UNCHECKED,
    )
    repeat = await assess(request, call=CALL)
    assert (repeat.allowed, repeat.token_status) == (False, TokenStatus.DUPLICATE)
    assert upstream.keys == []
