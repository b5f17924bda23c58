"""Three sidecar processes share a Redis Cluster (3 primaries + 3 replicas) or a Sentinel
group (a primary, 2 replicas, 3 sentinels) and one upstream (an emulator process). Every
token is presented several times, to every replica: each token is allowed at most once and
reaches upstream at most once, also when a primary is SIGKILLed mid-run and a replica takes
over.

A claim the failover forgets would be claimed afresh by a later presentation; upstream's DUPE
then still refuses the token, but at the cost of a second upstream call. So "upstream calls
per token" is what shows a lost claim, and `replay_min_replicas: 1` must keep it at one. To
make the window real on loopback (where replication is near instant), the victim's replica
is first made to lag, so the claims of that moment are on the primary alone when it dies.
"""

from __future__ import annotations

import asyncio
import collections
import random
import time
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass, field

import grpc
import pytest
from recaptcha.sidecar.v1 import sidecar_pb2 as pb
from recaptcha.sidecar.v1 import sidecar_pb2_grpc

from sidecar.emulator import EmulatorControl, mint_token
from tests.support.figures import record
from tests.support.processes import Process, emulator_process, sidecar_process
from tests.support.redis_cluster import RedisCluster, RedisSentinel

pytestmark = [pytest.mark.redis, pytest.mark.slow]

REPLICAS = 3  # sidecar processes
CALL_DEADLINE = 5.0


@dataclass
class Answer:
    replica: int
    sent: float  # loop time the call was sent
    took: float
    response: pb.AssessResponse | None = None
    code: grpc.StatusCode | None = None  # a transport failure


@dataclass
class Run:
    """What the load generator saw, and the figures the reference docs quote."""

    tokens: list[str]
    answers: dict[str, list[Answer]] = field(default_factory=lambda: collections.defaultdict(list))
    fault_at: float | None = None

    def all(self) -> list[Answer]:
        return [a for seen in self.answers.values() for a in seen]

    def allowed_by_token(self) -> collections.Counter[str]:
        return collections.Counter(
            token
            for token, seen in self.answers.items()
            for a in seen
            if a.response is not None and a.response.allowed
        )

    def double_accepts(self) -> int:
        return sum(1 for n in self.allowed_by_token().values() if n > 1)

    def summary(self, calls: dict[str, int]) -> str:
        answers = self.all()
        statuses = collections.Counter(
            pb.TokenStatus.Name(a.response.token_status) for a in answers if a.response
        )
        decided = collections.Counter(
            a.response.decided_by
            for a in answers
            if a.response and a.response.token_status == pb.TOKEN_STATUS_UNCHECKED
        )
        failures = collections.Counter(a.code.name for a in answers if a.code is not None)
        slowest = max((a.took for a in answers), default=0.0)
        return (
            f"tokens={len(self.tokens)} presentations={len(answers)} statuses={dict(statuses)} "
            f"unchecked_by={dict(decided)} transport_failures={dict(failures)} "
            f"tokens_allowed={len(self.allowed_by_token())} "
            f"double_accepts={self.double_accepts()} "
            f"upstream_calls_per_token={dict(sorted(collections.Counter(calls.values()).items()))} "
            f"slowest_answer={slowest:.3f}s"
        )

    def store_outage(self) -> tuple[float, float]:
        """Seconds from the fault to the last UNCHECKED answer for the store, and to the
        first allowed answer of a call sent after that one (the sidecars followed)."""
        assert self.fault_at is not None
        store_failures = [
            a.sent + a.took
            for a in self.all()
            if a.response is not None and a.response.decided_by == "replay_store:unavailable"
        ]
        last = max(store_failures, default=self.fault_at)
        after = [
            a.sent + a.took
            for a in self.all()
            if a.response is not None and a.response.allowed and a.sent > last
        ]
        return last - self.fault_at, (min(after) if after else float("inf")) - self.fault_at


@pytest.fixture
def upstream() -> Iterator[Process]:
    process = emulator_process("--listen", "127.0.0.1:0")
    yield process
    process.kill()


async def start_sidecars(upstream: Process, url: str, min_replicas: int) -> list[Process]:
    args = (
        "--listen",
        "127.0.0.1:0",
        "--project",
        "replicas",
        "--upstream-endpoint",
        upstream.addresses()[0],
        "--upstream-plaintext",
        "--replay-store",
        url,
        "--log-level",
        "ERROR",
    )
    env = {
        "RECAPTCHA_SIDECAR_REPLAY_MIN_REPLICAS": str(min_replicas),
        # A generous store timeout: this test is about single use, not about a busy machine.
        "RECAPTCHA_SIDECAR_REPLAY_TIMEOUT": "1.0",
        "RECAPTCHA_SIDECAR_REPLAY_REPLICATION_TIMEOUT": "0.3",
    }
    return list(
        await asyncio.gather(
            *(asyncio.to_thread(sidecar_process, *args, env=env) for _ in range(REPLICAS))
        )
    )


