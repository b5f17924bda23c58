"""Express assessments end to end: generated stubs, a real sidecar, and an emulator that knows
the project's typed keys. No token: the express key goes upstream with `express = true`, the
score decides by the action's threshold (the token rules skipped), `token_status` stays
TOKEN_STATUS_UNSPECIFIED and token_count counts it as `express`; every call is an upstream
call; `express` with a token is INVALID_ARGUMENT."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import grpc
import pytest
from recaptcha.sidecar.v1 import sidecar_pb2 as pb

from sidecar.emulator import Emulator, express_claims_header, mint_token
from tests.conftest import SidecarFactory, SidecarHandle
from tests.integration.test_prometheus_metrics import by, scrape
from tests.support.keyed import emulator_stats, keyed_emulator, keyed_sidecar


@pytest.fixture
async def keyed() -> AsyncIterator[Emulator]:
    """The emulator with the project's typed keys."""
    async with keyed_emulator() as emulator:
        yield emulator


# Rules that would refuse every tokenless answer if they applied to express assessments.
STRICT = {
    "require_action_match": True,
    "allowed_hostnames": ["shop.example"],
    "max_token_age": 30,
}
POLICY = {"default": STRICT, "actions": {"checkout": {"threshold": 0.5}}}


async def assess(handle: SidecarHandle, **fields: Any) -> pb.AssessResponse:
    return await handle.stub.Assess(pb.AssessRequest(**fields), timeout=5)


def scored(score: float) -> list[str]:
    """The headers that make the emulator score an express request `score`."""
    return [express_claims_header(mint_token(score=score)), "accept-language: en"]


@pytest.mark.parametrize("mode", ["enforce", "audit"])
async def test_the_score_decides_and_there_is_no_token_status(
    make_sidecar: SidecarFactory, keyed: Emulator, mode: str
) -> None:
    policy = {**POLICY, "default": {**STRICT, "mode": mode}}
    handle = await keyed_sidecar(make_sidecar, keyed, policy=policy, metrics_listen="127.0.0.1:0")
    fields = {"express": True, "expected_action": "checkout", "user_ip_address": "203.0.113.7"}
    good = await assess(handle, headers=scored(0.8), **fields)
    assert (good.allowed, good.verdict, good.token_status, good.decided_by) == (
        True,
        pb.VERDICT_PASSED,
        pb.TOKEN_STATUS_UNSPECIFIED,
        "passed",
    )
    assert good.score == pytest.approx(0.8, abs=1e-6)
    assert good.assessment_name.startswith("projects/")
    low = await assess(handle, headers=scored(0.2), **fields)
    assert (low.allowed, low.decided_by, low.token_status) == (
        mode == "audit",
        "score_below_threshold",
        pb.TOKEN_STATUS_UNSPECIFIED,
    )
    assert low.verdict == (
        pb.VERDICT_FAILED_AUDIT if mode == "audit" else pb.VERDICT_FAILED_ENFORCE
    )

    stats = await emulator_stats(keyed)
    assert stats["outcomes"] == {"EXPRESS": 2}
    events = [create["event"] for create in stats["recent_creates"]]
    assert [(e.get("express"), e.get("site_key"), e.get("token", "")) for e in events] == [
        (True, "express-key", ""),
        (True, "express-key", ""),
    ]
    assert events[0]["user_ip_address"] == "203.0.113.7"

    samples = await scrape(handle)
    assert by(samples, "token_count_total", "status", action="checkout") == {("express",): 2.0}
    verdicts = by(samples, "verdict_count_total", "verdict", action="checkout")
    assert verdicts[("PASSED",)] == 1.0
    scores = by(samples, "risk_scores_count", action="checkout")
    assert scores == {(): 2.0}


async def test_every_express_call_goes_upstream(
    make_sidecar: SidecarFactory, keyed: Emulator
) -> None:
    handle = await keyed_sidecar(make_sidecar, keyed)
    request = {"express": True, "expected_action": "checkout", "idempotency_key": "same"}
    for _ in range(3):
        answer = await assess(handle, **request)
        assert (answer.verdict, answer.replayed) == (pb.VERDICT_PASSED, False)
    assert (await emulator_stats(keyed))["create_calls"] == 3


async def test_express_with_a_token_is_invalid_argument(
    make_sidecar: SidecarFactory, keyed: Emulator
) -> None:
    handle = await keyed_sidecar(make_sidecar, keyed)
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await assess(handle, express=True, token=mint_token())
    assert caught.value.code() is grpc.StatusCode.INVALID_ARGUMENT
    assert "token" in (caught.value.details() or "")
    assert (await emulator_stats(keyed))["create_calls"] == 0


async def test_without_an_express_key_it_is_keys_missing(
    make_sidecar: SidecarFactory, keyed: Emulator
) -> None:
    handle = await keyed_sidecar(make_sidecar, keyed, site_keys={"web": "web-key"})
    answer = await assess(handle, express=True, expected_action="checkout")
    assert (answer.allowed, answer.verdict, answer.decided_by, answer.token_status) == (
        False,
        pb.VERDICT_KEYS_MISSING,
        "keys_missing:express",
        pb.TOKEN_STATUS_UNSPECIFIED,
    )
    assert (await emulator_stats(keyed))["create_calls"] == 0


async def test_a_key_that_is_not_an_express_key_is_a_config_error(
    make_sidecar: SidecarFactory, keyed: Emulator
) -> None:
    handle = await keyed_sidecar(make_sidecar, keyed)
    answer = await assess(handle, express=True, site_key="web-key")
    assert (answer.allowed, answer.decided_by) == (False, "config:invalid_argument")
