"""Assess: validate → claim the token → ask upstream once → decide → remember the answer.

Single use holds in three layers: in-process single flight (concurrent calls for one token
share one upstream call), the replay store's atomic claim (replicas and restarts), and upstream's
own DUPE. The leader's work runs in its own task, so a caller that gives up (client timeout)
does not cancel an upstream call whose answer a retry with the same idempotency key will want.
"""

from __future__ import annotations

import asyncio
import dataclasses
import hashlib
import logging
import time
from collections.abc import Awaitable, Callable, Coroutine, Generator
from dataclasses import dataclass
from typing import Any, TypeVar

from sidecar.core.limits import AdmissionLimiter, Slot
from sidecar.core.model import AssessmentRequest, Decision, TokenStatus
from sidecar.core.policy import (
    ActionPolicy,
    FailureKind,
    Policy,
    decide,
    decide_duplicate,
    decide_missing,
    decide_unchecked,
)
from sidecar.core.validation import validate_assessment
from sidecar.replay.base import ReplayEntry, ReplayStore, ReplayStoreError
from sidecar.telemetry.tracing import policy_span
from sidecar.upstream.base import Upstream
from sidecar.upstream.errors import UpstreamError

log = logging.getLogger(__name__)
T = TypeVar("T")


async def _bounded(awaitable: Coroutine[Any, Any, T], timeout: float) -> T:
    """`asyncio.wait_for(awaitable, timeout)` at a fraction of its cost.

    wait_for wraps every awaitable in a new Task (on 3.11 with a timer, a future and
    callbacks), and even `asyncio.timeout` arms and cancels a timer per call: measured, the two
    timers of a cache-miss Assess cost 5% of the sidecar's CPU, while the memory store's calls
    never suspend. So the call's first step runs at once; only a call that suspends (a network
    store) is finished under the deadline, in the caller's own task. The deadline then counts
    from that first suspension, which is when the waiting starts.
    """
    try:
        pending = awaitable.send(None)
    except StopIteration as done:
        return done.value  # type: ignore[no-any-return]
    async with asyncio.timeout(timeout):
        return await _Resumed(awaitable, pending)


class _Resumed(Awaitable[T]):
    """The rest of a coroutine whose first step already ran (what `await` would have done)."""

    __slots__ = ("_coroutine", "_pending")

    def __init__(self, coroutine: Coroutine[Any, Any, T], pending: Any) -> None:
        self._coroutine = coroutine
        self._pending = pending

    def __await__(self) -> Generator[Any, Any, T]:
        coroutine, pending = self._coroutine, self._pending
        while True:
            try:
                sent = yield pending
            except GeneratorExit:
                coroutine.close()
                raise
            except BaseException as error:  # cancellation and timeouts go into the coroutine
                try:
                    pending = coroutine.throw(error)
                except StopIteration as done:
                    return done.value  # type: ignore[no-any-return]
            else:
                try:
                    pending = coroutine.send(sent)
                except StopIteration as done:
                    return done.value  # type: ignore[no-any-return]


def token_digest(token: str) -> str:
    """The replay store key: SHA-256 of the token, so the store never holds a token."""
    return hashlib.sha256(token.encode()).hexdigest()


def idempotency_digest(key: str) -> str:
    """Idempotency keys are app-chosen and may carry user data: keep only a digest."""
    return hashlib.sha256(key.encode()).hexdigest() if key else ""