async def present_all(
    stubs: list[sidecar_pb2_grpc.VerificationServiceStub], run: Run, presentations: int
) -> None:
    """Every presentation of every token at once (the bounded burst of the issue)."""

    async def present(token: str, replica: int) -> None:
        await _call(stubs, run, token, replica)

    calls = []
    for token in run.tokens:
        first = random.randrange(len(stubs))
        calls += [present(token, (first + i) % len(stubs)) for i in range(presentations)]
    random.shuffle(calls)
    await asyncio.gather(*calls)


async def present_over_time(
    stubs: list[sidecar_pb2_grpc.VerificationServiceStub],
    run: Run,
    *,
    every: float,
    again_after: float,
    fault_after: float,
    fault: Callable[[], Awaitable[None]],
) -> None:
    """One token every `every` seconds: presented twice at once (two replicas), and twice
    again `again_after` seconds later (the two others), so that presentations straddle a
    fault injected `fault_after` seconds in."""
    loop = asyncio.get_running_loop()
    start = loop.time()

    async def token_life(index: int, token: str) -> None:
        await asyncio.sleep(max(0.0, start + index * every - loop.time()))
        first = random.randrange(len(stubs))
        order = [(first + i) % len(stubs) for i in range(4)]
        await asyncio.gather(*(_call(stubs, run, token, r) for r in order[:2]))
        await asyncio.sleep(max(0.0, start + index * every + again_after - loop.time()))
        await asyncio.gather(*(_call(stubs, run, token, r) for r in order[2:]))

    async def inject() -> None:
        await asyncio.sleep(fault_after)
        run.fault_at = loop.time()
        await fault()

    await asyncio.gather(inject(), *(token_life(i, t) for i, t in enumerate(run.tokens)))


async def _call(
    stubs: list[sidecar_pb2_grpc.VerificationServiceStub], run: Run, token: str, replica: int
) -> None:
    loop = asyncio.get_running_loop()
    sent = loop.time()
    request = pb.AssessRequest(token=token, expected_action="login")
    try:
        response = await stubs[replica].Assess(request, timeout=CALL_DEADLINE)
    except grpc.aio.AioRpcError as error:
        run.answers[token].append(Answer(replica, sent, loop.time() - sent, code=error.code()))
        return
    run.answers[token].append(Answer(replica, sent, loop.time() - sent, response))


async def drive(
    upstream: Process,
    url: str,
    min_replicas: int,
    tokens: int,
    load: Callable[[list[sidecar_pb2_grpc.VerificationServiceStub], Run], Awaitable[None]],
) -> tuple[Run, dict[str, int]]:
    sidecars = await start_sidecars(upstream, url, min_replicas)
    channels = [grpc.aio.insecure_channel(s.addresses()[0]) for s in sidecars]
    control_channel = grpc.aio.insecure_channel(upstream.addresses()[0])
    control = EmulatorControl(control_channel, timeout=30)
    run = Run([mint_token(action="login") for _ in range(tokens)])
    try:
        stubs = [sidecar_pb2_grpc.VerificationServiceStub(c) for c in channels]
        await asyncio.wait_for(load(stubs, run), 120)
        calls: dict[str, int] = (await control.stats(tokens=run.tokens))["create_calls_by_token"]
    finally:
        for channel in channels:
            await channel.close()
        await control_channel.close()
        for sidecar in sidecars:
            sidecar.kill()
    return run, calls


def report(name: str, run: Run, calls: dict[str, int], extra: str = "") -> None:
    record(f"{name}: {run.summary(calls)}{extra}")


# ---- Cluster --------------------------------------------------------------------------------


async def test_cluster_three_sidecars_allow_each_token_once(
    upstream: Process, redis_cluster: RedisCluster
) -> None:
    """1,200 concurrent presentations of 300 tokens through three sidecars on one Cluster."""

    async def load(stubs: list[sidecar_pb2_grpc.VerificationServiceStub], run: Run) -> None:
        await present_all(stubs, run, presentations=4)

    run, calls = await drive(upstream, redis_cluster.url, 1, 300, load)
    report("cluster, 1200 at once", run, calls)
    answers = run.all()
    assert len(answers) == 1200 and all(a.response is not None for a in answers)
    assert run.double_accepts() == 0
    assert len(run.allowed_by_token()) == 300  # each token's first presentation passed
    assert set(calls.values()) == {1}  # exactly one upstream call per token
    for seen in run.answers.values():
        statuses = sorted(a.response.token_status for a in seen if a.response)
        assert statuses == [pb.TOKEN_STATUS_VALID] + [pb.TOKEN_STATUS_DUPLICATE] * 3


