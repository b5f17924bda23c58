"""The Redis replay store: single use shared by every replica and surviving their restarts.

- claim is one atomic `SET key value NX PX ttl GET` (Redis 7.0+, Valkey): whoever sets the
  key holds the claim, everyone else gets the entry already there, in one round trip;
- settle and release are compare-and-set / compare-and-delete Lua scripts keyed on the
  holder's claim id, so a late or retried write can never undo another replica's claim;
- keys are `<prefix><sha256(token)>`, values compact JSON (`codec.py`): no token in Redis;
  every command and script touches one key, so any Cluster slot layout works;
- with `min_replicas`, a claim counts only once WAITed to that many replicas on the
  connection that wrote it (`sidecar.redisconn.keyspace`), so a failover that promotes a
  replica which acknowledged it cannot forget it.

Every Redis failure surfaces as ReplayStoreError; the caller bounds each call with its own
timeout and answers UNCHECKED. Socket timeouts bound what a stuck connection can hold.
"""

from __future__ import annotations

from redis.exceptions import RedisError

from sidecar.core.ports import ReplayEntry, ReplayStoreError
from sidecar.redisconn.keyspace import Command, Keyspace, Replies, Script, open_keyspace, require
from sidecar.replay.codec import decode_entry, encode_entry, pending_prefix

DEFAULT_KEY_PREFIX = "recaptcha-sidecar:replay:"

# KEYS[1] key; ARGV[1] the holder's pending prefix, ARGV[2] the final value, ARGV[3] ttl ms.
# Stored when the holder's claim is there or the key vanished (Redis lost it); a retry of a
# settle that already landed answers 1 again.
_SETTLE = Script("""
local current = redis.call('GET', KEYS[1])
if current == false or string.sub(current, 1, #ARGV[1]) == ARGV[1] then
  redis.call('SET', KEYS[1], ARGV[2], 'PX', ARGV[3])
  return 1
end
if current == ARGV[2] then
  return 1
end
return 0
""")

# KEYS[1] key; ARGV[1] the holder's pending prefix. Deletes only the holder's pending claim.
_RELEASE = Script("""
local current = redis.call('GET', KEYS[1])
if current and string.sub(current, 1, #ARGV[1]) == ARGV[1] then
  return redis.call('DEL', KEYS[1])
end
return 0
""")


# KEYS[1] key; ARGV[1] the holder's pending value. Writes it again (same value, same expiry)
# when it is still there, so that a WAIT on this connection covers it (see `claim`).
_REASSERT = Script("""
if redis.call('GET', KEYS[1]) == ARGV[1] then
  redis.call('SET', KEYS[1], ARGV[1], 'KEEPTTL')
  return 1
end
return 0
""")


def _millis(ttl: float) -> int:
    return max(1, round(ttl * 1000))


class RedisReplayStore:
    """Replay entries in a standalone Redis, a Sentinel-managed primary or a Cluster.

    A claim not acknowledged by `min_replicas` replicas within `replication_timeout` is a
    store failure: the caller answers UNCHECKED and releases it.
    """

    def __init__(
        self,
        keyspace: Keyspace,
        *,
        key_prefix: str = DEFAULT_KEY_PREFIX,
        min_replicas: int = 0,
        replication_timeout: float = 0.1,
    ) -> None:
        self._keys = keyspace
        self._prefix = key_prefix
        self._min_replicas = min_replicas
        self._replication_timeout = replication_timeout

    @classmethod
    def from_url(
        cls,
        url: str,
        *,
        key_prefix: str = DEFAULT_KEY_PREFIX,
        pool_size: int = 50,
        timeout: float = 1.0,
        password: str | None = None,
        min_replicas: int = 0,
        replication_timeout: float = 0.1,
    ) -> RedisReplayStore:
        """A store for any URL form of `sidecar.redisconn.url`. `timeout` bounds connecting,
        each socket read/write and the wait for a free pooled connection (`pool_size` per
        primary); a connection a restart broke is replaced by one immediate retry, which is
        safe because claim, settle and release are idempotent for their holder. TLS options
        ride in the URL query (`rediss://host:6380/0?ssl_ca_certs=/path/ca.pem`); `password`
        wins over the URL's."""
        keyspace = open_keyspace(url, pool_size=pool_size, timeout=timeout, password=password)
        return cls(
            keyspace,
            key_prefix=key_prefix,
            min_replicas=min_replicas,
            replication_timeout=replication_timeout,
        )

    def _key(self, key: str) -> str:
        return self._prefix + key

    async def _run(self, name: str, command: Command, *, replicated: bool = False) -> Replies:
        """One command on `name`'s primary, WAITed when `replicated` and asked for."""
        wait = self._min_replicas if replicated else 0
        return await self._keys.run(
            name, command, wait=wait, wait_timeout=self._replication_timeout
        )

    async def claim(
        self, key: str, idempotency_digest: str, claim_id: str, ttl: float
    ) -> ReplayEntry | None:
        value = encode_entry(ReplayEntry(idempotency_digest, None, claim_id))
        name = self._key(key)
        try:
            replies = await self._run(
                name,
                Command.of("SET", name, value, "NX", "PX", _millis(ttl), "GET", get=True),
                replicated=True,
            )
            previous = replies.values[0]
            if previous is None:  # the key was free: this claim set it, once replicated
                require(replies, self._min_replicas, self._replication_timeout)
                return None
            if not isinstance(previous, bytes | str):
                raise ReplayStoreError(f"claim: unexpected reply {type(previous).__name__}")
            existing = decode_entry(previous)
            if not (existing.pending and existing.claim_id == claim_id):
                return existing  # someone else's: nothing of ours needs replicating
            # Our own claim, set by an attempt whose reply was lost, on another connection.
            # From Redis 7.2 (and in Valkey) a WAIT covers only writes of its own connection
            # (7.0 also counts any command as one), so the claim is written again here.
            if self._min_replicas:
                again = await self._run(name, _REASSERT.call([name], [value]), replicated=True)
                if not again.values[0]:
                    raise ReplayStoreError("claim: the retried claim vanished")
                require(again, self._min_replicas, self._replication_timeout)
            return None
        except RedisError as error:
            raise ReplayStoreError(f"claim: {type(error).__name__}: {error}") from None

    async def settle(self, key: str, claim_id: str, entry: ReplayEntry, ttl: float) -> bool:
        final = encode_entry(ReplayEntry(entry.idempotency_digest, entry.decision))
        held = pending_prefix(claim_id)
        name = self._key(key)
        try:
            replies = await self._run(name, _SETTLE.call([name], [held, final, _millis(ttl)]))
        except RedisError as error:
            raise ReplayStoreError(f"settle: {type(error).__name__}: {error}") from None
        return bool(replies.values[0])

    async def release(self, key: str, claim_id: str) -> bool:
        name = self._key(key)
        try:
            held = pending_prefix(claim_id)
            replies = await self._run(name, _RELEASE.call([name], [held]))
        except RedisError as error:
            raise ReplayStoreError(f"release: {type(error).__name__}: {error}") from None
        return bool(replies.values[0])

    async def get(self, key: str) -> ReplayEntry | None:
        name = self._key(key)
        try:
            value = (await self._run(name, Command.of("GET", name))).values[0]
        except RedisError as error:
            raise ReplayStoreError(f"get: {type(error).__name__}: {error}") from None
        return None if value is None else decode_entry(value)

    async def ping(self) -> None:
        try:
            await self._keys.ping()
        except RedisError as error:
            raise ReplayStoreError(f"ping: {type(error).__name__}: {error}") from None

    async def close(self) -> None:
        await self._keys.close()
