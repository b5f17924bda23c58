"""At-least-once annotations through crashes: 2,000 annotations are accepted while upstream
fails about 30% of AnnotateAssessment calls and the sidecar process is SIGKILLed twice under
load. After restarts on the same outbox file, every accepted annotation has reached the
(standalone) emulator, and nothing is left queued or dead-lettered."""

from __future__ import annotations

import asyncio
import sqlite3
from collections import deque
from pathlib import Path

import grpc
import pytest
from recaptcha.sidecar.v1 import sidecar_pb2 as pb
from recaptcha.sidecar.v1 import sidecar_pb2_grpc

from sidecar.emulator import mint_token
from tests.support.fleet import control, settings_env, start_emulator, start_sidecar
from tests.support.polling import eventually
from tests.support.processes import Process

pytestmark = pytest.mark.slow

TOTAL = 2_000
KILL_AT = (700, 1_400)  # accepted annotations after which the running sidecar is SIGKILLed
CONCURRENCY = 32
ENV = settings_env(
    outbox_flush_interval=0.1,
    outbox_max_backoff=1.0,
    outbox_concurrency=16,
    outbox_batch_size=50,
)


async def make_assessments(address: str, count: int) -> list[str]:
    """Real assessment names (the emulator only accepts annotations for its own)."""
    channel = grpc.aio.insecure_channel(address)
    stub = sidecar_pb2_grpc.VerificationServiceStub(channel)
    gate = asyncio.Semaphore(50)

    async def one() -> str:
        async with gate:
            answer = await stub.Assess(pb.AssessRequest(token=mint_token()), timeout=10)
            return str(answer.assessment_name)

    names = await asyncio.gather(*(one() for _ in range(count)))
    await channel.close()
    assert len(set(names)) == count
    return list(names)


async def annotate_until(
    address: str, pending: deque[str], accepted: set[str], target: int
) -> tuple[asyncio.Event, list[asyncio.Task[None]], grpc.aio.Channel]:
    """Workers that keep annotating; `reached` is set once `target` were accepted. A call that
    fails (the process died under it) puts its annotation back for the next process."""
    channel = grpc.aio.insecure_channel(address)
    stub = sidecar_pb2_grpc.VerificationServiceStub(channel)
    reached = asyncio.Event()

    async def worker() -> None:
        while pending:
            name = pending.popleft()
            request = pb.AnnotateRequest(
                assessment_name=name,
                annotation=pb.ANNOTATION_LEGITIMATE,
                reasons=[pb.ANNOTATION_REASON_PASSED_TWO_FACTOR],
            )
            try:
                answer = await stub.Annotate(request, timeout=5)
            except grpc.aio.AioRpcError:
                pending.append(name)
                return
            assert answer.delivery == pb.ANNOTATION_DELIVERY_QUEUED
            accepted.add(name)
            if len(accepted) >= target:
                reached.set()
        reached.set()

    tasks = [asyncio.create_task(worker()) for _ in range(CONCURRENCY)]
    return reached, tasks, channel


async def test_every_accepted_annotation_arrives_despite_sigkill_and_failures(
    tmp_path: Path,
) -> None:
    outbox = tmp_path / "outbox.db"
    emulator, emulator_address = start_emulator()
    processes: list[Process] = []
    try:
        sidecar, address = start_sidecar(emulator_address, "--outbox", str(outbox), env=ENV)
        processes.append(sidecar)
        names = await make_assessments(address, TOTAL)
        async with control(emulator_address) as ctl:
            # 20% fail before processing, then 12.5% of the rest lose the answer after the
            # annotation was recorded: about 30% of calls fail, some of them ambiguously.
            await ctl.set_faults("annotate", error_rate=0.2, fail_after_consume_rate=0.125, seed=4)
            pending: deque[str] = deque(names)
            accepted: set[str] = set()
            killed_with_queue: list[int] = []
            for target in (*KILL_AT, TOTAL):
                reached, workers, channel = await annotate_until(address, pending, accepted, target)
                await reached.wait()
                if target != TOTAL:
                    sidecar.kill()  # SIGKILL under load: no goodbye, no flush
                    killed_with_queue.append(_rows(outbox))
                await asyncio.gather(*workers)
                await channel.close()
                if target != TOTAL:
                    sidecar, address = await asyncio.to_thread(
                        start_sidecar, emulator_address, "--outbox", str(outbox), env=ENV
                    )
                    processes.append(sidecar)
            assert len(accepted) == TOTAL and not pending

            async def all_arrived() -> bool:
                stats = await ctl.stats()
                return accepted <= set(stats["annotated_names"])

            await eventually(all_arrived, timeout=90, interval=0.5)
            # Some arrived although their answer was lost: the outbox keeps them until a
            # later attempt is answered. Read the file from outside, as WAL allows.
            await eventually(lambda: _rows(outbox) == 0, timeout=60, interval=0.2)
            stats = await ctl.stats()
        assert sidecar.terminate() == 0, sidecar.output()[-2000:]
    finally:
        for process in processes:
            process.kill()
        emulator.terminate()

    arrived = set(stats["annotated_names"])
    lost = accepted - arrived
    print(
        f"outbox: {len(accepted)} accepted, {len(accepted & arrived)} arrived distinct, "
        f"{stats['annotations_total']} deliveries recorded ({stats['annotate_calls']} calls, "
        f"{stats['injected_failures']['annotate']} injected failures), lost {len(lost)}; "
        f"rows queued at each SIGKILL: {killed_with_queue}"
    )
    assert not lost
    assert any(killed_with_queue), "a kill found annotations still queued"
    assert _rows(outbox) == 0, "nothing is left queued"
    assert _rows(outbox, "dead_letter") == 0


def _rows(path: Path, table: str = "outbox") -> int:
    with sqlite3.connect(path, timeout=5) as db:
        count: int = db.execute(f"SELECT COUNT(*) FROM {table}").fetchone()[0]
    return count
