"""Hot reload of the policy: the current Policy, swapped when its file changes or on SIGHUP.

A mounted ConfigMap changes by an atomic swap of a `..data` symlink, so the file's path stays
while what it resolves to changes; editors and `kubectl cp` rewrite in place. Polling the
file's bytes (a few hundred of them, every second or two) sees every one of those, with no
inotify edge cases (symlinks, watched inodes that vanish, overlay filesystems).

A new file is parsed and validated off the event loop, and swapped in with one assignment, so
calls in flight keep the policy they started with and no call ever waits for a reload. A file
that does not validate is rejected with a log line naming the key; the old policy stays.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import logging
from collections.abc import Callable
from pathlib import Path

from sidecar.policy.schema import Policy

log = logging.getLogger(__name__)

_GONE = "missing"


class PolicySource:
    """Holds the current policy; `current` is what the Verifier calls on every Assess."""

    def __init__(
        self,
        initial: Policy,
        *,
        path: Path | None = None,
        load: Callable[[], Policy] | None = None,
        interval: float,
    ) -> None:
        self._policy = initial
        self._path = path
        self._load = load
        self._interval = interval
        self._seen: str | None = None  # fingerprint of the file content last acted on
        self._lock = asyncio.Lock()
        self._task: asyncio.Task[None] | None = None
        self._pending: set[asyncio.Task[bool]] = set()
        self.reloads = 0  # policies swapped in
        self.rejections = 0  # new file contents refused
        self.checks = 0  # times the file was looked at

    def current(self) -> Policy:
        """The policy in force now."""
        return self._policy

    @property
    def reloadable(self) -> bool:
        return self._path is not None and self._load is not None

    async def start(self) -> None:
        """Remember what the file holds now and, if asked to, start watching it."""
        if not self.reloadable:
            return
        self._seen = await asyncio.to_thread(self._fingerprint)
        for warning in self._policy.warnings():
            log.warning("policy %s: %s", self._policy.version, warning)
        if self._interval > 0:
            self._task = asyncio.create_task(self._watch(), name="policy-watch")

    def request_reload(self) -> None:
        """For a signal handler (SIGHUP): re-read the file now, even if it looks unchanged."""
        if not self.reloadable:
            log.info("SIGHUP: no config file to re-read")
            return
        task = asyncio.get_running_loop().create_task(self.reload(force=True))
        self._pending.add(task)
        task.add_done_callback(self._pending.discard)

    async def reload(self, *, force: bool = False) -> bool:
        """Re-read the file if its content changed (or `force`); True when a new policy is in
        force. Never raises: a bad file is logged and the old policy stays."""
        if self._path is None or self._load is None:
            return False
        async with self._lock:
            self.checks += 1
            fingerprint = await asyncio.to_thread(self._fingerprint)
            if fingerprint == self._seen and not force:
                return False
            self._seen = fingerprint
            if fingerprint == _GONE:
                log.warning("policy file %s is gone; keeping policy %s", self._path, self.version)
                return False
            try:
                policy = await asyncio.to_thread(self._load)
            except Exception as error:  # any reason at all: the old policy stays
                self.rejections += 1
                log.error(
                    "policy file %s rejected, keeping policy %s: %s",
                    self._path,
                    self.version,
                    _one_line(error),
                )
                return False
            if policy.version == self._policy.version and policy == self._policy:
                log.info("policy file %s re-read: policy %s unchanged", self._path, self.version)
                return False
            if policy.version == self._policy.version:
                log.warning(
                    "policy %s: rules changed but the configured version did not; "
                    "responses cannot tell the two apart",
                    policy.version,
                )
            for warning in policy.warnings():
                log.warning("policy %s: %s", policy.version, warning)
            previous, self._policy = self._policy, policy
            self.reloads += 1
            log.info("policy %s in force (was %s)", policy.version, previous.version)
            return True

    @property
    def version(self) -> str:
        return self._policy.version

    async def close(self) -> None:
        """Stop watching; the last policy stays readable."""
        tasks = [t for t in (self._task, *self._pending) if t is not None]
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self._task = None

    async def _watch(self) -> None:
        while True:
            await asyncio.sleep(self._interval)
            try:
                await self.reload()
            except Exception:  # a watcher that dies silently is worse than a noisy one
                log.exception("policy watch failed; will look again")

    def _fingerprint(self) -> str:
        """SHA-256 of what the path resolves to now (following the `..data` symlink)."""
        assert self._path is not None
        try:
            return hashlib.sha256(self._path.read_bytes()).hexdigest()
        except OSError:
            return _GONE


def _one_line(error: Exception) -> str:
    return " ".join(str(error).split()) or type(error).__name__
