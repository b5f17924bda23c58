"""The in-process replay store: the default when one sidecar serves the pod."""

from __future__ import annotations

import time
from collections import OrderedDict

from sidecar.replay.base import ReplayEntry, ReplayStoreError


class MemoryReplayStore:
    """A bounded dict of token digests with expiry.

    Every entry gets the same TTL, so insertion order is expiry order and eviction of expired
    entries is amortised O(1) from the front. When full of live entries it refuses new claims
    (fail closed) rather than forget a live token and let its replay through.
    """

    def __init__(self, max_entries: int = 1_000_000) -> None:
        self._entries: OrderedDict[str, tuple[float, ReplayEntry]] = OrderedDict()
        self._max_entries = max_entries

    def __len__(self) -> int:
        return len(self._entries)

    def _evict_expired(self, now: float) -> None:
        entries = self._entries
        while entries:
            key, (expires_at, _) = next(iter(entries.items()))
            if expires_at > now:
                return
            del entries[key]

    def _live(self, key: str, now: float) -> ReplayEntry | None:
        found = self._entries.get(key)
        if found is None:
            return None
        if found[0] <= now:
            del self._entries[key]
            return None
        return found[1]

    async def claim(self, key: str, idempotency_digest: str, ttl: float) -> ReplayEntry | None:
        now = time.monotonic()
        existing = self._live(key, now)
        if existing is not None:
            return existing
        if len(self._entries) >= self._max_entries:
            self._evict_expired(now)
            if len(self._entries) >= self._max_entries:
                raise ReplayStoreError("memory replay store is full of live tokens")
        self._entries[key] = (now + ttl, ReplayEntry(idempotency_digest, None))
        return None

    async def settle(self, key: str, entry: ReplayEntry, ttl: float) -> None:
        now = time.monotonic()
        self._entries[key] = (now + ttl, entry)
        self._entries.move_to_end(key)

    async def release(self, key: str) -> None:
        self._entries.pop(key, None)

    async def get(self, key: str) -> ReplayEntry | None:
        return self._live(key, time.monotonic())

    async def ping(self) -> None:
        return None

    async def close(self) -> None:
        self._entries.clear()
