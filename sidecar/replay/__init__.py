"""Single use: the replay store backends (memory, Redis) behind the core's `ReplayStore` port
(`sidecar.core.ports`), and the one factory that picks a backend from its URL."""

from sidecar.replay.factory import open_replay_store

__all__ = ["open_replay_store"]