@dataclass(frozen=True, slots=True)
class VerifySettings:
    """The knobs Assess reads on every call."""

    default_site_key: str = ""
    upstream_timeout: float = 5.0  # never wait longer for one upstream answer
    deadline_margin: float = 0.02  # leave this much of the caller's deadline to answer it
    replay_ttl: float = 150.0  # token lifetime (120 s) plus clock margin
    replay_timeout: float = 0.25  # a slow store must not make Assess hang
    pending_poll: float = 0.02  # how often to look for another replica's answer


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
    ) -> None:
        self._upstream = upstream
        self._replay = replay
        self._policy = policy
        self._settings = settings
        self._limiter = limiter
        self._inflight: dict[str, tuple[str, asyncio.Task[Decision]]] = {}

    async def assess(self, request: AssessmentRequest, timeout: float | None = None) -> Decision:
        """Decide on one token. `timeout` is what remains of the caller's deadline, in seconds.
        Past the limiter's bounds the call is shed with `Overloaded`."""
        if self._limiter is None:
            return await self._assess(request, timeout, None)
        loop = asyncio.get_running_loop()
        started = loop.time()
        slot = await self._limiter.acquire(timeout)
        try:
            if timeout is not None:
                timeout -= loop.time() - started
            return await self._assess(request, timeout, slot)
        finally:
            slot.release()

    async def _assess(
        self, request: AssessmentRequest, timeout: float | None, slot: Slot | None
    ) -> Decision:
        validate_assessment(request)
        policy = self._policy()
        action_policy = policy.for_action(request.expected_action)
        if not request.token:
            return decide_missing(action_policy, policy.version)
        key = token_digest(request.token)
        idem = idempotency_digest(request.idempotency_key)

        leader = self._inflight.get(key)
        if leader is not None:
            leader_idem, task = leader
            original = await asyncio.shield(task)
            return self._repeat(action_policy, policy.version, idem, leader_idem, original)

        budget = self._settings.upstream_timeout
        if timeout is not None:
            budget = min(budget, timeout - self._settings.deadline_margin)
        task = asyncio.create_task(self._lead(request, key, idem, action_policy, policy, budget))
        if slot is not None:
            slot.share(task)  # the upstream call outlives a caller that gives up
        self._inflight[key] = (idem, task)
        task.add_done_callback(lambda _: self._inflight.pop(key, None))
        return await asyncio.shield(task)

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

    async def _lead(
        self,
        request: AssessmentRequest,
        key: str,
        idem: str,
        action_policy: ActionPolicy,
        policy: Policy,
        budget: float,
    ) -> Decision:
        version = policy.version
        if budget <= 0:
            return decide_unchecked(action_policy, FailureKind.TRANSIENT, "deadline", version)
        try:
            existing = await _bounded(
                self._replay.claim(key, idem, self._settings.replay_ttl),
                self._settings.replay_timeout,
            )
        except (ReplayStoreError, TimeoutError, OSError) as error:
            log.warning("replay store claim failed: %s", type(error).__name__)
            return decide_unchecked(action_policy, FailureKind.REPLAY_STORE, "unavailable", version)

        if existing is not None:
            return await self._existing(existing, key, idem, action_policy, version, budget)

        try:
            upstream = await self._upstream.create_assessment(
                request,
                site_key=request.site_key or self._settings.default_site_key,
                timeout=budget,
            )
        except UpstreamError as error:
            decision = decide_unchecked(action_policy, error.kind, error.code.lower(), version)
            if error.reached is False:
                await self._forget(key)
            else:
                await self._remember(key, ReplayEntry(idem, decision))
            return decision

        with policy_span() as span:
            decision = decide(
                action_policy, request.expected_action, upstream, version, now=time.time()
            )
            span.record(decision)
        await self._remember(key, ReplayEntry(idem, decision))
        return decision

    async def _existing(
        self,
        existing: ReplayEntry,
        key: str,
        idem: str,
        action_policy: ActionPolicy,
        version: str,
        budget: float,
    ) -> Decision:
        """The token was claimed before: by an earlier call, a replica, or a previous process."""
        if existing.decision is None and idem and idem == existing.idempotency_digest:
            # A retry of a call still in flight at another replica: wait for its answer.
            loop = asyncio.get_running_loop()
            give_up = loop.time() + budget
            while existing.decision is None and loop.time() < give_up:
                await asyncio.sleep(self._settings.pending_poll)
                try:
                    found = await _bounded(self._replay.get(key), self._settings.replay_timeout)
                except (ReplayStoreError, TimeoutError, OSError):
                    found = None
                if found is not None:
                    existing = found
            if existing.decision is None:
                return decide_unchecked(action_policy, FailureKind.TRANSIENT, "pending", version)
        if existing.decision is None:
            return decide_duplicate(action_policy, None, version)
        return self._repeat(
            action_policy, version, idem, existing.idempotency_digest, existing.decision
        )

    async def _remember(self, key: str, entry: ReplayEntry) -> None:
        """Settle the claim. If the store fails now the claim stays pending, which still makes
        every later repeat DUPLICATE: safe, only the original answer is lost."""
        try:
            await _bounded(
                self._replay.settle(key, entry, self._settings.replay_ttl),
                self._settings.replay_timeout,
            )
        except (ReplayStoreError, TimeoutError, OSError) as error:
            log.warning("replay store settle failed: %s", type(error).__name__)

    async def _forget(self, key: str) -> None:
        """Release a claim whose token never reached upstream, so the app may retry it."""
        try:
            await _bounded(self._replay.release(key), self._settings.replay_timeout)
        except (ReplayStoreError, TimeoutError, OSError) as error:
            log.warning("replay store release failed: %s", type(error).__name__)


__all__ = ["TokenStatus", "Verifier", "VerifySettings", "idempotency_digest", "token_digest"]
