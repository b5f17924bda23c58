"""What only the memory store does (the shared contract is tests/contract/test_replay_store.py).

It packs entries into bytes (see sidecar/replay/memory.py), so every decision, idempotency
digest and key form must come back exactly as stored; it forgets whole generations once
expired; and full of live tokens it refuses a claim rather than forget one. Its methods never
suspend, so they are driven without an event loop, on an injected clock moved by hand.
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
from tests.support.clock import FakeClock

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


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


def store_on(clock: FakeClock, max_entries: int = 1_000) -> MemoryReplayStore:
    return MemoryReplayStore(max_entries=max_entries, clock=clock)


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


# ---- the packing gives back what was stored ------------------------------------------------


@pytest.mark.parametrize("name", NAMES)
def test_a_settled_decision_comes_back_equal(clock: FakeClock, name: str) -> None:
    store = store_on(clock)
    key = digest(name)
    decision = valid(name, create_time=None if name == "" else 1_700_000_000.25)
    assert run(store.claim(key, "", "c", TTL)) is None
    run(store.settle(key, "c", ReplayEntry("", decision), TTL))
    assert run(store.get(key)) == ReplayEntry("", decision)
    assert run(store.claim(key, "", "c", TTL)) == ReplayEntry("", decision)


@pytest.mark.parametrize(
    "idem", ["", digest("retry-1"), digest("x").upper(), "not-a-digest", "ü" * 40]
)
def test_idempotency_digests_round_trip(clock: FakeClock, idem: str) -> None:
    store = store_on(clock)
    key = digest("token")
    assert run(store.claim(key, idem, "c", TTL)) is None
    assert run(store.claim(key, "other", "c2", TTL)) == ReplayEntry(idem, None, "c")
    run(store.settle(key, "c", ReplayEntry(idem, valid()), TTL))
    assert run(store.get(key)) == ReplayEntry(idem, valid())


def test_key_forms_are_distinct(clock: FakeClock) -> None:
    """A hex digest is stored as bytes; other keys stay text and never collide with it."""
    store = store_on(clock)
    lower = digest("t")
    for key in (lower, lower.upper(), "short", lower[:-1] + "g"):
        assert run(store.claim(key, "", "c", TTL)) is None
    assert len(store) == 4


def test_decisions_beyond_the_table_are_kept_as_they_are(
    clock: FakeClock, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(memory, "_MAX_TEMPLATES", 2)
    monkeypatch.setattr(memory, "_MAX_PREFIXES", 1)
    store = store_on(clock)
    decisions = [valid(action=f"a{i}") for i in range(4)]
    decisions.append(valid("elsewhere/x"))
    for i, decision in enumerate(decisions):
        run(store.claim(digest(str(i)), "", "c", TTL))
        run(store.settle(digest(str(i)), "c", ReplayEntry("", decision), TTL))
    for i, decision in enumerate(decisions):
        assert run(store.get(digest(str(i)))) == ReplayEntry("", decision)


# ---- expiry and the bound --------------------------------------------------------------------


def test_settle_gives_the_answer_a_life_of_its_own(clock: FakeClock) -> None:
    store = store_on(clock)
    key = digest("t")
    run(store.claim(key, "", "c", 10))
    clock.advance(5)
    run(store.settle(key, "c", ReplayEntry("", valid()), 10))
    clock.advance(8)  # past the claim's expiry, within the settled entry's
    assert run(store.get(key)) == ReplayEntry("", valid())
    assert len(store) == 1
    clock.advance(3)
    assert run(store.get(key)) is None


def test_expired_generations_are_forgotten(clock: FakeClock) -> None:
    store = store_on(clock)
    for i in range(50):
        run(store.claim(digest(str(i)), "", "c", TTL))
        clock.advance(1)
    assert len(store) == 50
    clock.advance(TTL)
    run(store.claim(digest("late"), "", "c", TTL))
    assert len(store) == 1
    assert run(store.get(digest("late"))) == ReplayEntry("", None, "c")


def test_rewrites_keep_one_entry_per_token(clock: FakeClock) -> None:
    store = store_on(clock, max_entries=100)
    for round_ in range(3000):
        key = digest(str(round_ % 50))
        run(store.release(key, "c"))
        run(store.claim(key, "", "c", TTL))
        clock.advance(0.01)
    assert len(store) == 50


def test_full_of_live_tokens_refuses_rather_than_forget_one(clock: FakeClock) -> None:
    store = store_on(clock, max_entries=2)
    run(store.claim(digest("a"), "", "c", TTL))
    run(store.claim(digest("b"), "", "c", TTL))
    with pytest.raises(ReplayStoreError, match="full"):
        run(store.claim(digest("c"), "", "c", TTL))
    assert run(store.settle(digest("e"), "c", ReplayEntry("", valid()), TTL)) is False
    for key in "ab":  # nothing live was forgotten
        assert run(store.get(digest(key))) is not None
    clock.advance(TTL)
    assert run(store.claim(digest("c"), "", "c", TTL)) is None


def test_expired_entries_make_room_whatever_their_ttl(clock: FakeClock) -> None:
    """Same generation, different TTLs: the short-lived entry makes room once expired, though
    a longer-lived one was written first."""
    store = store_on(clock, max_entries=2)
    run(store.claim(digest("long"), "", "c", TTL))
    run(store.claim(digest("short"), "", "c", 1.0))
    with pytest.raises(ReplayStoreError):
        run(store.claim(digest("c"), "", "c", TTL))
    clock.advance(2)
    assert run(store.claim(digest("c"), "", "c", TTL)) is None
    assert run(store.get(digest("long"))) is not None
    assert run(store.get(digest("short"))) is None


def test_max_entries_must_be_positive() -> None:
    with pytest.raises(ValueError, match="max_entries"):
        MemoryReplayStore(max_entries=0)


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
    store = MemoryReplayStore(max_entries=1_000, clock=FakeClock())
    key = digest(repr(decision))
    run(store.claim(key, idem, "c", TTL))
    run(store.settle(key, "c", ReplayEntry(idem, decision), TTL))
    assert run(store.get(key)) == ReplayEntry(idem, decision)
