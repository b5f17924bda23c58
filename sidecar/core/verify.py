"""Assess: validate → shape filter → claim the token → rate limits → ask upstream once →
decide → remember.

Single use holds in three layers: in-process single flight (concurrent calls for one token
share one upstream call), the replay store's atomic claim (replicas and restarts), and upstream's
own DUPE. The leader's work runs in its own task (a flight), so a caller that gives up (client
timeout) does not cancel an upstream call whose answer a retry with the same idempotency key
will want; with a key, that call gets its full upstream timeout. The flight answers its callers
as soon as the decision is known and settles or releases the claim afterwards.

The one rule (ARCHITECTURE.md): a token is allowed at most once. An allowed answer always
settles the claim, an UNCHECKED one that an open failure policy let through included; only a
not-allowed answer whose token never reached Google releases it. A repeat of a token is never
let through by a failure policy: a repeat still waiting when its deadline comes is DUPLICATE,
or, with the same idempotency key and the same request, UNCHECKED under a closed decision.
"""

from __future__ import annotations

import asyncio
import dataclasses
import enum
import hashlib
import json
import logging
import secrets
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import TypeVar

from sidecar.core.bounded import bounded
from sidecar.core.keys import NoKey, SiteKeys
from sidecar.core.limits import AdmissionLimiter, Slot
from sidecar.core.logthrottle import ThrottledLog
from sidecar.core.model import AssessmentRequest, Decision, TokenStatus
from sidecar.core.ports import (
    CallContext,
    DecisionObserver,
    FailureKind,
    NullObserver,
    ReplayEntry,
    ReplayStore,
    ReplayStoreError,
    Upstream,
    UpstreamError,
)
from sidecar.core.shape import shape_problem
from sidecar.core.shield import QuotaShield
from sidecar.core.validation import validate_assessment
from sidecar.policy.rules import (
    decide,
    decide_duplicate,
    decide_impossible,
    decide_missing,
    decide_no_key,
    decide_rate_limited,
    decide_rejected,
    decide_unchecked,
)
from sidecar.policy.schema import ActionPolicy, Policy

log = logging.getLogger(__name__)
T = TypeVar("T")
# What a replay store call may end in besides an answer; each means the store cannot vouch.
_STORE_FAILURES = (ReplayStoreError, TimeoutError, OSError)


def token_digest(token: str) -> str:
    """The replay store key: SHA-256 of the token, so the store never holds a token."""
    return hashlib.sha256(token.encode()).hexdigest()


# Every field of a request but these shapes the decision (or upstream's answer), so a replay
# must match all of them; fields added later (client type, express, transaction data) are
# bound without a change here.
_UNBOUND_FIELDS = frozenset({"token", "idempotency_key"})
_BOUND_FIELDS = tuple(
    f.name for f in dataclasses.fields(AssessmentRequest) if f.name not in _UNBOUND_FIELDS
)


def _plain(value: object) -> object:
    """A value as JSON can write it, the same way every time (dataclasses as field lists)."""
    if isinstance(value, enum.Enum):
        return value.value
    if isinstance(value, bytes):  # a passthrough (Google's own message): bound by its digest
        return hashlib.sha256(value).hexdigest()
    if isinstance(value, tuple | list):
        return [_plain(item) for item in value]
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return [[f.name, _plain(getattr(value, f.name))] for f in dataclasses.fields(value)]
    return value


