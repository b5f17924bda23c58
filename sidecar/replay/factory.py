"""Pick a replay store from its URL: `memory://`, or any Redis form of `sidecar.redisconn.url`
(standalone `redis://`, `rediss://`, `unix://`; `redis+cluster://`; `redis+sentinel://`)."""

from __future__ import annotations

from sidecar.core.ports import ReplayStore
from sidecar.redisconn.url import SCHEMES as REDIS_SCHEMES
from sidecar.replay.checked import CheckedReplayStore
from sidecar.replay.memory import MemoryReplayStore


def open_replay_store(
    url: str,
    *,
    max_entries: int = 1_000_000,
    key_prefix: str | None = None,
    pool_size: int = 50,
    timeout: float = 1.0,
    password: str | None = None,
    min_replicas: int = 0,
    replication_timeout: float = 0.1,
) -> ReplayStore:
    """One switch, as envoyproxy/ratelimit picks its backend from one setting; every backend
    behind the same argument checks (`checked.py`). Options that do not apply to the chosen
    store are ignored."""
    scheme = url.partition("://")[0].lower()
    if scheme == "memory":
        return CheckedReplayStore(MemoryReplayStore(max_entries=max_entries))
    if scheme in REDIS_SCHEMES:
        from sidecar.replay.redis import DEFAULT_KEY_PREFIX, RedisReplayStore

        redis = RedisReplayStore.from_url(
            url,
            key_prefix=DEFAULT_KEY_PREFIX if key_prefix is None else key_prefix,
            pool_size=pool_size,
            timeout=timeout,
            password=password,
            min_replicas=min_replicas,
            replication_timeout=replication_timeout,
        )
        return CheckedReplayStore(redis)
    raise ValueError(
        f"replay_store: unsupported scheme {scheme!r} (use memory://, redis://, rediss://, "
        "unix:///path/redis.sock, redis+cluster://, redis+sentinel://)"
    )
