"""The flusher: sends queued annotations upstream in batches and settles each row.

A batch goes out when `batch_size` rows were appended since the last one, or every
`flush_interval` seconds. Within a batch at most `concurrency` sends run at once, each with
its own retries (the resilient upstream's) and then its own schedule: a row is deleted only
after upstream accepted it; a transient failure (unavailable, deadline) comes back later with
exponential back-off, however long the outage; a rejection of the row itself (the failure kind
`request`: a malformed name, a reason Google refuses, an unknown assessment) counts toward
`max_attempts`, after which the row moves to the dead-letter table.

A sidecar-wide problem (credentials, permission, project, quota: kinds `config` and `quota`,
decided by `classify` from ErrorInfo reasons and field violations, never by the code alone)
says nothing about the row: it never counts against it. It pauses delivery instead: no row is
sent until the pause ends (it grows like a row's back-off while the problem lasts, or follows
Google's RetryInfo), `upstream` health is NOT_SERVING meanwhile (the retry layer's), and
`paused_total` counts the pauses; delivery resumes by itself when the problem clears.
At shutdown `stop` makes one last pass over every row for the time left, each row still
waiting for its own back-off.
"""

from __future__ import annotations

import asyncio
import logging
import random
import time
from collections.abc import Callable
from dataclasses import dataclass

from sidecar.core.backoff import Backoff
from sidecar.core.errors import InvalidArgument
from sidecar.core.logthrottle import ThrottledLog
from sidecar.core.model import AnnotationRequest, Delivery
from sidecar.core.ports import FailureKind, Upstream, UpstreamError, rejected
from sidecar.core.validation import validate_annotation
from sidecar.outbox.queue import OutboxQueue
from sidecar.outbox.sealing import UnsealableRow
from sidecar.outbox.store import Retry, Row

log = logging.getLogger(__name__)

# Why a row went to the dead letter (the `reason` label of outbox.dead_lettered).
REJECTED, UNREADABLE, INVALID, FAILED = "rejected", "unreadable", "invalid", "failed"
DEAD_LETTER_KINDS = (REJECTED, UNREADABLE, INVALID, FAILED)
BREAKER_PAUSE = 1.0  # seconds before a row refused by our own breaker is tried again
DRAIN_PAUSE = 0.1  # seconds between passes over the queue at shutdown
# Failures that say the sidecar, not the row, is wrong: they pause delivery.
SIDECAR_WIDE = frozenset({FailureKind.CONFIG, FailureKind.QUOTA})


@dataclass(frozen=True, slots=True)
class FlushSettings:
    """Built from the settings (`outbox_*`, `upstream_timeout`) by the composition root."""

    batch_size: int
    flush_interval: float
    concurrency: int
    max_attempts: int
    send_timeout: float
    max_backoff: float
    initial_backoff: float = 0.5  # no setting: the first back-off after a failed send


@dataclass(frozen=True, slots=True)
class Judgement:
    """What to do with a row after one send."""

    delivered: bool = False
    retry: Retry | None = None
    dead: str = ""  # the reason, when the row goes to the dead letter


def backoff(settings: FlushSettings, attempts: int) -> float:
    """The shared back-off rule (`core.backoff`) with jitter in [half, full] of the ceiling:
    rows failed together spread out, and none is tried again at once."""
    return Backoff(settings.initial_backoff, settings.max_backoff).delay(attempts, floor=0.5)


def judge(row: Row, error: UpstreamError | None, now: float, settings: FlushSettings) -> Judgement:
    """The fate of a row after one send (pure, so it is tested on its own). A sidecar-wide
    problem is not judged here: the flusher pauses (see `Flusher`) and the row waits, uncounted."""
    if error is None:
        return Judgement(delivered=True)
    reason = f"{error.code}: {error}"[:500]
    if error.kind is FailureKind.REQUEST:
        if row.rejections + 1 >= settings.max_attempts:
            return Judgement(dead=reason)
        delay = backoff(settings, row.rejections)
        return Judgement(retry=Retry(row.id, now + delay, reason, attempted=True, rejected=True))
    if error.reached is False and error.code == "BREAKER_OPEN":
        pause = BREAKER_PAUSE * random.uniform(1.0, 2.0)
        return Judgement(retry=Retry(row.id, now + pause, reason, attempted=False, rejected=False))
    delay = backoff(settings, row.attempts)
    return Judgement(retry=Retry(row.id, now + delay, reason, attempted=True, rejected=False))


def sidecar_wide(error: UpstreamError | None) -> bool:
    """Credentials, permission, project or quota: nothing the row can be blamed for."""
    return error is not None and error.kind in SIDECAR_WIDE


