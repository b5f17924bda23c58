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
  OrderedDict: a whole generation is dropped once everything in it has expired, so expiry
  needs neither a per-entry linked list nor a scan.

A full store makes room without scanning it (junk must never lock real users out): each
generation also lists the keys settled in it, not-allowed and allowed apart, oldest first, and
one claim evicts one entry from the oldest list that has a live one: settled *not-allowed*
entries first (re-presenting one is no worse than a fresh junk token), *allowed* ones only
when nothing else is left (such a token coming back costs one upstream call and upstream's
DUPE refuses it, but under an open policy during an outage it could pass, so each is counted
and logged as a capacity alarm), never a pending claim. Each listed key is looked at once.

Bytes-only dicts are also invisible to the garbage collector, so a full store adds nothing to
the collector's pauses.
"""

from __future__ import annotations

import dataclasses
import logging
import math
import operator
import struct
import time
from collections import deque
from collections.abc import Callable
from typing import Any

from sidecar.core.logthrottle import ThrottledLog
from sidecar.core.model import Decision
from sidecar.core.ports import ReplayEntry, ReplayStoreError

log = logging.getLogger(__name__)

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
_ALLOWED = 64  # a settled entry whose decision let the request through

# Eviction kinds (the `kind` label of the evictions metric).
NOT_ALLOWED = "not_allowed"
ALLOWED = "allowed"
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
    """Entries that arrived in one window, the latest expiry among them, and eviction
    candidates oldest first (a key may have moved on since: each is checked when taken).

    Not-allowed keys are listed as they are settled (junk is what a flood is made of, and it
    is evicted first). Allowed keys, most of a healthy store, cost nothing extra: they are
    listed by one pass over the generation the first time one must go (the capacity alarm),
    and again only if entries arrived in it since (only the newest generation takes any)."""

    __slots__ = ("allowed", "entries", "last_expiry", "not_allowed", "opened", "puts", "scanned")

    def __init__(self, opened: float) -> None:
        self.opened = opened
        self.last_expiry = opened
        self.entries: dict[bytes | str, Any] = {}
        self.not_allowed: deque[bytes | str] = deque()
        self.allowed: deque[bytes | str] = deque()
        self.puts = 0  # entries written into this generation so far
        self.scanned = -1  # `puts` when the allowed keys were last listed; -1: never

    def candidates(self, kind: str) -> deque[bytes | str]:
        """The eviction candidates of `kind`, listing the allowed ones if need be."""
        if kind == NOT_ALLOWED:
            return self.not_allowed
        if not self.allowed and self.scanned != self.puts:
            self.scanned = self.puts
            self.allowed.extend(key for key, value in self.entries.items() if _state(value)[2])
        return self.allowed


class MemoryReplayStore:
    """A bounded map of token digests with expiry.

    When full it first forgets what has expired, then evicts settled entries (not-allowed
    first, see the module docstring); only when every entry is a pending claim does it refuse
    new claims (fail closed).
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
        self.evictions = {NOT_ALLOWED: 0, ALLOWED: 0}
        self.examined = 0  # eviction candidates looked at (each listed key at most once)
        self.scans = 0  # full scans for expired claims (only when every entry is pending)
        self._retry_full_at = 0.0  # when full of pending claims: the earliest one expires then
        self._alarm = ThrottledLog(log)
        self._templates: dict[tuple[Any, ...], int] = {}
        self._template_list: list[list[Any]] = []  # constructor arguments, two left blank
        self._prefixes: dict[str, int] = {}
        self._prefix_list: list[str] = []

    def __len__(self) -> int:
        return self._count

    def replay_evictions(self) -> dict[str, int]:
        """Live entries evicted so far, by kind (the `replay.evictions` metric)."""
        return dict(self.evictions)

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
            flags |= _SETTLED | name_flags | (_ALLOWED if decision.allowed else 0)
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
        current.puts += 1
        if entry.decision is not None and not entry.decision.allowed:
            current.not_allowed.append(key)

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
        """Called when full: drop expired generations, then free one entry: a settled
        not-allowed one, else a settled allowed one (a capacity alarm), never a pending one."""
        self._drop_expired(now)
        if self._count < self._max_entries:
            return
        if self._evict(NOT_ALLOWED, now) or self._evict(ALLOWED, now):
            return
        self._forget_expired_claims(now)

    def _forget_expired_claims(self, now: float) -> None:
        """The last resort, when every entry is a pending claim (at most the assessments in
        flight, far below any sane `max_entries`): forget claims that have expired one by
        one, in a generation that still holds live ones; if none has, refuse until the
        earliest of them expires, without looking again before then."""
        if now < self._retry_full_at:
            return
        self.scans += 1
        earliest = math.inf
        for generation in self._generations:
            entries = generation.entries
            for key in list(entries):
                expires_at = _state(entries[key])[0]
                if expires_at <= now:
                    del entries[key]
                    self._count -= 1
                elif expires_at < earliest:
                    earliest = expires_at
        self._retry_full_at = earliest if self._count >= self._max_entries else 0.0

    def _evict(self, kind: str, now: float) -> bool:
        """Forget the oldest live entry settled as `kind`; True when one entry is gone."""
        for generation in self._generations:
            candidates = generation.candidates(kind)
            while candidates:
                key = candidates.popleft()
                self.examined += 1
                value = generation.entries.get(key)
                if value is None:
                    continue  # gone already: released, expired or settled again elsewhere
                expires_at, flags, allowed = _state(value)
                if not flags & _SETTLED or (kind == ALLOWED) is not allowed:
                    continue  # claimed again since (pending), or settled the other way
                del generation.entries[key]
                self._count -= 1
                if expires_at <= now:
                    return True  # expired anyway: no eviction
                self.evictions[kind] += 1
                if kind == ALLOWED:
                    self._alarm.warning(
                        "allowed_evicted",
                        "replay store full: forgetting tokens that were allowed; a replay of "
                        "one costs an upstream call and rests on upstream's DUPE. Raise "
                        "replay_max_entries above the peak rate of new tokens x replay_ttl",
                        extra={"max_entries": self._max_entries},
                    )
                return True
        return False

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


def _state(value: Any) -> tuple[float, int, bool]:
    """(expiry, flags, allowed) of a stored value without decoding its decision."""
    if type(value) is tuple:
        entry: ReplayEntry = value[1]
        flags = 0 if entry.decision is None else _SETTLED
        return value[0], flags, entry.decision is not None and entry.decision.allowed
    expires_at, flags = _HEAD.unpack_from(value)
    return expires_at, flags, bool(flags & _ALLOWED)


def _hex_bytes(text: str) -> bytes | str:
    """Lower-case hex of even length as its bytes (assessment ids are hex), else the text."""
    if not text or len(text) % 2:
        return text
    try:
        raw = bytes.fromhex(text)
    except ValueError:
        return text
    return raw if raw.hex() == text else text
