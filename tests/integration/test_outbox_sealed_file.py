"""The SQLite outbox seals its payloads with `outbox_key_file` too (the same component as the
Redis outbox): while annotations wait for upstream, no byte of the database, its -wal or -shm
holds the account id or the free-text reason."""

from __future__ import annotations

import base64
import os
from pathlib import Path

from recaptcha.sidecar.v1 import sidecar_pb2 as pb

from tests.conftest import EmulatorHandle, SidecarFactory
from tests.integration.test_outbox import annotation, assessment_names, delivered, eventually

ACCOUNT = "acct-55aa-bob@example.com"
REASON = "chargeback: card ending 1881"


def file_bytes(path: Path) -> bytes:
    return b"".join(
        p.read_bytes() for p in (path, Path(f"{path}-wal"), Path(f"{path}-shm")) if p.exists()
    )


async def test_queued_payloads_are_sealed_in_the_file(
    make_sidecar: SidecarFactory, emulator: EmulatorHandle, tmp_path: Path
) -> None:
    key = tmp_path / "outbox.key"
    key.write_text(base64.b64encode(os.urandom(32)).decode())
    path = tmp_path / "outbox.db"
    handle = await make_sidecar(outbox=path, outbox_key_file=key, outbox_flush_interval=0.05)
    names = await assessment_names(handle, 3)
    await emulator.control.set_faults("annotate", error_rate=1.0)
    for name in names:
        event = pb.TransactionEvent(
            event_type=pb.TRANSACTION_EVENT_TYPE_CHARGEBACK, reason=REASON, value=3.0
        )
        await handle.stub.Annotate(
            annotation(name, account_id=ACCOUNT, transaction_event=event), timeout=5
        )
    outbox = handle.sidecar.outbox
    assert outbox is not None and outbox.depth() == 3
    at_rest = file_bytes(path)
    assert names[0].encode() not in at_rest  # the whole payload is sealed
    for secret in (ACCOUNT, "bob@example.com", REASON, "1881"):
        assert secret.encode() not in at_rest
    await emulator.control.clear_faults()
    await eventually(lambda: delivered(emulator, names))
    stats = await emulator.control.stats()
    assert {a["account_id"] for a in stats["annotations"]} == {ACCOUNT}
