"""Replay entries as compact JSON, for stores that keep bytes (Redis).

Only fields that differ from their defaults are written, so a settled entry is a few hundred
bytes. Decoding is lenient: replicas of different versions share one store during a rolling
upgrade, so unknown fields are ignored, and a value that cannot be read at all still counts as
"this token was seen" (a DUPLICATE), never as a fresh token.
"""

from __future__ import annotations

import dataclasses
import enum
import json
from typing import Any

from sidecar.core.model import Decision, RecommendedAction, TokenStatus, Verdict
from sidecar.core.ports import ReplayEntry

# `replayed` is a property of one answer; `passthrough` (upstream's whole answer) is never
# stored: it echoes the token and the user's data (the Verifier clears it before settling).
_FIELDS = tuple(
    f for f in dataclasses.fields(Decision) if f.name not in ("replayed", "passthrough")
)
_NAMES = frozenset(f.name for f in _FIELDS)
_ENUMS: dict[str, type[enum.Enum]] = {
    "verdict": Verdict,
    "token_status": TokenStatus,
    "recommended_action": RecommendedAction,
}
_TUPLES = frozenset(("reasons", "account_defender_labels"))

# What an unreadable value decodes to: seen, no decision, matching no idempotency key.
UNREADABLE = ReplayEntry(idempotency_digest="", decision=None, claim_id="")


def _plain(value: object) -> object:
    if isinstance(value, enum.Enum):
        return value.value
    if isinstance(value, tuple):
        return list(value)
    return value


def decision_to_dict(decision: Decision) -> dict[str, object]:
    """The fields of a decision that differ from their defaults (`replayed` is never kept:
    a stored answer is the original one)."""
    out: dict[str, object] = {}
    for f in _FIELDS:
        value = getattr(decision, f.name)
        if f.default is dataclasses.MISSING or value != f.default:
            out[f.name] = _plain(value)
    return out


def decision_from_dict(data: dict[str, Any]) -> Decision:
    """The inverse of `decision_to_dict`; unknown keys are ignored. ValueError/TypeError/
    KeyError when a required field is missing or of the wrong kind."""
    kwargs: dict[str, Any] = {}
    for name, value in data.items():
        if name not in _NAMES:
            continue
        if name in _ENUMS:
            value = _ENUMS[name](value)
        elif name in _TUPLES:
            if not isinstance(value, list):
                raise TypeError(f"{name}: expected a list")
            value = tuple(str(v) for v in value)
        kwargs[name] = value
    if not isinstance(kwargs.get("allowed"), bool):
        raise TypeError("allowed: expected a boolean")
    return Decision(**kwargs)


def encode_entry(entry: ReplayEntry) -> bytes:
    """Pending: `{"c": claim id, "i": idempotency digest}`; settled: `{"i": …, "d": {…}}`.

    A pending value starts with `pending_prefix(claim id)`, so a store can tell who holds a
    claim by comparing bytes, without parsing JSON inside Redis.
    """
    body: dict[str, object] = {}
    if entry.decision is None:
        body["c"] = entry.claim_id
        body["i"] = entry.idempotency_digest
    else:
        body["i"] = entry.idempotency_digest
        body["d"] = decision_to_dict(entry.decision)
    return json.dumps(body, separators=(",", ":"), ensure_ascii=False).encode("utf-8")


def pending_prefix(claim_id: str) -> bytes:
    """The first bytes of every pending value held by `claim_id` (a token of `[A-Za-z0-9_-]`,
    so it needs no JSON escaping and cannot be confused with another id)."""
    return b'{"c":"' + claim_id.encode("ascii") + b'",'


def decode_entry(raw: bytes | str) -> ReplayEntry:
    """Bytes from the store → an entry; `UNREADABLE` when they cannot be understood."""
    try:
        body = json.loads(raw)
        if not isinstance(body, dict):
            return UNREADABLE
        idem = body.get("i", "")
        if not isinstance(idem, str):
            return UNREADABLE
        decision = body.get("d")
        if decision is None:
            claim_id = body.get("c", "")
            return ReplayEntry(idem, None, claim_id if isinstance(claim_id, str) else "")
        if not isinstance(decision, dict):
            return UNREADABLE
        return ReplayEntry(idem, decision_from_dict(decision))
    except (ValueError, TypeError, KeyError, UnicodeDecodeError):
        return UNREADABLE
