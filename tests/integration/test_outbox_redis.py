"""The annotation outbox on a Redis stream (`outbox: redis://…`), behind the real server and
on its own: queued once replicated, delivered, removed only after upstream accepted, sealed at
rest, dead-lettered when poison, left alone when no key opens it, taken over from a replica
that went silent, handed back by one that stops."""

from __future__ import annotations

import asyncio
import base64
import os
import subprocess
from collections.abc import AsyncIterator
from pathlib import Path

import grpc
import pytest
from recaptcha.sidecar.v1 import sidecar_pb2 as pb

from sidecar.core.model import AnnotationRequest
from sidecar.outbox import codec
from sidecar.outbox.sealing import load_sealer
from sidecar.outbox.streams import RedisOutbox
from sidecar.redisconn.keyspace import open_keyspace
from tests.conftest import EmulatorHandle, SidecarFactory
from tests.integration.test_outbox import annotation, assessment_names, delivered, eventually
from tests.support.redis_cluster import RedisSentinel
from tests.support.redis_server import RedisServer

pytestmark = pytest.mark.redis

SECRET_ACCOUNT = "acct-7f3e9c-alice@example.com"
SECRET_REASON = "card ending 4242 reported stolen"


@pytest.fixture
def key(tmp_path: Path) -> Path:
    path = tmp_path / "outbox.key"
    path.write_text(base64.b64encode(os.urandom(32)).decode() + "\n")
    return path


def stream_length(server: RedisServer, name: str = "{recaptcha-sidecar:outbox}") -> int:
    return int(server.cli("XLEN", name))


def redis_bytes(server: RedisServer, *args: str, given: bytes | None = None) -> bytes:
    """`redis-cli ARGS` as bytes (sealed payloads are not text); `given` on its stdin."""
    done = subprocess.run(
        ["redis-cli", "-p", str(server.port), *args],
        input=given,
        capture_output=True,
        timeout=10,
        check=True,
    )
    return done.stdout.strip()


def raw_bytes_at_rest(server: RedisServer) -> bytes:
    """Every byte Redis holds, as it would write it to disk (SAVE → dump.rdb), and every
    key's serialized value (DUMP)."""
    server.cli("SAVE")
    data = (server.directory / "dump.rdb").read_bytes()
    for name in server.cli("KEYS", "*").split():
        data += redis_bytes(server, "--no-raw", "DUMP", name)
    return data


# ---- behind the real server -----------------------------------------------------------------


async def test_queued_delivered_then_removed(
    make_sidecar: SidecarFactory, emulator: EmulatorHandle, redis_server: RedisServer, key: Path
) -> None:
    handle = await make_sidecar(
        outbox=redis_server.url, outbox_key_file=key, outbox_flush_interval=0.05
    )
    names = await assessment_names(handle, 5)
    for name in names:
        answer = await handle.stub.Annotate(annotation(name, account_id="acct-1"), timeout=5)
        assert answer.delivery == pb.ANNOTATION_DELIVERY_QUEUED
    await eventually(lambda: delivered(emulator, names))
    await eventually(lambda: stream_length(redis_server) == 0)
    stats = await emulator.control.stats()
    assert {a["account_id"] for a in stats["annotations"]} == {"acct-1"}


async def test_payloads_rest_sealed_in_redis(
    make_sidecar: SidecarFactory, emulator: EmulatorHandle, redis_server: RedisServer, key: Path
) -> None:
    """Queued while upstream is down: the stream holds them, yet neither the account id nor
    the free-text reason is anywhere in Redis' bytes; once upstream is back, both reach it."""
    handle = await make_sidecar(
        outbox=redis_server.url, outbox_key_file=key, outbox_flush_interval=0.05
    )
    names = await assessment_names(handle, 3)
    await emulator.control.set_faults("annotate", error_rate=1.0)
    for name in names:
        request = annotation(
            name,
            account_id=SECRET_ACCOUNT,
            transaction_event=pb.TransactionEvent(
                event_type=pb.TRANSACTION_EVENT_TYPE_CHARGEBACK, reason=SECRET_REASON, value=9.5
            ),
        )
        assert (await handle.stub.Annotate(request, timeout=5)).delivery == (
            pb.ANNOTATION_DELIVERY_QUEUED
        )
    assert stream_length(redis_server) == 3
    at_rest = await asyncio.to_thread(raw_bytes_at_rest, redis_server)
    assert len(at_rest) > 3 * 100  # the entries are there, sealed
    for secret in (SECRET_ACCOUNT, "alice@example.com", SECRET_REASON, "4242"):
        assert secret.encode() not in at_rest
    await emulator.control.clear_faults()
    await eventually(lambda: delivered(emulator, names))
    stats = await emulator.control.stats()
    assert {a["account_id"] for a in stats["annotations"]} == {SECRET_ACCOUNT}


