"""The Redis replay store on the deployments users run: a Cluster (3 primaries + 3 replicas)
and a Sentinel group (a primary, 2 replicas, 3 sentinels), real servers on loopback.

What only these shapes can get wrong: a claim WAITed on a connection other than the one that
wrote it (a replica lagging must make the claim fail, not pass), keys that moved to another
primary (MOVED) or are moving (ASK), and a failover (a new primary, found without a restart).
"""

from __future__ import annotations

import asyncio
import hashlib
import secrets
import subprocess
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path

import pytest
from redis.crc import key_slot

from sidecar.core.ports import ReplayEntry, ReplayStoreError
from sidecar.redisconn.keyspace import Command
from sidecar.replay.redis import RedisReplayStore
from tests.contract.test_replay_store import VALID
from tests.support.redis_cluster import ClusterNode, RedisCluster, RedisSentinel
from tests.support.redis_server import RedisServer, make_tls_files

pytestmark = pytest.mark.redis

TTL = 60.0
LAG = 1.5  # seconds a replica stops answering: far beyond the claim's replication timeout


def new_claim() -> str:
    return secrets.token_hex(8)


def key_on(cluster: RedisCluster, primary: ClusterNode, prefix: str) -> str:
    """A token digest whose key (with `prefix`) lives in a slot that `primary` serves."""
    while True:
        key = hashlib.sha256(secrets.token_bytes(16)).hexdigest()
        if cluster.owner_of(key_slot((prefix + key).encode())) is primary:
            return key


Opener = Callable[..., RedisReplayStore]


@pytest.fixture
async def open_store() -> AsyncIterator[Opener]:
    opened: list[RedisReplayStore] = []

    def opener(url: str, **options: object) -> RedisReplayStore:
        options.setdefault("timeout", 3.0)
        options.setdefault("replication_timeout", 1.0)  # generous: the machine may be busy
        options.setdefault("key_prefix", f"t{secrets.token_hex(3)}:")
        store = RedisReplayStore.from_url(url, **options)  # type: ignore[arg-type]
        opened.append(store)
        return store

    yield opener
    for store in opened:
        await store.close()


async def replica_has(replica: RedisServer, name: str) -> bool:
    """EXISTS on the replica itself (a cluster replica serves reads after READONLY)."""

    def ask() -> str:
        done = subprocess.run(
            ["redis-cli", "-h", "127.0.0.1", "-p", str(replica.port)],
            input=f"READONLY\nEXISTS {name}\n",
            capture_output=True,
            text=True,
            timeout=10,
            check=True,
        )
        return done.stdout

    return (await asyncio.to_thread(ask)).split()[-1] == "1"


# ---- replication-safe claims ---------------------------------------------------------------


async def test_a_cluster_claim_is_refused_when_its_slots_replica_lags(
    redis_cluster: RedisCluster, open_store: Opener
) -> None:
    """For every primary: its replica stops acknowledging, so a claim on one of its keys
    cannot be WAITed and is refused; the same claim without `min_replicas` is acknowledged at
    once (the lag is real, the primary still takes writes). A WAIT sent anywhere but on the
    writing connection of the slot's owner would see nothing pending and pass."""
    waited = open_store(redis_cluster.url, min_replicas=1, replication_timeout=0.1)
    unwaited = open_store(redis_cluster.url, key_prefix=waited._prefix)
    patient = open_store(
        redis_cluster.url, min_replicas=1, replication_timeout=1.0, key_prefix=waited._prefix
    )
    await waited.ping()
    for primary in redis_cluster.primaries():
        (replica,) = redis_cluster.replicas_of(primary)
        refused = key_on(redis_cluster, primary, waited._prefix)
        accepted = key_on(redis_cluster, primary, waited._prefix)
        taken, holder = key_on(redis_cluster, primary, waited._prefix), new_claim()
        assert await waited.claim(taken, "", holder, TTL) is None
        with redis_cluster.lag(replica, LAG):
            with pytest.raises(ReplayStoreError, match="NotReplicated: acknowledged by 0 of 1"):
                await waited.claim(refused, "", new_claim(), TTL)
            assert await unwaited.claim(accepted, "", new_claim(), TTL) is None
            # A repeat writes nothing, so it needs no replica: still a plain DUPLICATE.
            seen = await waited.claim(taken, "", new_claim(), TTL)
            assert seen is not None and seen.claim_id == holder
        # Once the replica is back the same kind of claim is acknowledged, and it is there.
        key = key_on(redis_cluster, primary, waited._prefix)
        assert await patient.claim(key, "", new_claim(), TTL) is None
        assert await replica_has(replica.server, waited._prefix + key)


