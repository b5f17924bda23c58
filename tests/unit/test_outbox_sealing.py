"""Outbox payloads sealed at rest (`outbox_key_file`): AES-256-GCM, a fresh nonce each time,
keys rotated by adding one on top, plain payloads of before still read, and every bad key
file named at start."""

from __future__ import annotations

import base64
import os
from pathlib import Path

import pytest

from sidecar.config import ConfigError, load_settings
from sidecar.outbox.sealing import SealingKeyError, UnsealableRow, load_sealer

PAYLOAD = b'{"v":1,"name":"projects/p/assessments/a","account_id":"alice@example.com"}'


def key_file(path: Path, *keys: bytes) -> Path:
    path.write_text("".join(base64.b64encode(k).decode() + "\n" for k in keys))
    return path


def test_sealed_payloads_hide_the_plaintext_and_never_repeat(tmp_path: Path) -> None:
    sealer = load_sealer(key_file(tmp_path / "k", os.urandom(32)))
    one, two = sealer.seal(PAYLOAD), sealer.seal(PAYLOAD)
    assert one != two  # a fresh nonce each time: equal payloads are not recognisable
    for sealed in (one, two):
        assert b"alice" not in sealed and b"account_id" not in sealed
        assert sealer.open(sealed) == PAYLOAD


def test_a_tampered_payload_or_another_key_does_not_open(tmp_path: Path) -> None:
    sealer = load_sealer(key_file(tmp_path / "k", os.urandom(32)))
    sealed = bytearray(sealer.seal(PAYLOAD))
    sealed[-1] ^= 1
    with pytest.raises(ValueError, match="authenticate"):
        sealer.open(bytes(sealed))
    other = load_sealer(key_file(tmp_path / "other", os.urandom(32)))
    with pytest.raises(UnsealableRow, match="does not hold"):
        other.open(sealer.seal(PAYLOAD))
    with pytest.raises(UnsealableRow, match="no outbox_key_file"):
        load_sealer(None).open(sealer.seal(PAYLOAD))


def test_rotation_the_first_key_seals_every_key_opens(tmp_path: Path) -> None:
    old, new = os.urandom(32), os.urandom(32)
    before = load_sealer(key_file(tmp_path / "old", old))
    sealed_before = before.seal(PAYLOAD)
    rotated = load_sealer(key_file(tmp_path / "both", new, old))
    assert rotated.open(sealed_before) == PAYLOAD
    assert load_sealer(key_file(tmp_path / "new", new)).open(rotated.seal(PAYLOAD)) == PAYLOAD
    assert rotated.open(PAYLOAD) == PAYLOAD  # queued in clear before a key was configured


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("", "holds no key"),
        ("not base64!\n", "line 1 is not base64"),
        (base64.b64encode(b"short").decode(), "holds 5 bytes, not 32"),
    ],
)
def test_a_bad_key_file_is_named_at_start(tmp_path: Path, text: str, message: str) -> None:
    path = tmp_path / "k"
    path.write_text(text)
    with pytest.raises(SealingKeyError, match=message):
        load_sealer(path)
    with pytest.raises(ConfigError, match=f"outbox_key_file: .*{message}"):
        load_settings(emulator=True, outbox=str(tmp_path / "o.db"), outbox_key_file=path)


def test_a_redis_outbox_needs_a_key_and_a_good_url(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="outbox_key_file: required for a Redis outbox"):
        load_settings(emulator=True, outbox="redis://127.0.0.1:6379/0")
    key = key_file(tmp_path / "k", os.urandom(32))
    with pytest.raises(ConfigError, match=r"outbox: .*service-name"):
        load_settings(emulator=True, outbox="redis+sentinel://s:1", outbox_key_file=key)
    with pytest.raises(ConfigError, match="outbox_min_replicas: needs a Redis outbox"):
        load_settings(emulator=True, outbox=str(tmp_path / "o.db"), outbox_min_replicas=1)
    url = "redis+cluster://10.0.0.1:6379,10.0.0.2:6379"
    settings = load_settings(emulator=True, outbox=url, outbox_key_file=key)
    assert settings.outbox == url
    assert load_settings(emulator=True, outbox=str(tmp_path / "o.db")).outbox == tmp_path / "o.db"
