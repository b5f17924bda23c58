"""redis-py asyncio clients for each URL form: the one place that turns a parsed URL into
connection options (timeouts, pool bound, TLS, credentials), for the keyspace the stores use
and for libraries that want a plain redis-py client (`connect`).
"""

from __future__ import annotations

from typing import Any, TypeAlias

from redis.asyncio import BlockingConnectionPool, Redis, SSLConnection
from redis.asyncio.cluster import ClusterNode, RedisCluster
from redis.asyncio.retry import Retry
from redis.asyncio.sentinel import Sentinel, SentinelConnectionPool
from redis.backoff import NoBackoff
from redis.exceptions import ConnectionError as RedisConnectionError

from sidecar.redisconn.url import RedisUrl, Shape, parse_redis_url

RedisClient: TypeAlias = Redis | RedisCluster
CLIENT_NAME = "recaptcha-sidecar"


class _BlockingSentinelPool(SentinelConnectionPool, BlockingConnectionPool):
    """Sentinel's pool (connections go to whoever the sentinels name primary now) with the
    standalone pool's bound: at most `max_connections`, waiting up to `timeout` for one."""


def _retry() -> Retry:
    """One immediate retry on a connection error: it replaces a pooled connection that a
    restart or failover broke. Callers keep their writes idempotent for their holder."""
    return Retry(NoBackoff(), 1, supported_errors=(RedisConnectionError,))


def _common(url: RedisUrl, timeout: float, password: str | None) -> dict[str, Any]:
    options: dict[str, Any] = {
        "socket_timeout": timeout,
        "socket_connect_timeout": timeout,
        "client_name": CLIENT_NAME,
    }
    if url.shape is not Shape.STANDALONE:
        options["username"] = url.username
        options["password"] = password or url.password
    elif password:
        options["password"] = password
    return options


def standalone_client(
    url: RedisUrl, *, pool_size: int, timeout: float, password: str | None
) -> Redis:
    """The client of a standalone server or of the primary the sentinels name (followed
    through failovers: every new connection asks them); `timeout` also bounds the wait for a
    free pooled connection."""
    common = _common(url, timeout, password)
    if url.shape is Shape.STANDALONE:
        try:
            pool = BlockingConnectionPool.from_url(
                url.raw, max_connections=pool_size, timeout=timeout, retry=_retry(), **common
            )
        except ValueError as error:  # redis-py's own URL checks; never holds the password
            raise ValueError(str(error)) from None
        return Redis(connection_pool=pool)
    if url.shape is not Shape.SENTINEL:
        raise ValueError("a Cluster has no single primary")
    tls: dict[str, Any] = {"ssl": True, **url.tls_options} if url.tls else {}
    sentinel_auth = {"username": common["username"], "password": common["password"]}
    if "sentinel_username" in url.options:
        sentinel_auth["username"] = url.options["sentinel_username"] or None
    if "sentinel_password" in url.options:
        sentinel_auth["password"] = url.options["sentinel_password"] or None
    sentinel = Sentinel(  # type: ignore[no-untyped-call]
        list(url.hosts),
        sentinel_kwargs={
            "socket_timeout": timeout,
            "socket_connect_timeout": timeout,
            **sentinel_auth,
            **tls,
        },
    )
    client: Redis = sentinel.master_for(
        url.service,
        connection_pool_class=_BlockingSentinelPool,
        db=url.db,
        max_connections=pool_size,
        timeout=timeout,
        retry=_retry(),
        **common,
        **tls,
    )
    return client


def node_client(
    url: RedisUrl, address: tuple[str, int], *, pool_size: int, timeout: float, password: str | None
) -> Redis:
    """A standalone client of one Cluster node (the keyspace routes to it by slot)."""
    options: dict[str, Any] = {
        "host": address[0],
        "port": address[1],
        "max_connections": pool_size,
        "timeout": timeout,
        "retry": _retry(),
        **_common(url, timeout, password),
    }
    if url.tls:
        options.update(connection_class=SSLConnection, **url.tls_options)
    return Redis(connection_pool=BlockingConnectionPool(**options))


def connect(
    url: str | RedisUrl,
    *,
    pool_size: int = 50,
    timeout: float = 1.0,
    password: str | None = None,
    setting: str = "replay_store",
) -> RedisClient:
    """A plain redis-py client for `url`, for libraries that take one: `Redis` for a
    standalone server or a Sentinel-named primary, `RedisCluster` for a Cluster. The stores
    here use `sidecar.redisconn.keyspace` instead (WAIT on the right connection, bounded
    pools on every node). ValueError (prefixed by `setting`, never holding the URL)."""
    try:
        parsed = url if isinstance(url, RedisUrl) else parse_redis_url(url)
        if parsed.shape is not Shape.CLUSTER:
            return standalone_client(
                parsed, pool_size=pool_size, timeout=timeout, password=password
            )
    except ValueError as error:
        raise ValueError(f"{setting}: {error}") from None
    tls: dict[str, Any] = {"ssl": True, **parsed.tls_options} if parsed.tls else {}
    return RedisCluster(
        startup_nodes=[ClusterNode(host, port) for host, port in parsed.hosts],
        max_connections=pool_size,
        **_common(parsed, timeout, password),
        **tls,
    )
