"""Account-id protection: what becomes of `account_id` before it leaves the pod.

Configured once in the sidecar, so every app, in every language, protects ids the same way
and the ids Google sees for one account agree across services. Three modes, as Google's
account defender guide describes them:

- `plain`: the id as the app gave it.
- `hmac-sha256`: lower-case hex HMAC-SHA256 of the UTF-8 id under a secret salt. One way: to
  find an account again, keep your own mapping (or recompute: `recaptcha-sidecar account-id
  protect`).
- `deterministic-encryption` (Google's recommendation): AES-SIV (RFC 5297) of the UTF-8 id,
  with no associated data, as unpadded base64url. The same id always gives the same
  ciphertext, so Google's account model still links requests of one account, and ids that
  come back from Google decrypt without a mapping table (`recaptcha-sidecar account-id
  decrypt`).

The key is base64 text from a file (a mounted Secret) or the environment variable
`RECAPTCHA_SIDECAR_ACCOUNT_ID_KEY`, never from the config file. AES-SIV takes 32, 48 or 64
bytes (64 = AES-256-SIV; `openssl rand -base64 64`); an HMAC salt at least 16.
"""

from __future__ import annotations

import base64
import binascii
import enum
import hashlib
import hmac
from collections.abc import Sequence
from pathlib import Path
from typing import Protocol

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESSIV

KEY_ENV = "RECAPTCHA_SIDECAR_ACCOUNT_ID_KEY"
MIN_HMAC_KEY_BYTES = 16
SIV_KEY_BYTES = (32, 48, 64)


class Protection(enum.StrEnum):
    """The config values of `account_id_protection`."""

    PLAIN = "plain"
    HMAC_SHA256 = "hmac-sha256"
    DETERMINISTIC_ENCRYPTION = "deterministic-encryption"


class AccountIdKeyError(ValueError):
    """The key for a protection mode is missing or unusable; the message names where it was
    looked for, never the key."""


class AccountIdDecryptError(ValueError):
    """A value is not a ciphertext of this key (wrong key, truncated, or never encrypted)."""


class AccountIdProtector(Protocol):
    """Turns an account id into what upstream sees. Deterministic: one id, one output."""

    mode: Protection

    def protect(self, account_id: str) -> str:
        """The protected form; the empty id stays empty (no account)."""
        ...


class PlainProtector:
    """Ids go upstream as given."""

    mode = Protection.PLAIN

    def protect(self, account_id: str) -> str:
        return account_id


class HmacSha256Protector:
    """HMAC-SHA256 under a secret salt, as lower-case hex (64 characters)."""

    mode = Protection.HMAC_SHA256

    def __init__(self, secret: bytes) -> None:
        if not secret:
            raise AccountIdKeyError("hmac-sha256 needs a non-empty secret")
        self._secret = secret

    def protect(self, account_id: str) -> str:
        if not account_id:
            return ""
        return hmac.new(self._secret, account_id.encode(), hashlib.sha256).hexdigest()


class DeterministicEncryptionProtector:
    """AES-SIV: deterministic authenticated encryption, so it can be reversed by the key
    holder and nobody else, and tampered values are refused rather than decrypted to junk."""

    mode = Protection.DETERMINISTIC_ENCRYPTION

    def __init__(self, key: bytes, associated_data: Sequence[bytes] = ()) -> None:
        if len(key) not in SIV_KEY_BYTES:
            raise AccountIdKeyError(
                f"deterministic-encryption needs a 32, 48 or 64 byte key, not {len(key)} bytes"
            )
        self._siv = AESSIV(key)
        self._associated_data = list(associated_data) or None

    def encrypt(self, plaintext: bytes) -> bytes:
        """The raw SIV ciphertext (16-byte synthetic IV, then the encrypted bytes)."""
        return self._siv.encrypt(plaintext, self._associated_data)

    def decrypt(self, ciphertext: bytes) -> bytes:
        try:
            return self._siv.decrypt(ciphertext, self._associated_data)
        except InvalidTag:
            raise AccountIdDecryptError("not an account id encrypted with this key") from None

    def protect(self, account_id: str) -> str:
        if not account_id:
            return ""
        return base64.urlsafe_b64encode(self.encrypt(account_id.encode())).rstrip(b"=").decode()

    def reveal(self, protected: str) -> str:
        """The account id behind a value `protect` returned."""
        text = protected.strip()
        try:
            raw = base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
        except (binascii.Error, ValueError):
            raise AccountIdDecryptError("not base64url") from None
        if len(raw) < 16:
            raise AccountIdDecryptError("too short to be an encrypted account id")
        try:
            return self.decrypt(raw).decode()
        except UnicodeDecodeError:
            raise AccountIdDecryptError("decrypts to bytes that are not UTF-8") from None


def decode_key(text: str, where: str) -> bytes:
    """Key material is base64 text (standard or URL-safe alphabet; whitespace ignored)."""
    compact = "".join(text.split())
    if not compact:
        raise AccountIdKeyError(f"{where}: empty")
    try:
        return base64.b64decode(
            compact.replace("-", "+").replace("_", "/") + "=" * (-len(compact) % 4),
            validate=True,
        )
    except (binascii.Error, ValueError):
        raise AccountIdKeyError(f"{where}: not base64 text") from None


def load_key(key_file: Path | None, key: str | None) -> tuple[bytes, str]:
    """The key and where it came from: the file (a mounted Secret) wins over the env value."""
    if key_file is not None:
        where = f"account_id_key_file {key_file}"
        try:
            text = key_file.read_text()
        except OSError as error:
            raise AccountIdKeyError(f"{where}: {error.strerror or 'unreadable'}") from None
        except UnicodeDecodeError:
            raise AccountIdKeyError(f"{where}: not base64 text") from None
        return decode_key(text, where), where
    if key:
        return decode_key(key, KEY_ENV), KEY_ENV
    raise AccountIdKeyError(f"needs account_id_key_file or the environment variable {KEY_ENV}")


def build_protector(
    mode: Protection | str, key_file: Path | None = None, key: str | None = None
) -> AccountIdProtector:
    """The protector a configuration asks for; AccountIdKeyError when its key is unusable."""
    mode = Protection(mode)
    if mode is Protection.PLAIN:
        return PlainProtector()
    secret, where = load_key(key_file, key)
    if mode is Protection.HMAC_SHA256:
        if len(secret) < MIN_HMAC_KEY_BYTES:
            raise AccountIdKeyError(
                f"{where}: an hmac-sha256 salt needs at least {MIN_HMAC_KEY_BYTES} bytes"
            )
        return HmacSha256Protector(secret)
    try:
        return DeterministicEncryptionProtector(secret)
    except AccountIdKeyError as error:
        raise AccountIdKeyError(f"{where}: {error}") from None
