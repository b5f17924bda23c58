"""The deployment secret that names rate limit counters (HMAC-SHA256 key).

Every replica sharing Redis must hold the same one, so that a client's counter has one name
fleet-wide; with the memory store a random key per process does (no one else shares them).
"""

from __future__ import annotations

import base64
import binascii
import secrets
from pathlib import Path

MIN_KEY_BYTES = 16


class RateLimitKeyError(ValueError):
    """rate_limit_key_file cannot be used; the message names the file, never its content."""


def load_secret(path: Path | None) -> bytes:
    """The secret from `path` (base64 text, standard or URL-safe alphabet, 16+ bytes), or a
    random one for this process when there is no file."""
    if path is None:
        return secrets.token_bytes(32)
    where = f"rate_limit_key_file {path}"
    try:
        text = "".join(path.read_text().split())
    except OSError as error:
        raise RateLimitKeyError(f"{where}: {error.strerror or 'unreadable'}") from None
    except UnicodeDecodeError:
        raise RateLimitKeyError(f"{where}: not base64 text") from None
    try:
        secret = base64.b64decode(
            text.replace("-", "+").replace("_", "/") + "=" * (-len(text) % 4), validate=True
        )
    except (binascii.Error, ValueError):
        raise RateLimitKeyError(f"{where}: not base64 text") from None
    if len(secret) < MIN_KEY_BYTES:
        raise RateLimitKeyError(f"{where}: needs at least {MIN_KEY_BYTES} bytes of key")
    return secret