async def test_an_acknowledged_cluster_claim_is_on_the_replica_at_once(
    redis_cluster: RedisCluster, open_store: Opener
) -> None:
    store = open_store(redis_cluster.url, min_replicas=1)
    for primary in redis_cluster.primaries():
        (replica,) = redis_cluster.replicas_of(primary)
        for _ in range(5):
            key = key_on(redis_cluster, primary, store._prefix)
            assert await store.claim(key, "", new_claim(), TTL) is None
            assert await replica_has(replica.server, store._prefix + key)


async def test_a_retried_claim_is_written_again_before_it_counts(
    redis_cluster: RedisCluster, open_store: Opener
) -> None:
    """A retry of a claim whose reply was lost runs on a new connection and finds its own
    pending entry, written on the old connection. It counts only once replicated: refused
    while the replica lags, holding once it is back. (From Redis 7.2 and in Valkey a WAIT
    covers only writes of its own connection, so the store writes the claim again; Redis 7.0,
    Debian's, also counts the no-op SET, so there this test passes without the rewrite.)"""
    first = open_store(redis_cluster.url, min_replicas=1)
    primary = redis_cluster.primaries()[0]
    (replica,) = redis_cluster.replicas_of(primary)
    key, claim = key_on(redis_cluster, primary, first._prefix), new_claim()
    assert await first.claim(key, "", claim, TTL) is None
    retry = open_store(
        redis_cluster.url, min_replicas=1, replication_timeout=0.1, key_prefix=first._prefix
    )
    await retry.ping()
    with redis_cluster.lag(replica, LAG), pytest.raises(ReplayStoreError, match="NotReplicated"):
        await retry.claim(key, "", claim, TTL)
    assert (
        await open_store(redis_cluster.url, min_replicas=1, key_prefix=first._prefix).claim(
            key, "", claim, TTL
        )
        is None
    )  # without lag the retry holds the claim
    seen = await first.claim(key, "", new_claim(), TTL)
    assert seen is not None and seen.claim_id == claim


@pytest.mark.parametrize("shape", ["sentinel", "standalone primary"])
async def test_a_sentinel_claim_needs_as_many_replicas_as_asked(
    redis_sentinel: RedisSentinel, open_store: Opener, shape: str
) -> None:
    """Two replicas, one lagging: a claim asking for both is refused, one asking for one is
    acknowledged (by the other). The same holds through a plain `redis://` URL to the
    primary (a managed primary endpoint without Sentinel)."""
    primary = redis_sentinel.primary()
    url = redis_sentinel.url if shape == "sentinel" else primary.url
    both = open_store(url, min_replicas=2, replication_timeout=0.1)
    one = open_store(url, min_replicas=1, replication_timeout=0.5, key_prefix=both._prefix)
    await both.ping()
    with redis_sentinel.lag(redis_sentinel.replicas()[0], LAG):
        key = hashlib.sha256(secrets.token_bytes(8)).hexdigest()
        with pytest.raises(ReplayStoreError, match="acknowledged by 1 of 2"):
            await both.claim(key, "", new_claim(), TTL)
        assert (
            await one.claim(hashlib.sha256(b"x" + key.encode()).hexdigest(), "", new_claim(), TTL)
            is None
        )
    patient = open_store(url, min_replicas=2, replication_timeout=1.0, key_prefix=both._prefix)
    assert await patient.claim(key + "0", "", new_claim(), TTL) is None


