"""The annotation outbox in a Redis stream that every replica shares (`outbox: redis://…`,
any URL form of the replay store), for pods whose disk dies with them.

- **Append** is `XADD` (a script that also enforces `outbox_max_items`), appends arriving
  together in one call, then `WAIT outbox_min_replicas` on the same connection: the app hears
  QUEUED only once the entry is on that many replicas. Payloads are sealed first
  (`outbox_key_file`, required for this outbox): no account id rests in clear in Redis.
- **Delivery** goes through a consumer group: each replica reads new entries into its own
  pending list (`XREADGROUP`), keeps at most `hold_limit` of them, and sends them with the
  flusher. An entry is removed (`XACK` + `XDEL`) only after upstream accepted it; a failed
  send is retried from the replica's own schedule; a poison entry (a rejection `max_attempts`
  times, or a payload that decrypts but cannot be read) moves to the dead-letter stream.
- **A replica that dies** stops refreshing its pending entries (a heartbeat `XCLAIM`s them to
  itself every `claim_idle / 3`); once they have been idle `claim_idle` seconds the others take
  them over (`XAUTOCLAIM`). A replica that stops in order hands its unsent entries back to
  the stream at once. Delivery is at least once: an entry taken over while its first holder
  was still sending it is sent twice.
- A payload no configured key opens is the sidecar's problem, not the entry's: it is left
  for a replica that has the key (never dead-lettered).

All keys share one hash slot (`{<outbox_stream>}`), so each script touches one slot on a
Cluster. Row ids for the flusher are the stream ids as integers (`ms << 32 | seq`).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import secrets
import socket
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from redis.exceptions import RedisError

from sidecar.core.errors import Overloaded
from sidecar.core.model import AnnotationRequest
from sidecar.outbox import codec
from sidecar.outbox.sealing import Sealer, UnsealableRow
from sidecar.outbox.store import Retry, Row
from sidecar.redisconn.keyspace import Command, Keyspace, NotReplicated, Script, require

log = logging.getLogger(__name__)

GROUP = "flushers"
_GROUP_SIZE = 100  # appends per XADD script call
_LOG_EVERY = 30.0  # seconds between two warnings about the same Redis trouble

# KEYS[1] queue. ARGV[1] max items, ARGV[2] created, ARGV[3…] payloads → ids (false: full).
_ADD = Script("""
local room = tonumber(ARGV[1]) - redis.call('XLEN', KEYS[1])
local ids = {}
for i = 3, #ARGV do
  if room <= 0 then
    ids[#ids + 1] = false
  else
    ids[#ids + 1] = redis.call('XADD', KEYS[1], '*', 'p', ARGV[i], 'c', ARGV[2])
    room = room - 1
  end
end
return ids
""")

# KEYS queue, rejections. ARGV[1] group, ARGV[2] consumer, ARGV[3] count → new entries, each
# {id, fields, rejections}.
_READ = Script("""
local got = redis.call('XREADGROUP', 'GROUP', ARGV[1], ARGV[2], 'COUNT', ARGV[3],
                       'STREAMS', KEYS[1], '>')
local out = {}
if got then
  for _, entry in ipairs(got[1][2]) do
    out[#out + 1] = {entry[1], entry[2], redis.call('HGET', KEYS[2], entry[1]) or '0'}
  end
end
return out
""")

# KEYS queue, rejections. ARGV group, consumer, min idle ms, count → entries idle that long
# in any pending list (a dead replica's), now this consumer's.
_RECLAIM = Script("""
local got = redis.call('XAUTOCLAIM', KEYS[1], ARGV[1], ARGV[2], ARGV[3], '0-0',
                       'COUNT', ARGV[4])
local out = {}
for _, entry in ipairs(got[2]) do
  if entry[2] then
    out[#out + 1] = {entry[1], entry[2], redis.call('HGET', KEYS[2], entry[1]) or '0'}
  end
end
return out
""")

# KEYS queue. ARGV group, consumer, ids… → the ids still pending for this consumer, their
# idle time reset (the heartbeat: a live replica's entries are never taken over).
_HEARTBEAT = Script("""
local kept = {}
local claim = {KEYS[1], ARGV[1], ARGV[2], 0}
for i = 3, #ARGV do
  local p = redis.call('XPENDING', KEYS[1], ARGV[1], ARGV[i], ARGV[i], 1)
  if p[1] and p[1][2] == ARGV[2] then
    kept[#kept + 1] = ARGV[i]
    claim[#claim + 1] = ARGV[i]
  end
end
if #kept > 0 then
  claim[#claim + 1] = 'JUSTID'
  redis.call('XCLAIM', unpack(claim))
end
return kept
""")

# KEYS queue, rejections. ARGV group, ids… Upstream accepted them: gone.
_DONE = Script("""
for i = 2, #ARGV do
  redis.call('XACK', KEYS[1], ARGV[1], ARGV[i])
  redis.call('XDEL', KEYS[1], ARGV[i])
  redis.call('HDEL', KEYS[2], ARGV[i])
end
return #ARGV - 1
""")

# KEYS queue, dead, rejections. ARGV group, dead-letter length, then (id, reason) pairs.
_BURY = Script("""
local n = 0
for i = 3, #ARGV, 2 do
  local id = ARGV[i]
  local found = redis.call('XRANGE', KEYS[1], id, id)
  if found[1] then
    redis.call('XADD', KEYS[2], 'MAXLEN', '~', ARGV[2], '*', 'id', id, 'reason', ARGV[i + 1],
               unpack(found[1][2]))
    n = n + 1
  end
  redis.call('XACK', KEYS[1], ARGV[1], id)
  redis.call('XDEL', KEYS[1], id)
  redis.call('HDEL', KEYS[3], id)
end
return n
""")

# KEYS queue, rejections. ARGV group, ids… Back to the stream as new entries (a replica that
# stops hands over what it could not send), rejection counts kept.
_HAND_BACK = Script("""
for i = 2, #ARGV do
  local id = ARGV[i]
  local found = redis.call('XRANGE', KEYS[1], id, id)
  if found[1] then
    local copy = redis.call('XADD', KEYS[1], '*', unpack(found[1][2]))
    local rejected = redis.call('HGET', KEYS[2], id)
    if rejected then redis.call('HSET', KEYS[2], copy, rejected) end
  end
  redis.call('XACK', KEYS[1], ARGV[1], id)
  redis.call('XDEL', KEYS[1], id)
  redis.call('HDEL', KEYS[2], id)
end
return #ARGV - 1
""")

# KEYS queue. ARGV group, min idle ms: consumers with nothing pending, idle that long (gone
# replicas), are forgotten. Never one with pending entries: those would be stranded.
_PRUNE = Script("""
local n = 0
for _, c in ipairs(redis.call('XINFO', 'CONSUMERS', KEYS[1], ARGV[1])) do
  local info = {}
  for j = 1, #c, 2 do info[c[j]] = c[j + 1] end
  if info['pending'] == 0 and info['idle'] > tonumber(ARGV[2]) then
    redis.call('XGROUP', 'DELCONSUMER', KEYS[1], ARGV[1], info['name'])
    n = n + 1
  end
end
return n
""")

# KEYS queue. ARGV group, consumer: leave the group if nothing is pending for us any more.
_LEAVE = Script("""
local p = redis.call('XPENDING', KEYS[1], ARGV[1], '-', '+', 1, ARGV[2])
if #p == 0 then
  return redis.call('XGROUP', 'DELCONSUMER', KEYS[1], ARGV[1], ARGV[2])
end
return -1
""")

# KEYS queue, dead → {queue length, dead letters, oldest id or false}.
_STATS = Script("""
local first = redis.call('XRANGE', KEYS[1], '-', '+', 'COUNT', 1)
return {redis.call('XLEN', KEYS[1]), redis.call('XLEN', KEYS[2]),
        first[1] and first[1][1] or false}
""")


def row_id(stream_id: bytes | str) -> int:
    """`1700000000000-3` → an int that sorts the same way."""
    text = stream_id.decode() if isinstance(stream_id, bytes) else stream_id
    ms, _, seq = text.partition("-")
    return int(ms) << 32 | int(seq or 0)


def stream_id(row: int) -> str:
    return f"{row >> 32}-{row & 0xFFFFFFFF}"


@dataclass
class _Held:
    """An entry in this consumer's pending list, as the flusher schedules it."""

    payload: bytes  # opened (plaintext JSON)
    created: float
    attempts: int = 0
    rejections: int = 0
    due: float = 0.0
    leased: bool = False

    def row(self, row: int) -> Row:
        return Row(row, self.payload, self.created, self.attempts, self.rejections)


class RedisOutbox:
    """The `OutboxQueue` on a Redis stream; see the module docstring."""

    def __init__(
        self,
        keyspace: Keyspace,
        sealer: Sealer,
        *,
        stream: str = "recaptcha-sidecar:outbox",
        max_items: int = 100_000,
        min_replicas: int = 0,
        replication_timeout: float = 1.0,
        claim_idle: float = 30.0,
        hold_limit: int = 1_000,
        consumer: str | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._keys = keyspace
        self._sealer = sealer
        tag = "{" + stream + "}"
        self._queue, self._dead, self._rejected = tag, tag + ":dead", tag + ":rejections"
        self._max_items = max_items
        self._min_replicas = min_replicas
        self._replication_timeout = replication_timeout
        self._claim_idle = claim_idle
        self._hold_limit = hold_limit
        self.consumer = consumer or f"{socket.gethostname()}:{os.getpid()}:{secrets.token_hex(3)}"
        self._clock = clock
        self._held: dict[int, _Held] = {}
        self._provisional: dict[int, bytes] = {}  # leased appends not in Redis yet (sealed)
        self._next_provisional = 0
        self._pending: list[tuple[bytes, asyncio.Future[int]]] = []
        self._committer: asyncio.Task[None] | None = None
        self._maintainer: asyncio.Task[None] | None = None
        self._trigger = asyncio.Event()
        self._since_trigger = 0
        self.trigger_after = 100
        self.moved_aside = 0  # a stream is never moved aside (the SQLite file's metric)
        self._closed = False
        self._depth = 0
        self._dead_letters = 0
        self._oldest: float | None = None
        self._warned: dict[str, float] = {}
        self.appended_total = 0
        self.reclaimed_total = 0
        self.unopened_total = 0  # entries no configured key opens

    @classmethod
    async def open(cls, keyspace: Keyspace, sealer: Sealer, **options: Any) -> RedisOutbox:
        """Join the consumer group and start the heartbeat. Redis unreachable now is not a
        reason to refuse to start: appends fail (the app retries) until it is back."""
        outbox = cls(keyspace, sealer, **options)
        try:
            await outbox._ensure_group()
            await outbox._refresh_counts()
        except (RedisError, OSError) as error:
            outbox._warn("group", "outbox stream not reachable yet: %s", type(error).__name__)
        outbox._maintainer = asyncio.create_task(outbox._maintain(), name="outbox-heartbeat")
        return outbox

    async def _ensure_group(self) -> None:
        """The consumer group, from the stream's start (entries added before any replica
        joined are delivered too)."""
        try:
            await self._keys.run(
                self._queue, Command.of("XGROUP", "CREATE", self._queue, GROUP, "0", "MKSTREAM")
            )
        except RedisError as error:
            if "BUSYGROUP" not in str(error):
                raise

    # ---- telemetry (no I/O: the heartbeat refreshes the figures) -------------------------

    def depth(self) -> int:
        """Annotations in the shared stream (every replica's), as last read."""
        return self._depth

    def local_depth(self) -> int:
        return len(self._held) + len(self._provisional)

    def oldest_age(self) -> float:
        if not self._depth or self._oldest is None:
            return 0.0
        return max(0.0, self._clock() - self._oldest)

    def dead_letter_count(self) -> int:
        return self._dead_letters

    # ---- appends -------------------------------------------------------------------------

    async def append(self, request: AnnotationRequest, *, lease: bool = False) -> int:
        """Queue one annotation; its id once it is on `min_replicas` replicas. A leased
        append (the caller sends it at once) reaches Redis only if that send fails."""
        if self._closed:
            raise Overloaded("outbox is closed: the sidecar is shutting down")
        payload = self._sealer.seal(codec.encode(request))
        if lease:
            self._next_provisional -= 1
            self._provisional[self._next_provisional] = payload
            return self._next_provisional
        if len(self._pending) >= 10 * _GROUP_SIZE:
            raise Overloaded("outbox overloaded: too many annotations waiting for Redis")
        future: asyncio.Future[int] = asyncio.get_running_loop().create_future()
        self._pending.append((payload, future))
        if self._committer is None or self._committer.done():
            self._committer = asyncio.create_task(self._commit())
        return await asyncio.shield(future)

    async def _commit(self) -> None:
        while self._pending:
            group, self._pending = self._pending[:_GROUP_SIZE], self._pending[_GROUP_SIZE:]
            try:
                ids = await self._add([payload for payload, _ in group])
            except Overloaded as error:
                for _, future in group:
                    if not future.done():
                        future.set_exception(error)
                continue
            for (_, future), added in zip(group, ids, strict=True):
                if future.done():
                    continue
                if added is None:
                    future.set_exception(
                        Overloaded("outbox full: upstream has not accepted annotations for a while")
                    )
                else:
                    future.set_result(added)
            self.appended_total += sum(1 for added in ids if added is not None)
            self._since_trigger += len(ids)
            if self._since_trigger >= self.trigger_after:
                self._trigger.set()

    async def _add(self, payloads: list[bytes]) -> list[int | None]:
        """XADD, then WAIT; Overloaded when Redis cannot take them or confirm them."""
        call = _ADD.call([self._queue], [self._max_items, repr(self._clock()), *payloads])
        try:
            replies = await self._keys.run(
                self._queue,
                call,
                wait=self._min_replicas,
                wait_timeout=self._replication_timeout,
            )
            if self._min_replicas:
                require(replies, self._min_replicas, self._replication_timeout)
        except NotReplicated as error:
            self._warn("replication", "outbox append not replicated in time: %s", error)
            raise Overloaded("outbox write not replicated in time") from None
        except (RedisError, OSError) as error:
            self._warn("append", "outbox append failed: %s", type(error).__name__)
            raise Overloaded("outbox unavailable") from None
        return [None if added is None else row_id(added) for added in replies.values[0]]

    async def wait_trigger(self, timeout: float) -> None:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._trigger.wait(), timeout)
        self._trigger.clear()
        self._since_trigger = 0

    def kick(self) -> None:
        self._trigger.set()

    # ---- the flusher's side --------------------------------------------------------------

    def read(self, payload: bytes) -> AnnotationRequest:
        """A leased entry's payload (opened when it was held) → the annotation."""
        return codec.decode(payload)

    async def lease_due(self, limit: int, *, after_id: int | None = None) -> list[Row]:
        now = self._clock()
        rows = self._take(limit, now, after_id)
        room = min(limit - len(rows), self._hold_limit - len(self._held))
        if after_id is None and room > 0 and not self._closed:
            try:
                found = await self._run_script(
                    _READ.call([self._queue, self._rejected], [GROUP, self.consumer, room])
                )
            except (RedisError, OSError) as error:
                self._warn("read", "outbox read failed: %s", type(error).__name__)
                if "NOGROUP" in str(error):  # Redis restarted empty, or was not there at start
                    with contextlib.suppress(RedisError, OSError):
                        await self._ensure_group()
                return rows
            for added in self._hold(found, now):
                self._held[added].leased = True
                rows.append(self._held[added].row(added))
        return rows

    def _take(self, limit: int, now: float, after_id: int | None) -> list[Row]:
        rows = []
        draining = after_id is not None  # one pass in id order, whatever the schedule
        order = sorted(self._held) if draining else sorted(self._held, key=self._due_key)
        for held_id in order:
            held = self._held[held_id]
            if held.leased or (after_id is None and held.due > now):
                continue
            if after_id is not None and held_id <= after_id:
                continue
            held.leased = True
            rows.append(held.row(held_id))
            if len(rows) >= limit:
                break
        return rows

    def _due_key(self, held_id: int) -> tuple[float, int]:
        return self._held[held_id].due, held_id

    def _hold(self, entries: list[Any], now: float) -> list[int]:
        """Entries now in this consumer's pending list → held (opened); their row ids."""
        added = []
        for raw_id, raw_fields, raw_rejections in entries:
            fields = dict(zip(raw_fields[::2], raw_fields[1::2], strict=True))
            held_id = row_id(raw_id)
            if held_id in self._held:
                continue
            try:
                payload = self._sealer.open(fields.get(b"p", b""))
            except (UnsealableRow, ValueError) as error:  # no key here, or not ours
                # Left in our pending list, unheld: no heartbeat keeps it, so after claim_idle
                # any replica (one with the key, we hope) takes it over.
                self.unopened_total += 1
                self._warn("seal", "outbox entry left for a replica with its key: %s", error)
                continue
            try:
                created = float(fields.get(b"c", b"0"))
            except ValueError:
                created = 0.0
            self._held[held_id] = _Held(payload, created, 0, int(raw_rejections or 0), now)
            added.append(held_id)
        return added

    async def settle(
        self,
        delivered: Iterable[int] = (),
        retries: Iterable[Retry] = (),
        dead: Iterable[tuple[int, str]] = (),
    ) -> None:
        delivered, retries, dead = list(delivered), list(retries), list(dead)
        done = [i for i in delivered if i in self._held]
        for provisional in (i for i in delivered if i in self._provisional):
            del self._provisional[provisional]  # upstream took it: it never needed Redis
        queued = [r.id for r in retries if r.id in self._provisional]
        if queued:
            payloads = [self._provisional.pop(i) for i in queued]
            added = await self._add(payloads)  # Overloaded: the caller hears it, not QUEUED
            if any(a is None for a in added):
                raise Overloaded("outbox full: upstream has not accepted annotations for a while")
            self._trigger.set()
        if done:
            await self._run_script(
                _DONE.call([self._queue, self._rejected], [GROUP, *map(stream_id, done)])
            )
        rejected: list[Command] = []
        for retry in retries:
            held = self._held.get(retry.id)
            if held is None:
                continue
            held.due, held.leased = retry.next_attempt, False
            held.attempts += int(retry.attempted)
            if retry.rejected:
                held.rejections += 1
                sid = stream_id(retry.id)
                rejected.append(Command.of("HINCRBY", self._rejected, sid, 1))
        if rejected:
            await self._keys.run(self._queue, *rejected)
        buried = [(i, reason) for i, reason in dead if i in self._held]
        if buried:
            pairs = [part for i, reason in buried for part in (stream_id(i), reason[:500])]
            keys = [self._queue, self._dead, self._rejected]
            count = await self._run_script(_BURY.call(keys, [GROUP, self._max_items, *pairs]))
            self._dead_letters += int(count)
        for held_id in [*done, *(i for i, _ in buried)]:
            self._held.pop(held_id, None)
        self._depth = max(0, self._depth - len(done) - len(buried))

    def release_soon(self, ids: Sequence[int]) -> None:
        for released in ids:
            held = self._held.get(released)
            if held is not None:
                held.leased = False
            # A leased append cut short (cancelled, no answer given): nothing was promised.
            self._provisional.pop(released, None)

    # ---- the heartbeat --------------------------------------------------------------------

    async def _maintain(self) -> None:
        """Keep our pending entries ours, take over a dead replica's, forget gone replicas,
        and refresh the figures telemetry reads."""
        tick = min(1.0, self._claim_idle / 3)
        last_beat = last_reclaim = last_prune = time.monotonic()
        while not self._closed:
            await asyncio.sleep(tick)
            now = time.monotonic()
            try:
                if now - last_beat >= self._claim_idle / 3:
                    await self._heartbeat()
                    last_beat = now
                if now - last_reclaim >= self._claim_idle / 2:
                    await self._reclaim()
                    last_reclaim = now
                if now - last_prune >= 10 * self._claim_idle:
                    idle_ms = round(10 * self._claim_idle * 1000)
                    await self._run_script(_PRUNE.call([self._queue], [GROUP, idle_ms]))
                    last_prune = now
                await self._refresh_counts()
            except (RedisError, OSError) as error:
                self._warn("heartbeat", "outbox heartbeat failed: %s", type(error).__name__)

    async def _heartbeat(self) -> None:
        if not self._held:
            return
        ids = [stream_id(i) for i in self._held]
        kept = await self._run_script(_HEARTBEAT.call([self._queue], [GROUP, self.consumer, *ids]))
        mine = {row_id(k) for k in kept}
        for held_id in [i for i, held in self._held.items() if i not in mine and not held.leased]:
            del self._held[held_id]  # taken over or delivered by another replica

    async def _reclaim(self) -> None:
        room = self._hold_limit - len(self._held)
        if room <= 0:
            return
        idle_ms = round(self._claim_idle * 1000)
        found = await self._run_script(
            _RECLAIM.call([self._queue, self._rejected], [GROUP, self.consumer, idle_ms, room])
        )
        taken = self._hold(found, self._clock())
        if taken:
            self.reclaimed_total += len(taken)
            log.info("outbox took over entries of a silent replica", extra={"count": len(taken)})
            self._trigger.set()

    async def _refresh_counts(self) -> None:
        depth, dead, first = await self._run_script(_STATS.call([self._queue, self._dead], []))
        self._depth, self._dead_letters = int(depth), int(dead)
        self._oldest = None if not first else (row_id(first) >> 32) / 1000

    async def _run_script(self, call: Command) -> Any:
        return (await self._keys.run(self._queue, call)).values[0]

    def _warn(self, what: str, message: str, *args: object) -> None:
        """One warning per kind of trouble per `_LOG_EVERY` seconds (an outage must not
        write a line per call)."""
        now = time.monotonic()
        if now - self._warned.get(what, -_LOG_EVERY) >= _LOG_EVERY:
            self._warned[what] = now
            log.warning(message, *args)

    # ---- shutdown ------------------------------------------------------------------------

    async def close(self) -> None:
        """Finish pending appends, hand unsent entries back to the stream (another replica
        sends them at once, without waiting for `claim_idle`), leave the group."""
        self._closed = True
        if self._committer is not None:
            await asyncio.gather(self._committer, return_exceptions=True)
        if self._maintainer is not None:
            self._maintainer.cancel()
            await asyncio.gather(self._maintainer, return_exceptions=True)
        try:
            if self._held:
                ids = [stream_id(i) for i in self._held]
                await self._run_script(
                    _HAND_BACK.call([self._queue, self._rejected], [GROUP, *ids])
                )
                log.info("outbox handed entries back", extra={"count": len(ids)})
                self._held.clear()
            await self._run_script(_LEAVE.call([self._queue], [GROUP, self.consumer]))
        except (RedisError, OSError) as error:
            log.warning("outbox could not hand entries back: %s", type(error).__name__)
        finally:
            await self._keys.close()
