"""The replay store contract: every backend passes one shared test suite against it."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

from sidecar.core.model import Decision


class ReplayStoreError(Exception):
    """The store could not answer; callers treat the token as UNCHECKED (fail closed)."""


@dataclass(frozen=True, slots=True)
class ReplayEntry:
    """What is remembered of a token, keyed by the SHA-256 of the token, never the token.

    `decision` is None while the first assessment is still in flight.
    """

    idempotency_digest: str
    decision: Decision | None


class ReplayStore(Protocol):
    """Atomic single use. `claim` is the only way in: exactly one caller ever gets None."""

    async def claim(self, key: str, idempotency_digest: str, ttl: float) -> ReplayEntry | None:
        """Atomically remember `key` as pending; None if this caller now owns it, else the
        entry already there."""
        ...

    async def settle(self, key: str, entry: ReplayEntry, ttl: float) -> None:
        """Store the final decision of a claimed key so later repeats can report it."""
        ...

    async def release(self, key: str) -> None:
        """Forget a claimed key whose token provably never reached upstream."""
        ...

    async def get(self, key: str) -> ReplayEntry | None:
        """The entry for `key`, if any (for waiting on another replica's answer)."""
        ...

    async def ping(self) -> None:
        """Raise ReplayStoreError when the store cannot be used (for health)."""
        ...

    async def close(self) -> None:
        """Release connections."""
        ...
