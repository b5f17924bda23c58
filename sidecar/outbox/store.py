"""The outbox file: SQLite in WAL mode with `synchronous=FULL`, so an acknowledged
annotation survives a crash or power loss.

Every method here blocks and is meant to run on the outbox's single dedicated thread, which
owns the connection; the async facade in `outbox.py` hands work to that thread. One process
owns a file at a time (an exclusive `flock` beside it), so two sidecars never deliver the same
rows. Leases (rows being sent) live in memory: after a crash every row is simply due again,
which makes delivery at-least-once.

A file SQLite reports as damaged at open (SQLITE_CORRUPT, SQLITE_NOTADB, a failed
`PRAGMA quick_check`, tables that are not an outbox's) raises `OutboxDamaged`, so the caller
can move it aside and start a fresh queue; a file from a newer schema raises `OutboxTooNew`
(never moved: the newer sidecar reads it). Every other failure (I/O errors, a full disk,
locks) is not damage and propagates as it is. Deleted rows are overwritten in the file
(`secure_delete`) and the WAL is truncated after deletes, so a delivered annotation does not
rest on disk (see docs/annotations.md for what may remain).
"""

from __future__ import annotations

import fcntl
import os
import sqlite3
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

# PRAGMA user_version of the files this version writes; files from 0 (written before the
# version was recorded) are this same schema.
SCHEMA_VERSION = 1
OUTBOX_COLUMNS = (
    "id",
    "payload",
    "created",
    "attempts",
    "rejections",
    "next_attempt",
    "last_error",
)
DEAD_COLUMNS = ("id", "payload", "created", "attempts", "last_error", "dead_at")
# SQLite's primary result codes for a file that is not a sound database.
_DAMAGE_CODES = frozenset({sqlite3.SQLITE_CORRUPT, sqlite3.SQLITE_NOTADB})

SCHEMA = """
CREATE TABLE IF NOT EXISTS outbox (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    payload BLOB NOT NULL,
    created REAL NOT NULL,
    attempts INTEGER NOT NULL DEFAULT 0,
    rejections INTEGER NOT NULL DEFAULT 0,
    next_attempt REAL NOT NULL DEFAULT 0,
    last_error TEXT NOT NULL DEFAULT ''
);
CREATE INDEX IF NOT EXISTS outbox_due ON outbox (next_attempt, id);
CREATE TABLE IF NOT EXISTS dead_letter (
    id INTEGER PRIMARY KEY,
    payload BLOB NOT NULL,
    created REAL NOT NULL,
    attempts INTEGER NOT NULL,
    last_error TEXT NOT NULL,
    dead_at REAL NOT NULL
);
"""


class OutboxLocked(Exception):
    """Another process owns this outbox file."""


class OutboxDamaged(Exception):
    """The file is not a sound outbox (corrupt, not a database, or another schema)."""


class OutboxTooNew(Exception):
    """The file was written by a newer schema than this version reads (after a rollback)."""


def _check(db: sqlite3.Connection, path: Path) -> int:
    """The schema version of a sound outbox file; `OutboxTooNew`, `OutboxDamaged` (or the
    DatabaseError SQLite raised) otherwise."""
    version = int(db.execute("PRAGMA user_version").fetchone()[0])
    if version > SCHEMA_VERSION:
        raise OutboxTooNew(
            f"outbox {path} was written by schema version {version}; this sidecar reads up "
            f"to version {SCHEMA_VERSION}: run the newer version, or move the file aside to "
            "start an empty queue"
        )
    check = db.execute("PRAGMA quick_check").fetchone()[0]
    if check != "ok":
        raise OutboxDamaged(f"quick_check: {str(check)[:200]}")
    for table, expected in (("outbox", OUTBOX_COLUMNS), ("dead_letter", DEAD_COLUMNS)):
        columns = tuple(row[1] for row in db.execute(f"PRAGMA table_info({table})"))
        if columns and columns != expected:
            raise OutboxDamaged(f"{table} is not an outbox table: columns {columns}")
    return version


