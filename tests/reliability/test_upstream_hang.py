"""An upstream that hangs or is down: every Assess still answers inside its deadline with the
action's failure policy; the breaker opens, answers at once, probes, and closes on healing."""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from pathlib import Path

import grpc
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

POLICY = """
policy:
  default: {on_upstream_failure: closed}
  actions:
    checkout: {on_upstream_failure: open}
"""
CLIENT_DEADLINE = 1.0


async def test_hang_every_assess_is_answered_within_its_deadline(tmp_path: Path) -> None:
    config = tmp_path / "sidecar.yaml"
    config.write_text(POLICY)
    emulator, emulator_address = start_emulator()
    sidecar, address = start_sidecar(
        emulator_address,
        "--config",
        str(config),
        env=settings_env(deadline_margin=0.1, breaker_min_calls=6, breaker_cooldown=1.0),
    )
    answers: list[tuple[str, float, pb.AssessResponse]] = []
    errors: list[grpc.StatusCode] = []
    try:
        async with control(emulator_address) as ctl, sidecar_stubs(address) as (stub, health):
            await ctl.set_faults("create", hang=True)

            async def one(action: str) -> None:
                started = time.monotonic()
                try:
                    answer = await stub.Assess(
                        pb.AssessRequest(token=mint_token(action=action), expected_action=action),
                        timeout=CLIENT_DEADLINE,
                    )
                except grpc.aio.AioRpcError as error:
                    errors.append(error.code())
                    return
                answers.append((action, time.monotonic() - started, answer))

            for _ in range(8):  # waves of concurrent calls, as an app under load makes them;
                # spread so that cooldowns pass and the breaker probes the hanging upstream
                await asyncio.gather(*(one(a) for a in ("login", "checkout") * 3))
                await asyncio.sleep(0.3)
            hanging = (await ctl.stats())["create_calls"]
            await eventually(  # the health entry follows within a poll
                lambda: _is(health, health_pb2.HealthCheckResponse.NOT_SERVING), timeout=10
            )
            overall_health = await health_status(health, "")
    finally:
        sidecar.terminate()
        emulator.terminate()

    assert errors == [], "every call is answered before the client's own deadline fires"
    assert len(answers) == 48
    for action, _, answer in answers:
        assert answer.token_status == pb.TOKEN_STATUS_UNCHECKED
        if action == "checkout":  # fails open
            assert (answer.allowed, answer.verdict) == (True, pb.VERDICT_FAILED_AUDIT)
        else:  # fails closed
            assert (answer.allowed, answer.verdict) == (False, pb.VERDICT_FAILED_ENFORCE)
    rules = Counter(answer.decided_by for _, _, answer in answers)
    assert set(rules) <= {"transient:deadline_exceeded", "transient:breaker_open"}
    assert rules["transient:breaker_open"] > 0, "the breaker opened and answered at once"
    assert hanging < len(answers), "while open, calls did not reach upstream"
    times = sorted(t for _, t, _ in answers)
    deadline_bound = [t for _, t, a in answers if a.decided_by == "transient:deadline_exceeded"]
    print(
        f"hang: {len(answers)} answers, {dict(rules)}; answer time min {times[0]:.3f}s "
        f"median {times[len(times) // 2]:.3f}s max {times[-1]:.3f}s "
        f"(deadline-bound max {max(deadline_bound):.3f}s, client deadline {CLIENT_DEADLINE}s)"
    )
    assert overall_health == health_pb2.HealthCheckResponse.SERVING


async def test_breaker_opens_then_closes_when_upstream_heals() -> None:
    emulator, emulator_address = start_emulator()
    sidecar, address = start_sidecar(
        emulator_address,
        env=settings_env(breaker_min_calls=5, breaker_cooldown=0.5, retry_max_attempts=1),
    )
    try:
        async with control(emulator_address) as ctl, sidecar_stubs(address) as (stub, health):

            async def assess() -> pb.AssessResponse:
                return await stub.Assess(pb.AssessRequest(token=mint_token()), timeout=5)

            await ctl.set_faults("create", error_rate=1.0)
            for _ in range(5):
                answer = await assess()
                assert answer.decided_by == "transient:unavailable"
            answer = await assess()
            assert answer.decided_by == "transient:breaker_open"
            calls_while_open = (await ctl.stats())["create_calls"]
            assert calls_while_open == 5
            await eventually(
                lambda: _is(health, health_pb2.HealthCheckResponse.NOT_SERVING), timeout=10
            )

            await ctl.clear_faults()
            healed: list[pb.AssessResponse] = []

            async def valid_again() -> bool:
                healed.append(await assess())
                return healed[-1].token_status == pb.TOKEN_STATUS_VALID

            await eventually(valid_again, timeout=10, interval=0.1)
            after = [await assess() for _ in range(10)]
            assert all(a.token_status == pb.TOKEN_STATUS_VALID for a in after)
            await eventually(
                lambda: _is(health, health_pb2.HealthCheckResponse.SERVING), timeout=10
            )
    finally:
        sidecar.terminate()
        emulator.terminate()
    unchecked = [a for a in healed if a.token_status != pb.TOKEN_STATUS_VALID]
    assert all(a.decided_by == "transient:breaker_open" for a in unchecked)


async def _is(health: object, status: int) -> bool:
    return await health_status(health, UPSTREAM_HEALTH) == status  # type: ignore[arg-type]
