"""Two sidecar processes share one Redis outbox (a stream on the Redis Cluster, WAITed to one
replica) while upstream fails 30% of AnnotateAssessment calls. One sidecar is SIGKILLed a
third of the way in and never restarted: every annotation it or the survivor acknowledged is
delivered anyway (the survivor takes over the dead one's entries), none is lost, and the
duplicates that at-least-once delivery allows are counted."""

from __future__ import annotations

import asyncio
import base64
import collections
import os
import time
from collections.abc import Iterator
from pathlib import Path

import grpc
import pytest
from recaptcha.sidecar.v1 import sidecar_pb2 as pb
from recaptcha.sidecar.v1 import sidecar_pb2_grpc

from sidecar.emulator import EmulatorControl, mint_token
from tests.support.figures import record
from tests.support.processes import Process, emulator_process, sidecar_process
from tests.support.redis_cluster import RedisCluster

pytestmark = [pytest.mark.redis, pytest.mark.slow, pytest.mark.timeout(300)]

ANNOTATIONS = 3_000
IN_FLIGHT = 40
STREAM = "fleet-outbox"


@pytest.fixture
def upstream() -> Iterator[Process]:
    process = emulator_process("--listen", "127.0.0.1:0")
    yield process
    process.kill()


def start(upstream: Process, cluster: RedisCluster, key: Path) -> Process:
    env = {
        "RECAPTCHA_SIDECAR_OUTBOX": cluster.url,
        "RECAPTCHA_SIDECAR_OUTBOX_KEY_FILE": str(key),
        "RECAPTCHA_SIDECAR_OUTBOX_STREAM": STREAM,
        "RECAPTCHA_SIDECAR_OUTBOX_MIN_REPLICAS": "1",
        "RECAPTCHA_SIDECAR_OUTBOX_CLAIM_IDLE": "2",
        "RECAPTCHA_SIDECAR_OUTBOX_FLUSH_INTERVAL": "0.1",
        "RECAPTCHA_SIDECAR_OUTBOX_MAX_BACKOFF": "1.0",
    }
    return sidecar_process(
        "--listen",
        "127.0.0.1:0",
        "--project",
        "outbox-fleet",
        "--upstream-endpoint",
        upstream.addresses()[0],
        "--upstream-plaintext",
        "--log-level",
        "ERROR",
        env=env,
    )


def stream_length(cluster: RedisCluster) -> int:
    node = next(n for n in cluster.nodes if n.server.running)
    return int(node.server.cli("-c", "XLEN", "{" + STREAM + "}"))


async def test_a_replica_killed_for_good_loses_no_acknowledged_annotation(
    upstream: Process, redis_cluster: RedisCluster, tmp_path: Path
) -> None:
    key = tmp_path / "outbox.key"
    key.write_text(base64.b64encode(os.urandom(32)).decode())
    survivor, doomed = await asyncio.gather(
        asyncio.to_thread(start, upstream, redis_cluster, key),
        asyncio.to_thread(start, upstream, redis_cluster, key),
    )
    channels = [grpc.aio.insecure_channel(p.addresses()[0]) for p in (survivor, doomed)]
    stubs = [sidecar_pb2_grpc.VerificationServiceStub(c) for c in channels]
    control_channel = grpc.aio.insecure_channel(upstream.addresses()[0])
    control = EmulatorControl(control_channel, timeout=30)
    acknowledged: dict[int, int] = {}  # annotation number → replica that acknowledged it
    failures: collections.Counter[str] = collections.Counter()
    killed_at: list[float] = []
    try:
        names = [
            a.assessment_name
            for a in await asyncio.gather(
                *(stubs[0].Assess(pb.AssessRequest(token=mint_token()), timeout=10)
                  for _ in range(30))
            )
        ]  # fmt: skip
        await control.set_faults("annotate", error_rate=0.3, seed=7)
        pending = iter(range(ANNOTATIONS))
        loop = asyncio.get_running_loop()

        async def send() -> None:
            for number in pending:
                if number == ANNOTATIONS // 3 and not killed_at:
                    killed_at.append(loop.time())
                    doomed.kill()  # SIGKILL, never restarted
                replica = number % 2 if not killed_at else 0  # the balancer drops the dead one
                request = pb.AnnotateRequest(
                    assessment_name=names[number % len(names)],
                    annotation=pb.ANNOTATION_LEGITIMATE,
                    account_id=f"acct-{number}",
                    transaction_event=pb.TransactionEvent(
                        event_type=pb.TRANSACTION_EVENT_TYPE_AUTHORIZATION, value=float(number)
                    ),
                )
                try:
                    answer = await stubs[replica].Annotate(request, timeout=10)
                except grpc.aio.AioRpcError as error:
                    failures[f"{replica}:{error.code().name}"] += 1
                    continue
                assert answer.delivery in (
                    pb.ANNOTATION_DELIVERY_QUEUED,
                    pb.ANNOTATION_DELIVERY_DELIVERED,
                )
                acknowledged[number] = replica

        started = loop.time()
        await asyncio.wait_for(asyncio.gather(*(send() for _ in range(IN_FLIGHT))), 120)
        sent_in = loop.time() - started

        async def delivered_numbers() -> collections.Counter[int]:
            stats = await control.stats()
            return collections.Counter(  # proto JSON leaves a 0.0 value out
                int(a["transaction_event"].get("value", 0))
                for a in stats["annotations"]
                if a.get("transaction_event")
            )

        give_up = loop.time() + 120
        while True:
            seen = await delivered_numbers()
            if set(acknowledged) <= set(seen) and stream_length(redis_cluster) == 0:
                break
            assert loop.time() < give_up, (
                f"{len(set(acknowledged) - set(seen))} acknowledged annotations undelivered, "
                f"{stream_length(redis_cluster)} still queued"
            )
            await asyncio.sleep(0.5)
        drained_in = loop.time() - started
        stats = await control.stats()
    finally:
        for channel in channels:
            await channel.close()
        await control_channel.close()
        survivor.kill()
        doomed.kill()
    duplicates = sum(n - 1 for n in seen.values() if n > 1)
    by_replica = collections.Counter(acknowledged.values())
    record(
        "redis outbox, one of two replicas SIGKILLed, upstream failing 30%: "
        f"annotations={ANNOTATIONS} acknowledged={len(acknowledged)} "
        f"(survivor {by_replica[0]}, killed {by_replica[1]}) refused={dict(failures)} "
        f"delivered={len(seen)} lost=0 duplicates={duplicates} "
        f"injected_upstream_failures={stats['injected_failures']['annotate']} "
        f"sent_in={sent_in:.1f}s all_delivered_in={drained_in:.1f}s "
        f"at={time.strftime('%H:%M:%S')}"
    )
    assert by_replica[1] > 0  # the killed replica had acknowledged some before it died
    assert stats["injected_failures"]["annotate"] > 0.2 * ANNOTATIONS
    assert set(acknowledged) <= set(seen)  # every acknowledged annotation was delivered
