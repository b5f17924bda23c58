"""The annotation outbox behind the real server: queued, delivered, retried, dead-lettered,
kept across restarts, bounded, and owned by one process at a time."""

from __future__ import annotations

import asyncio
import sqlite3
from pathlib import Path

import grpc
import pytest
from recaptcha.sidecar.v1 import sidecar_pb2 as pb

from sidecar.emulator import mint_token
from sidecar.outbox import OutboxLocked
from sidecar.server.app import StartupError
from tests.conftest import EmulatorHandle, SidecarFactory, SidecarHandle
from tests.support.polling import eventually


async def assessment_names(sidecar: SidecarHandle, count: int) -> list[str]:
    answers = await asyncio.gather(
        *(
            sidecar.stub.Assess(pb.AssessRequest(token=mint_token()), timeout=5)
            for _ in range(count)
        )
    )
    return [a.assessment_name for a in answers]


def annotation(name: str, **fields: object) -> pb.AnnotateRequest:
    return pb.AnnotateRequest(
        assessment_name=name,
        annotation=pb.ANNOTATION_LEGITIMATE,
        reasons=[pb.ANNOTATION_REASON_CORRECT_PASSWORD],
        **fields,  # type: ignore[arg-type]
    )


def rows(path: Path, table: str = "outbox") -> int:
    with sqlite3.connect(path) as db:
        count: int = db.execute(f"SELECT COUNT(*) FROM {table}").fetchone()[0]
    return count


async def delivered(emulator: EmulatorHandle, names: list[str]) -> bool:
    stats = await emulator.control.stats()
    return set(names) <= set(stats["annotated_names"])


async def test_annotation_is_queued_then_delivered(
    make_sidecar: SidecarFactory, emulator: EmulatorHandle, tmp_path: Path
) -> None:
    path = tmp_path / "outbox.db"
    handle = await make_sidecar(outbox=path, outbox_flush_interval=0.05)
    (name,) = await assessment_names(handle, 1)
    answer = await handle.stub.Annotate(annotation(name, account_id="acct-9"), timeout=5)
    assert answer.delivery == pb.ANNOTATION_DELIVERY_QUEUED
    await eventually(lambda: delivered(emulator, [name]))
    outbox = handle.sidecar.outbox
    assert outbox is not None
    await eventually(lambda: outbox.depth() == 0)
    assert rows(path) == 0
    stats = await emulator.control.stats()
    recorded = [a for a in stats["annotations"] if a["name"] == name]
    assert recorded[0]["reasons"] == ["CORRECT_PASSWORD"]
    assert recorded[0]["account_id"] == "acct-9"


async def test_wait_for_upstream_answers_delivered_and_keeps_nothing(
    make_sidecar: SidecarFactory, emulator: EmulatorHandle, tmp_path: Path
) -> None:
    path = tmp_path / "outbox.db"
    handle = await make_sidecar(outbox=path, outbox_flush_interval=5)
    (name,) = await assessment_names(handle, 1)
    answer = await handle.stub.Annotate(annotation(name, wait_for_upstream=True), timeout=5)
    assert answer.delivery == pb.ANNOTATION_DELIVERY_DELIVERED
    assert await delivered(emulator, [name])
    assert rows(path) == 0


async def test_synchronous_mode_by_config(
    make_sidecar: SidecarFactory, emulator: EmulatorHandle, tmp_path: Path
) -> None:
    handle = await make_sidecar(outbox=tmp_path / "o.db", outbox_wait_for_upstream=True)
    (name,) = await assessment_names(handle, 1)
    answer = await handle.stub.Annotate(annotation(name), timeout=5)
    assert answer.delivery == pb.ANNOTATION_DELIVERY_DELIVERED


async def test_synchronous_rejection_is_reported_and_not_kept(
    make_sidecar: SidecarFactory, tmp_path: Path
) -> None:
    path = tmp_path / "outbox.db"
    handle = await make_sidecar(outbox=path)
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await handle.stub.Annotate(
            annotation("projects/1/assessments/nope", wait_for_upstream=True), timeout=5
        )
    assert caught.value.code() is grpc.StatusCode.NOT_FOUND
    assert (rows(path), rows(path, "dead_letter")) == (0, 0)


async def test_synchronous_mode_answers_queued_when_upstream_is_down(
    make_sidecar: SidecarFactory, emulator: EmulatorHandle, tmp_path: Path
) -> None:
    path = tmp_path / "outbox.db"
    handle = await make_sidecar(outbox=path, outbox_flush_interval=0.05)
    (name,) = await assessment_names(handle, 1)
    await emulator.control.set_faults("annotate", error_rate=1.0)
    answer = await handle.stub.Annotate(annotation(name, wait_for_upstream=True), timeout=5)
    assert answer.delivery == pb.ANNOTATION_DELIVERY_QUEUED
    assert rows(path) == 1
    await emulator.control.clear_faults()
    await eventually(lambda: delivered(emulator, [name]))
    await eventually(lambda: rows(path) == 0)