def inspect(path: Path) -> None:
    """The checks of `_check` on a read-only connection, before anything opens the file for
    writing: closing a read-write connection would checkpoint the WAL into a damaged file and
    delete the WAL, so what is moved aside would no longer be what was found. Errors that
    are no verdict on the file (it cannot be opened read-only) are left to the real open."""
    try:
        db = sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=5.0)
    except sqlite3.DatabaseError:
        return
    try:
        _check(db, path)
    except sqlite3.DatabaseError as error:
        if is_damage(error):
            raise OutboxDamaged(f"{type(error).__name__}: {error}") from None
    finally:
        db.close()


def is_damage(error: sqlite3.DatabaseError) -> bool:
    """Whether SQLite says the file itself is damaged (never an I/O, space or lock error)."""
    code = getattr(error, "sqlite_errorcode", None)
    return code is not None and code & 0xFF in _DAMAGE_CODES


@dataclass(frozen=True, slots=True)
class Row:
    """One queued annotation as the flusher sees it."""

    id: int
    payload: bytes
    created: float
    attempts: int
    rejections: int


@dataclass(frozen=True, slots=True)
class Retry:
    """A failed attempt: try again at `next_attempt`; `rejected` counts toward dead-letter."""

    id: int
    next_attempt: float
    error: str
    attempted: bool
    rejected: bool


@dataclass(frozen=True, slots=True)
class Counts:
    depth: int
    oldest_created: float | None
    dead_letters: int


