"""The argument rules of the replay store contract, enforced once for every backend.

`open_replay_store` hands out each store behind `CheckedReplayStore`, so memory, Redis,
Cluster and Sentinel refuse the same calls the same way (a programming error, `ValueError`),
instead of each backend checking what it happens to think of: the memory store used to accept
`settle(key, "")` that Redis refused. The backends themselves assume valid arguments.
"""

from __future__ import annotations

import math
import re

from sidecar.core.ports import ReplayEntry, ReplayStore

_CLAIM_ID = re.compile(r"[A-Za-z0-9_-]{1,64}")
_KEY = re.compile(r"[!-~]{1,128}")  # visible ASCII: a hex digest in practice
_DIGEST = re.compile(r"[!-~]{0,128}")


def check_claim_id(claim_id: str) -> str:
    """Claim ids are short tokens of `[A-Za-z0-9_-]` (e.g. `secrets.token_hex(8)`): an empty
    or odd id could match a holder it is not."""
    if not isinstance(claim_id, str) or not _CLAIM_ID.fullmatch(claim_id):
        raise ValueError("claim_id: expected 1 to 64 characters of [A-Za-z0-9_-]")
    return claim_id


def _check_key(key: str) -> None:
    if not isinstance(key, str) or not _KEY.fullmatch(key):
        raise ValueError("key: expected 1 to 128 visible ASCII characters (a token digest)")


def _check_ttl(ttl: float) -> None:
    if not (isinstance(ttl, int | float) and math.isfinite(ttl) and ttl > 0):
        raise ValueError("ttl: expected a positive number of seconds")


def _check_digest(digest: str) -> None:
    if not isinstance(digest, str) or not _DIGEST.fullmatch(digest):
        raise ValueError("idempotency_digest: expected at most 128 visible ASCII characters")


class CheckedReplayStore:
    """A `ReplayStore` that checks every argument before the backend sees it."""

    __slots__ = ("_inner",)

    def __init__(self, inner: ReplayStore) -> None:
        self._inner = inner

    @property
    def inner(self) -> ReplayStore:
        """The store checked (what its own telemetry, e.g. the memory store's evictions, is
        read from)."""
        return self._inner

    async def claim(
        self, key: str, idempotency_digest: str, claim_id: str, ttl: float
    ) -> ReplayEntry | None:
        _check_key(key)
        _check_digest(idempotency_digest)
        check_claim_id(claim_id)
        _check_ttl(ttl)
        return await self._inner.claim(key, idempotency_digest, claim_id, ttl)

    async def settle(self, key: str, claim_id: str, entry: ReplayEntry, ttl: float) -> bool:
        _check_key(key)
        check_claim_id(claim_id)
        _check_ttl(ttl)
        if not isinstance(entry, ReplayEntry) or entry.decision is None:
            raise ValueError("entry: settle stores a decision (a pending entry is a claim)")
        _check_digest(entry.idempotency_digest)
        return await self._inner.settle(key, claim_id, entry, ttl)

    async def release(self, key: str, claim_id: str) -> bool:
        _check_key(key)
        check_claim_id(claim_id)
        return await self._inner.release(key, claim_id)

    async def get(self, key: str) -> ReplayEntry | None:
        _check_key(key)
        return await self._inner.get(key)

    async def ping(self) -> None:
        await self._inner.ping()

    async def close(self) -> None:
        await self._inner.close()
