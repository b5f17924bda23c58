"""Overload: offered load far past capacity gets fast RESOURCE_EXHAUSTED for what does not
fit, real answers for what does; the process stays up and its memory stays bounded (resident
set size of the child, read from /proc)."""

from __future__ import annotations

import asyncio
import time
from collections import Counter

import grpc
import pytest
from recaptcha.sidecar.v1 import sidecar_pb2 as pb
from recaptcha.sidecar.v1 import sidecar_pb2_grpc

from sidecar.emulator import mint_token
from tests.support.fleet import (
    control,
    rss_kib,
    settings_env,
    sidecar_stubs,
    start_emulator,
    start_sidecar,
)

pytestmark = pytest.mark.slow

MAX_IN_FLIGHT = 16
MAX_QUEUED = 16
LATENCY_MS = 200  # capacity: 16 calls per 0.2 s = 80 calls/s
WAVE = 1_500  # calls per wave
OFFERED_RATE = 750.0  # calls per second: about ten times capacity
BURST = 3_000  # then this many at once
WAVES = 3
RSS_GROWTH_LIMIT_KIB = 96 * 1024


async def test_overload_sheds_fast_and_memory_stays_bounded() -> None:
    emulator, emulator_address = start_emulator()
    sidecar, address = start_sidecar(
        emulator_address,
        env=settings_env(max_in_flight=MAX_IN_FLIGHT, max_queued=MAX_QUEUED),
    )
    pid = sidecar.popen.pid
    outcomes: Counter[str] = Counter()
    shed_times: list[float] = []
    rss_after_wave: list[int] = []
    peak = 0
    try:
        async with control(emulator_address) as ctl, sidecar_stubs(address) as (stub, _):
            for _ in range(20):  # warm up before the baseline
                await stub.Assess(pb.AssessRequest(token=mint_token()), timeout=5)
            baseline = rss_kib(pid)
            await ctl.set_faults("create", latency_ms=LATENCY_MS)
            channels = [grpc.aio.insecure_channel(address) for _ in range(4)]
            stubs = [sidecar_pb2_grpc.VerificationServiceStub(c) for c in channels]
            sampling = True

            async def sample() -> None:
                nonlocal peak
                while sampling:
                    peak = max(peak, rss_kib(pid))
                    await asyncio.sleep(0.05)

            sampler = asyncio.create_task(sample())

            async def one(i: int) -> None:
                started = time.monotonic()
                try:
                    answer = await stubs[i % len(stubs)].Assess(
                        pb.AssessRequest(token=mint_token()), timeout=30
                    )
                except grpc.aio.AioRpcError as error:
                    outcomes[error.code().name] += 1
                    if error.code() is grpc.StatusCode.RESOURCE_EXHAUSTED:
                        shed_times.append(time.monotonic() - started)
                    return
                outcomes[pb.TokenStatus.Name(answer.token_status)] += 1

            for _ in range(WAVES):
                # Open-loop arrivals at OFFERED_RATE (far past capacity), as independent
                # clients would send them, each call waiting for its own answer.
                calls = []
                started = time.monotonic()
                for i in range(WAVE):
                    calls.append(asyncio.create_task(one(i)))
                    lag = started + (i + 1) / OFFERED_RATE - time.monotonic()
                    if lag > 0:
                        await asyncio.sleep(lag)
                await asyncio.gather(*calls)
                rss_after_wave.append(rss_kib(pid))
            shed_before_burst = len(shed_times)
            await asyncio.gather(*(one(i) for i in range(BURST)))  # and all at once
            rss_after_wave.append(rss_kib(pid))
            sampling = False
            await sampler
            for channel in channels:
                await channel.close()

            assert sidecar.popen.poll() is None, "the process stayed up"
            await ctl.clear_faults()
            after = await stub.Assess(pb.AssessRequest(token=mint_token()), timeout=5)
            upstream_calls = (await ctl.stats())["create_calls"]
    finally:
        sidecar.terminate()
        emulator.terminate()

    steady = sorted(shed_times[:shed_before_burst])
    burst = sorted(shed_times[shed_before_burst:])
    print(
        f"overload: {WAVES}x{WAVE} offered at {OFFERED_RATE:.0f}/s then {BURST} at once, "
        f"outcomes {dict(outcomes)}; shed answer at {OFFERED_RATE:.0f}/s: "
        f"p50 {_ms(steady, 0.5)} p99 {_ms(steady, 0.99)}, in the burst: p50 {_ms(burst, 0.5)} "
        f"p99 {_ms(burst, 0.99)} (client-side, both processes on the same cores); RSS baseline "
        f"{baseline // 1024} MiB, peak {peak // 1024} MiB, after waves "
        f"{[r // 1024 for r in rss_after_wave]} MiB; upstream calls {upstream_calls}"
    )
    assert set(outcomes) <= {"TOKEN_STATUS_VALID", "RESOURCE_EXHAUSTED"}, outcomes
    assert outcomes["RESOURCE_EXHAUSTED"] > (WAVES * WAVE + BURST) // 2, "the excess was shed"
    assert outcomes["TOKEN_STATUS_VALID"] >= WAVES * (MAX_IN_FLIGHT + MAX_QUEUED)
    assert after.token_status == pb.TOKEN_STATUS_VALID
    assert peak - baseline < RSS_GROWTH_LIMIT_KIB, "memory stays bounded under a flood"
    assert rss_after_wave[-1] - rss_after_wave[0] < RSS_GROWTH_LIMIT_KIB // 4, "and stops growing"


def _ms(sorted_times: list[float], quantile: float) -> str:
    if not sorted_times:
        return "-"
    index = min(len(sorted_times) - 1, int(len(sorted_times) * quantile))
    return f"{sorted_times[index] * 1000:.0f} ms"
