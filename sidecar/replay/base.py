"""The replay store contract: every backend passes one shared test suite against it.

A key is the SHA-256 of a token (never the token). Its entry is either *pending* (claimed, the
assessment still in flight) or *settled* (the final decision). A pending entry carries the
claim id of the call that holds it: only that holder may settle or release it, so a late or
retried write from one replica can never undo another replica's claim or answer.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Protocol

from sidecar.core.model import Decision

_CLAIM_ID = re.compile(r"[A-Za-z0-9_-]{1,64}")


class ReplayStoreError(Exception):
    """The store could not answer; callers treat the token as UNCHECKED (fail closed)."""


def check_claim_id(claim_id: str) -> str:
    """Claim ids are short tokens of `[A-Za-z0-9_-]` (e.g. `secrets.token_hex(8)`): an empty
    or odd id could match a holder it is not, so it is a programming error."""
    if not _CLAIM_ID.fullmatch(claim_id):
        raise ValueError("claim_id: expected 1 to 64 characters of [A-Za-z0-9_-]")
    return claim_id


@dataclass(frozen=True, slots=True)
class ReplayEntry:
    """What is remembered of a token.

    `decision` is None while the first assessment is still in flight (pending); `claim_id`
    names the holder of a pending claim and is empty once settled.
    """

    idempotency_digest: str
    decision: Decision | None
    claim_id: str = ""

    @property
    def pending(self) -> bool:
        """True while the first assessment of the token has no answer yet."""
        return self.decision is None


class ReplayStore(Protocol):
    """Atomic single use. `claim` is the only way in: exactly one claim id ever gets None."""

    async def claim(
        self, key: str, idempotency_digest: str, claim_id: str, ttl: float
    ) -> ReplayEntry | None:
        """Atomically remember `key` as pending for `claim_id`; None if this claim now holds
        it (also when it already held it: a retried claim is idempotent), else the entry
        already there."""
        ...

    async def settle(self, key: str, claim_id: str, entry: ReplayEntry, ttl: float) -> bool:
        """Store the final decision of a key claimed by `claim_id`, for `ttl` seconds from
        now. Also stores it when the key has vanished (a store restart lost it), never when
        another claim or a settled entry is there. True when `entry` is what is stored."""
        ...

    async def release(self, key: str, claim_id: str) -> bool:
        """Forget a pending claim held by `claim_id` (its token provably never reached
        upstream, so the app may present it again). True when something was forgotten."""
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
