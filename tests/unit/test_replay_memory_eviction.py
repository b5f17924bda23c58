"""A full memory store makes room by evicting settled entries, not-allowed first, allowed only
when nothing else is left, never a pending claim, and without scanning the store per claim
(issue 13 item 9)."""

from __future__ import annotations

import hashlib
import logging

import pytest

from sidecar.core.logthrottle import ThrottledLog
from sidecar.core.model import Decision, RecommendedAction, TokenStatus, Verdict
from sidecar.core.ports import ReplayEntry, ReplayStoreError
from sidecar.replay.memory import ALLOWED, NOT_ALLOWED, MemoryReplayStore
from tests.support.clock import FakeClock

TTL = 150.0
PASSED = Decision(
    allowed=True,
    verdict=Verdict.PASSED,
    token_status=TokenStatus.VALID,
    recommended_action=RecommendedAction.ALLOW,
    decided_by="passed",
    assessment_name="projects/1/assessments/ab",
)
JUNK = Decision(
    allowed=False,
    verdict=Verdict.FAILED_ENFORCE,
    token_status=TokenStatus.INVALID,
    recommended_action=RecommendedAction.BLOCK,
    decided_by="token_invalid",
    invalid_reason="MALFORMED",
    assessment_name="projects/1/assessments/cd",
)


def key(name: str) -> str:
    return hashlib.sha256(name.encode()).hexdigest()


async def settle(store: MemoryReplayStore, name: str, decision: Decision) -> None:
    assert await store.claim(key(name), "", "c", TTL) is None
    assert await store.settle(key(name), "c", ReplayEntry("", decision), TTL)


async def test_not_allowed_entries_go_first_then_allowed_never_pending() -> None:
    clock = FakeClock()
    store = MemoryReplayStore(max_entries=6, clock=clock)
    await settle(store, "good-1", PASSED)
    await settle(store, "junk-1", JUNK)
    await settle(store, "good-2", PASSED)
    await settle(store, "junk-2", JUNK)
    assert await store.claim(key("pending-1"), "", "p1", TTL) is None
    assert await store.claim(key("pending-2"), "", "p2", TTL) is None
    clock.now += 1

    for fresh in ("fresh-1", "fresh-2"):  # the two junk entries make room, oldest first
        assert await store.claim(key(fresh), "", "f", TTL) is None
    assert store.evictions == {NOT_ALLOWED: 2, ALLOWED: 0}
    assert await store.get(key("junk-1")) is None and await store.get(key("junk-2")) is None
    assert (await store.get(key("good-1"))) == ReplayEntry("", PASSED)

    # Nothing not-allowed is left: the oldest allowed entry goes (a capacity alarm).
    assert await store.claim(key("fresh-3"), "", "f", TTL) is None
    assert store.evictions == {NOT_ALLOWED: 2, ALLOWED: 1}
    assert await store.get(key("good-1")) is None
    assert await store.get(key("good-2")) is not None
    assert await store.claim(key("fresh-4"), "", "f", TTL) is None
    assert store.evictions[ALLOWED] == 2

    # Only pending claims are left: never evicted, the store refuses.
    with pytest.raises(ReplayStoreError, match="full"):
        await store.claim(key("fresh-5"), "", "f", TTL)
    for pending in ("pending-1", "pending-2", "fresh-1", "fresh-2", "fresh-3", "fresh-4"):
        entry = await store.get(key(pending))
        assert entry is not None and entry.pending


async def test_a_flood_of_junk_never_locks_real_users_out_and_never_scans() -> None:
    """2,500 junk tokens into a store for 2,000: every fresh token can still be claimed, and
    making room looks at each evicted candidate once (no scan of the store per claim)."""
    clock = FakeClock()
    store = MemoryReplayStore(max_entries=2_000, clock=clock)
    for index in range(2_500):
        await settle(store, f"junk-{index}", JUNK)
        clock.now += 0.01
    for index in range(200):
        assert await store.claim(key(f"real-{index}"), "", "r", TTL) is None
    assert len(store) == 2_000
    assert store.evictions == {NOT_ALLOWED: 700, ALLOWED: 0}
    assert store.examined == 700  # one candidate looked at per eviction
    assert store.scans == 0


async def test_a_token_claimed_again_after_its_entry_moved_is_not_evicted_by_a_stale_listing() -> (
    None
):
    clock = FakeClock()
    store = MemoryReplayStore(max_entries=2, clock=clock)
    await settle(store, "a", JUNK)
    clock.now += TTL + 1  # "a" expires; claimed again it is pending in a new generation
    assert await store.claim(key("a"), "", "again", TTL) is None
    assert await store.claim(key("b"), "", "b", TTL) is None
    with pytest.raises(ReplayStoreError):  # both pending: nothing to evict
        await store.claim(key("c"), "", "c", TTL)
    entry = await store.get(key("a"))
    assert entry is not None and entry.claim_id == "again"


async def test_evicting_an_allowed_entry_is_logged_as_a_capacity_alarm(
    caplog: pytest.LogCaptureFixture,
) -> None:
    store = MemoryReplayStore(max_entries=2, clock=FakeClock())
    await settle(store, "good-1", PASSED)
    await settle(store, "good-2", PASSED)
    with caplog.at_level(logging.WARNING, logger="sidecar.replay.memory"):
        for index in range(5):
            await settle(store, f"good-{index + 3}", PASSED)
    alarms = [r for r in caplog.records if "replay_max_entries" in r.getMessage()]
    assert len(alarms) == 1, "one line per interval, however many evictions"
    assert store.evictions[ALLOWED] == 5


def test_throttled_log_writes_one_line_per_interval_and_counts_the_rest(
    caplog: pytest.LogCaptureFixture,
) -> None:
    clock = FakeClock()
    throttled = ThrottledLog(logging.getLogger("test.throttle"), 10.0, clock=clock)
    with caplog.at_level(logging.WARNING, logger="test.throttle"):
        assert throttled.warning("a", "store down")
        for _ in range(99):
            assert not throttled.warning("a", "store down")
        assert throttled.warning("b", "other kind")  # kinds are throttled apart
        clock.now += 10
        assert throttled.warning("a", "store down")
    lines = [r for r in caplog.records if r.name == "test.throttle"]
    assert [r.getMessage() for r in lines] == ["store down", "other kind", "store down"]
    assert getattr(lines[2], "suppressed", None) == 99
    assert not hasattr(lines[0], "suppressed")