def idempotency_digest(request: AssessmentRequest, default_site_key: str = "") -> str:
    """What a replay must match: SHA-256 of the idempotency key bound to every field that
    shapes the decision (expected action, site key as applied, account id, user ids, IP, UA,
    requested URI, JA3/JA4, headers, and whatever is added to the request later). A repeat
    with the same key but another request (a stricter action, another site key, account or
    IP) has another digest, so it is DUPLICATE, never the stored answer. Empty without a key.

    The request is bound into the one digest the stores already keep beside each token,
    rather than stored as a second one: the stores need no change, and replicas of an older
    version (which kept SHA-256 of the bare key) match no new entry during a rolling upgrade,
    so they answer DUPLICATE rather than replay across requests. Keys are app-chosen and may
    carry user data: only the digest is kept."""
    key = request.idempotency_key
    if not key:
        return ""
    fields = [[name, _plain(getattr(request, name))] for name in _BOUND_FIELDS]
    fields.append(["site_key_applied", request.site_key or default_site_key])
    canonical = json.dumps(fields, ensure_ascii=False, separators=(",", ":"))
    digest = hashlib.sha256(key.encode())
    digest.update(b"\0")
    digest.update(canonical.encode("utf-8", "surrogatepass"))
    return digest.hexdigest()


@dataclass(frozen=True, slots=True)
class VerifySettings:
    """The knobs Assess reads on every call."""

    default_site_key: str
    site_keys: Mapping[str, str]  # a key per client type (`web`, `android`, `ios`, `express`)
    upstream_timeout: float  # never wait longer for one upstream answer
    deadline_margin: float  # leave this much of the caller's deadline to answer it
    replay_ttl: float  # token lifetime (120 s) plus clock margin
    replay_timeout: float  # a slow store must not make Assess hang
    pending_poll: float = 0.02  # how often to look for another replica's answer (no setting)


class _After(enum.Enum):
    """What the flight does with its claim once the callers have their answer."""

    NOTHING = enum.auto()
    SETTLE = enum.auto()  # remember the decision: later repeats are DUPLICATE or replays
    RELEASE = enum.auto()  # the token never reached upstream: let the app present it again


@dataclass(slots=True)
class _Flight:
    """One token's assessment in this process; concurrent calls for the token wait on it.
    `allowed_given`: its first caller gave up waiting and was let through by an open failure
    policy, so the claim must be settled whatever the flight ends in."""

    idem: str
    answer: asyncio.Future[Decision]
    task: asyncio.Task[None] | None = None
    allowed_given: bool = False
    releasing: bool = False  # answered, not allowed, its claim being released


