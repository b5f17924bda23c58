"""One bad annotation never stalls the queue (issue 13 item 7).

Rows an upgrade or a rollback left in the outbox that this version cannot send (an enum name
it does not know, an event time no Timestamp holds, bytes that are not a record) go to the
dead letter, counted by why, while every good annotation around them is delivered once; and
SIGTERM still shuts down cleanly (exit 0). Real processes, the emulator as upstream.
"""

from __future__ import annotations

import asyncio
import sqlite3
import time
from pathlib import Path

from recaptcha.sidecar.v1 import sidecar_pb2 as pb

from sidecar.core.model import AnnotationRequest, TransactionEvent
from sidecar.outbox import OutboxStore, codec
from tests.reliability.test_outbox_crash import make_assessments
from tests.support.fleet import (
    control,
    settings_env,
    sidecar_stubs,
    start_emulator,
    start_sidecar,
)
from tests.support.network import free_port
from tests.support.polling import eventually
from tests.support.prometheus import series

GOOD = 300


def poison_rows(names: list[str]) -> list[bytes]:
    """What another version of the sidecar could have stored."""
    future_reason = AnnotationRequest(names[0], annotation="LEGITIMATE", reasons=("FUTURE",))
    future_annotation = AnnotationRequest(names[1], annotation="SOMETHING_NEW")
    far_future = AnnotationRequest(
        names[2], transaction_event=TransactionEvent(event_time=1e20, value=1.0)
    )
    return [
        codec.encode(future_reason),
        codec.encode(future_annotation),
        codec.encode(far_future),
        b"\x00not a record",
    ]


def dead_lettered(metrics: str) -> dict[str, float]:
    return series(metrics, "outbox_dead_lettered_total", "reason")


async def test_poison_rows_go_to_the_dead_letter_and_every_good_one_is_delivered(
    tmp_path: Path,
) -> None:
    emulator, upstream = start_emulator()
    outbox = tmp_path / "outbox.db"
    metrics = f"127.0.0.1:{free_port()}"
    env = settings_env(outbox_flush_interval=0.1, outbox_batch_size=50, outbox_concurrency=8)
    try:
        # Real assessment names first, from a sidecar without an outbox.
        first, address = start_sidecar(upstream)
        names = await make_assessments(address, GOOD + 3)
        first.terminate()

        # The rows a rollback leaves behind, first in the queue.
        store = OutboxStore(outbox)
        store.insert(poison_rows(names), time.time(), [False] * 4)
        store.close()

        sidecar, address = start_sidecar(
            upstream, "--outbox", str(outbox), "--metrics-listen", metrics, env=env
        )
        async with sidecar_stubs(address) as (stub, _):
            for name in names[3:]:
                answer = await stub.Annotate(
                    pb.AnnotateRequest(assessment_name=name, annotation=pb.ANNOTATION_LEGITIMATE),
                    timeout=10,
                )
                assert answer.delivery == pb.ANNOTATION_DELIVERY_QUEUED
        async with control(upstream) as emulated:

            async def delivered() -> bool:
                return int((await emulated.stats())["annotate_calls"]) >= GOOD

            await eventually(delivered, timeout=60)
            await eventually(lambda: dead_lettered(metrics).get("invalid", 0) == 3, timeout=30)
            await asyncio.sleep(1.0)  # a hot loop would show up here as more calls
            calls = int((await emulated.stats())["annotate_calls"])
        assert calls == GOOD, "each good row sent once; no poison row ever sent"
        assert dead_lettered(metrics) == {
            "rejected": 0,
            "unreadable": 1,
            "invalid": 3,
            "failed": 0,
        }
        assert sidecar.terminate() == 0, sidecar.output()
        assert "Traceback" not in sidecar.output()
        with sqlite3.connect(outbox) as db:
            assert db.execute("SELECT COUNT(*) FROM outbox").fetchone() == (0,)
            assert db.execute("SELECT COUNT(*) FROM dead_letter").fetchone() == (4,)
    finally:
        emulator.kill()
