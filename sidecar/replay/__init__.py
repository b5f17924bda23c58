"""Single use: the per-token result store shared by every Assess call (and every replica)."""

from sidecar.replay.base import ReplayEntry, ReplayStore, ReplayStoreError
from sidecar.replay.factory import open_replay_store

__all__ = ["ReplayEntry", "ReplayStore", "ReplayStoreError", "open_replay_store"]