class Verifier:
    """The Assess use case, shared by every front door."""

    def __init__(
        self,
        *,
        upstream: Upstream,
        replay: ReplayStore,
        policy: Callable[[], Policy],
        settings: VerifySettings,
        limiter: AdmissionLimiter | None = None,
        observer: DecisionObserver | None = None,
        shield: QuotaShield | None = None,
    ) -> None:
        self._upstream = upstream
        self._shield = shield
        self._observer = observer or NullObserver()
        self._replay = replay
        self._policy = policy
        self._settings = settings
        self._keys = SiteKeys(settings.default_site_key, settings.site_keys)
        self._limiter = limiter
        self._inflight: dict[str, _Flight] = {}
        # A store outage fails every call the same way: one line per kind per interval.
        self._log = ThrottledLog(log)

    async def assess(
        self, request: AssessmentRequest, timeout: float | None = None, *, call: CallContext
    ) -> Decision:
        """Decide on one token. `timeout` is what remains of the caller's deadline, in seconds;
        `call` names the front door. Past the limiter's bounds the call is shed with
        `Overloaded`. Every answer is reported to the observer, once, in the caller's task."""
        if self._limiter is None:
            decision = await self._assess(request, timeout, None)
        else:
            loop = asyncio.get_running_loop()
            started = loop.time()
            slot = await self._limiter.acquire(timeout)
            try:
                if timeout is not None:
                    timeout -= loop.time() - started
                decision = await self._assess(request, timeout, slot)
            finally:
                slot.release()
        self._observer.assessed(call, request, decision)
        return decision

    async def _assess(
        self, request: AssessmentRequest, timeout: float | None, slot: Slot | None
    ) -> Decision:
        validate_assessment(request)
        policy = self._policy()
        action_policy = policy.for_action(request.expected_action)
        if request.express:
            return await self._express(request, action_policy, policy.version, timeout)
        if not request.token:
            return decide_missing(action_policy, policy.version)
        problem = shape_problem(request.token)
        if problem is not None:  # cannot be a real token: no claim, no upstream call
            return decide_impossible(action_policy, problem, policy.version)
        key = token_digest(request.token)
        idem = idempotency_digest(request, self._applied_key(request))
        scope = policy.entry_name(request.expected_action) if self._shield is not None else ""
        wait = None if timeout is None else timeout - self._settings.deadline_margin

        flight = self._inflight.get(key)
        if flight is not None and flight.releasing and flight.task is not None:
            # Answered already; its claim is on its way out (bounded by replay_timeout).
            loop = asyncio.get_running_loop()
            started = loop.time()
            await asyncio.wait({flight.task}, timeout=wait)
            if wait is not None:
                wait -= loop.time() - started
            flight = self._inflight.get(key)
        leading = flight is None
        if flight is None:
            loop = asyncio.get_running_loop()
            # With an idempotency key the answer outlives this caller (a retry will ask for
            # it), so upstream gets its full timeout, not only what is left of this deadline.
            # Without one the flight itself ends by the caller's deadline: no timer needed.
            budget = self._settings.upstream_timeout
            if wait is not None and not idem:
                budget = min(budget, wait)
                wait = None
            flight = _Flight(idem, loop.create_future())
            self._inflight[key] = flight
            flight.task = asyncio.create_task(
                self._fly(
                    flight, request, key, scope, action_policy, policy.version, loop.time() + budget
                )
            )
            if slot is not None:
                slot.share(flight.task)  # the upstream call outlives a caller that gives up
        try:
            if wait is None:
                answer = await asyncio.shield(flight.answer)
            else:
                async with asyncio.timeout(wait):
                    answer = await asyncio.shield(flight.answer)
        except TimeoutError:
            if not leading:
                # A repeat is never let through by the failure policy, whatever it says.
                if idem and idem == flight.idem:
                    return decide_unchecked(
                        action_policy,
                        FailureKind.TRANSIENT,
                        "deadline",
                        policy.version,
                        closed=True,
                    )
                return decide_duplicate(action_policy, None, policy.version)
            unchecked = decide_unchecked(
                action_policy, FailureKind.TRANSIENT, "deadline", policy.version
            )
            if unchecked.allowed:
                flight.allowed_given = True  # the claim must outlive whatever comes next
            return unchecked
        if leading:
            return answer
        return self._repeat(action_policy, policy.version, idem, flight.idem, answer)

    def _applied_key(self, request: AssessmentRequest) -> str:
        """The key the request is assessed with ("" when none can be had), for the
        idempotency digest: a repeat after `site_keys` changed is another request."""
        if not request.idempotency_key:
            return ""
        chosen = self._keys.choose(request)
        return chosen if isinstance(chosen, str) else ""

    async def _express(
        self,
        request: AssessmentRequest,
        action_policy: ActionPolicy,
        version: str,
        timeout: float | None,
    ) -> Decision:
        """An express assessment: no token, so no claim, no single flight and no idempotent
        replay; each call is one upstream call with the express key, and its answer has no
        token status (whatever it is: a score, a failure, no key)."""
        site_key = self._keys.choose(request)
        if isinstance(site_key, NoKey):
            decision = decide_no_key(action_policy, site_key.kind, site_key.detail, version)
        else:
            budget = self._settings.upstream_timeout
            if timeout is not None:
                budget = min(budget, timeout - self._settings.deadline_margin)
            decision = await self._express_upstream(
                request, site_key, budget, action_policy, version
            )
        return dataclasses.replace(decision, token_status=TokenStatus.EXPRESS)

    async def _express_upstream(
        self,
        request: AssessmentRequest,
        site_key: str,
        budget: float,
        action_policy: ActionPolicy,
        version: str,
    ) -> Decision:
        if budget <= 0:
            return decide_unchecked(action_policy, FailureKind.TRANSIENT, "deadline", version)
        try:
            upstream = await self._upstream.create_assessment(
                request, site_key=site_key, timeout=budget
            )
        except UpstreamError as error:
            return decide_unchecked(action_policy, error.kind, error.code.lower(), version)
        if not upstream.express:  # whether or not upstream echoed the event
            upstream = dataclasses.replace(upstream, express=True)
        return decide(action_policy, request.expected_action, upstream, version, now=time.time())

    def _repeat(
        self,
        action_policy: ActionPolicy,
        version: str,
        idem: str,
        original_idem: str,
        original: Decision,
    ) -> Decision:
        """A second presentation: the stored answer for a matching idempotency key, else
        DUPLICATE (which keeps the original assessment name for Annotate)."""
        if idem and idem == original_idem:
            return dataclasses.replace(original, replayed=True)
        return decide_duplicate(action_policy, original, version)

    async def _fly(
        self,
        flight: _Flight,
        request: AssessmentRequest,
        key: str,
        scope: str,
        action_policy: ActionPolicy,
        version: str,
        deadline: float,
    ) -> None:
        """Answer every caller waiting on the flight as soon as the decision is known, then
        settle or release the claim; repeats keep joining the flight until that is done."""
        claim_id = secrets.token_hex(8)
        try:
            try:
                decision, after = await self._decide(
                    request, key, flight.idem, claim_id, scope, action_policy, version, deadline
                )
            except asyncio.CancelledError:
                flight.answer.cancel()
                raise
            except Exception as error:  # a bug: callers see it, the claim stays (safe)
                log.exception("assess failed")
                flight.answer.set_exception(error)
                return
            if after is _After.RELEASE and (decision.allowed or flight.allowed_given):
                after = _After.SETTLE  # an allowed answer always settles: never twice
            # A caller told "not checked, try again" may present the token at once: that
            # presentation waits for the release instead of joining this flight as a repeat.
            flight.releasing = after is _After.RELEASE
            flight.answer.set_result(decision)
            if after is _After.SETTLE:
                if decision.passthrough:  # upstream's whole answer echoes the token: not kept
                    decision = dataclasses.replace(decision, passthrough=b"")
                await self._remember(key, claim_id, ReplayEntry(flight.idem, decision))
            elif after is _After.RELEASE:
                await self._forget(key, claim_id)
        finally:
            if self._inflight.get(key) is flight:
                del self._inflight[key]

    async def _decide(
        self,
        request: AssessmentRequest,
        key: str,
        idem: str,
        claim_id: str,
        scope: str,
        action_policy: ActionPolicy,
        version: str,
        deadline: float,
    ) -> tuple[Decision, _After]:
        loop = asyncio.get_running_loop()
        try:
            # The store gets replay_timeout, but never more than the caller has left. Even
            # with no time left the claim is tried (the memory store answers at once): an
            # answer a failure policy lets through must settle a claim.
            limit = min(self._settings.replay_timeout, deadline - loop.time())
            existing = await bounded(
                self._replay.claim(key, idem, claim_id, self._settings.replay_ttl), limit
            )
        except _STORE_FAILURES as error:
            # A claim that timed out may still have landed: release it (if it is ours).
            if limit < self._settings.replay_timeout and isinstance(error, TimeoutError):
                kind, reason = FailureKind.TRANSIENT, "deadline"
            else:
                self._log.warning(
                    "replay_claim", "replay store claim failed: %s", type(error).__name__
                )
                kind, reason = FailureKind.REPLAY_STORE, "unavailable"
            unchecked = decide_unchecked(action_policy, kind, reason, version)
            if not unchecked.allowed:
                return unchecked, _After.RELEASE
            # An open policy would let it through, but the claim's answer never came: the
            # token may have been seen before. Ask again, with the store's own time (a claim
            # is idempotent for its holder): allowed only if this claim holds the token.
            try:
                existing = await bounded(
                    self._replay.claim(key, idem, claim_id, self._settings.replay_ttl),
                    self._settings.replay_timeout,
                )
            except _STORE_FAILURES:
                return unchecked, _After.SETTLE  # no store to ask: the policy's answer
            if existing is not None:
                return await self._existing(existing, key, idem, action_policy, version, deadline)
            return unchecked, _After.SETTLE

        if existing is not None:
            return await self._existing(existing, key, idem, action_policy, version, deadline)

        site_key = self._keys.choose(request)
        if isinstance(site_key, NoKey):
            # The claim was taken first: an allowed answer settles it like any other (the
            # one rule), a refusal releases it (the token never reached Google).
            refused = decide_no_key(action_policy, site_key.kind, site_key.detail, version)
            return refused, _After.SETTLE if refused.allowed else _After.RELEASE
        if self._shield is not None:
            # Only a call that would reach upstream counts: the claim was a miss.
            per = await self._shield.check(
                request, scope, action_policy, site_key, deadline - loop.time()
            )
            if per is not None:  # never allowed; the token never left: the user may retry
                return decide_rate_limited(action_policy, per, version), _After.RELEASE

        budget = deadline - loop.time()
        if budget <= 0:
            unchecked = decide_unchecked(action_policy, FailureKind.TRANSIENT, "deadline", version)
            return unchecked, _After.RELEASE
        try:
            upstream = await self._upstream.create_assessment(
                request, site_key=site_key, timeout=budget
            )
        except UpstreamError as error:
            if error.kind is FailureKind.REQUEST:
                decision = decide_rejected(action_policy, error.code.lower(), version)
            else:
                decision = decide_unchecked(action_policy, error.kind, error.code.lower(), version)
            # The one rule: an allowed answer settles, even an UNCHECKED one an open policy
            # let through; only a refused token that never reached Google is released.
            never_sent = error.reached is False and not decision.allowed
            return decision, _After.RELEASE if never_sent else _After.SETTLE
        decision = decide(
            action_policy, request.expected_action, upstream, version, now=time.time()
        )
        return decision, _After.SETTLE

    async def _existing(
        self,
        existing: ReplayEntry,
        key: str,
        idem: str,
        action_policy: ActionPolicy,
        version: str,
        deadline: float,
    ) -> tuple[Decision, _After]:
        """The token was claimed before: by an earlier call, a replica, or a previous process."""
        if existing.decision is None and idem and idem == existing.idempotency_digest:
            # A retry of a call still in flight at another replica: wait for its answer.
            loop = asyncio.get_running_loop()
            while existing.decision is None and loop.time() < deadline:
                await asyncio.sleep(self._settings.pending_poll)
                try:
                    found = await bounded(self._replay.get(key), self._settings.replay_timeout)
                except _STORE_FAILURES:
                    found = None
                if found is not None:
                    existing = found
            if existing.decision is None:
                pending = decide_unchecked(
                    action_policy, FailureKind.TRANSIENT, "pending", version, closed=True
                )
                return pending, _After.NOTHING
        if existing.decision is None:
            return decide_duplicate(action_policy, None, version), _After.NOTHING
        repeat = self._repeat(
            action_policy, version, idem, existing.idempotency_digest, existing.decision
        )
        return repeat, _After.NOTHING

    async def _remember(self, key: str, claim_id: str, entry: ReplayEntry) -> None:
        """Settle the claim. If the store fails now the claim stays pending, which still makes
        every later repeat DUPLICATE: safe, only the original answer is lost."""
        try:
            await bounded(
                self._replay.settle(key, claim_id, entry, self._settings.replay_ttl),
                self._settings.replay_timeout,
            )
        except _STORE_FAILURES as error:
            self._log.warning(
                "replay_settle", "replay store settle failed: %s", type(error).__name__
            )

    async def _forget(self, key: str, claim_id: str) -> None:
        """Release a claim whose token never reached upstream, so the app may retry it."""
        try:
            await bounded(self._replay.release(key, claim_id), self._settings.replay_timeout)
        except _STORE_FAILURES as error:
            self._log.warning(
                "replay_release", "replay store release failed: %s", type(error).__name__
            )


__all__ = ["TokenStatus", "Verifier", "VerifySettings", "idempotency_digest", "token_digest"]
