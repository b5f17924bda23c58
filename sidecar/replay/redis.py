"""The Redis replay store: single use shared by every replica and surviving their restarts.

- claim is one atomic `SET key value NX PX ttl GET` (Redis 7.0+, Valkey): whoever sets the
  key holds the claim, everyone else gets the entry already there, in one round trip;
- settle and release are compare-and-set / compare-and-delete Lua scripts keyed on the
  holder's claim id, so a late or retried write can never undo another replica's claim;
- keys are `<prefix><sha256(token)>`, values compact JSON (`codec.py`): no token in Redis.

Every Redis failure surfaces as ReplayStoreError; the caller bounds each call with its own
timeout and answers UNCHECKED. Socket timeouts bound what a stuck connection can hold.
"""

from __future__ import annotations

from typing import Any

from redis.asyncio import BlockingConnectionPool, Redis
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import RedisError

from sidecar.core.ports import ReplayEntry, ReplayStoreError
from sidecar.replay.base import check_claim_id
from sidecar.replay.codec import decode_entry, encode_entry, pending_prefix

DEFAULT_KEY_PREFIX = "recaptcha-sidecar:replay:"

# KEYS[1] key; ARGV[1] the holder's pending prefix, ARGV[2] the final value, ARGV[3] ttl ms.
# Stored when the holder's claim is there or the key vanished (Redis lost it); a retry of a
# settle that already landed answers 1 again.
_SETTLE = """
local current = redis.call('GET', KEYS[1])
if current == false or string.sub(current, 1, #ARGV[1]) == ARGV[1] then
  redis.call('SET', KEYS[1], ARGV[2], 'PX', ARGV[3])
  return 1
end
if current == ARGV[2] then
  return 1
end
return 0
"""

# KEYS[1] key; ARGV[1] the holder's pending prefix. Deletes only the holder's pending claim.
_RELEASE = """
local current = redis.call('GET', KEYS[1])
if current and string.sub(current, 1, #ARGV[1]) == ARGV[1] then
  return redis.call('DEL', KEYS[1])
end
return 0
"""


def _millis(ttl: float) -> int:
    return max(1, round(ttl * 1000))


class RedisReplayStore:
    """Replay entries in Redis (`redis://`, `rediss://` for TLS, `unix://`)."""

    def __init__(self, client: Redis, *, key_prefix: str = DEFAULT_KEY_PREFIX) -> None:
        self._client = client
        self._prefix = key_prefix
        self._settle = client.register_script(_SETTLE)
        self._release = client.register_script(_RELEASE)

    @classmethod
    def from_url(
        cls,
        url: str,
        *,
        key_prefix: str = DEFAULT_KEY_PREFIX,
        pool_size: int = 50,
        timeout: float = 1.0,
        password: str | None = None,
    ) -> RedisReplayStore:
        """A store over a bounded connection pool.

        `timeout` bounds connecting, each socket read/write and the wait for a free pooled
        connection. One immediate retry on a connection error replaces a pooled connection a
        Redis restart broke; it is safe because claim, settle and release are idempotent for
        their holder. TLS options ride in the URL query (`rediss://host:6380/0?ssl_ca_certs=
        /path/ca.pem`); a password in `password` wins over one in the URL.
        """
        options: dict[str, Any] = {
            "max_connections": pool_size,
            "timeout": timeout,
            "socket_timeout": timeout,
            "socket_connect_timeout": timeout,
            "retry": Retry(NoBackoff(), 1, supported_errors=(RedisConnectionError,)),
            "client_name": "recaptcha-sidecar",
        }
        if password:
            options["password"] = password
        try:
            pool = BlockingConnectionPool.from_url(url, **options)
        except ValueError as error:  # the URL itself; the message never holds the password
            raise ValueError(f"replay_store: {error}") from None
        return cls(Redis(connection_pool=pool), key_prefix=key_prefix)

    def _key(self, key: str) -> str:
        return self._prefix + key

    async def claim(
        self, key: str, idempotency_digest: str, claim_id: str, ttl: float
    ) -> ReplayEntry | None:
        value = encode_entry(ReplayEntry(idempotency_digest, None, check_claim_id(claim_id)))
        try:
            previous = await self._client.set(
                self._key(key), value, nx=True, px=_millis(ttl), get=True
            )
        except RedisError as error:
            raise ReplayStoreError(f"claim: {type(error).__name__}: {error}") from None
        if previous is None:
            return None  # the key was free: this claim set it
        if not isinstance(previous, bytes | str):
            raise ReplayStoreError(f"claim: unexpected reply {type(previous).__name__}")
        existing = decode_entry(previous)
        if existing.pending and existing.claim_id == claim_id:
            return None  # our own claim, set by an attempt whose reply was lost
        return existing

    async def settle(self, key: str, claim_id: str, entry: ReplayEntry, ttl: float) -> bool:
        final = encode_entry(ReplayEntry(entry.idempotency_digest, entry.decision))
        held = pending_prefix(check_claim_id(claim_id))
        try:
            stored = await self._settle(keys=[self._key(key)], args=[held, final, _millis(ttl)])
        except RedisError as error:
            raise ReplayStoreError(f"settle: {type(error).__name__}: {error}") from None
        return bool(stored)

    async def release(self, key: str, claim_id: str) -> bool:
        try:
            deleted = await self._release(
                keys=[self._key(key)], args=[pending_prefix(check_claim_id(claim_id))]
            )
        except RedisError as error:
            raise ReplayStoreError(f"release: {type(error).__name__}: {error}") from None
        return bool(deleted)

    async def get(self, key: str) -> ReplayEntry | None:
        try:
            value = await self._client.get(self._key(key))
        except RedisError as error:
            raise ReplayStoreError(f"get: {type(error).__name__}: {error}") from None
        return None if value is None else decode_entry(value)

    async def ping(self) -> None:
        try:
            await self._client.ping()
        except RedisError as error:
            raise ReplayStoreError(f"ping: {type(error).__name__}: {error}") from None

    async def close(self) -> None:
        await self._client.aclose()
        await self._client.connection_pool.disconnect()
