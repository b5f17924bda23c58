"""The quota shield across replicas (issue 19): sidecar processes sharing one redis-server and
one upstream (an emulator process that counts calls), bounded loads on loopback.

- Three replicas with `upstream_rate_limit`, each driven past the cap on its own: the
  upstream rate summed over the three stays within 10% of the cap.
- Redis stopped mid-run: nothing hangs (every call answered within its deadline), single
  use fails closed (no token allowed twice, nothing allowed while the store is down), and
  once Redis is back the cap is shared again.
- Google's RetryInfo after RESOURCE_EXHAUSTED, told to one replica, quiets the fleet: within
  the window no replica calls upstream (UNCHECKED quota:retry_after, closed, never the
  breaker), and the tokens refused then are released (VALID once it has passed).
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import grpc
import pytest
from recaptcha.sidecar.v1 import sidecar_pb2 as pb
from recaptcha.sidecar.v1 import sidecar_pb2_grpc

from sidecar.emulator import EmulatorControl, mint_token
from tests.support.figures import record
from tests.support.processes import Process, emulator_process, sidecar_process
from tests.support.redis_server import RedisServer

pytestmark = [pytest.mark.redis, pytest.mark.slow]

CAP = 60  # calls per second, fleet-wide
OFFERED = 90  # calls per second offered to each replica: each alone is past the cap
DEADLINE = 3.0
KEY = "UkFURS1MSU1JVC1LRVktRk9SLVRIRS1GTEVFVA=="


@pytest.fixture
def upstream() -> Iterator[Process]:
    process = emulator_process("--listen", "127.0.0.1:0")
    yield process
    process.kill()


async def replicas(
    upstream: Process, redis: RedisServer, tmp_path: Path, count: int, policy: str = "{}"
) -> list[Process]:
    key = tmp_path / "limit.key"
    key.write_text(KEY)
    config = tmp_path / "sidecar.yaml"
    config.write_text(f"policy: {policy}\n")
    args = (
        "--config",
        str(config),
        "--listen",
        "127.0.0.1:0",
        "--project",
        "fleet",
        "--upstream-endpoint",
        upstream.addresses()[0],
        "--upstream-plaintext",
        "--replay-store",
        redis.url,
        "--upstream-rate-limit",
        f"{CAP}/second",
        "--rate-limit-key-file",
        str(key),
        "--log-level",
        "WARNING",
    )
    env = {"RECAPTCHA_SIDECAR_REPLAY_TIMEOUT": "1"}
    # one after the other: on a loaded 2-core machine three starting at once can each take
    # longer than the 30 s a start is given
    return [await asyncio.to_thread(sidecar_process, *args, env=env) for _ in range(count)]


# (seconds into the run, the answer or the status code, latency, token)
Answer = tuple[float, pb.AssessResponse | grpc.StatusCode, float, str]


@contextlib.asynccontextmanager
async def connected(
    fleet: list[Process],
) -> AsyncIterator[list[sidecar_pb2_grpc.VerificationServiceStub]]:
    """A stub per replica; the channels closed and the replicas stopped on the way out."""
    channels = [grpc.aio.insecure_channel(p.addresses()[0]) for p in fleet]
    try:
        yield [sidecar_pb2_grpc.VerificationServiceStub(c) for c in channels]
    finally:
        for channel in channels:
            await channel.close()
        for process in fleet:
            process.terminate()


async def upstream_calls(address: str) -> int:
    async with grpc.aio.insecure_channel(address) as channel:
        return int((await EmulatorControl(channel).stats())["create_calls"])


async def drive(
    stub: sidecar_pb2_grpc.VerificationServiceStub,
    seconds: float,
    answers: list[Answer],
    tokens: list[str] | None = None,
) -> None:
    """Offer OFFERED calls a second for `seconds` (fresh emulator tokens, or `tokens` in
    order), each with its own deadline; record (start, answer or status code, latency,
    token)."""
    started = time.monotonic()
    pending: set[asyncio.Task[None]] = set()

    async def one(token: str) -> None:
        at = time.monotonic()
        try:
            answer: pb.AssessResponse | grpc.StatusCode = await stub.Assess(
                pb.AssessRequest(token=token, expected_action="login"), timeout=DEADLINE
            )
        except grpc.aio.AioRpcError as error:
            answer = error.code()
        answers.append((at - started, answer, time.monotonic() - at, token))

    n = 0
    while (now := time.monotonic() - started) < seconds:
        due = int(now * OFFERED) + 1
        while n < due:
            token = tokens[n % len(tokens)] if tokens else mint_token(action="login")
            task = asyncio.create_task(one(token))
            pending.add(task)
            task.add_done_callback(pending.discard)
            n += 1
        await asyncio.sleep(0.005)
    await asyncio.gather(*pending)


async def test_three_replicas_share_the_upstream_cap(
    upstream: Process, redis_server: RedisServer, tmp_path: Path
) -> None:
    fleet = await replicas(upstream, redis_server, tmp_path, 3)
    address = upstream.addresses()[0]
    answers: list[Answer] = []
    async with connected(fleet) as stubs:
        before = await upstream_calls(address)
        load = asyncio.gather(*(drive(stub, 10.0, answers) for stub in stubs))
        await asyncio.sleep(2.0)  # past the first burst (a full bucket: CAP at once)
        t1, c1 = time.monotonic(), await upstream_calls(address)
        await asyncio.sleep(7.0)
        t2, c2 = time.monotonic(), await upstream_calls(address)
        await load
        after = await upstream_calls(address)

    rate = (c2 - c1) / (t2 - t1)
    decided = collections.Counter(
        a.decided_by if isinstance(a, pb.AssessResponse) else a.name for _, a, _, _ in answers
    )
    offered = len(answers) / 10.0
    record(
        f"upstream cap {CAP}/second, 3 replicas on one Redis, {OFFERED}/s offered to each "
        f"({offered:.0f}/s in all): upstream {rate:.1f} calls/s in the steady part "
        f"({rate / CAP:.3f} of the cap), {after - before} upstream calls in 10 s, "
        f"{decided['rate_limited:upstream']} shed, outcomes {dict(decided)}"
    )
    assert offered > 2.5 * CAP, "every replica was driven past the cap"
    assert 0.9 * CAP <= rate <= 1.1 * CAP, rate
    assert decided["rate_limited:upstream"] > 0 and decided["passed"] > 0
    assert set(decided) <= {"passed", "rate_limited:upstream"}, decided


async def test_redis_stopped_mid_run_nothing_hangs_and_single_use_fails_closed(
    upstream: Process, redis_server: RedisServer, tmp_path: Path
) -> None:
    fleet = await replicas(
        upstream,
        redis_server,
        tmp_path,
        2,
        policy="{default: {rate_limits: [{per: action, limit: 1000/minute}]}}",
    )
    address = upstream.addresses()[0]
    # each token twice, on both replicas: a replay through the outage must stay refused
    tokens = [mint_token(action="login") for _ in range(400)]
    presented = [t for t in tokens for _ in range(2)]
    answers: list[list[Answer]] = [[], []]
    async with connected(fleet) as stubs:
        load_started = time.monotonic()
        load = asyncio.gather(
            *(drive(stub, 8.0, answers[i], presented) for i, stub in enumerate(stubs))
        )
        await asyncio.sleep(2.5)
        start = time.monotonic() - load_started  # seconds into the run
        redis_server.stop()
        await asyncio.sleep(3.0)
        redis_server.start()
        await load
        upstream_total = await upstream_calls(address)

    everything = [item for replica in answers for item in replica]
    failures = [a for _, a, _, _ in everything if not isinstance(a, pb.AssessResponse)]
    slowest = max(latency for _, _, latency, _ in everything)
    assert not failures, collections.Counter(failures)
    assert slowest < DEADLINE, slowest
    by_token = collections.Counter(
        token for _, a, _, token in everything if isinstance(a, pb.AssessResponse) and a.allowed
    )
    assert all(n == 1 for n in by_token.values()), "a token was allowed twice"
    during = [
        a
        for replica in answers
        for at, a, _, _ in replica
        if isinstance(a, pb.AssessResponse) and start + 0.5 < at < start + 2.5
    ]
    assert during and not any(a.allowed for a in during), "allowed while the store was down"
    outcomes = collections.Counter(a.decided_by for a in during)
    # a presentation joining one in flight in the same replica is DUPLICATE without the store
    assert set(outcomes) <= {"replay_store:unavailable", "token_duplicate"}, outcomes
    assert outcomes["replay_store:unavailable"] > outcomes["token_duplicate"], outcomes
    after = [
        a
        for replica in answers
        for at, a, _, _ in replica
        if isinstance(a, pb.AssessResponse) and at > start + 4.5
    ]
    assert any(a.allowed for a in after), "single use and the limits came back with Redis"
    record(
        f"Redis stopped for 3 s under 2 replicas x {OFFERED}/s: {len(everything)} answers, "
        f"0 transport failures, slowest {slowest * 1000:.0f} ms, {len(by_token)} tokens "
        f"allowed once each, {len(during)} answers during the outage, none allowed "
        f"({dict(outcomes)}), {upstream_total} upstream calls"
    )


async def test_googles_retry_info_told_to_one_replica_quiets_every_replica(
    upstream: Process, redis_server: RedisServer, tmp_path: Path
) -> None:
    window = 8.0
    fleet = await replicas(upstream, redis_server, tmp_path, 2)
    address = upstream.addresses()[0]

    def fresh() -> pb.AssessRequest:
        return pb.AssessRequest(token=mint_token(action="login"), expected_action="login")

    async with connected(fleet) as stubs:
        async with grpc.aio.insecure_channel(address) as control_channel:
            control = EmulatorControl(control_channel)
            await control.set_faults("create", quota=True, retry_delay_ms=int(window * 1000))
            told = await stubs[0].Assess(fresh(), timeout=DEADLINE)
            told_at = time.monotonic()
            await control.clear_faults()  # Google would answer again: only the window stops us
        assert not told.allowed and told.token_status == pb.TOKEN_STATUS_UNCHECKED
        assert told.decided_by.startswith("quota:"), told.decided_by

        # the other replica learns within its next flushes (one round trip a second each)
        learned = None
        while time.monotonic() - told_at < window - 3:
            answer = await stubs[1].Assess(fresh(), timeout=DEADLINE)
            if answer.decided_by == "quota:retry_after":
                learned = time.monotonic() - told_at
                break
            await asyncio.sleep(0.1)
        assert learned is not None, "the second replica never heard of Google's window"

        before = await upstream_calls(address)
        quiet = [fresh() for _ in range(20)]
        answers = [await stubs[i % 2].Assess(r, timeout=DEADLINE) for i, r in enumerate(quiet)]
        during = await upstream_calls(address)
        assert time.monotonic() - told_at < window, "the check ran inside the window"
        assert during == before, "no replica called upstream inside the window"
        assert all(
            a.decided_by == "quota:retry_after"
            and not a.allowed
            and a.token_status == pb.TOKEN_STATUS_UNCHECKED
            for a in answers
        ), collections.Counter(a.decided_by for a in answers)

        await asyncio.sleep(max(0.0, window + 1.5 - (time.monotonic() - told_at)))
        again = [await stubs[i % 2].Assess(r, timeout=DEADLINE) for i, r in enumerate(quiet[:4])]
    assert all(a.allowed and a.token_status == pb.TOKEN_STATUS_VALID for a in again), [
        a.decided_by for a in again
    ]
    record(
        f"RetryInfo {window:g} s told to one of 2 replicas: the other refused without calling "
        f"{learned:.1f} s later; 20 calls inside the window, 0 upstream calls; their tokens "
        "VALID after it"
    )