async def test_wait_for_upstream_queues_only_what_upstream_did_not_take(
    make_sidecar: SidecarFactory, emulator: EmulatorHandle, redis_server: RedisServer, key: Path
) -> None:
    handle = await make_sidecar(
        outbox=redis_server.url, outbox_key_file=key, outbox_flush_interval=0.05
    )
    first, second = await assessment_names(handle, 2)
    answer = await handle.stub.Annotate(annotation(first, wait_for_upstream=True), timeout=5)
    assert answer.delivery == pb.ANNOTATION_DELIVERY_DELIVERED
    assert stream_length(redis_server) == 0
    await emulator.control.set_faults("annotate", error_rate=1.0)
    answer = await handle.stub.Annotate(annotation(second, wait_for_upstream=True), timeout=5)
    assert answer.delivery == pb.ANNOTATION_DELIVERY_QUEUED
    assert stream_length(redis_server) == 1  # durable before the answer said QUEUED
    await emulator.control.clear_faults()
    await eventually(lambda: delivered(emulator, [second]))
    await eventually(lambda: stream_length(redis_server) == 0)


async def test_poison_goes_to_the_dead_letter_stream(
    make_sidecar: SidecarFactory, redis_server: RedisServer, key: Path
) -> None:
    handle = await make_sidecar(
        outbox=redis_server.url,
        outbox_key_file=key,
        outbox_max_attempts=2,
        outbox_flush_interval=0.05,
        outbox_max_backoff=0.2,
    )
    answer = await handle.stub.Annotate(annotation("projects/1/assessments/unknown"), timeout=5)
    assert answer.delivery == pb.ANNOTATION_DELIVERY_QUEUED
    outbox = handle.sidecar.outbox
    assert outbox is not None
    await eventually(lambda: outbox.dead_letter_count() == 1)
    await eventually(lambda: stream_length(redis_server) == 0)
    dead = await asyncio.to_thread(
        redis_bytes, redis_server, "XRANGE", "{recaptcha-sidecar:outbox}:dead", "-", "+"
    )
    assert b"NOT_FOUND" in dead  # the reason, beside the sealed payload


async def test_appends_wait_for_the_replicas_asked(
    make_sidecar: SidecarFactory, redis_sentinel: RedisSentinel, key: Path
) -> None:
    """Two replicas, one lagging: with outbox_min_replicas 2 an annotation is refused
    (RESOURCE_EXHAUSTED, the app retries) rather than acknowledged unreplicated."""
    handle = await make_sidecar(
        outbox=redis_sentinel.url,
        outbox_key_file=key,
        outbox_min_replicas=2,
        outbox_replication_timeout=0.2,
        outbox_stream="test-min-replicas",
    )
    (name,) = await assessment_names(handle, 1)
    assert (await handle.stub.Annotate(annotation(name), timeout=5)).delivery == (
        pb.ANNOTATION_DELIVERY_QUEUED
    )
    lagging = redis_sentinel.replicas()[0]
    with redis_sentinel.lag(lagging, 1.5), pytest.raises(grpc.aio.AioRpcError) as caught:
        await handle.stub.Annotate(annotation(name), timeout=5)
    assert caught.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED


# ---- the queue on its own -------------------------------------------------------------------


@pytest.fixture
async def outboxes(redis_server: RedisServer, key: Path) -> AsyncIterator[list[RedisOutbox]]:
    opened: list[RedisOutbox] = []
    yield opened
    for outbox in opened:
        await outbox.close()