class Flusher:
    """Drains an outbox (SQLite or Redis) into an `Upstream`."""

    def __init__(
        self,
        outbox: OutboxQueue,
        upstream: Upstream,
        settings: FlushSettings,
        *,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._outbox = outbox
        self._upstream = upstream
        self._settings = settings
        self._clock = clock
        self._gate = asyncio.Semaphore(self._settings.concurrency)
        self._task: asyncio.Task[None] | None = None
        self._stopping = False
        self.paused_total = 0  # pauses begun for a sidecar-wide problem
        self._paused_until = 0.0  # on `clock`: no row is sent before this
        self._pauses = 0  # pauses in a row, for the back-off; an accepted send resets it
        # Rows moved to the dead letter by this process, by why (the outbox.dead_lettered
        # metric): rejected by upstream, unreadable, invalid (no request can be built), failed.
        self.dead_lettered = dict.fromkeys(DEAD_LETTER_KINDS, 0)
        self._log = ThrottledLog(log)

    def dead_letter_counts(self) -> dict[str, int]:
        """Rows moved to the dead letter by this process, by reason (for the metric)."""
        return dict(self.dead_lettered)

    def start(self) -> None:
        if self._task is None:
            self._task = asyncio.create_task(self._run(), name="outbox-flusher")

    async def _run(self) -> None:
        self._outbox.trigger_after = self._settings.batch_size
        while not self._stopping:
            # Size trigger: a batch's worth appended. Time trigger: the interval passed,
            # which also picks up rows whose back-off has expired.
            await self._outbox.wait_trigger(self._settings.flush_interval)
            try:
                while not self._stopping:
                    sent, _ = await self._flush_once(deadline=None)
                    if sent < self._settings.batch_size:
                        break
            except asyncio.CancelledError:
                raise
            except Exception as error:  # the file, not a row (rows never raise: `_send`)
                self._log.warning(
                    "flush_failed",
                    "outbox flush failed; retrying after the interval: %s",
                    type(error).__name__,
                )

    @property
    def paused(self) -> bool:
        """True while delivery waits out a sidecar-wide problem."""
        return self._clock() < self._paused_until

    def _pause(self, error: UpstreamError) -> float:
        """Begin (or extend) a pause; returns when it ends. Google's RetryInfo, when it gave
        one, decides its length; else it grows like a row's back-off."""
        now = self._clock()
        length = (
            error.pushback if error.pushback is not None else backoff(self._settings, self._pauses)
        )
        until = now + length
        if until > self._paused_until:
            if self._paused_until <= now:
                self.paused_total += 1
                self._pauses += 1
                log.warning(
                    "annotation delivery paused: upstream refused the sidecar",
                    extra={"code": error.code, "failure_kind": error.kind.value, "seconds": length},
                )
            self._paused_until = until
        return self._paused_until

    async def _flush_once(
        self, *, deadline: float | None, after_id: int | None = None
    ) -> tuple[int, int]:
        """Lease one batch, send it, settle it: (rows leased, last row id)."""
        if self.paused:
            return 0, after_id or 0
        rows = await self._outbox.lease_due(self._settings.batch_size, after_id=after_id)
        if not rows:
            return 0, after_id or 0
        try:
            results = await asyncio.gather(*(self._send(row, deadline) for row in rows))
            delivered, retries, dead, cut = self._sort(rows, results)
            await self._outbox.settle(delivered, retries, dead)
        except BaseException:
            self._outbox.release_soon([row.id for row in rows])  # due again, never stuck
            raise
        self._outbox.release_soon(cut)
        if dead:
            log.warning("annotations moved to the dead letter", extra={"count": len(dead)})
        return len(rows), rows[-1].id

    @staticmethod
    def _sort(
        rows: list[Row], results: list[Judgement | None]
    ) -> tuple[list[int], list[Retry], list[tuple[int, str]], list[int]]:
        delivered, retries, dead, cut = [], [], [], []
        for row, judgement in zip(rows, results, strict=True):
            if judgement is None:
                cut.append(row.id)
            elif judgement.delivered:
                delivered.append(row.id)
            elif judgement.retry is not None:
                retries.append(judgement.retry)
            else:
                dead.append((row.id, judgement.dead))
        return delivered, retries, dead, cut

    async def _send(self, row: Row, deadline: float | None) -> Judgement | None:
        """One row upstream; None when time ran out before it could be sent. Never raises:
        one bad row must not stall the batch (a raise would re-lease all of it forever).

        A row that cannot be read, or that no upstream request can be built from (an enum
        name this version does not know after a rollback, a time out of range), goes to the
        dead letter at once; any other surprise counts as a rejection of that row, so it
        ends in the dead letter after `max_attempts` rather than looping."""
        try:
            request = self._outbox.read(row.payload)
            validate_annotation(request)
        except UnsealableRow:
            # The key file, not the row: keep it, and try again once the key may be back.
            self._log.warning(
                "unsealable",
                "outbox rows sealed with a key outbox_key_file does not hold: kept, not sent",
            )
            retry_at = self._clock() + self._settings.max_backoff
            reason = "unsealable: outbox_key_file"
            return Judgement(retry=Retry(row.id, retry_at, reason, attempted=False, rejected=False))
        except (ValueError, KeyError, TypeError) as error:
            return self._bury(row, UNREADABLE, f"unreadable: {type(error).__name__}")
        except InvalidArgument as error:
            return self._bury(row, INVALID, f"invalid: {error.field}")
        async with self._gate:
            timeout = self._settings.send_timeout
            if deadline is not None:
                timeout = min(timeout, deadline - time.monotonic())
                if timeout <= 0:
                    return None
            if self.paused:
                return None  # another send of this batch began a pause: wait with it
            try:
                await self._upstream.annotate(request, timeout=timeout)
            except UpstreamError as error:
                if sidecar_wide(error):
                    until = self._pause(error)
                    reason = f"{error.code}: {error}"[:500]
                    return Judgement(
                        retry=Retry(row.id, until, reason, attempted=False, rejected=False)
                    )
                judgement = judge(row, error, self._clock(), self._settings)
                if judgement.dead:
                    self.dead_lettered[REJECTED] += 1
                return judgement
            except InvalidArgument as error:  # upstream cannot be asked with this row
                return self._bury(row, INVALID, f"invalid: {error.field}")
            except Exception as error:  # a bug: this row only, bounded by max_attempts
                self._log.warning("send_failed", "outbox send failed: %s", type(error).__name__)
                reason = f"failed: {type(error).__name__}"
                if row.rejections + 1 >= self._settings.max_attempts:
                    return self._bury(row, FAILED, reason)
                delay = backoff(self._settings, row.rejections)
                retry = Retry(row.id, self._clock() + delay, reason, attempted=True, rejected=True)
                return Judgement(retry=retry)
        self._pauses = 0
        return Judgement(delivered=True)

    def _bury(self, row: Row, kind: str, reason: str) -> Judgement:
        self.dead_lettered[kind] += 1
        self._log.warning(
            f"dead_{kind}", "outbox row moved to the dead letter", extra={"reason": reason}
        )
        return Judgement(dead=reason)

    async def deliver_now(
        self, row_id: int, request: AnnotationRequest, timeout: float
    ) -> Delivery:
        """Synchronous delivery of a row leased at append: DELIVERED once upstream accepted
        it; `UpstreamRejected` when upstream refused the annotation itself (the row is
        dropped: the caller has the answer); QUEUED when upstream could not be reached in
        time (the row stays queued and the flusher keeps trying)."""
        row = Row(row_id, b"", 0.0, 0, 0)
        try:
            timeout = min(timeout, self._settings.send_timeout)
            if timeout <= 0:  # queued for the flusher, durably before the answer says so
                await self._outbox.settle(retries=[Retry(row_id, self._clock(), "", False, False)])
                return Delivery.QUEUED
            await self._upstream.annotate(request, timeout=timeout)
        except UpstreamError as error:
            if error.kind is FailureKind.REQUEST:
                await self._outbox.settle(delivered=[row_id])  # reported, not queued
                raise rejected(error) from None
            if sidecar_wide(error):
                reason = f"{error.code}: {error}"[:500]
                retry = Retry(row_id, self._pause(error), reason, attempted=False, rejected=False)
            else:
                judgement = judge(row, error, self._clock(), self._settings)
                assert judgement.retry is not None
                retry = judgement.retry
            await self._outbox.settle(retries=[retry])
            return Delivery.QUEUED
        except BaseException:
            self._outbox.release_soon([row_id])
            raise
        await self._outbox.settle(delivered=[row_id])
        return Delivery.DELIVERED

    async def stop(self, timeout: float) -> int:
        """Stop the loop, then keep sending rows as they fall due until the queue is empty or
        `timeout` seconds are spent; how many rows are left (they stay in the file for the
        next start). A row that failed waits for its own back-off here too: a permanently
        failing row is not re-sent on every pass. Never raises: whatever goes wrong here (the
        file, a bug) is logged, and the rest of the shutdown still closes everything."""
        self._stopping = True
        self._outbox.kick()
        deadline = time.monotonic() + max(0.0, timeout)
        if self._task is not None:
            done, _ = await asyncio.wait({self._task}, timeout=max(0.0, timeout))
            if not done:
                self._task.cancel()
                await asyncio.gather(self._task, return_exceptions=True)
        try:
            while time.monotonic() < deadline and self._outbox.local_depth():
                leased, _ = await self._flush_once(deadline=deadline)
                if leased < self._settings.batch_size:  # nothing more is due now
                    await asyncio.sleep(min(DRAIN_PAUSE, max(0.0, deadline - time.monotonic())))
        except Exception as error:
            log.error("outbox drain at shutdown failed: %s", type(error).__name__)
        return self._outbox.local_depth()
