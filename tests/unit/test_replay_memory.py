"""The memory store's bound: only expired entries are evicted; full of live tokens it refuses."""

from __future__ import annotations

import pytest

from sidecar.core.model import Decision, RecommendedAction, TokenStatus, Verdict
from sidecar.core.ports import ReplayEntry, ReplayStoreError
from sidecar.replay.memory import MemoryReplayStore

DECISION = Decision(
    allowed=True,
    verdict=Verdict.PASSED,
    token_status=TokenStatus.VALID,
    recommended_action=RecommendedAction.ALLOW,
    decided_by="passed",
)


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


async def test_full_of_live_tokens_refuses_rather_than_forget_one() -> None:
    clock = Clock()
    store = MemoryReplayStore(max_entries=3, clock=clock)
    for key in "abc":
        assert await store.claim(key, "", "c" + key, 150) is None
    with pytest.raises(ReplayStoreError, match="full"):
        await store.claim("d", "", "cd", 150)
    for key in "abc":  # nothing live was forgotten
        assert await store.get(key) is not None
    assert await store.settle("e", "ce", ReplayEntry("", DECISION), 150) is False


async def test_expired_entries_make_room_whatever_their_ttl() -> None:
    clock = Clock()
    store = MemoryReplayStore(max_entries=3, clock=clock)
    await store.claim("long", "", "c1", 500)
    await store.claim("short", "", "c2", 10)
    await store.claim("mid", "", "c3", 100)
    clock.now += 11  # only "short" has expired, though "long" was written first
    assert await store.claim("new", "", "c4", 150) is None
    assert await store.get("short") is None
    assert {k for k in ("long", "mid", "new") if await store.get(k) is not None} == {
        "long",
        "mid",
        "new",
    }


async def test_settle_extends_the_life_of_a_claim() -> None:
    clock = Clock()
    store = MemoryReplayStore(max_entries=10, clock=clock)
    await store.claim("k", "", "c", 10)
    clock.now += 5
    await store.settle("k", "c", ReplayEntry("", DECISION), 10)
    clock.now += 8  # past the claim's expiry, within the settled entry's
    seen = await store.get("k")
    assert seen is not None and seen.decision == DECISION
    clock.now += 3
    assert await store.get("k") is None


async def test_rewrites_keep_one_entry_per_token() -> None:
    clock = Clock()
    store = MemoryReplayStore(max_entries=100, clock=clock)
    for round_ in range(3000):
        key = f"k{round_ % 50}"
        await store.release(key, "c")
        await store.claim(key, "", "c", 150)
        clock.now += 0.01
    assert len(store) == 50


def test_max_entries_must_be_positive() -> None:
    with pytest.raises(ValueError, match="max_entries"):
        MemoryReplayStore(max_entries=0)
