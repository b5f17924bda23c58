"""The durable annotation queue as the event loop sees it.

SQLite calls block, so every one of them runs on a single dedicated thread that owns the
connection; the loop only waits on futures. Appends arriving together share one transaction
and one fsync (group commit), so durability does not cost one disk flush per annotation.
Memory stays bounded: at most `max_pending` appends wait for the disk and at most
`max_items` rows are queued; past either, `Overloaded`.

A damaged file never keeps the sidecar down: `open` moves it aside with its `-wal` and `-shm`
(`outbox.db.corrupt-<UTC time>`, which SQLite can still open to recover rows from), logs and
counts it, and starts an empty queue. Payloads are sealed at rest when a key is configured
(`sidecar.outbox.sealing`).
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import logging
import time
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import TypeVar

from sidecar.core.errors import Overloaded
from sidecar.core.model import AnnotationRequest
from sidecar.outbox import codec
from sidecar.outbox.sealing import PlainSealer, Sealer
from sidecar.outbox.store import OutboxDamaged, OutboxStore, Retry, Row

log = logging.getLogger(__name__)

T = TypeVar("T")


def move_aside(path: Path) -> Path:
    """Rename a damaged outbox file and its `-wal` / `-shm` to `<name>.corrupt-<UTC time>`
    (and `…-wal`, `…-shm`, so that SQLite opens them together); the new name."""
    stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime())
    aside = path.with_name(f"{path.name}.corrupt-{stamp}")
    serial = 1
    while aside.exists():
        serial += 1
        aside = path.with_name(f"{path.name}.corrupt-{stamp}-{serial}")
    for suffix in ("-wal", "-shm"):
        companion = Path(f"{path}{suffix}")
        if companion.exists():
            companion.rename(f"{aside}{suffix}")
    path.rename(aside)
    return aside


class Outbox:
    """Append, lease, settle; plus the counters telemetry reads (plain methods)."""

    def __init__(
        self,
        store: OutboxStore,
        executor: concurrent.futures.ThreadPoolExecutor,
        *,
        max_items: int,
        max_pending: int,
        sealer: Sealer | None = None,
        clock: Callable[[], float] = time.time,
        moved_aside: int = 0,
    ) -> None:
        self._store = store
        self._sealer = sealer or PlainSealer()
        self.moved_aside = moved_aside  # damaged files moved aside at open (the metric)
        self._executor = executor
        self._max_items = max_items
        self._max_pending = max_pending
        self._clock = clock
        self._pending: list[tuple[bytes, bool, asyncio.Future[int]]] = []
        self._committer: asyncio.Task[None] | None = None
        self._trigger = asyncio.Event()
        self._since_trigger = 0
        self.trigger_after = 100  # rows appended that make the flusher send at once
        self._closed = False

    @classmethod
    async def open(
        cls,
        path: Path,
        *,
        max_items: int,
        max_pending: int = 10_000,
        clock: Callable[[], float] = time.time,
        sealer: Sealer | None = None,
    ) -> Outbox:
        """Open (or create) the file and take ownership of it; rows a previous process left
        are queued again. A damaged file is moved aside and an empty queue started; a file
        of a newer schema (`OutboxTooNew`), I/O, space and lock errors stop the start."""
        executor = concurrent.futures.ThreadPoolExecutor(1, thread_name_prefix="outbox")
        loop = asyncio.get_running_loop()
        moved = 0
        try:
            try:
                store = await loop.run_in_executor(executor, OutboxStore, path)
            except OutboxDamaged as damage:
                aside = await loop.run_in_executor(executor, move_aside, path)
                moved = 1
                log.error(
                    "outbox file damaged: moved aside, starting an empty queue "
                    "(docs/annotations.md says how to recover its rows)",
                    extra={"damage": str(damage)[:300], "moved_to": str(aside)},
                )
                store = await loop.run_in_executor(executor, OutboxStore, path)
        except BaseException:
            executor.shutdown(wait=False)
            raise
        if store.depth:
            log.info("outbox resumes queued annotations", extra={"depth": store.depth})
        return cls(
            store,
            executor,
            max_items=max_items,
            max_pending=max_pending,
            sealer=sealer,
            moved_aside=moved,
            clock=clock,
        )

    # ---- telemetry (plain methods: read from any thread, no I/O) ----

    def depth(self) -> int:
        """Annotations queued and not yet accepted upstream."""
        return self._store.depth

    def oldest_age(self) -> float:
        """Seconds the oldest queued annotation has waited; 0 when the queue is empty."""
        oldest = self._store.oldest_created
        if not self._store.depth or oldest is None:
            return 0.0
        return max(0.0, self._clock() - oldest)

    def local_depth(self) -> int:
        """The whole queue: this process owns the file."""
        return self._store.depth

    def dead_letter_count(self) -> int:
        """Annotations given up on (in the `dead_letter` table)."""
        return self._store.dead_letters

    def pending_appends(self) -> int:
        return len(self._pending)

    @property
    def path(self) -> Path:
        return self._store.path

    # ---- appends ----

    async def append(self, request: AnnotationRequest, *, lease: bool = False) -> int:
        """Store one annotation durably (fsynced) and return its row id. With `lease`, the
        row is reserved for the caller, who must settle or release it."""
        if self._closed:
            raise Overloaded("outbox is closed: the sidecar is shutting down")
        if len(self._pending) >= self._max_pending:
            raise Overloaded("outbox overloaded: too many annotations waiting for the disk")
        if self._store.depth + len(self._pending) >= self._max_items:
            raise Overloaded("outbox full: upstream has not accepted annotations for a while")
        future: asyncio.Future[int] = asyncio.get_running_loop().create_future()
        self._pending.append((self._sealer.seal(codec.encode(request)), lease, future))
        if self._committer is None or self._committer.done():
            self._committer = asyncio.create_task(self._commit())
        return await asyncio.shield(future)

    async def wait_trigger(self, timeout: float) -> None:
        """Return once `trigger_after` rows were appended since the last call, `kick` was
        called, or `timeout` seconds passed: the flusher's size and time triggers."""
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._trigger.wait(), timeout)
        self._trigger.clear()
        self._since_trigger = 0

    def kick(self) -> None:
        """Wake the flusher now."""
        self._trigger.set()

    async def _commit(self) -> None:
        """Write every waiting append in one transaction, until none is waiting."""
        while self._pending:
            group, self._pending = self._pending, []
            try:
                ids = await self._run(
                    self._store.insert,
                    [payload for payload, _, _ in group],
                    self._clock(),
                    [lease for _, lease, _ in group],
                )
            except Exception as error:  # disk full, I/O error: refuse, never pretend
                log.error("outbox write failed: %s", type(error).__name__)
                for _, _, future in group:
                    if not future.done():
                        future.set_exception(Overloaded("outbox write failed"))
                continue
            for (_, _, future), row_id in zip(group, ids, strict=True):
                if not future.done():
                    future.set_result(row_id)
            self._since_trigger += len(ids)
            if self._since_trigger >= self.trigger_after:
                self._trigger.set()

    # ---- the flusher's side ----

    def read(self, payload: bytes) -> AnnotationRequest:
        """A stored payload → the annotation: `UnsealableRow` when no configured key opens
        it, ValueError (and friends) when it is not a record at all."""
        return codec.decode(self._sealer.open(payload))

    async def lease_due(self, limit: int, *, after_id: int | None = None) -> list[Row]:
        return await self._run(self._store.lease_due, self._clock(), limit, after_id=after_id)

    async def settle(
        self,
        delivered: Iterable[int] = (),
        retries: Iterable[Retry] = (),
        dead: Iterable[tuple[int, str]] = (),
    ) -> None:
        await self._run(
            self._store.settle, list(delivered), list(retries), list(dead), self._clock()
        )

    def release_soon(self, ids: Sequence[int]) -> None:
        """Give leases back without waiting (safe from a cancelled task)."""
        if ids:
            self._executor.submit(self._store.release, list(ids))

    async def close(self) -> None:
        """Finish pending appends, then close the file and free the thread."""
        self._closed = True
        if self._committer is not None:
            await asyncio.gather(self._committer, return_exceptions=True)
        try:
            await self._run(self._store.close)
        finally:
            self._executor.shutdown(wait=False)

    async def _run(self, fn: Callable[..., T], *args: object, **kwargs: object) -> T:
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._executor, lambda: fn(*args, **kwargs))
