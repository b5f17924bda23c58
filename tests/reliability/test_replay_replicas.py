"""Three sidecar processes share one Redis and one upstream (an emulator process). Every token
is presented several times at once, to every replica: each token is allowed at most once, and
reaches upstream once. Then again with one replica SIGKILLed in the middle of the run."""

from __future__ import annotations

import asyncio
import collections
import random
from collections.abc import Iterator
from dataclasses import dataclass, field

import grpc
import pytest
from recaptcha.sidecar.v1 import sidecar_pb2 as pb
from recaptcha.sidecar.v1 import sidecar_pb2_grpc

from sidecar.emulator import EmulatorControl, mint_token
from tests.support.processes import Process, emulator_process, sidecar_process
from tests.support.redis_server import RedisServer

TOKENS = 1000
PRESENTATIONS = 4  # per token, all at once: every replica, and one of them twice
IN_FLIGHT_TOKENS = 20  # bounded load: 80 calls in flight at most
CALL_DEADLINE = 10.0


@dataclass
class Run:
    """Everything the load generator saw."""

    answers: dict[str, list[tuple[int, pb.AssessResponse]]] = field(
        default_factory=lambda: collections.defaultdict(list)
    )
    failures: list[tuple[int, grpc.StatusCode]] = field(default_factory=list)
    sent_to: collections.Counter[int] = field(default_factory=collections.Counter)
    done_tokens: int = 0
    kill_at: int | None = None
    kill_now: asyncio.Event = field(default_factory=asyncio.Event)

    def allowed_by_token(self) -> collections.Counter[str]:
        return collections.Counter(
            token for token, seen in self.answers.items() for _, a in seen if a.allowed
        )

    def summary(self, calls: dict[str, int]) -> str:
        statuses = collections.Counter(
            pb.TokenStatus.Name(a.token_status) for seen in self.answers.values() for _, a in seen
        )
        allowed = self.allowed_by_token()
        return (
            f"tokens={TOKENS} presentations={TOKENS * PRESENTATIONS} "
            f"answered={sum(statuses.values())} transport_failures={len(self.failures)} "
            f"statuses={dict(statuses)} tokens_allowed={len(allowed)} "
            f"double_accepts={sum(1 for n in allowed.values() if n > 1)} "
            f"upstream_calls_per_token={dict(collections.Counter(calls.values()))}"
        )


@pytest.fixture
def upstream() -> Iterator[Process]:
    process = emulator_process("--listen", "127.0.0.1:0")
    yield process
    process.kill()


async def start_replicas(upstream: Process, redis: RedisServer, count: int = 3) -> list[Process]:
    args = (
        "--listen",
        "127.0.0.1:0",
        "--project",
        "replicas",
        "--site-key",
        "replicas-key",
        "--upstream-endpoint",
        upstream.addresses()[0],
        "--upstream-plaintext",
        "--replay-store",
        redis.url,
        "--log-level",
        "ERROR",
    )
    # A generous store timeout: this test is about single use, not about a busy machine.
    env = {"RECAPTCHA_SIDECAR_REPLAY_TIMEOUT": "2"}
    return list(
        await asyncio.gather(
            *(asyncio.to_thread(sidecar_process, *args, env=env) for _ in range(count))
        )
    )


async def drive(
    stubs: list[sidecar_pb2_grpc.VerificationServiceStub], tokens: list[str], run: Run
) -> None:
    """Present each token PRESENTATIONS times at once, spread over every replica (a random
    one gets it twice), IN_FLIGHT_TOKENS tokens at a time."""
    pending = iter(tokens)

    async def present(token: str, replica: int) -> None:
        try:
            answer = await stubs[replica].Assess(
                pb.AssessRequest(token=token, expected_action="login"), timeout=CALL_DEADLINE
            )
        except grpc.aio.AioRpcError as error:
            run.failures.append((replica, error.code()))
            return
        run.answers[token].append((replica, answer))

    async def worker() -> None:
        for token in pending:
            first = random.randrange(len(stubs))
            order = [(first + i) % len(stubs) for i in range(PRESENTATIONS)]
            run.sent_to.update(order)
            await asyncio.gather(*(present(token, replica) for replica in order))
            run.done_tokens += 1
            if run.done_tokens == run.kill_at:
                run.kill_now.set()

    await asyncio.gather(*(worker() for _ in range(IN_FLIGHT_TOKENS)))


