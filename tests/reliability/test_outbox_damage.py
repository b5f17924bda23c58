"""A damaged outbox file never keeps Assess down (issue 13 item 8).

Real sidecar processes on real files: a corrupted, truncated or foreign SQLite file is moved
aside with its -wal and -shm (`outbox.db.corrupt-<time>`), logged and counted, and the sidecar
serves with a fresh queue; a file from a newer schema refuses to start with one line naming
both versions; I/O and lock errors are not damage and never move a file.
"""

from __future__ import annotations

import hashlib
import os
import resource
import signal
import sqlite3
import subprocess
import sys
import textwrap
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from recaptcha.sidecar.v1 import sidecar_pb2 as pb

from sidecar.emulator import mint_token
from sidecar.outbox.store import SCHEMA_VERSION, OutboxStore
from tests.support.fleet import sidecar_stubs, start_emulator, start_sidecar
from tests.support.network import free_port
from tests.support.processes import ROOT, Process, sqlite_files
from tests.support.prometheus import value


@pytest.fixture
def upstream() -> Iterator[str]:
    emulator, address = start_emulator()
    yield address
    emulator.kill()


def digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def left_with_wal(path: Path, rows: int = 5) -> None:
    """An outbox a killed sidecar left behind: its last rows in the WAL, -wal and -shm beside
    it (the process ends without closing the file)."""
    script = textwrap.dedent(
        f"""
        import os, time
        from pathlib import Path
        from sidecar.outbox.store import OutboxStore
        store = OutboxStore(Path({str(path)!r}))
        store.insert([b'{{"v":1,"name":"projects/p/assessments/a"}}'] * {rows}, time.time(),
                     [False] * {rows})
        os._exit(0)
        """
    )
    subprocess.run([sys.executable, "-c", script], cwd=ROOT, check=True, timeout=60)
    assert Path(f"{path}-wal").exists() and Path(f"{path}-shm").exists()


def filled(path: Path, rows: int = 300) -> None:
    store = OutboxStore(path)
    store.insert([os.urandom(3000) for _ in range(rows)], time.time(), [False] * rows)
    store.close()