@pytest.mark.parametrize("min_replicas", [1, 0])
async def test_cluster_primary_killed_mid_run(
    upstream: Process, disposable_redis_cluster: RedisCluster, min_replicas: int
) -> None:
    """A primary is SIGKILLed early in the run while its replica lags (64 MB behind); the
    replica is promoted and the killed node restarted (it rejoins as a replica). With
    min_replicas 1 no claim is lost (at most one upstream call per token); with 0 the
    claims of the lag are lost and their repeats cost a second upstream call (upstream's
    DUPE still refuses them)."""
    cluster = disposable_redis_cluster
    victim = cluster.primaries()[0]
    (replica,) = cluster.replicas_of(victim)
    promoted: list[float] = []
    rejoined: list[float] = []

    async def fault() -> None:
        lag = await asyncio.to_thread(cluster.lag, replica, 2.0)
        await asyncio.to_thread(cluster.backlog, victim, 64)
        await asyncio.sleep(1.0)  # claims made now wait in the primary's memory
        cluster.kill(victim)
        await asyncio.to_thread(lag.stop)
        began = time.monotonic()
        await asyncio.to_thread(cluster.wait_promoted, victim)
        promoted.append(time.monotonic() - began)
        # Kubernetes restarts the killed node: it rejoins as the new primary's replica.
        await asyncio.to_thread(cluster.restart, victim)
        rejoined.append(time.monotonic() - began)

    async def load(stubs: list[sidecar_pb2_grpc.VerificationServiceStub], run: Run) -> None:
        await present_over_time(
            stubs, run, every=0.04, again_after=4.0, fault_after=2.0, fault=fault
        )

    run, calls = await drive(upstream, cluster.url, min_replicas, 300, load)
    lost = sum(1 for n in calls.values() if n > 1)
    outage, _followed = run.store_outage()
    report(
        f"cluster, primary SIGKILLed, replay_min_replicas={min_replicas}",
        run,
        calls,
        f" lost_claims={lost} promotion={promoted[0]:.2f}s rejoined={rejoined[0]:.2f}s"
        f" store_failures_until={outage:.2f}s",
    )
    answers = run.all()
    assert all(a.code is None for a in answers)  # every call answered within its deadline
    assert run.double_accepts() == 0  # upstream's DUPE stops what a lost claim lets through
    if min_replicas:
        assert max(calls.values()) <= 1  # no claim lost in the failover
    else:
        assert lost > 0  # the window is real: without WAIT, claims are lost
    assert len(run.allowed_by_token()) >= 150  # the sidecars kept serving the other slots


# ---- Sentinel -------------------------------------------------------------------------------


async def test_sentinel_primary_killed_mid_run(
    upstream: Process, disposable_redis_sentinel: RedisSentinel
) -> None:
    """Three sidecars on one Sentinel group with min_replicas 1; the primary is SIGKILLed
    mid-run. Every call is answered within its deadline, no token is allowed twice or costs
    two upstream calls, and the sidecars follow the new primary."""
    group = disposable_redis_sentinel
    failover: list[float] = []

    async def fault() -> None:
        dead = group.kill_primary()
        began = time.monotonic()
        await asyncio.to_thread(group.wait_failover, dead)
        failover.append(time.monotonic() - began)

    async def load(stubs: list[sidecar_pb2_grpc.VerificationServiceStub], run: Run) -> None:
        await present_over_time(
            stubs, run, every=0.02, again_after=4.0, fault_after=2.0, fault=fault
        )

    run, calls = await drive(upstream, group.url, 1, 500, load)
    outage, followed = run.store_outage()
    report(
        "sentinel, primary SIGKILLed, replay_min_replicas=1",
        run,
        calls,
        f" failover={failover[0]:.2f}s store_failures_until={outage:.2f}s "
        f"first_allowed_after={followed:.2f}s",
    )
    assert all(a.code is None for a in run.all())  # every call answered within its deadline
    assert max(a.took for a in run.all()) < CALL_DEADLINE
    assert run.double_accepts() == 0
    assert max(calls.values()) <= 1
    assert followed < 20.0  # the sidecars follow the new primary within a bounded time
    late = [t for i, t in enumerate(run.tokens) if i * 0.02 > 2.0 + outage + 1.0]
    assert late and all(run.allowed_by_token()[t] == 1 for t in late)