async def open_outbox(
    opened: list[RedisOutbox], url: str, key: Path, **options: object
) -> RedisOutbox:
    options.setdefault("claim_idle", 1.0)
    outbox = await RedisOutbox.open(open_keyspace(url), load_sealer(key), **options)
    opened.append(outbox)
    return outbox


def request(index: int) -> AnnotationRequest:
    return AnnotationRequest(assessment_name=f"projects/p/assessments/{index}", account_id="a")


async def test_a_silent_replicas_entries_are_taken_over(
    outboxes: list[RedisOutbox], redis_server: RedisServer, key: Path
) -> None:
    """A holds entries and stops its heartbeat (as a SIGKILLed pod would): after claim_idle
    B takes them over and can send them; while A's heartbeat runs, B never gets them."""
    alive = await open_outbox(outboxes, redis_server.url, key, consumer="alive")
    doomed = await open_outbox(outboxes, redis_server.url, key, consumer="doomed")
    for index in range(6):
        await doomed.append(request(index))
    held = await doomed.lease_due(10)
    assert len(held) == 6
    await asyncio.sleep(2.0)  # twice claim_idle, the heartbeat keeps them the doomed one's
    assert await alive.lease_due(10) == []
    assert doomed._maintainer is not None
    doomed._maintainer.cancel()  # silent from now on
    taken: list[int] = []

    async def taken_over() -> bool:
        taken.extend(row.id for row in await alive.lease_due(10))
        return len(taken) == 6

    await eventually(taken_over, timeout=10)
    assert sorted(taken) == sorted(row.id for row in held)
    assert alive.reclaimed_total == 6
    await alive.settle(delivered=taken)
    assert stream_length(redis_server) == 0
    doomed._held.clear()  # nothing to hand back: it is dead


async def test_a_stopping_replica_hands_its_entries_back(
    outboxes: list[RedisOutbox], redis_server: RedisServer, key: Path
) -> None:
    stopping = await open_outbox(outboxes, redis_server.url, key, consumer="stopping")
    other = await open_outbox(outboxes, redis_server.url, key, consumer="other", claim_idle=60)
    for index in range(4):
        await stopping.append(request(index))
    assert len(await stopping.lease_due(10)) == 4
    outboxes.remove(stopping)
    await stopping.close()
    rows = await other.lease_due(10)  # at once: no claim_idle to wait for
    names = sorted(codec.decode(r.payload).assessment_name for r in rows)
    assert names == sorted(request(i).assessment_name for i in range(4))
    consumers = redis_server.cli("XINFO", "CONSUMERS", "{recaptcha-sidecar:outbox}", "flushers")
    assert "stopping" not in consumers  # it left the group


async def test_an_entry_no_key_opens_waits_and_a_broken_one_is_buried(
    outboxes: list[RedisOutbox], redis_server: RedisServer, key: Path, tmp_path: Path
) -> None:
    """Sealed under another key: the sidecar's problem (left, counted, never buried).
    Opened but not an annotation: poison (the flusher buries it as unreadable)."""
    stream = "{recaptcha-sidecar:outbox}"
    other_key = tmp_path / "other.key"
    other_key.write_text(base64.b64encode(os.urandom(32)).decode())
    foreign = load_sealer(other_key).seal(b'{"v":1,"name":"projects/p/assessments/x"}')
    redis_server.cli("XADD", stream, "*", "p", "{not json", "c", "1")
    sealed_id = await asyncio.to_thread(
        redis_bytes, redis_server, "-x", "XADD", stream, "*", "c", "1", "p", given=foreign
    )
    assert sealed_id
    outbox = await open_outbox(outboxes, redis_server.url, key)
    rows = await outbox.lease_due(10)
    assert [r.payload for r in rows] == [b"{not json"]
    assert outbox.unopened_total == 1
    await outbox.settle(dead=[(rows[0].id, "unreadable: JSONDecodeError")])
    assert outbox.dead_letter_count() == 1
    assert stream_length(redis_server) == 1  # the foreign one stays for a replica with its key