# ---- topology changes -----------------------------------------------------------------------


@pytest.mark.parametrize("min_replicas", [0, 1])
async def test_a_cluster_store_follows_a_slot_to_its_new_primary(
    redis_cluster: RedisCluster, open_store: Opener, min_replicas: int
) -> None:
    """The store learned the slots, then one moves: its claim gets MOVED, reads the slot map
    again and lands on the new owner."""
    store = open_store(redis_cluster.url, min_replicas=min_replicas)
    first, second = redis_cluster.primaries()[:2]
    key = key_on(redis_cluster, first, store._prefix)
    assert (
        await store.claim(key_on(redis_cluster, first, store._prefix), "", new_claim(), TTL) is None
    )
    slot = key_slot((store._prefix + key).encode())
    await asyncio.to_thread(redis_cluster.move_empty_slot, slot, second)
    try:
        claim = new_claim()
        assert await store.claim(key, "", claim, TTL) is None
        assert await store.settle(key, claim, ReplayEntry("", VALID), TTL) is True
        seen = await store.get(key)
        assert seen is not None and seen.decision == VALID
        assert redis_cluster.owner_of(slot) is second
        (replica,) = redis_cluster.replicas_of(second)
        assert await replica_has(replica.server, store._prefix + key)
    finally:
        await store._keys.run(store._prefix + key, Command.of("DEL", store._prefix + key))
        await asyncio.to_thread(redis_cluster.move_empty_slot, slot, first)


@pytest.mark.parametrize("min_replicas", [0, 1])
async def test_a_cluster_store_follows_a_slot_in_migration(
    redis_cluster: RedisCluster, open_store: Opener, min_replicas: int
) -> None:
    """A slot migrating to another primary: the old owner answers ASK for a key it does not
    hold, and the claim is made on the new one (after ASKING), WAITed there. (Moving a slot
    back and forth needs it empty: `move_empty_slot` refuses otherwise.)"""
    store = open_store(redis_cluster.url, min_replicas=min_replicas)
    first, second = redis_cluster.primaries()[:2]
    key = key_on(redis_cluster, first, store._prefix)
    await store.ping()
    slot = key_slot((store._prefix + key).encode())
    await asyncio.to_thread(redis_cluster.start_migration, slot, second)
    name = store._prefix + key
    try:
        claim = new_claim()
        assert await store.claim(key, "", claim, TTL) is None
        assert await store.claim(key, "", new_claim(), TTL) is not None  # seen there, via ASK
    finally:
        await asyncio.to_thread(redis_cluster.move_empty_slot, slot, second)  # migration done
    try:
        (replica,) = redis_cluster.replicas_of(second)
        assert await replica_has(replica.server, name)  # written on the new owner, replicated
        seen = await store.get(key)
        assert seen is not None and seen.claim_id == claim
    finally:
        await store._keys.run(name, Command.of("DEL", name))
        await asyncio.to_thread(redis_cluster.move_empty_slot, slot, first)


async def until(check: Callable[[], Awaitable[bool]], bound: float) -> float:
    """Seconds until `check()` holds (AssertionError past `bound`)."""
    loop = asyncio.get_running_loop()
    start = loop.time()
    while loop.time() - start < bound:
        if await check():
            return loop.time() - start
        await asyncio.sleep(0.05)
    raise AssertionError(f"not within {bound}s")


async def claims(store: RedisReplayStore, key: str) -> bool:
    try:
        await store.claim(key, "", new_claim(), TTL)
    except ReplayStoreError:
        return False
    return True