class OutboxStore:
    """Blocking access to one outbox file; use from one thread only."""

    def __init__(self, path: Path) -> None:
        self.path = path
        path.parent.mkdir(parents=True, exist_ok=True)
        self._lock_fd = os.open(f"{path}.lock", os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(self._lock_fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(self._lock_fd)
            raise OutboxLocked(f"outbox {path} is in use by another process") from None
        try:
            fresh = not path.exists()
            if not fresh:
                inspect(path)
            self._db = sqlite3.connect(
                str(path), isolation_level=None, check_same_thread=False, timeout=5.0
            )
            try:
                if fresh:
                    os.chmod(path, 0o600)  # annotations carry account ids
                self._open_checked()
            except BaseException:
                self._db.close()
                raise
        except sqlite3.DatabaseError as error:
            os.close(self._lock_fd)
            if is_damage(error):
                raise OutboxDamaged(f"{type(error).__name__}: {error}") from None
            raise
        except BaseException:
            os.close(self._lock_fd)
            raise
        self._leased: set[int] = set()
        # Kept here so that readers on other threads get them without a query.
        counts = self._counts()
        self.depth = counts.depth
        self.oldest_created = counts.oldest_created
        self.dead_letters = counts.dead_letters

    def _open_checked(self) -> None:
        """Check the file is a sound outbox of a schema this version reads, then set it up."""
        version = _check(self._db, self.path)
        mode = self._db.execute("PRAGMA journal_mode=WAL").fetchone()[0]
        if str(mode).lower() != "wal":
            raise sqlite3.OperationalError(f"cannot use WAL on {self.path} (got {mode})")
        self._db.execute("PRAGMA synchronous=FULL")
        self._db.execute("PRAGMA secure_delete=ON")  # deleted rows are zeroed, not left
        self._db.executescript(SCHEMA)
        if version < SCHEMA_VERSION:
            self._db.execute(f"PRAGMA user_version={SCHEMA_VERSION}")

    # ---- writes ----

    def insert(self, payloads: Sequence[bytes], created: float, lease: Sequence[bool]) -> list[int]:
        """Append rows in one transaction (one fsync for the whole group); their ids.
        Rows with `lease` set are handed to the caller at once (a synchronous delivery)."""
        ids = []
        with self._transaction():
            for payload in payloads:
                cursor = self._db.execute(
                    "INSERT INTO outbox (payload, created) VALUES (?, ?)", (payload, created)
                )
                ids.append(int(cursor.lastrowid or 0))
        if self.depth == 0:
            self.oldest_created = created
        self.depth += len(ids)
        for row_id, leased in zip(ids, lease, strict=True):
            if leased:
                self._leased.add(row_id)
        return ids

    def lease_due(self, now: float, limit: int, *, after_id: int | None = None) -> list[Row]:
        """Up to `limit` rows that nobody is sending, leased to the caller until `settle` or
        `release`: those due by `now`, or with `after_id` every row past that id whatever its
        schedule (one pass over the queue, as a drain at shutdown makes)."""
        if after_id is not None:
            query = (
                "SELECT id, payload, created, attempts, rejections FROM outbox "
                "WHERE id > ? ORDER BY id"
            )
            args: tuple[object, ...] = (after_id,)
        else:
            query = (
                "SELECT id, payload, created, attempts, rejections FROM outbox "
                "WHERE next_attempt <= ? ORDER BY next_attempt, id"
            )
            args = (now,)
        rows = []
        for found in self._db.execute(query + " LIMIT ?", (*args, limit + len(self._leased))):
            if found[0] in self._leased:
                continue
            rows.append(Row(*found))
            self._leased.add(found[0])
            if len(rows) >= limit:
                break
        return rows

    def settle(
        self,
        delivered: Iterable[int],
        retries: Iterable[Retry],
        dead: Iterable[tuple[int, str]],
        now: float,
    ) -> None:
        """Apply a batch's results in one transaction: delete what upstream accepted (or
        rejected for good), reschedule failures, move poison rows to the dead letter."""
        delivered, retries, dead = list(delivered), list(retries), list(dead)
        with self._transaction():
            removed = 0
            for row_id in delivered:
                removed += self._db.execute("DELETE FROM outbox WHERE id = ?", (row_id,)).rowcount
            self._db.executemany(
                "UPDATE outbox SET attempts = attempts + ?, rejections = rejections + ?, "
                "next_attempt = ?, last_error = ? WHERE id = ?",
                [
                    (int(r.attempted), int(r.rejected), r.next_attempt, r.error, r.id)
                    for r in retries
                ],
            )
            buried = 0
            for row_id, error in dead:
                buried += self._db.execute(
                    "INSERT OR REPLACE INTO dead_letter "
                    "(id, payload, created, attempts, last_error, dead_at) "
                    "SELECT id, payload, created, attempts + 1, ?, ? FROM outbox WHERE id = ?",
                    (error, now, row_id),
                ).rowcount
                removed += self._db.execute("DELETE FROM outbox WHERE id = ?", (row_id,)).rowcount
        if removed:
            # Delivered rows are zeroed in the pages (secure_delete); truncating the WAL
            # drops the copies of them it still holds. One process owns the file, so no
            # reader makes this wait.
            self._db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        self.depth -= removed
        self.dead_letters += buried
        if removed:
            oldest = self._db.execute("SELECT created FROM outbox ORDER BY id LIMIT 1").fetchone()
            self.oldest_created = None if oldest is None else float(oldest[0])
        self.release([*delivered, *(r.id for r in retries), *(i for i, _ in dead)])

    def release(self, ids: Iterable[int]) -> None:
        """Give leased rows back untouched (for instance when shutdown cut a send short)."""
        for row_id in ids:
            self._leased.discard(row_id)

    # ---- reads ----

    def _counts(self) -> Counts:
        depth = self._db.execute("SELECT COUNT(*) FROM outbox").fetchone()[0]
        oldest = self._db.execute("SELECT created FROM outbox ORDER BY id LIMIT 1").fetchone()
        dead = self._db.execute("SELECT COUNT(*) FROM dead_letter").fetchone()[0]
        return Counts(int(depth), None if oldest is None else float(oldest[0]), int(dead))

    def close(self) -> None:
        try:
            self._db.close()
        finally:
            os.close(self._lock_fd)  # closing the descriptor drops the flock

    def _transaction(self) -> _Transaction:
        return _Transaction(self._db)


class _Transaction:
    """BEGIN IMMEDIATE … COMMIT, or ROLLBACK on error."""

    def __init__(self, db: sqlite3.Connection) -> None:
        self._db = db

    def __enter__(self) -> None:
        self._db.execute("BEGIN IMMEDIATE")

    def __exit__(self, kind: object, value: object, traceback: object) -> None:
        self._db.execute("COMMIT" if kind is None else "ROLLBACK")