async def test_poison_annotation_goes_to_the_dead_letter(
    make_sidecar: SidecarFactory, tmp_path: Path
) -> None:
    path = tmp_path / "outbox.db"
    handle = await make_sidecar(
        outbox=path, outbox_max_attempts=2, outbox_flush_interval=0.05, outbox_max_backoff=0.2
    )
    answer = await handle.stub.Annotate(annotation("projects/1/assessments/unknown"), timeout=5)
    assert answer.delivery == pb.ANNOTATION_DELIVERY_QUEUED
    outbox = handle.sidecar.outbox
    assert outbox is not None
    await eventually(lambda: outbox.dead_letter_count() == 1)
    assert outbox.depth() == 0
    with sqlite3.connect(path) as db:
        attempts, error = db.execute("SELECT attempts, last_error FROM dead_letter").fetchone()
    assert attempts == 2 and error.startswith("NOT_FOUND")


async def test_transient_failures_are_retried_until_delivered(
    make_sidecar: SidecarFactory, emulator: EmulatorHandle, tmp_path: Path
) -> None:
    handle = await make_sidecar(
        outbox=tmp_path / "o.db", outbox_flush_interval=0.05, outbox_max_backoff=0.3
    )
    names = await assessment_names(handle, 30)
    await emulator.control.set_faults("annotate", error_rate=0.6, seed=3)
    for name in names:
        await handle.stub.Annotate(annotation(name), timeout=5)
    await eventually(lambda: delivered(emulator, names))
    outbox = handle.sidecar.outbox
    assert outbox is not None
    await eventually(lambda: outbox.depth() == 0)
    assert outbox.dead_letter_count() == 0
    stats = await emulator.control.stats()
    assert stats["injected_failures"]["annotate"] > 0


async def test_rows_survive_a_restart_and_are_resumed(
    make_sidecar: SidecarFactory, emulator: EmulatorHandle, tmp_path: Path
) -> None:
    path = tmp_path / "outbox.db"
    first = await make_sidecar(outbox=path, outbox_flush_interval=0.05)
    names = await assessment_names(first, 5)
    await emulator.control.set_faults("annotate", error_rate=1.0)
    for name in names:
        await first.stub.Annotate(annotation(name), timeout=5)
    await first.sidecar.stop(0)  # no time to flush: everything stays in the file
    assert rows(path) == 5
    await emulator.control.clear_faults()
    second = await make_sidecar(outbox=path, outbox_flush_interval=0.05, outbox_max_backoff=0.2)
    await eventually(lambda: delivered(emulator, names))
    outbox = second.sidecar.outbox
    assert outbox is not None
    await eventually(lambda: outbox.depth() == 0)


async def test_shutdown_flushes_what_it_can(
    make_sidecar: SidecarFactory, emulator: EmulatorHandle, tmp_path: Path
) -> None:
    path = tmp_path / "outbox.db"
    handle = await make_sidecar(outbox=path, outbox_flush_interval=60)
    names = await assessment_names(handle, 10)
    for name in names:
        await handle.stub.Annotate(annotation(name), timeout=5)
    assert rows(path) == 10
    await handle.sidecar.stop(5)
    assert rows(path) == 0
    assert await delivered(emulator, names)


async def test_a_full_outbox_refuses_with_resource_exhausted(
    make_sidecar: SidecarFactory, emulator: EmulatorHandle, tmp_path: Path
) -> None:
    handle = await make_sidecar(outbox=tmp_path / "o.db", outbox_max_items=3)
    await emulator.control.set_faults("annotate", hang=True)
    for _ in range(3):
        await handle.stub.Annotate(annotation("projects/1/assessments/x"), timeout=5)
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await handle.stub.Annotate(annotation("projects/1/assessments/x"), timeout=5)
    assert caught.value.code() is grpc.StatusCode.RESOURCE_EXHAUSTED
    await emulator.control.clear_faults()


async def test_one_outbox_file_belongs_to_one_sidecar(
    make_sidecar: SidecarFactory, tmp_path: Path
) -> None:
    path = tmp_path / "outbox.db"
    await make_sidecar(outbox=path)
    with pytest.raises(StartupError, match="in use by another process") as caught:
        await make_sidecar(outbox=path)
    assert isinstance(caught.value.__cause__, OutboxLocked)


async def test_outbox_file_is_wal_and_private(make_sidecar: SidecarFactory, tmp_path: Path) -> None:
    path = tmp_path / "deeper" / "outbox.db"
    await make_sidecar(outbox=path)
    assert path.stat().st_mode & 0o077 == 0
    with sqlite3.connect(path) as db:
        assert db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