async def test_a_cluster_store_follows_a_failover(
    disposable_redis_cluster: RedisCluster, open_store: Opener
) -> None:
    """A primary is SIGKILLed; its replica is promoted. Claims made before (acknowledged by
    that replica) are still there; new claims on its slots succeed again once it serves them
    (and, asking for one replica, once the killed node is back as its replica)."""
    cluster = disposable_redis_cluster
    waited = open_store(cluster.url, min_replicas=1)
    plain = open_store(cluster.url, key_prefix=waited._prefix)
    victim = cluster.primaries()[0]
    before = [key_on(cluster, victim, waited._prefix) for _ in range(20)]
    holders = [new_claim() for _ in before]
    for key, holder in zip(before, holders, strict=True):
        assert await waited.claim(key, "", holder, TTL) is None
    cluster.kill(victim)
    promoted = await asyncio.to_thread(cluster.wait_promoted, victim)
    fresh = key_on(cluster, promoted, waited._prefix)
    await until(lambda: claims(plain, fresh + "a"), 15)
    for key, holder in zip(before, holders, strict=True):
        seen = await plain.claim(key, "", new_claim(), TTL)
        assert seen is not None and seen.claim_id == holder  # no acknowledged claim lost
    assert not await claims(waited, fresh)  # no replica left to acknowledge it
    await asyncio.to_thread(cluster.restart, victim)
    await until(lambda: claims(waited, fresh + "b"), 15)


async def test_a_sentinel_store_follows_the_new_primary(
    disposable_redis_sentinel: RedisSentinel, open_store: Opener
) -> None:
    group = disposable_redis_sentinel
    store = open_store(group.url, min_replicas=1)
    before = [hashlib.sha256(secrets.token_bytes(8)).hexdigest() for _ in range(20)]
    holders = [new_claim() for _ in before]
    for key, holder in zip(before, holders, strict=True):
        assert await store.claim(key, "", holder, TTL) is None
    dead = group.kill_primary()
    await asyncio.to_thread(group.wait_failover, dead)
    followed = await until(lambda: claims(store, secrets.token_hex(32)), 20)
    print(f"\nsentinel: claims succeed again {followed:.2f}s after the promotion was seen")
    for key, holder in zip(before, holders, strict=True):
        seen = await store.claim(key, "", new_claim(), TTL)
        assert seen is not None and seen.claim_id == holder


@pytest.mark.parametrize("shape", ["standalone", "cluster", "sentinel"])
async def test_a_burst_above_the_pool_size_waits_for_connections(
    request: pytest.FixtureRequest, open_store: Opener, shape: str
) -> None:
    """200 claims at once over 4 connections (per node): each waits its turn, none fails
    (redis-py's cluster client alone would refuse those beyond its pool at once)."""
    fixture = {"standalone": "redis_server", "cluster": "redis_cluster"}.get(
        shape, "redis_sentinel"
    )
    store = open_store(request.getfixturevalue(fixture).url, pool_size=4, min_replicas=0)
    await store.ping()
    keys = [hashlib.sha256(secrets.token_bytes(8)).hexdigest() for _ in range(200)]
    results = await asyncio.gather(*(store.claim(key, "", new_claim(), TTL) for key in keys))
    assert results == [None] * len(keys)


async def test_a_tls_cluster_with_a_private_ca(open_store: Opener, tmp_path: Path) -> None:
    """`rediss+cluster://…?ssl_ca_certs=` (TLS to every node, replication and the bus over
    TLS too): claims WAITed on every primary; without TLS the nodes do not answer."""
    tls = make_tls_files(tmp_path / "tls")
    with RedisCluster(tmp_path / "tls-cluster", tls=tls) as cluster:
        assert cluster.url.startswith("rediss+cluster://")
        store = open_store(cluster.url, min_replicas=1)
        for primary in cluster.primaries():
            key = key_on(cluster, primary, store._prefix)
            assert await store.claim(key, "", new_claim(), TTL) is None
            seen = await store.claim(key, "", new_claim(), TTL)
            assert seen is not None and seen.pending
        plain = open_store(cluster.url.replace("rediss+", "redis+").split("?")[0], timeout=0.5)
        with pytest.raises(ReplayStoreError):
            await plain.claim(key_on(cluster, cluster.primaries()[0], plain._prefix), "", "c", TTL)
