"""The one contract every replay store passes (memory, and Redis standalone, Cluster and
Sentinel), as oauth2-proxy runs one session suite over every backend. A store that passes it
keeps single use."""

from __future__ import annotations

import asyncio
import hashlib
import secrets
from collections.abc import AsyncIterator

import pytest

from sidecar.core.model import Decision, RecommendedAction, TokenStatus, Verdict
from sidecar.core.ports import ReplayEntry, ReplayStore
from sidecar.replay import open_replay_store

TTL = 60.0

VALID = Decision(
    allowed=True,
    verdict=Verdict.PASSED,
    token_status=TokenStatus.VALID,
    recommended_action=RecommendedAction.ALLOW,
    decided_by="passed",
    score=0.8999999761581421,
    threshold=0.5,
    reasons=("AUTOMATION", "TOO_MUCH_TRAFFIC"),
    action="login",
    hostname="shop.example.com",
    create_time=1_700_000_000.25,
    assessment_name="projects/123456789/assessments/00c0ffee00c0ffee",
    account_defender_labels=("PROFILE_MATCH",),
    policy_version="a1b2c3d4e5f6",
)
DENIED = Decision(
    allowed=False,
    verdict=Verdict.FAILED_ENFORCE,
    token_status=TokenStatus.UNCHECKED,
    recommended_action=RecommendedAction.BLOCK,
    decided_by="transient:deadline_exceeded",
    ios_bundle_id="com.example.äpp",  # not ASCII: the encoding must keep it
)


def new_key() -> str:
    return hashlib.sha256(secrets.token_bytes(16)).hexdigest()


def new_claim() -> str:
    return secrets.token_hex(8)


# Every shape users run; Cluster and Sentinel also with claims WAITed to a replica (the
# topologies are shared by the run, so each test gets a prefix of its own).
STORES = ["memory", "redis", "cluster", "cluster-wait", "sentinel", "sentinel-wait"]


@pytest.fixture(params=STORES)
async def store(request: pytest.FixtureRequest) -> AsyncIterator[ReplayStore]:
    shape, _, wait = str(request.param).partition("-")
    if shape == "memory":
        opened = open_replay_store("memory://", max_entries=10_000)
    else:
        if shape == "redis":
            url = request.getfixturevalue("redis_server").url
        elif shape == "cluster":
            url = request.getfixturevalue("redis_cluster").url
        else:
            url = request.getfixturevalue("redis_sentinel").url
        opened = open_replay_store(
            url,
            key_prefix=f"contract-{secrets.token_hex(4)}:",
            timeout=2.0,
            min_replicas=1 if wait else 0,
            replication_timeout=1.0,
        )
    yield opened
    await opened.close()


async def wait_gone(store: ReplayStore, key: str, bound: float = 5.0) -> bool:
    loop = asyncio.get_running_loop()
    give_up = loop.time() + bound
    while loop.time() < give_up:
        if await store.get(key) is None:
            return True
        await asyncio.sleep(0.02)
    return False


async def test_first_claim_wins_and_later_claims_see_it_pending(store: ReplayStore) -> None:
    key, first, second = new_key(), new_claim(), new_claim()
    assert await store.get(key) is None
    assert await store.claim(key, "idem-1", first, TTL) is None
    seen = await store.claim(key, "idem-2", second, TTL)
    assert seen is not None and seen.pending
    assert (seen.idempotency_digest, seen.decision, seen.claim_id) == ("idem-1", None, first)
    got = await store.get(key)
    assert got == seen


async def test_a_retried_claim_by_its_holder_still_holds(store: ReplayStore) -> None:
    key, claim = new_key(), new_claim()
    assert await store.claim(key, "", claim, TTL) is None
    assert await store.claim(key, "", claim, TTL) is None  # the first reply was lost
    other = await store.claim(key, "", new_claim(), TTL)
    assert other is not None and other.claim_id == claim


@pytest.mark.parametrize("decision", [VALID, DENIED], ids=["valid", "unchecked"])
async def test_settled_decision_round_trips_exactly(store: ReplayStore, decision: Decision) -> None:
    key, claim = new_key(), new_claim()
    assert await store.claim(key, "idem", claim, TTL) is None
    assert await store.settle(key, claim, ReplayEntry("idem", decision), TTL) is True
    for seen in (await store.get(key), await store.claim(key, "other", new_claim(), TTL)):
        assert seen is not None and not seen.pending
        assert seen.decision == decision
        assert seen.idempotency_digest == "idem"
        assert seen.claim_id == ""


async def test_only_the_holder_settles(store: ReplayStore) -> None:
    key, holder = new_key(), new_claim()
    assert await store.claim(key, "idem", holder, TTL) is None
    assert await store.settle(key, new_claim(), ReplayEntry("idem", VALID), TTL) is False
    still = await store.get(key)
    assert still is not None and still.pending and still.claim_id == holder


async def test_a_settled_entry_is_never_overwritten(store: ReplayStore) -> None:
    key, holder = new_key(), new_claim()
    await store.claim(key, "idem", holder, TTL)
    assert await store.settle(key, holder, ReplayEntry("idem", VALID), TTL) is True
    assert await store.settle(key, holder, ReplayEntry("idem", VALID), TTL) is True  # a retry
    assert await store.settle(key, holder, ReplayEntry("idem", DENIED), TTL) is False
    assert await store.settle(key, new_claim(), ReplayEntry("idem", DENIED), TTL) is False
    seen = await store.get(key)
    assert seen is not None and seen.decision == VALID