def damage(kind: str, path: Path) -> None:
    if kind == "random_bytes":
        path.write_bytes(os.urandom(64 * 1024))
    elif kind == "bad_pages_with_wal":
        # Pages in the middle of the file overwritten (not the header page, which the WAL
        # would hold a good copy of), while the last writes still sit in the WAL.
        filled(path)
        left_with_wal(path)
        with path.open("r+b") as file:
            file.seek(path.stat().st_size // 2)
            file.write(os.urandom(16 * 4096))
    elif kind == "truncated":
        filled(path)
        size = path.stat().st_size
        with path.open("r+b") as file:
            file.truncate(size // 2)
    elif kind == "foreign_schema":
        db = sqlite3.connect(path)
        db.execute("CREATE TABLE outbox (x TEXT)")
        db.execute("INSERT INTO outbox VALUES ('someone else''s data')")
        db.commit()
        db.close()
    else:
        raise AssertionError(kind)


def digests(path: Path) -> dict[str, str]:
    """SHA-256 of a database file and of its -wal and -shm, those that exist."""
    return {file.name.removeprefix(path.name): digest(file) for file in sqlite_files(path)}


def moved_aside(directory: Path) -> list[Path]:
    return sorted(directory.glob("outbox.db.corrupt-*Z"))


def damaged_files_counted(metrics: str) -> float:
    return value(metrics, "outbox_damaged_files_total")


@pytest.mark.parametrize(
    "kind", ["random_bytes", "bad_pages_with_wal", "truncated", "foreign_schema"]
)
async def test_a_damaged_file_is_moved_aside_and_the_sidecar_serves(
    upstream: str, tmp_path: Path, kind: str
) -> None:
    outbox = tmp_path / "outbox.db"
    damage(kind, outbox)
    originals = digests(outbox)
    metrics = f"127.0.0.1:{free_port()}"
    sidecar, address = start_sidecar(
        upstream, "--outbox", str(outbox), "--metrics-listen", metrics, "--log-format", "json"
    )
    try:
        async with sidecar_stubs(address) as (stub, _):
            assessed = await stub.Assess(
                pb.AssessRequest(token=mint_token(action="login"), expected_action="login"),
                timeout=10,
            )
            assert assessed.allowed
            queued = await stub.Annotate(
                pb.AnnotateRequest(
                    assessment_name=assessed.assessment_name, annotation=pb.ANNOTATION_LEGITIMATE
                ),
                timeout=10,
            )
            assert queued.delivery == pb.ANNOTATION_DELIVERY_QUEUED
        assert damaged_files_counted(metrics) == 1
    finally:
        assert sidecar.terminate() == 0
    (aside,) = moved_aside(tmp_path)
    moved = digests(aside)
    # The file and its WAL as they were, moved together (the -shm is an index SQLite
    # rebuilds from the WAL at will: nothing durable, its bytes may change when read).
    assert moved[""] == originals[""]
    if "-wal" in originals:
        assert moved["-wal"] == originals["-wal"] and "-shm" in moved
    output = sidecar.output()
    assert "outbox file damaged: moved aside" in output
    assert "Traceback" not in output
    with sqlite3.connect(outbox) as fresh:  # the new queue is a sound outbox
        assert fresh.execute("PRAGMA user_version").fetchone() == (SCHEMA_VERSION,)


def test_a_file_from_a_newer_schema_refuses_to_start_with_one_line(
    upstream: str, tmp_path: Path
) -> None:
    outbox = tmp_path / "outbox.db"
    OutboxStore(outbox).close()
    db = sqlite3.connect(outbox)
    db.execute(f"PRAGMA user_version={SCHEMA_VERSION + 1}")
    db.close()  # the last connection checkpoints: what is on disk is the whole file
    before = digests(outbox)
    done = subprocess.run(
        [
            *(sys.executable, "-m", "sidecar", "serve", "--project", "p", "--outbox", str(outbox)),
            *("--listen", f"127.0.0.1:{free_port()}", "--upstream-endpoint", upstream),
            "--upstream-plaintext",
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 2
    errors = [line for line in done.stderr.splitlines() if line.startswith("recaptcha-sidecar:")]
    assert len(errors) == 1, done.stderr
    assert f"schema version {SCHEMA_VERSION + 1}" in errors[0]
    assert f"reads up to version {SCHEMA_VERSION}" in errors[0]
    assert "Traceback" not in done.stderr
    assert digests(outbox)[""] == before[""] and not list(tmp_path.glob("*corrupt*"))


def _limit_file_size() -> None:
    """In the child: writes that grow any file past 16 KiB fail (EFBIG), as a full disk
    would; SIGXFSZ ignored so the write fails instead of killing the process."""
    signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
    resource.setrlimit(resource.RLIMIT_FSIZE, (16 * 1024, 16 * 1024))


def test_io_errors_and_locks_are_not_damage(upstream: str, tmp_path: Path) -> None:
    outbox = tmp_path / "outbox.db"
    OutboxStore(outbox).close()
    before = digest(outbox)
    command = [
        *(sys.executable, "-m", "sidecar", "serve", "--project", "p", "--outbox", str(outbox)),
        *("--listen", f"127.0.0.1:{free_port()}", "--upstream-endpoint", upstream),
        "--upstream-plaintext",
    ]
    # The disk refuses writes (EFBIG through RLIMIT_FSIZE): an I/O error, not damage.
    full = subprocess.run(
        command,
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
        preexec_fn=_limit_file_size,
    )
    assert full.returncode == 2, full.stderr
    assert "Traceback" not in full.stderr
    assert digest(outbox) == before and not list(tmp_path.glob("*corrupt*"))
    # Another connection holds the file locked (exclusive locking mode, so that even WAL
    # readers must wait): a lock, not damage.
    holder = sqlite3.connect(outbox, isolation_level=None)
    holder.execute("PRAGMA locking_mode=EXCLUSIVE")
    holder.execute("BEGIN EXCLUSIVE")
    try:
        locked = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=60)
    finally:
        holder.execute("ROLLBACK")
        holder.close()
    assert locked.returncode == 2, locked.stderr
    assert "locked" in locked.stderr
    assert digest(outbox) == before and not list(tmp_path.glob("*corrupt*"))
    # And with the disk back and the lock gone, the same file serves.
    sidecar: Process
    sidecar, _ = start_sidecar(upstream, "--outbox", str(outbox))
    assert sidecar.terminate() == 0
