"""`siteverify_secrets_file`: which legacy secret stands for which Enterprise site key.

A legacy app sends its siteverify `secret`; the sidecar holds the real credentials, so the
secret only names a key. The file is a mounted Secret: one `SECRET SITE_KEY` pair per line,
blank lines and `#` comments allowed. It is re-read when it changes (Secret rotation); a broken
update keeps the previous mapping. Secrets are kept only as SHA-256 digests and compared in
constant time; neither a secret nor its line's text is ever logged, only line numbers.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import re
import threading
from pathlib import Path

from sidecar.server.security import fingerprint

log = logging.getLogger(__name__)

# A reCAPTCHA key id, as the core accepts it (letters, digits, '-', '_').
_SITE_KEY = re.compile(r"[A-Za-z0-9_\-]{1,100}")
MAX_SECRET_BYTES = 1024


class SecretsFileError(Exception):
    """The file cannot be used; the message names the file and the line, never a secret."""


def parse_secrets(text: str, source: str) -> list[tuple[bytes, str]]:
    """(digest of the secret, site key) per pair; `SecretsFileError` for a line that is not
    one pair, a site key that is no key id, or a secret given twice."""
    entries: list[tuple[bytes, str]] = []
    seen: set[bytes] = set()
    for number, line in enumerate(text.splitlines(), start=1):
        stripped = line.strip()
        if not stripped or stripped.startswith("#"):
            continue
        fields = stripped.split()
        if len(fields) != 2:
            raise SecretsFileError(f"{source} line {number}: expected `SECRET SITE_KEY`")
        secret, site_key = fields
        if len(secret.encode()) > MAX_SECRET_BYTES:
            raise SecretsFileError(f"{source} line {number}: secret over {MAX_SECRET_BYTES} bytes")
        if not _SITE_KEY.fullmatch(site_key):
            raise SecretsFileError(
                f"{source} line {number}: the site key must be a reCAPTCHA key id "
                "(letters, digits, '-', '_')"
            )
        digest = hashlib.sha256(secret.encode()).digest()
        if digest in seen:
            raise SecretsFileError(f"{source} line {number}: this secret is already mapped")
        seen.add(digest)
        entries.append((digest, site_key))
    if not entries:
        raise SecretsFileError(f"{source}: no `SECRET SITE_KEY` pair")
    return entries


class SiteverifySecrets:
    """The mapping, read from its file at start (a bad file stops the start, naming the line)
    and again whenever the file changes."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._lock = threading.Lock()
        self._seen: tuple[int, int, int] | None = None
        self._entries: list[tuple[bytes, str]] = []
        self.reload()

    def reload(self) -> None:
        try:
            seen = fingerprint(self.path)
            text = self.path.read_text()
        except (OSError, UnicodeDecodeError) as error:
            reason = getattr(error, "strerror", None) or type(error).__name__
            raise SecretsFileError(f"{self.path}: cannot read it: {reason}") from None
        entries = parse_secrets(text, str(self.path))
        with self._lock:
            self._seen, self._entries = seen, entries

    def _refresh(self) -> None:
        try:
            if fingerprint(self.path) != self._seen:
                self.reload()
                log.info("siteverify secrets reloaded", extra={"pairs": len(self._entries)})
        except (OSError, SecretsFileError) as error:
            # A half-written Secret update must not lock every legacy app out.
            log.warning("siteverify secrets file unusable, keeping the previous one: %s", error)

    def site_key_for(self, secret: str) -> str | None:
        """The site key a secret stands for, or None. Every entry is compared, each in
        constant time, so the time taken says nothing about which secret (or how much of it)
        matched."""
        self._refresh()
        presented = hashlib.sha256(secret.encode()).digest()
        found = None
        for digest, site_key in self._entries:
            if hmac.compare_digest(presented, digest):
                found = site_key
        return found

    def __len__(self) -> int:
        return len(self._entries)
