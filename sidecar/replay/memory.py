"""The in-process replay store: the default when one sidecar serves the pod."""

from __future__ import annotations

import heapq
import time
from collections.abc import Callable

from sidecar.replay.base import ReplayEntry, ReplayStoreError, check_claim_id


class MemoryReplayStore:
    """A bounded dict of token digests with expiry.

    Expiry times sit in a heap, so expired entries are dropped from the front as new claims
    arrive (amortised O(log n)) whatever TTL each write used. Only expired entries are ever
    evicted: when the store is full of live tokens it refuses new claims (the caller answers
    UNCHECKED, closed by default) rather than forget a live token and let its replay through.
    Size `max_entries` above the peak rate of new tokens times the TTL.

    Everything runs on the event loop thread with no await inside an operation, so each
    operation is atomic without a lock.
    """

    def __init__(
        self, max_entries: int = 1_000_000, *, clock: Callable[[], float] = time.monotonic
    ) -> None:
        if max_entries < 1:
            raise ValueError("max_entries must be at least 1")
        self._entries: dict[str, tuple[float, ReplayEntry]] = {}
        self._expiry: list[tuple[float, str]] = []  # (expires_at, key); stale items allowed
        self._max_entries = max_entries
        self._clock = clock

    def __len__(self) -> int:
        return len(self._entries)

    def _evict_expired(self, now: float) -> None:
        heap, entries = self._expiry, self._entries
        while heap and heap[0][0] <= now:
            _, key = heapq.heappop(heap)
            found = entries.get(key)
            if found is not None and found[0] <= now:
                del entries[key]
        if len(heap) > 2 * len(entries) + 1024:  # rewrites and releases left stale items
            self._expiry = [(expires_at, key) for key, (expires_at, _) in entries.items()]
            heapq.heapify(self._expiry)

    def _live(self, key: str, now: float) -> ReplayEntry | None:
        found = self._entries.get(key)
        if found is None:
            return None
        if found[0] <= now:
            del self._entries[key]
            return None
        return found[1]

    def _put(self, key: str, entry: ReplayEntry, expires_at: float) -> None:
        self._entries[key] = (expires_at, entry)
        heapq.heappush(self._expiry, (expires_at, key))

    def _has_room(self, now: float) -> bool:
        self._evict_expired(now)
        return len(self._entries) < self._max_entries

    async def claim(
        self, key: str, idempotency_digest: str, claim_id: str, ttl: float
    ) -> ReplayEntry | None:
        check_claim_id(claim_id)
        now = self._clock()
        existing = self._live(key, now)
        if existing is not None:
            if existing.pending and existing.claim_id == claim_id:
                return None
            return existing
        if not self._has_room(now):
            raise ReplayStoreError("memory replay store is full of live tokens")
        self._put(key, ReplayEntry(idempotency_digest, None, claim_id), now + ttl)
        return None

    async def settle(self, key: str, claim_id: str, entry: ReplayEntry, ttl: float) -> bool:
        now = self._clock()
        final = ReplayEntry(entry.idempotency_digest, entry.decision)
        existing = self._live(key, now)
        if existing is None:
            if not self._has_room(now):
                return False
        elif existing == final:
            return True
        elif not (existing.pending and existing.claim_id == claim_id):
            return False  # another claim holds it, or it is settled already
        self._put(key, final, now + ttl)
        return True

    async def release(self, key: str, claim_id: str) -> bool:
        existing = self._live(key, self._clock())
        if existing is None or not existing.pending or existing.claim_id != claim_id:
            return False
        del self._entries[key]
        return True

    async def get(self, key: str) -> ReplayEntry | None:
        return self._live(key, self._clock())

    async def ping(self) -> None:
        return None

    async def close(self) -> None:
        self._entries.clear()
        self._expiry.clear()
