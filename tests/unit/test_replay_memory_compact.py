"""The memory replay store's compact representation gives back exactly what was stored.

The store packs entries into bytes (see sidecar/replay/memory.py); these tests hold it to the
ReplayStore contract through that packing: every decision, idempotency digest and key form
round-trips, expiry and the bound behave as before. The store's methods never suspend, so they
are driven without an event loop and the clock can be moved by hand.
"""

from __future__ import annotations

import hashlib
from collections.abc import Coroutine
from typing import Any, TypeVar

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import sidecar.replay.memory as memory
from sidecar.core.model import Decision, RecommendedAction, TokenStatus, Verdict
from sidecar.core.ports import ReplayEntry, ReplayStoreError
from sidecar.replay.memory import MemoryReplayStore

T = TypeVar("T")
TTL = 150.0


def run(coroutine: Coroutine[Any, Any, T]) -> T:
    """Drive a coroutine that completes without suspending."""
    try:
        coroutine.send(None)
    except StopIteration as done:
        return done.value  # type: ignore[no-any-return]
    raise AssertionError("the memory store suspended")


def digest(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


class Clock:
    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.now = 1000.0
        monkeypatch.setattr(memory.time, "monotonic", lambda: self.now)


@pytest.fixture
def clock(monkeypatch: pytest.MonkeyPatch) -> Clock:
    return Clock(monkeypatch)


def valid(name: str = "projects/123456789/assessments/0123456789abcdef", **kw: Any) -> Decision:
    fields: dict[str, Any] = {
        "allowed": True,
        "verdict": Verdict.PASSED,
        "token_status": TokenStatus.VALID,
        "recommended_action": RecommendedAction.ALLOW,
        "decided_by": "passed",
        "score": 0.8999999761581421,
        "threshold": 0.5,
        "action": "login",
        "hostname": "localhost",
        "create_time": 1_700_000_000.25,
        "assessment_name": name,
    }
    fields.update(kw)
    return Decision(**fields)


NAMES = [
    "projects/123456789/assessments/0123456789abcdef",
    "projects/p/assessments/ABCDEF",  # upper-case hex must stay upper case
    "projects/p/assessments/abc",  # odd length
    "projects/p/assessments/",
    "",
    "no-slash",
    "/leading",
    "trailing/",
    "projects/é/assessments/ünïcode",
]


@pytest.mark.parametrize("name", NAMES)
def test_a_settled_decision_comes_back_equal(clock: Clock, name: str) -> None:
    store = MemoryReplayStore()
    key = digest(name)
    decision = valid(name, create_time=None if name == "" else 1_700_000_000.25)
    assert run(store.claim(key, "", "c", TTL)) is None
    run(store.settle(key, "c", ReplayEntry("", decision), TTL))
    assert run(store.get(key)) == ReplayEntry("", decision)
    assert run(store.claim(key, "", "c", TTL)) == ReplayEntry("", decision)


@pytest.mark.parametrize(
    "idem", ["", digest("retry-1"), digest("x").upper(), "not-a-digest", "ü" * 40]
)
def test_idempotency_digests_round_trip(clock: Clock, idem: str) -> None:
    store = MemoryReplayStore()
    key = digest("token")
    assert run(store.claim(key, idem, "c", TTL)) is None
    assert run(store.claim(key, "other", "c2", TTL)) == ReplayEntry(idem, None, "c")
    run(store.settle(key, "c", ReplayEntry(idem, valid()), TTL))
    assert run(store.get(key)) == ReplayEntry(idem, valid())


def test_key_forms_are_distinct(clock: Clock) -> None:
    """A hex digest is stored as bytes; other keys stay text and never collide with it."""
    store = MemoryReplayStore()
    lower = digest("t")
    for key in (lower, lower.upper(), "short", lower[:-1] + "g"):
        assert run(store.claim(key, "", "c", TTL)) is None
    assert len(store) == 4


def test_release_makes_the_token_claimable_again(clock: Clock) -> None:
    store = MemoryReplayStore()
    key = digest("t")
    run(store.claim(key, "", "c", TTL))
    run(store.release(key, "c"))
    run(store.release(key, "c"))  # releasing twice is harmless
    assert len(store) == 0
    assert run(store.claim(key, "", "c", TTL)) is None


def test_entries_expire_after_their_ttl(clock: Clock) -> None:
    store = MemoryReplayStore()
    key = digest("t")
    run(store.claim(key, "", "c", TTL))
    run(store.settle(key, "c", ReplayEntry("", valid()), TTL))
    clock.now += TTL - 0.001
    assert run(store.get(key)) is not None
    clock.now += 0.002
    assert run(store.get(key)) is None
    assert run(store.claim(key, "", "c", TTL)) is None


def test_settle_restarts_the_ttl(clock: Clock) -> None:
    store = MemoryReplayStore()
    key = digest("t")
    run(store.claim(key, "", "c", TTL))
    clock.now += 100
    run(store.settle(key, "c", ReplayEntry("", valid()), TTL))
    clock.now += 100
    assert run(store.get(key)) is not None
    assert len(store) == 1


def test_expired_generations_are_forgotten(clock: Clock) -> None:
    store = MemoryReplayStore()
    for i in range(50):
        run(store.claim(digest(str(i)), "", "c", TTL))
        clock.now += 1
    assert len(store) == 50
    clock.now += TTL
    run(store.claim(digest("late"), "", "c", TTL))
    assert len(store) == 1
    assert run(store.get(digest("late"))) == ReplayEntry("", None, "c")


def test_full_of_live_tokens_refuses_then_recovers_on_expiry(clock: Clock) -> None:
    store = MemoryReplayStore(max_entries=2)
    run(store.claim(digest("a"), "", "c", TTL))
    run(store.claim(digest("b"), "", "c", TTL))
    with pytest.raises(ReplayStoreError):
        run(store.claim(digest("c"), "", "c", TTL))
    assert run(store.get(digest("a"))) is not None  # nothing live was forgotten
    clock.now += TTL
    assert run(store.claim(digest("c"), "", "c", TTL)) is None


def test_full_store_forgets_single_expired_entries_among_live_ones(clock: Clock) -> None:
    """Same generation, different TTLs: the short-lived entry makes room once expired."""
    store = MemoryReplayStore(max_entries=2)
    run(store.claim(digest("short"), "", "c", 1.0))
    run(store.claim(digest("long"), "", "c", TTL))
    with pytest.raises(ReplayStoreError):
        run(store.claim(digest("c"), "", "c", TTL))
    clock.now += 2
    assert run(store.claim(digest("c"), "", "c", TTL)) is None
    assert run(store.get(digest("long"))) is not None


def test_decisions_beyond_the_table_are_kept_as_they_are(
    clock: Clock, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(memory, "_MAX_TEMPLATES", 2)
    monkeypatch.setattr(memory, "_MAX_PREFIXES", 1)
    store = MemoryReplayStore()
    decisions = [valid(action=f"a{i}") for i in range(4)]
    decisions.append(valid("elsewhere/x"))
    for i, decision in enumerate(decisions):
        run(store.claim(digest(str(i)), "", "c", TTL))
        run(store.settle(digest(str(i)), "c", ReplayEntry("", decision), TTL))
    for i, decision in enumerate(decisions):
        assert run(store.get(digest(str(i)))) == ReplayEntry("", decision)


text = st.text(max_size=40)
decisions = st.builds(
    Decision,
    allowed=st.booleans(),
    verdict=st.sampled_from(Verdict),
    token_status=st.sampled_from(TokenStatus),
    recommended_action=st.sampled_from(RecommendedAction),
    decided_by=text,
    invalid_reason=text,
    score=st.floats(allow_nan=False),
    threshold=st.floats(allow_nan=False),
    reasons=st.lists(text, max_size=3).map(tuple),
    action=text,
    hostname=text,
    android_package_name=text,
    ios_bundle_id=text,
    create_time=st.none() | st.floats(allow_nan=False),
    assessment_name=text | st.sampled_from(NAMES),
    account_defender_labels=st.lists(text, max_size=2).map(tuple),
    replayed=st.booleans(),
    policy_version=text,
)


@settings(max_examples=300, deadline=None)
@given(decision=decisions, idem=st.sampled_from(["", digest("k")]) | text)
def test_any_decision_round_trips(decision: Decision, idem: str) -> None:
    store = MemoryReplayStore()
    key = digest(repr(decision))
    run(store.claim(key, idem, "c", TTL))
    run(store.settle(key, "c", ReplayEntry(idem, decision), TTL))
    assert run(store.get(key)) == ReplayEntry(idem, decision)
