"""The ports: what the core needs from the world, declared by the core.

Adapters (`sidecar.upstream`, `sidecar.replay`, `sidecar.outbox`, `sidecar.telemetry`,
`sidecar.accountid`) implement these Protocols and import this module; the core never imports
an adapter (an import-linter contract in pyproject.toml keeps it so). Failures cross the ports
as frozen values, copied with `dataclasses.replace`, never re-parsed from a message.
"""

from __future__ import annotations

import contextvars
import enum
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Protocol

from sidecar.core.errors import UpstreamRejected
from sidecar.core.model import (
    AnnotationRequest,
    AssessmentRequest,
    Decision,
    Delivery,
    RelatedAccountsPage,
    RelatedAccountsQuery,
    UpstreamAssessment,
)

# Seconds on a monotonic clock (`time.monotonic`, the event loop's clock); injected wherever
# time is read, so tests drive deadlines, budgets and breakers with a fake one.
Clock = Callable[[], float]

# ---- failures ---------------------------------------------------------------------------------


class FailureKind(enum.StrEnum):
    """Why no answer could be had; each kind has its own failure policy."""

    TRANSIENT = "transient"  # upstream unavailable, deadline, breaker open, outcome unknown
    QUOTA = "quota"  # upstream RESOURCE_EXHAUSTED: junk tokens must not switch protection off
    CONFIG = "config"  # credentials, permissions, a bad project or key
    REPLAY_STORE = "replay_store"  # the replay store could not be asked
    # No key could be chosen for the request (`sidecar.core.keys`): answered before upstream.
    CLIENT_TYPE_MISSING = "client_type_missing"  # several client types have keys, none was said
    KEYS_MISSING = "keys_missing"  # no key configured for the request's client type (or at all)
    # Upstream refused this one request (a field the app sent, an unknown assessment): not a
    # failure of upstream nor of the sidecar. No failure policy applies: the token is INVALID,
    # the annotation is dead-lettered; health and the breaker stay out of it.
    REQUEST = "request"


@dataclass(frozen=True, slots=True)
class UpstreamFailure:
    """What one upstream call ended in, when it gave no answer.

    `reached` says whether the request may have reached Google: False when it provably did not
    (connection refused, refused locally, rejected before processing), so the token was not
    consumed and may be tried again; None when that is unknown; True when it did.
    `retryable`: a repeat could cure it (the retry layer still checks `reached` for
    CreateAssessment). `pushback`: seconds the server asked us to wait, if it said.
    `reason`: a machine-readable cause beside the code (e.g. `google.rpc.ErrorInfo.reason`).
    """

    kind: FailureKind
    code: str
    message: str = ""
    reached: bool | None = None
    retryable: bool = False
    pushback: float | None = None
    reason: str = ""


class UpstreamError(Exception):
    """An upstream call gave no answer; `failure` says what happened."""

    def __init__(self, failure: UpstreamFailure) -> None:
        super().__init__(f"{failure.code}: {failure.message}")
        self.failure = failure

    @property
    def kind(self) -> FailureKind:
        return self.failure.kind

    @property
    def code(self) -> str:
        return self.failure.code

    @property
    def reached(self) -> bool | None:
        return self.failure.reached

    @property
    def retryable(self) -> bool:
        return self.failure.retryable

    @property
    def pushback(self) -> float | None:
        return self.failure.pushback


# The failure code of a call refused inside Google's RetryInfo window: answered at once, nothing
# sent. Both windows (the retry layer's per replica, the quota meter's per fleet) answer it.
RETRY_AFTER = "RETRY_AFTER"
MAX_RETRY_AFTER = 3600.0  # a RetryInfo longer than an hour is capped: the window must end


def retry_after_refusal(left: float) -> UpstreamError:
    """The failure of a call refused for `left` more seconds of Google's RetryInfo window."""
    return UpstreamError(
        UpstreamFailure(
            FailureKind.QUOTA,
            RETRY_AFTER,
            f"upstream quota exhausted; Google asked to retry after {left:.1f} s",
            reached=False,
            pushback=left,
        )
    )


def rejected(error: UpstreamError) -> UpstreamRejected:
    """What a synchronous call (Annotate, SearchRelatedAccounts) tells its caller about a
    failed upstream call: the request's own fault keeps its code."""
    return UpstreamRejected(
        error.code, str(error), request=error.kind is FailureKind.REQUEST, kind=error.kind.value
    )


class ReplayStoreError(Exception):
    """The replay store could not answer; callers treat the token as UNCHECKED (fail closed)."""


# ---- upstream ---------------------------------------------------------------------------------

