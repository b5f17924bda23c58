"""Retries against a flaky upstream, counted where they land: at a standalone emulator.

A sidecar process and an emulator process on loopback; faults are set through the emulator's
control plane and every upstream attempt is counted there, not trusted from the sidecar.
"""

from __future__ import annotations

import asyncio
import time
from collections import Counter

import pytest
from recaptcha.sidecar.v1 import sidecar_pb2 as pb

from sidecar.emulator import mint_token
from sidecar.upstream.budget import BudgetSettings
from tests.support.fleet import control, settings_env, sidecar_stubs, start_emulator, start_sidecar

pytestmark = pytest.mark.slow


async def test_retries_recover_from_transient_failures() -> None:
    emulator, emulator_address = start_emulator()
    sidecar, address = start_sidecar(emulator_address, env=settings_env(retry_max_attempts=5))
    try:
        async with control(emulator_address) as ctl, sidecar_stubs(address) as (stub, _):
            await ctl.set_faults("create", error_rate=0.3, seed=11)
            tokens = [mint_token(action="login") for _ in range(40)]
            answers = [
                await stub.Assess(pb.AssessRequest(token=t, expected_action="login"), timeout=5)
                for t in tokens
            ]
            stats = await ctl.stats(tokens=tokens)
    finally:
        sidecar.terminate()
        emulator.terminate()
    assert stats["injected_failures"]["create"] > 0, "the fault knob did not bite"
    assert [a.token_status for a in answers] == [pb.TOKEN_STATUS_VALID] * len(tokens)
    assert all(a.allowed for a in answers)
    retried = [t for t in tokens if stats["create_calls_by_token"][t] > 1]
    assert retried, "some tokens needed a second attempt"
    assert max(stats["create_calls_by_token"].values()) <= 5


async def test_budget_caps_attempts_under_a_brownout() -> None:
    """50% of attempts fail. Without a budget three attempts per call would average 1.75
    attempts per request; the budget (20% of requests + 1/s, 10 banked) holds it near 1.2."""
    budget = BudgetSettings(ratio=0.2, min_per_second=1.0)
    emulator, emulator_address = start_emulator()
    started = time.monotonic()
    sidecar, address = start_sidecar(
        emulator_address,
        env=settings_env(
            retry_max_attempts=3,
            retry_budget_ratio=budget.ratio,
            retry_budget_min_per_second=budget.min_per_second,
        ),
    )
    requests = 400
    try:
        async with control(emulator_address) as ctl, sidecar_stubs(address) as (stub, _):
            await ctl.set_faults("create", error_rate=0.5, seed=5)
            before = (await ctl.stats())["create_calls"]
            tokens = [mint_token() for _ in range(requests)]
            gate = asyncio.Semaphore(10)

            async def one(token: str) -> pb.AssessResponse:
                async with gate:
                    return await stub.Assess(pb.AssessRequest(token=token), timeout=5)

            answers = await asyncio.gather(*(one(t) for t in tokens))
            elapsed = time.monotonic() - started
            stats = await ctl.stats()
    finally:
        sidecar.terminate()
        emulator.terminate()
    attempts = stats["create_calls"] - before
    per_request = attempts / requests
    bound = 1 + budget.bound(requests, elapsed) / requests
    statuses = Counter(pb.TokenStatus.Name(a.token_status) for a in answers)
    print(
        f"brownout: {attempts} attempts for {requests} requests = {per_request:.3f} per request "
        f"(budget bound {bound:.3f}, unbudgeted 1.75; {elapsed:.1f}s); statuses {dict(statuses)}"
    )
    assert per_request <= bound
    assert per_request < 1.5
    assert set(statuses) <= {"TOKEN_STATUS_VALID", "TOKEN_STATUS_UNCHECKED"}
    assert statuses["TOKEN_STATUS_VALID"] > requests // 2  # the retries that ran did help
