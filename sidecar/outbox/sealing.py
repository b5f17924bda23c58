"""Sealing annotation payloads at rest, for every durable annotation queue (the SQLite outbox
here, the Redis Streams outbox of the scale-out work): account ids, phone numbers and
transaction reasons never rest in clear when `outbox_key_file` is set.

The key file is a mounted Secret, the same for every replica (a key held only in memory would
strand the queue at the next restart): one or more lines of base64, each a 32-byte AES-256 key
(`openssl rand -base64 32`). The first line seals; every line opens, so a key is rotated by
putting the new one first and dropping the old one once no row sealed with it is queued.

A sealed payload is `rso1` · key id (4 bytes: the start of the key's SHA-256) · nonce (12
random bytes) · AES-256-GCM ciphertext and tag, with the first 8 bytes as associated data.
AES-GCM with random nonces stays safe far beyond the number of annotations one key ever seals
(2^32). Payloads written before a key was configured (plain JSON) are still read.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import os
from pathlib import Path
from typing import Protocol

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

MAGIC = b"rso1"
_KEY_ID_BYTES = 4
_NONCE_BYTES = 12
_HEADER = len(MAGIC) + _KEY_ID_BYTES
KEY_BYTES = 32


class SealingKeyError(Exception):
    """`outbox_key_file` cannot be used; the message names the problem, never the key."""


class UnsealableRow(Exception):
    """A sealed payload that no configured key opens: the key file changed (a sidecar-wide
    problem, not this row's: the row is kept and tried again once the key is back)."""


class Sealer(Protocol):
    """Turns stored payloads into what rests on disk, and back."""

    @property
    def sealing(self) -> bool:
        """Whether payloads are encrypted at rest."""
        ...

    def seal(self, payload: bytes) -> bytes: ...

    def open(self, stored: bytes) -> bytes:
        """The payload; `UnsealableRow` when it is sealed with a key not configured here."""
        ...


class PlainSealer:
    """No key configured: payloads rest as they are (see docs/annotations.md for what the
    outbox does instead: deleted rows zeroed, the WAL truncated)."""

    sealing = False

    def seal(self, payload: bytes) -> bytes:
        return payload

    def open(self, stored: bytes) -> bytes:
        if stored.startswith(MAGIC):
            raise UnsealableRow("sealed, but no outbox_key_file is configured")
        return stored


class AesGcmSealer:
    """AES-256-GCM under the first key; opens with any configured key."""

    sealing = True

    def __init__(self, keys: list[bytes]) -> None:
        if not keys:
            raise SealingKeyError("no key")
        self._keys = {_key_id(key): AESGCM(key) for key in keys}
        self._sealing_id = _key_id(keys[0])

    def seal(self, payload: bytes) -> bytes:
        header = MAGIC + self._sealing_id
        nonce = os.urandom(_NONCE_BYTES)
        return header + nonce + self._keys[self._sealing_id].encrypt(nonce, payload, header)

    def open(self, stored: bytes) -> bytes:
        if not stored.startswith(MAGIC):
            return stored  # written before the key was configured
        header = stored[:_HEADER]
        key = self._keys.get(header[len(MAGIC) :])
        if key is None:
            raise UnsealableRow("sealed with a key that outbox_key_file does not hold")
        nonce = stored[_HEADER : _HEADER + _NONCE_BYTES]
        try:
            return key.decrypt(nonce, stored[_HEADER + _NONCE_BYTES :], header)
        except InvalidTag:
            raise ValueError("sealed payload does not authenticate") from None


def _key_id(key: bytes) -> bytes:
    return hashlib.sha256(key).digest()[:_KEY_ID_BYTES]


def load_sealer(path: Path | None) -> Sealer:
    """The sealer `outbox_key_file` asks for; `SealingKeyError` naming the problem."""
    if path is None:
        return PlainSealer()
    try:
        lines = path.read_text().split()
    except OSError as error:
        raise SealingKeyError(f"outbox_key_file: cannot read {path}: {error.strerror}") from None
    keys = []
    for number, line in enumerate(lines, 1):
        try:
            key = base64.b64decode(line, validate=True)
        except (binascii.Error, ValueError):
            raise SealingKeyError(f"outbox_key_file: line {number} is not base64") from None
        if len(key) != KEY_BYTES:
            raise SealingKeyError(
                f"outbox_key_file: line {number} holds {len(key)} bytes, not {KEY_BYTES} "
                "(make one with: openssl rand -base64 32)"
            )
        keys.append(key)
    if not keys:
        raise SealingKeyError(f"outbox_key_file: {path} holds no key")
    return AesGcmSealer(keys)