# The attempt number (1, 2, …) of the upstream call in progress: set by whatever retries, read
# by whatever observes single attempts (spans, metrics), so neither needs to know the other.
ATTEMPT: contextvars.ContextVar[int] = contextvars.ContextVar("upstream_attempt", default=1)


class Upstream(Protocol):
    """reCAPTCHA Enterprise as the core sees it. Implementations raise `UpstreamError`."""

    async def create_assessment(
        self, request: AssessmentRequest, *, site_key: str, timeout: float
    ) -> UpstreamAssessment:
        """One CreateAssessment. Not idempotent: the first attempt consumes the token."""
        ...

    async def annotate(self, request: AnnotationRequest, *, timeout: float) -> None:
        """One AnnotateAssessment. Idempotent enough to retry: a repeat only re-labels."""
        ...

    async def search_related_accounts(
        self, query: RelatedAccountsQuery, *, timeout: float
    ) -> RelatedAccountsPage:
        """One SearchRelatedAccountGroupMemberships page. A read: safe to retry."""
        ...

    async def close(self) -> None:
        """Release channels."""
        ...


# ---- replay store -----------------------------------------------------------------------------


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
    """Atomic single use. `claim` is the only way in: exactly one claim id ever gets None.

    A key is the SHA-256 of a token (never the token). Its entry is either *pending* (claimed,
    the assessment still in flight) or *settled* (the final decision). A pending entry carries
    the claim id of the call that holds it: only that holder may settle or release it, so a
    late or retried write from one replica can never undo another replica's claim or answer.
    """

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


# ---- rate limits ------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class RateLimit:
    """One limit a call must pass: at most `calls` per `period` seconds on the counter `key`.

    `key` is an HMAC under the deployment's secret (or a fixed name for the global cap),
    never a client's IP or account id. The arithmetic is GCRA (a token bucket kept as one
    number): up to `calls` at once, then one every `period / calls` seconds.
    """

    key: str
    calls: int
    period: float


class RateLimiterError(Exception):
    """The shared rate-limit store could not answer (the fallback then decides locally)."""


class RateLimiter(Protocol):
    """Counts the calls that would reach upstream, per client and in all."""

    async def admit(self, limits: Sequence[RateLimit], timeout: float) -> int:
        """Count one call against every limit when each has room for it: -1. Otherwise the
        index of the first limit without room, and nothing counted. Within `timeout`
        seconds; `RateLimiterError` when the store cannot answer."""
        ...

    async def close(self) -> None:
        """Release connections and tasks."""
        ...


# ---- annotations ------------------------------------------------------------------------------


class AnnotationSink(Protocol):
    """Where a validated annotation, its account id already protected, goes: straight
    upstream, or into the durable outbox."""

    async def deliver(self, request: AnnotationRequest, timeout: float | None) -> Delivery:
        """Accept one annotation: QUEUED once stored durably, DELIVERED once upstream took it.
        Raises `UpstreamRejected` when upstream refused it synchronously, `Overloaded` when
        the sink cannot take more."""
        ...


class AccountIdProtector(Protocol):
    """Turns an account id into what upstream sees. Deterministic: one id, one output."""

    def protect(self, account_id: str) -> str:
        """The protected form; the empty id stays empty (no account)."""
        ...


# ---- observation ------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class CallContext:
    """Which front door a use case was called through: `front_door` names the API (e.g.
    `recaptcha.sidecar.v1.VerificationService`), `method` its operation (`Assess`). Front doors
    keep one instance per method as a constant, so passing it costs nothing per call."""

    front_door: str
    method: str


class DecisionObserver(Protocol):
    """Told of every answer the use cases give, once, in the caller's task (so it can reach
    the caller's span and access line). Must be cheap and must not raise."""

    def assessed(self, call: CallContext, request: AssessmentRequest, decision: Decision) -> None:
        """One Assess answer (fresh, replayed or duplicate)."""
        ...

    def annotated(self, call: CallContext, request: AnnotationRequest, delivery: Delivery) -> None:
        """One accepted annotation."""
        ...

    def searched(
        self, call: CallContext, query: RelatedAccountsQuery, page: RelatedAccountsPage
    ) -> None:
        """One page of related accounts answered."""
        ...


class NullObserver:
    """Observes nothing: the default, and what runs when no telemetry is configured."""

    __slots__ = ()

    def assessed(self, call: CallContext, request: AssessmentRequest, decision: Decision) -> None:
        return None

    def annotated(self, call: CallContext, request: AnnotationRequest, delivery: Delivery) -> None:
        return None

    def searched(
        self, call: CallContext, query: RelatedAccountsQuery, page: RelatedAccountsPage
    ) -> None:
        return None
