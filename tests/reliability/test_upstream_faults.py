"""Faults that look alike but mean different things: a lost answer (the token was consumed,
so a retry's DUPE is our own doing) and exhausted quota (which must not open protection)."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import pytest
from grpc_health.v1 import health_pb2
from recaptcha.sidecar.v1 import sidecar_pb2 as pb

from sidecar.emulator import mint_token
from sidecar.server.health import UPSTREAM_HEALTH
from tests.support.fleet import (
    control,
    health_status,
    settings_env,
    sidecar_stubs,
    start_emulator,
    start_sidecar,
)
from tests.support.polling import eventually

pytestmark = pytest.mark.slow


async def test_fail_after_consume_dupe_on_retry_is_unchecked_not_duplicate() -> None:
    emulator, emulator_address = start_emulator()
    sidecar, address = start_sidecar(
        emulator_address, env=settings_env(retry_budget_min_per_second=100)
    )
    try:
        async with control(emulator_address) as ctl, sidecar_stubs(address) as (stub, _):
            await ctl.set_faults("create", fail_after_consume_rate=0.5, seed=2)
            tokens = [mint_token() for _ in range(40)]
            answers = [await stub.Assess(pb.AssessRequest(token=t), timeout=5) for t in tokens]
            stats = await ctl.stats(tokens=tokens)
            again = await stub.Assess(pb.AssessRequest(token=tokens[0]), timeout=5)
    finally:
        sidecar.terminate()
        emulator.terminate()
    statuses = Counter(pb.TokenStatus.Name(a.token_status) for a in answers)
    rules = Counter(a.decided_by for a in answers)
    print(f"fail-after-consume: statuses {dict(statuses)}, rules {dict(rules)}")
    assert stats["outcomes"].get("DUPE", 0) > 0, "retries met their own consumed tokens"
    assert "TOKEN_STATUS_DUPLICATE" not in statuses
    assert rules["transient:outcome_unknown"] > 0
    for token, answer in zip(tokens, answers, strict=True):
        if answer.token_status != pb.TOKEN_STATUS_VALID:
            assert answer.token_status == pb.TOKEN_STATUS_UNCHECKED
            assert (answer.allowed, answer.verdict) == (False, pb.VERDICT_FAILED_ENFORCE)
            assert answer.decided_by in {"transient:outcome_unknown", "transient:unavailable"}
        if answer.decided_by == "transient:outcome_unknown":
            assert stats["create_calls_by_token"][token] >= 2
    assert again.token_status == pb.TOKEN_STATUS_DUPLICATE  # the app's own repeat is a replay


async def test_quota_stays_closed_is_not_retried_and_shows_in_health_and_logs(
    tmp_path: Path,
) -> None:
    config = tmp_path / "sidecar.yaml"
    config.write_text("policy:\n  default: {on_upstream_failure: open}\n")
    emulator, emulator_address = start_emulator()
    sidecar, address = start_sidecar(
        emulator_address, "--config", str(config), env=settings_env(breaker_min_calls=3)
    )
    try:
        async with control(emulator_address) as ctl, sidecar_stubs(address) as (stub, health):
            await ctl.set_faults("create", quota=True)
            tokens = [mint_token() for _ in range(10)]
            answers = [await stub.Assess(pb.AssessRequest(token=t), timeout=5) for t in tokens]
            stats = await ctl.stats(tokens=tokens)

            async def unhealthy() -> bool:
                status = await health_status(health, UPSTREAM_HEALTH)
                return status == health_pb2.HealthCheckResponse.NOT_SERVING

            await eventually(unhealthy, timeout=10)
            await ctl.clear_faults()
            retry = await stub.Assess(pb.AssessRequest(token=tokens[0]), timeout=5)
    finally:
        sidecar.terminate()
        emulator.terminate()
    for answer in answers:
        assert answer.token_status == pb.TOKEN_STATUS_UNCHECKED
        assert (answer.allowed, answer.verdict) == (False, pb.VERDICT_FAILED_ENFORCE)
        assert answer.decided_by == "quota:resource_exhausted"
    assert set(stats["create_calls_by_token"].values()) == {1}, "quota is not retried"
    assert stats["create_calls"] == len(tokens), "quota does not open the breaker"
    # Nothing reached Google's assessment: the claim was released and the app may retry.
    assert retry.token_status == pb.TOKEN_STATUS_VALID
    assert "upstream refused the call: RESOURCE_EXHAUSTED" in sidecar.output()
