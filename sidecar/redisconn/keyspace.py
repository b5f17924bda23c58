"""Commands on one key, run on the primary that owns it, whatever the deployment's shape:
what the stores that share Redis (replay store, outbox, rate limits) send their commands with.

Every `run` is one pipeline (`transaction=False`) on one pooled connection of that primary,
optionally followed by `WAIT n timeout`. WAIT counts the replicas that acknowledged the writes
of *the connection that sends it*, so it proves something only there; inside MULTI it answers
at once, hence no transaction. For a standalone server or a Sentinel-managed primary there is
one client; for a Cluster the slot map is read with `CLUSTER SLOTS` and each primary gets a
standalone client of its own (redis-py's cluster client would route a bare WAIT to a default
node, which proves nothing, and in redis-py 8.1 a burst of new connections races with its
own reconnect logic). MOVED (the slot has a new owner) reads the slot map again and goes
there; ASK (a slot being migrated) sends `ASKING` first, on the target; a node that cannot be
reached has the map read again for the next call.

Auto-pipelining: on a standalone server, the runs without a WAIT that calls
issue in the same event-loop iteration go out together as one pipeline (`_Coalescer`), the
way node-redis and ioredis do it. At saturation a cache miss's claim and another call's settle
then share a round trip, a pooled connection and redis-py's per-pipeline work (0.17 ms of CPU
per command alone, docs/benchmark.md). Each run still gets its own replies, in order, and
its own errors; a run with a WAIT keeps a pipeline of its own, since WAIT proves only its own
connection's writes.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import random
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, TypeAlias

from redis.asyncio import Redis
from redis.crc import REDIS_CLUSTER_HASH_SLOTS, key_slot
from redis.exceptions import AskError, MovedError, NoScriptError, RedisError, ResponseError
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError

from sidecar.redisconn.client import node_client, standalone_client
from sidecar.redisconn.url import RedisUrl, Shape, parse_redis_url

log = logging.getLogger(__name__)

Arg: TypeAlias = bytes | str | int | float
Address: TypeAlias = tuple[str, int]
_REDIRECTS = 3  # MOVED/ASK hops followed per call before giving up
# Pipelines of coalesced runs on their way to one primary at once: more than one, so that a
# slow reply does not hold up every call behind it (each still bounded by the socket timeout).
_IN_FLIGHT = 2


@dataclass(frozen=True)
class Command:
    """One command of a pipeline, and options for redis-py's reply parser (`get=True` for
    `SET … GET`). A script call carries its text as `fallback`, sent when the node does not
    have the script cached yet (a new node, a failover, a restart)."""

    args: tuple[Arg, ...]
    options: tuple[tuple[str, Any], ...] = ()
    fallback: tuple[Arg, ...] = ()

    @classmethod
    def of(cls, *args: Arg, **options: Any) -> Command:
        return cls(args, tuple(options.items()))


@dataclass(frozen=True)
class Script:
    """A Lua script, called by its SHA-1 (`EVALSHA`), by its text when not cached."""

    text: str

    @property
    def sha(self) -> str:
        return hashlib.sha1(self.text.encode(), usedforsecurity=False).hexdigest()

    def call(self, keys: Sequence[str], args: Sequence[Arg]) -> Command:
        tail = (len(keys), *keys, *args)
        return Command(("EVALSHA", self.sha, *tail), fallback=("EVAL", self.text, *tail))


@dataclass(frozen=True)
class Replies:
    """What a `run` gave: one reply per command (in order) and, when a WAIT was asked for,
    how many replicas acknowledged every write of that connection (else None)."""

    values: list[Any]
    acked: int | None = None


class NotReplicated(RedisError):
    """A write landed on the primary but fewer replicas than asked acknowledged it in time."""


def require(replies: Replies, replicas: int, timeout: float) -> None:
    """NotReplicated unless the WAIT of `replies` reached `replicas`."""
    acked = replies.acked or 0
    if acked < replicas:
        ms = max(1, round(timeout * 1000))
        raise NotReplicated(f"acknowledged by {acked} of {replicas} replicas in {ms} ms")


class _Coalescer:
    """Few pipelines for the runs of one client, however many calls are in flight.

    `submit` queues a run's commands; they go out at the end of this event-loop iteration
    (`call_soon`: after every callback already ready, which is where the other calls of the
    iteration issue theirs) when fewer than `_IN_FLIGHT` pipelines are on their way, else as
    soon as one of those comes back, with every run queued meanwhile. An idle sidecar sends
    each run at once; a busy one sends larger pipelines, not more of them (calls arrive one
    per iteration, so the iteration alone groups little). A run whose caller gives up (a
    timeout) is still sent, as it would have been on its own pipeline; only its answer is
    dropped.
    """

    __slots__ = ("_client", "_queue", "_sending")

    def __init__(self, client: Redis) -> None:
        self._client = client
        self._queue: list[tuple[Sequence[Command], asyncio.Future[list[Any]]]] = []
        self._sending: set[asyncio.Task[None]] = set()

    def submit(self, commands: Sequence[Command]) -> asyncio.Future[list[Any]]:
        loop = asyncio.get_running_loop()
        future: asyncio.Future[list[Any]] = loop.create_future()
        self._queue.append((commands, future))
        if len(self._queue) == 1 and len(self._sending) < _IN_FLIGHT:
            loop.call_soon(self._flush)
        return future

    def _flush(self) -> None:
        if not self._queue or len(self._sending) >= _IN_FLIGHT:
            return  # sent already, or one of the pipelines on their way will send it
        batch, self._queue = self._queue, []
        task = asyncio.get_running_loop().create_task(self._send(batch))
        self._sending.add(task)
        task.add_done_callback(self._sent)

    def _sent(self, task: asyncio.Task[None]) -> None:
        self._sending.discard(task)
        self._flush()

    async def _send(self, batch: list[tuple[Sequence[Command], asyncio.Future[list[Any]]]]) -> None:
        pipe = self._client.pipeline(transaction=False)
        for commands, _ in batch:
            for command in commands:
                pipe.execute_command(*command.args, **dict(command.options))
        try:
            replies = await pipe.execute(raise_on_error=False)
        except Exception as error:
            for _, future in batch:
                if not future.done():
                    future.set_exception(error)
            return
        except BaseException:  # cancelled (the loop is closing): so are the runs
            for _, future in batch:
                future.cancel()
            raise
        start = 0
        for commands, future in batch:
            end = start + len(commands)
            if not future.done():
                future.set_result(replies[start:end])
            start = end

    async def close(self) -> None:
        """Wait for the runs already queued or on their way (their callers are waiting)."""
        while self._sending or self._queue:
            self._flush()
            await asyncio.gather(*self._sending, return_exceptions=True)


class Keyspace:
    """Where each key lives, and the connections to get there. Built by `open_keyspace`."""

    def __init__(self, url: RedisUrl, *, pool_size: int, timeout: float, password: str | None):
        self._url = url
        self._pool_size = pool_size
        self._timeout = timeout
        self._password = password
        self._single: Redis | None = None
        self._nodes: dict[Address, Redis] = {}
        self._owners: list[Address] = []  # slot → primary address; empty until read
        self._refresh: asyncio.Task[None] | None = None
        self._coalescer: _Coalescer | None = None
        if url.shape is not Shape.CLUSTER:
            self._single = standalone_client(
                url, pool_size=pool_size, timeout=timeout, password=password
            )
            if url.shape is Shape.STANDALONE:
                # Not behind Sentinel: after a failover the coalesced pipelines left the
                # sidecars without an allowed answer for the rest of a run (reliability
                # test_sentinel_primary_killed_mid_run), which one pipeline per run survives.
                self._coalescer = _Coalescer(self._single)

    @property
    def shape(self) -> Shape:
        return self._url.shape

    # ---- running commands ----------------------------------------------------------------

    async def run(
        self, key: str, *commands: Command, wait: int = 0, wait_timeout: float = 0.1
    ) -> Replies:
        """Run `commands` (which touch `key` only, or keys of its hash slot) in one pipeline
        on its primary, then `WAIT wait wait_timeout` when `wait` > 0. Error replies are
        raised (RedisError), after following MOVED and ASK."""
        wait_ms = max(1, round(wait_timeout * 1000))
        if self._single is not None:
            if not wait and self._coalescer is not None:
                return await self._coalesced(self._coalescer, commands)
            return await self._send(self._single, commands, wait, wait_ms, asking=False)
        address = await self._owner(key)
        asking = False
        for _ in range(_REDIRECTS + 1):
            client = self._node(address)
            try:
                return await self._send(client, commands, wait, wait_ms, asking=asking)
            except MovedError as moved:
                address, asking = (moved.host, int(moved.port)), False
                if self._owners:
                    self._owners[key_slot(key.encode())] = address
                self._reread_soon()  # one slot moved: others may have too
            except AskError as ask:
                address, asking = (ask.host, int(ask.port)), True
            except (RedisConnectionError, RedisTimeoutError, OSError):
                self._reread_soon()  # the node may be gone: learn who replaced it
                raise
        raise ResponseError("too many redirections")

    async def _coalesced(self, coalescer: _Coalescer, commands: Sequence[Command]) -> Replies:
        """`commands` in this iteration's shared pipeline; a script the server did not have
        cached is sent again by its text (which caches it), in the next one."""
        values = await coalescer.submit(commands)
        if any(isinstance(v, NoScriptError) for v in values):
            texts = [Command(c.fallback, c.options) if c.fallback else c for c in commands]
            values = await coalescer.submit(texts)
        for value in values:
            if isinstance(value, Exception):
                raise value
        return Replies(values)

    async def _send(
        self,
        client: Redis,
        commands: Sequence[Command],
        wait: int,
        wait_ms: int,
        *,
        asking: bool,
    ) -> Replies:
        pipe = client.pipeline(transaction=False)
        for command in commands:
            if asking:
                pipe.execute_command("ASKING")
            pipe.execute_command(*command.args, **dict(command.options))
        if wait:
            pipe.execute_command("WAIT", wait, wait_ms)
        replies = await pipe.execute(raise_on_error=False)
        values = replies[1 : 2 * len(commands) : 2] if asking else replies[: len(commands)]
        if any(isinstance(v, NoScriptError) for v in values):
            # EVALSHA did nothing; the pipeline again with the scripts' text (which caches
            # them). Callers' commands are safe to repeat: single writes of their holder.
            texts = [Command(c.fallback, c.options) if c.fallback else c for c in commands]
            return await self._send(client, texts, wait, wait_ms, asking=asking)
        for value in values:
            if isinstance(value, Exception):
                raise value
        if not wait:
            return Replies(values)
        acked = replies[-1]
        if isinstance(acked, Exception):
            raise acked
        if not isinstance(acked, int):
            raise ResponseError(f"WAIT: unexpected reply {type(acked).__name__}")
        return Replies(values, acked)

    # ---- the slot map (Cluster) ----------------------------------------------------------

    async def _owner(self, key: str) -> Address:
        if not self._owners:
            await self._reread()
        if not self._owners:
            raise RedisConnectionError("cluster slot map unknown: no node answered")
        return self._owners[key_slot(key.encode())]

    def _node(self, address: Address) -> Redis:
        client = self._nodes.get(address)
        if client is None:
            client = node_client(
                self._url,
                address,
                pool_size=self._pool_size,
                timeout=self._timeout,
                password=self._password,
            )
            self._nodes[address] = client
        return client

    async def _reread(self) -> None:
        """Read the slot map again: once, however many calls were redirected at once."""
        if self._refresh is None or self._refresh.done():
            self._refresh = asyncio.get_running_loop().create_task(self._read_slots())
        await asyncio.shield(self._refresh)

    def _reread_soon(self) -> None:
        if self._refresh is None or self._refresh.done():
            self._refresh = asyncio.get_running_loop().create_task(self._read_slots())

    async def _read_slots(self) -> None:
        """`CLUSTER SLOTS` from the first node that answers: the seeds, then (so a cluster
        whose seed died is still found) every node learned before, in random order."""
        known = [a for a in self._nodes if a not in self._url.hosts]
        random.shuffle(known)
        last: Exception | None = None
        for address in [*self._url.hosts, *known]:
            try:
                reply = await self._node(address).execute_command("CLUSTER SLOTS")  # type: ignore[no-untyped-call]
                owners = _owners(reply)
            except (RedisError, OSError, ValueError) as error:
                last = error
                continue
            self._owners = owners
            return
        log.debug("cluster slot map not read: %s", type(last).__name__ if last else "no node")

    # ---- health and shutdown -------------------------------------------------------------

    async def ping(self) -> None:
        """Raise when the deployment cannot be used: the primary must answer (a Cluster: one
        node, and the slot map must be known; a node down fails only its slots' calls)."""
        if self._single is not None:
            await self._single.ping()
            return
        address = await self._owner("")
        await self._node(address).ping()

    async def close(self) -> None:
        if self._refresh is not None:
            self._refresh.cancel()
        if self._coalescer is not None:
            await self._coalescer.close()
        clients = [*self._nodes.values(), *([self._single] if self._single else [])]
        for client in clients:
            await client.aclose()
            await client.connection_pool.disconnect()


def _owners(reply: Any) -> list[Address]:
    """`CLUSTER SLOTS` → the primary of each of the 16384 slots; ValueError if one is not
    covered (the cluster is changing: the previous map stays until a full one is read)."""
    owners: list[Address | None] = [None] * REDIS_CLUSTER_HASH_SLOTS
    for item in reply:
        low, high, primary = int(item[0]), int(item[1]), item[2]
        host = primary[0].decode() if isinstance(primary[0], bytes) else str(primary[0])
        for slot in range(low, high + 1):
            owners[slot] = (host, int(primary[1]))
    if any(owner is None for owner in owners):
        raise ValueError("slots not covered")
    return [owner for owner in owners if owner is not None]


def open_keyspace(
    url: str | RedisUrl,
    *,
    pool_size: int = 50,
    timeout: float = 1.0,
    password: str | None = None,
    setting: str = "replay_store",
) -> Keyspace:
    """A keyspace for any URL form (see `sidecar.redisconn.url`); no I/O until the first
    call. `timeout` bounds connecting, each socket read/write and the wait for a free pooled
    connection; `pool_size` bounds connections per primary. A password given here wins over
    one in the URL. ValueError (prefixed by `setting`, never holding the URL) for a bad URL."""
    try:
        parsed = url if isinstance(url, RedisUrl) else parse_redis_url(url)
    except ValueError as error:
        raise ValueError(f"{setting}: {error}") from None
    return Keyspace(parsed, pool_size=pool_size, timeout=timeout, password=password)
