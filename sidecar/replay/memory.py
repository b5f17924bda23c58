"""The in-process replay store: the default when one sidecar serves the pod.

It holds up to a million tokens for their whole lifetime, so each entry is kept small
(about 180 bytes, measured by `python -m bench.memprobe`, against 820 for a dict of objects):

- the key is the 32-byte SHA-256 digest as `bytes`, not its 64-character hex `str`;
- the value is one `bytes` string: expiry, state (a pending entry's claim id, or the settled
  decision), the settled decision packed as an index
  into a table of the distinct decisions seen with the per-token parts (assessment name, create
  time) stripped; decisions of one deployment differ in few ways (verdict, score step, action,
  hostname), so the table stays small, and it is bounded: past it a decision is kept as is;
- entries live in generations (plain dicts, one per ten seconds of arrivals) instead of one
  OrderedDict: a whole generation is dropped once everything in it has expired, so eviction
  needs neither a per-entry linked list nor a scan.

Bytes-only dicts are also invisible to the garbage collector, so a full store adds nothing to
the collector's pauses.
"""

from __future__ import annotations

import dataclasses
import math
import operator
import struct
import time
from collections import deque
from collections.abc import Callable
from typing import Any

from sidecar.core.model import Decision
from sidecar.core.ports import ReplayEntry, ReplayStoreError

_GENERATION_SECONDS = 10.0  # arrivals grouped per generation
_MAX_TEMPLATES = 4096  # distinct decision shapes kept in the table
_MAX_PREFIXES = 4096  # distinct assessment-name prefixes ("projects/N/assessments/")

# Value layout: expiry (monotonic seconds) and flags, then the optional parts in this order.
_HEAD = struct.Struct("<dB")
_SETTLED = 1  # a decision follows
_IDEM_DIGEST = 2  # a 32-byte idempotency digest follows
_IDEM_TEXT = 4  # a length-prefixed UTF-8 idempotency digest follows (not hex)
_NAME_HEX = 8  # the assessment id after the prefix is hex, stored as its bytes
_NAME_SPLIT = 16  # the name is prefix + "/" + id (else the id is the whole name)
_CLAIM = 32  # a pending entry: a length-prefixed ASCII claim id follows
_LEN = struct.Struct("<H")
_CLAIM_LEN = struct.Struct("<B")
# template index, name prefix index, create time (NaN for None)
_DECISION = struct.Struct("<HHd")

_FIELDS = tuple(f.name for f in dataclasses.fields(Decision) if f.init)
_NAME_AT = _FIELDS.index("assessment_name")
_CREATE_TIME_AT = _FIELDS.index("create_time")
# Every field but the two per-token ones, in order; decoding puts those two back by position.
_template_of = operator.attrgetter(
    *(name for name in _FIELDS if name not in ("assessment_name", "create_time"))
)


def _key(key: str) -> bytes | str:
    """A hex SHA-256 digest becomes its 32 bytes; any other key stays a str, which can never
    equal a bytes key."""
    if len(key) == 64:
        try:
            raw = bytes.fromhex(key)
        except ValueError:
            return key
        if raw.hex() == key:
            return raw
    return key


class _Generation:
    """Entries that arrived in one window, and the latest expiry among them."""

    __slots__ = ("entries", "last_expiry", "opened")

    def __init__(self, opened: float) -> None:
        self.opened = opened
        self.last_expiry = opened
        self.entries: dict[bytes | str, Any] = {}