async def run_replicas(
    upstream: Process, redis: RedisServer, *, kill_at: int | None
) -> tuple[Run, dict[str, int], int | None]:
    replicas = await start_replicas(upstream, redis)
    channels = [grpc.aio.insecure_channel(r.addresses()[0]) for r in replicas]
    control_channel = grpc.aio.insecure_channel(upstream.addresses()[0])
    control = EmulatorControl(control_channel, timeout=30)
    tokens = [mint_token(action="login") for _ in range(TOKENS)]
    run, killed = Run(kill_at=kill_at), None
    if kill_at is not None:  # upstream calls in flight at the kill leave claims pending
        await control.set_faults("create", latency_ms=20)
    try:
        load = asyncio.create_task(
            drive([sidecar_pb2_grpc.VerificationServiceStub(c) for c in channels], tokens, run)
        )
        if kill_at is not None:
            await asyncio.wait_for(run.kill_now.wait(), 60)
            assert not load.done(), "the run ended before the kill"
            killed = 1
            await asyncio.to_thread(replicas[killed].kill)  # SIGKILL, mid-run
        await asyncio.wait_for(load, 100)
        calls: dict[str, int] = (await control.stats(tokens=tokens))["create_calls_by_token"]
    finally:
        for channel in channels:
            await channel.close()
        await control_channel.close()
        for replica in replicas:
            replica.kill()
    return run, calls, killed


async def test_three_replicas_allow_each_token_once_and_call_upstream_once(
    upstream: Process, redis_server: RedisServer
) -> None:
    run, calls, _ = await run_replicas(upstream, redis_server, kill_at=None)
    print("\nreplicas:", run.summary(calls))
    assert run.failures == []
    assert sum(len(seen) for seen in run.answers.values()) == TOKENS * PRESENTATIONS
    allowed = run.allowed_by_token()
    assert [t for t, n in allowed.items() if n > 1] == []  # no double accept, ever
    assert len(allowed) == TOKENS  # and each token's first presentation passed
    assert set(calls.values()) == {1}  # one upstream call per token
    for seen in run.answers.values():
        statuses = sorted(a.token_status for _, a in seen)
        assert statuses == [pb.TOKEN_STATUS_VALID] + [pb.TOKEN_STATUS_DUPLICATE] * (
            PRESENTATIONS - 1
        )
        names = {a.assessment_name for _, a in seen if a.assessment_name}
        assert len(names) == 1  # duplicates report the original assessment


async def test_a_replica_killed_mid_run_never_lets_a_token_through_twice(
    upstream: Process, redis_server: RedisServer
) -> None:
    run, calls, killed = await run_replicas(upstream, redis_server, kill_at=TOKENS // 3)
    print("\nreplicas, one SIGKILLed:", run.summary(calls))
    allowed = run.allowed_by_token()
    assert [t for t, n in allowed.items() if n > 1] == []
    assert max(calls.values()) <= 1  # a dead replica's claims still stop the others
    assert all(calls[token] == 1 for token in allowed)
    # Calls to the killed replica failed at the transport; the others answered every call.
    assert run.failures, "the kill happened mid-run, so some calls must have failed"
    assert {replica for replica, _ in run.failures} == {killed}
    assert {code for _, code in run.failures} <= {grpc.StatusCode.UNAVAILABLE}
    answered_by_survivors = sum(
        1 for seen in run.answers.values() for replica, _ in seen if replica != killed
    )
    assert answered_by_survivors == sum(n for r, n in run.sent_to.items() if r != killed)
    assert len(allowed) >= TOKENS * 2 // 3  # the survivors kept serving
