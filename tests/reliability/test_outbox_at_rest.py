"""No clear personal data rests on disk (issue 13 item 13). Every byte of the outbox's db,
-wal and -shm is read after a SIGKILL:

- without a key, once the annotations are delivered, neither the account id
  (`account_id_protection: plain`, the default) nor the transaction reason is left anywhere;
- with `outbox_key_file`, annotations still queued (upstream failing) rest sealed, and the
  next process with the same key delivers them; one with another key keeps them queued,
  never dead-letters them.
"""

from __future__ import annotations

import base64
import os
import secrets
from pathlib import Path

from recaptcha.sidecar.v1 import sidecar_pb2 as pb

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
from tests.support.processes import sqlite_files
from tests.support.prometheus import value as gauge

ANNOTATIONS = 50
ENV = settings_env(outbox_flush_interval=0.1, outbox_batch_size=10, outbox_max_backoff=1.0)


def on_disk(outbox: Path) -> bytes:
    """Every byte of the database, its WAL and its shared-memory file."""
    return b"".join(path.read_bytes() for path in sqlite_files(outbox))


async def annotate(address: str, names: list[str], account: str, reason: str) -> None:
    async with sidecar_stubs(address) as (stub, _):
        for index, name in enumerate(names):
            answer = await stub.Annotate(
                pb.AnnotateRequest(
                    assessment_name=name,
                    annotation=pb.ANNOTATION_LEGITIMATE,
                    account_id=f"{account}-{index:03d}",
                    transaction_event=pb.TransactionEvent(reason=f"{reason}-{index:03d}"),
                ),
                timeout=10,
            )
            assert answer.delivery == pb.ANNOTATION_DELIVERY_QUEUED


async def test_delivered_annotations_leave_no_clear_data_on_disk(tmp_path: Path) -> None:
    emulator, upstream = start_emulator()
    outbox = tmp_path / "outbox.db"
    metrics = f"127.0.0.1:{free_port()}"
    account, reason = "acct-" + secrets.token_hex(6), "reason-" + secrets.token_hex(6)
    try:
        maker, address = start_sidecar(upstream)
        names = await make_assessments(address, ANNOTATIONS)
        maker.terminate()
        sidecar, address = start_sidecar(
            upstream, "--outbox", str(outbox), "--metrics-listen", metrics, env=ENV
        )
        await annotate(address, names, account, reason)
        async with control(upstream) as emulated:

            async def all_delivered() -> bool:
                return int((await emulated.stats())["annotate_calls"]) >= ANNOTATIONS

            await eventually(all_delivered, timeout=60)
        await eventually(lambda: gauge(metrics, "outbox_depth") == 0, timeout=30)
        sidecar.kill()  # SIGKILL: nothing closes the file
        data = on_disk(outbox)
        assert data, "the files are there"
        copies = data.count(account.encode()) + data.count(reason.encode())
        assert copies == 0, f"{copies} copies of the account id or reason rest on disk"
    finally:
        emulator.kill()


async def test_sealed_annotations_rest_encrypted_and_need_the_same_key(tmp_path: Path) -> None:
    emulator, upstream = start_emulator()
    outbox = tmp_path / "outbox.db"
    key_file, other_key = tmp_path / "outbox-key", tmp_path / "other-key"
    key_file.write_text(base64.b64encode(os.urandom(32)).decode() + "\n")
    other_key.write_text(base64.b64encode(os.urandom(32)).decode() + "\n")
    account, reason = "acct-" + secrets.token_hex(6), "reason-" + secrets.token_hex(6)
    metrics = f"127.0.0.1:{free_port()}"
    try:
        maker, address = start_sidecar(upstream)
        names = await make_assessments(address, ANNOTATIONS)
        maker.terminate()
        async with control(upstream) as emulated:
            await emulated.set_faults("annotate", error_rate=1.0, error_code="UNAVAILABLE")
            sidecar, address = start_sidecar(
                upstream, "--outbox", str(outbox), env={**ENV, **key_env(key_file)}
            )
            await annotate(address, names, account, reason)
            sidecar.kill()
            data = on_disk(outbox)
            assert data.count(account.encode()) == data.count(reason.encode()) == 0
            assert data.count(b"rso1") >= ANNOTATIONS  # each payload sealed

            # Another key: the rows are kept, never sent, never dead-lettered.
            await emulated.clear_faults()
            stranger, _ = start_sidecar(
                upstream,
                "--outbox",
                str(outbox),
                "--metrics-listen",
                metrics,
                env={**ENV, **key_env(other_key)},
            )
            await eventually(lambda: gauge(metrics, "outbox_depth") == ANNOTATIONS, timeout=30)
            before = int((await emulated.stats())["annotate_calls"])
            assert gauge(metrics, "outbox_dead_letters") == 0
            assert stranger.terminate() == 0
            assert "sealed with a key outbox_key_file does not hold" in stranger.output()

            # The same key again: everything is delivered, as the app sent it.
            owner, _ = start_sidecar(
                upstream, "--outbox", str(outbox), env={**ENV, **key_env(key_file)}
            )

            async def delivered() -> bool:
                return int((await emulated.stats())["annotate_calls"]) - before >= ANNOTATIONS

            await eventually(delivered, timeout=60)
            stats = await emulated.stats()
            sent = {a["account_id"] for a in stats["annotations"]}
            assert {f"{account}-{i:03d}" for i in range(ANNOTATIONS)} <= sent
            assert owner.terminate() == 0
    finally:
        emulator.kill()


def key_env(path: Path) -> dict[str, str]:
    return settings_env(outbox_key_file=path)