class MemoryReplayStore:
    """A bounded map of token digests with expiry.

    When full it first forgets what has expired; when full of live entries it refuses new
    claims (fail closed) rather than forget a live token and let its replay through.
    """

    def __init__(
        self, max_entries: int = 1_000_000, *, clock: Callable[[], float] | None = None
    ) -> None:
        if max_entries < 1:
            raise ValueError("max_entries must be at least 1")
        self._clock = time.monotonic if clock is None else clock
        self._generations: deque[_Generation] = deque()
        self._count = 0
        self._max_entries = max_entries
        self._retry_full_at = 0.0  # when full of live entries: the earliest one expires then
        self._templates: dict[tuple[Any, ...], int] = {}
        self._template_list: list[list[Any]] = []  # constructor arguments, two left blank
        self._prefixes: dict[str, int] = {}
        self._prefix_list: list[str] = []

    def __len__(self) -> int:
        return self._count

    # ---- encoding ---------------------------------------------------------------------------

    def _encode(self, expires_at: float, entry: ReplayEntry) -> Any:
        """The packed value; a tuple instead when the decision does not fit the tables."""
        flags = 0
        parts = []
        idem = entry.idempotency_digest
        if idem:
            raw = _key(idem)
            if isinstance(raw, bytes):
                flags |= _IDEM_DIGEST
                parts.append(raw)
            else:
                text = idem.encode()
                flags |= _IDEM_TEXT
                parts += [_LEN.pack(len(text)), text]
        decision = entry.decision
        if decision is None:
            claim = entry.claim_id.encode()
            flags |= _CLAIM
            parts += [_CLAIM_LEN.pack(len(claim)), claim]
        else:
            packed = self._pack_decision(decision)
            if packed is None:
                return (expires_at, entry)
            name_flags, body = packed
            flags |= _SETTLED | name_flags
            parts.append(body)
        return _HEAD.pack(expires_at, flags) + b"".join(parts)

    def _pack_decision(self, decision: Decision) -> tuple[int, bytes] | None:
        try:
            template = _template_of(decision)
            index = self._templates.get(template)
        except TypeError:  # an unhashable field value
            return None
        if index is None:
            if len(self._template_list) >= _MAX_TEMPLATES:
                return None
            index = self._templates[template] = len(self._template_list)
            arguments = list(template)
            for position in sorted((_NAME_AT, _CREATE_TIME_AT)):
                arguments.insert(position, None)
            self._template_list.append(arguments)
        prefix, split, ident = decision.assessment_name.rpartition("/")
        prefix_index = self._prefixes.get(prefix)
        if prefix_index is None:
            if len(self._prefix_list) >= _MAX_PREFIXES:
                return None
            prefix_index = self._prefixes[prefix] = len(self._prefix_list)
            self._prefix_list.append(prefix)
        raw_id = _hex_bytes(ident)
        name_flags = _NAME_SPLIT if split else 0
        if isinstance(raw_id, bytes):
            name_flags |= _NAME_HEX
        else:
            raw_id = ident.encode()
        create_time = math.nan if decision.create_time is None else decision.create_time
        return name_flags, _DECISION.pack(index, prefix_index, create_time) + raw_id

    def _decode(self, value: Any) -> tuple[float, ReplayEntry]:
        if type(value) is tuple:
            return value[0], value[1]
        expires_at, flags = _HEAD.unpack_from(value)
        offset = _HEAD.size
        idem = ""
        if flags & _IDEM_DIGEST:
            idem = value[offset : offset + 32].hex()
            offset += 32
        elif flags & _IDEM_TEXT:
            (length,) = _LEN.unpack_from(value, offset)
            offset += _LEN.size
            idem = value[offset : offset + length].decode()
            offset += length
        if flags & _CLAIM:
            (length,) = _CLAIM_LEN.unpack_from(value, offset)
            offset += _CLAIM_LEN.size
            claim_id = value[offset : offset + length].decode()
            return expires_at, ReplayEntry(idem, None, claim_id)
        index, prefix_index, create_time = _DECISION.unpack_from(value, offset)
        offset += _DECISION.size
        raw = value[offset:]
        ident = raw.hex() if flags & _NAME_HEX else raw.decode()
        if flags & _NAME_SPLIT:
            ident = self._prefix_list[prefix_index] + "/" + ident
        arguments = self._template_list[index].copy()
        arguments[_NAME_AT] = ident
        arguments[_CREATE_TIME_AT] = None if math.isnan(create_time) else create_time
        return expires_at, ReplayEntry(idem, Decision(*arguments))

    # ---- generations ------------------------------------------------------------------------

    def _find(self, key: bytes | str, now: float) -> tuple[_Generation, Any] | None:
        """The live entry for `key` and the generation holding it; forgets it if expired."""
        for generation in reversed(self._generations):
            value = generation.entries.get(key)
            if value is None:
                continue
            expires_at = value[0] if type(value) is tuple else _HEAD.unpack_from(value)[0]
            if expires_at <= now:
                del generation.entries[key]
                self._count -= 1
                return None
            return generation, value
        return None

    def _put(self, key: bytes | str, entry: ReplayEntry, now: float, ttl: float) -> None:
        generations = self._generations
        if not generations or now - generations[-1].opened >= _GENERATION_SECONDS:
            self._drop_expired(now)
            self._generations.append(_Generation(now))
        current = self._generations[-1]
        expires_at = now + ttl
        current.entries[key] = self._encode(expires_at, entry)
        if expires_at > current.last_expiry:
            current.last_expiry = expires_at
        self._count += 1

    def _has_room(self, now: float) -> bool:
        """Room for one more entry, after forgetting what has expired if the store is full."""
        if self._count >= self._max_entries:
            self._make_room(now)
        return self._count < self._max_entries

    def _drop_expired(self, now: float) -> None:
        """Forget every generation whose entries have all expired."""
        if any(g.last_expiry <= now for g in self._generations):
            kept = deque(g for g in self._generations if g.last_expiry > now)
            self._count = sum(len(g.entries) for g in kept)
            self._generations = kept

    def _make_room(self, now: float) -> None:
        """Called when full: drop expired generations, then expired entries one by one; if
        every entry is live, refuse until the earliest of them expires."""
        self._drop_expired(now)
        if self._count < self._max_entries or now < self._retry_full_at:
            return
        earliest = math.inf
        for generation in self._generations:
            entries = generation.entries
            for key in list(entries):
                value = entries[key]
                expires_at = value[0] if type(value) is tuple else _HEAD.unpack_from(value)[0]
                if expires_at <= now:
                    del entries[key]
                    self._count -= 1
                elif expires_at < earliest:
                    earliest = expires_at
        self._retry_full_at = earliest if self._count >= self._max_entries else 0.0

    # ---- the ReplayStore protocol -----------------------------------------------------------

    async def claim(
        self, key: str, idempotency_digest: str, claim_id: str, ttl: float
    ) -> ReplayEntry | None:
        now = self._clock()
        k = _key(key)
        found = self._find(k, now)
        if found is not None:
            existing = self._decode(found[1])[1]
            if existing.pending and existing.claim_id == claim_id:
                return None  # a retried claim by its holder
            return existing
        if not self._has_room(now):
            raise ReplayStoreError("memory replay store is full of live tokens")
        self._put(k, ReplayEntry(idempotency_digest, None, claim_id), now, ttl)
        return None

    async def settle(self, key: str, claim_id: str, entry: ReplayEntry, ttl: float) -> bool:
        now = self._clock()
        k = _key(key)
        final = ReplayEntry(entry.idempotency_digest, entry.decision)
        found = self._find(k, now)
        if found is None:
            if not self._has_room(now):
                return False
        else:
            generation, value = found
            existing = self._decode(value)[1]
            if existing == final:
                return True
            if not (existing.pending and existing.claim_id == claim_id):
                return False  # another claim holds it, or it is settled already
            del generation.entries[k]
            self._count -= 1
        self._put(k, final, now, ttl)
        return True

    async def release(self, key: str, claim_id: str) -> bool:
        k = _key(key)
        found = self._find(k, self._clock())
        if found is None:
            return False
        generation, value = found
        existing = self._decode(value)[1]
        if not existing.pending or existing.claim_id != claim_id:
            return False
        del generation.entries[k]
        self._count -= 1
        return True

    async def get(self, key: str) -> ReplayEntry | None:
        found = self._find(_key(key), self._clock())
        return None if found is None else self._decode(found[1])[1]

    async def ping(self) -> None:
        return None

    async def close(self) -> None:
        self._generations.clear()
        self._count = 0


def _hex_bytes(text: str) -> bytes | str:
    """Lower-case hex of even length as its bytes (assessment ids are hex), else the text."""
    if not text or len(text) % 2:
        return text
    try:
        raw = bytes.fromhex(text)
    except ValueError:
        return text
    return raw if raw.hex() == text else text