async def test_settle_restores_a_key_the_store_lost(store: ReplayStore) -> None:
    """A store restart forgets a pending claim; the holder's answer is still written, so
    single use holds from then on."""
    key = new_key()
    assert await store.settle(key, new_claim(), ReplayEntry("idem", VALID), TTL) is True
    seen = await store.claim(key, "", new_claim(), TTL)
    assert seen is not None and seen.decision == VALID


async def test_release_frees_the_token_for_its_holder_only(store: ReplayStore) -> None:
    key, holder = new_key(), new_claim()
    await store.claim(key, "idem", holder, TTL)
    assert await store.release(key, new_claim()) is False
    assert await store.get(key) is not None
    assert await store.release(key, holder) is True
    assert await store.get(key) is None
    assert await store.release(key, holder) is False
    assert await store.claim(key, "idem", new_claim(), TTL) is None  # presented again


async def test_a_settled_entry_is_never_released(store: ReplayStore) -> None:
    key, holder = new_key(), new_claim()
    await store.claim(key, "", holder, TTL)
    await store.settle(key, holder, ReplayEntry("", VALID), TTL)
    assert await store.release(key, holder) is False
    seen = await store.get(key)
    assert seen is not None and seen.decision == VALID


async def test_entries_expire_after_their_ttl(store: ReplayStore) -> None:
    claimed, settled, holder = new_key(), new_key(), new_claim()
    assert await store.claim(claimed, "", new_claim(), 0.2) is None
    await store.claim(settled, "", holder, 0.2)
    await store.settle(settled, holder, ReplayEntry("", VALID), 0.2)
    long_lived = new_key()
    await store.claim(long_lived, "", new_claim(), TTL)
    assert await wait_gone(store, claimed) and await wait_gone(store, settled)
    assert await store.claim(claimed, "", new_claim(), TTL) is None
    assert await store.claim(settled, "", new_claim(), TTL) is None
    assert await store.get(long_lived) is not None


async def test_concurrent_claims_of_one_key_have_exactly_one_winner(store: ReplayStore) -> None:
    key = new_key()
    results = await asyncio.gather(
        *(store.claim(key, f"idem-{i}", new_claim(), TTL) for i in range(100))
    )
    winners = [r for r in results if r is None]
    assert len(winners) == 1
    holders = {r.claim_id for r in results if r is not None}
    assert len(holders) == 1  # every loser saw the same, single holder


async def test_concurrent_claims_of_many_keys(store: ReplayStore) -> None:
    keys = [new_key() for _ in range(50)]
    results = await asyncio.gather(
        *(store.claim(key, "", new_claim(), TTL) for key in keys for _ in range(4))
    )
    by_key: dict[str, int] = {}
    for index, result in enumerate(results):
        if result is None:
            by_key[keys[index // 4]] = by_key.get(keys[index // 4], 0) + 1
    assert by_key == dict.fromkeys(keys, 1)


async def test_keys_are_independent(store: ReplayStore) -> None:
    one, two, holder = new_key(), new_key(), new_claim()
    await store.claim(one, "", holder, TTL)
    await store.settle(one, holder, ReplayEntry("", VALID), TTL)
    assert await store.get(two) is None
    assert await store.claim(two, "", new_claim(), TTL) is None


async def test_empty_or_odd_claim_ids_are_refused(store: ReplayStore) -> None:
    """The same calls are refused by every backend (one wrapper checks them all): once the
    memory store took `settle(key, "")` that Redis refused."""
    key, holder = new_key(), new_claim()
    await store.claim(key, "", holder, TTL)
    for bad in ("", 'x","i', "a" * 65):
        with pytest.raises(ValueError, match="claim_id"):
            await store.claim(new_key(), "", bad, TTL)
        with pytest.raises(ValueError, match="claim_id"):
            await store.settle(key, bad, ReplayEntry("", VALID), TTL)
        with pytest.raises(ValueError, match="claim_id"):
            await store.release(key, bad)
    assert (await store.get(key)) == ReplayEntry("", None, holder)  # untouched


async def test_odd_keys_ttls_and_entries_are_refused(store: ReplayStore) -> None:
    holder = new_claim()
    for bad_key in ("", "two words", "a" * 129, "ключ"):
        with pytest.raises(ValueError, match="key"):
            await store.claim(bad_key, "", holder, TTL)
        with pytest.raises(ValueError, match="key"):
            await store.get(bad_key)
    for bad_ttl in (0, -1.0, float("inf"), float("nan")):
        with pytest.raises(ValueError, match="ttl"):
            await store.claim(new_key(), "", holder, bad_ttl)
    key = new_key()
    await store.claim(key, "", holder, TTL)
    with pytest.raises(ValueError, match="entry"):
        await store.settle(key, holder, ReplayEntry("", None, holder), TTL)
    with pytest.raises(ValueError, match="idempotency_digest"):
        await store.claim(new_key(), "x" * 129, holder, TTL)


async def test_ping_answers(store: ReplayStore) -> None:
    await store.ping()
