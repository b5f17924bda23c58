"""The Google Cloud project the emulator stands in for: its number and id, its API keys, its
reCAPTCHA keys, and the access tokens its (fake) metadata server hands out.

Everything here is optional. A `Project()` with nothing configured is the lenient emulator
every plaintext test uses: any parent, any site key, no credentials. Each setting turns one of
Google's checks on, so a test asks for exactly the fidelity it needs.
"""

from __future__ import annotations

import hashlib
import secrets
import threading
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field

from sidecar.emulator import errors
from sidecar.emulator.errors import GoogleError
from sidecar.emulator.keys import SiteKey

DEFAULT_PROJECT_NUMBER = "123456789"
CLOUD_PLATFORM_SCOPE = "https://www.googleapis.com/auth/cloud-platform"
ACCESS_TOKEN_LIFETIME_SECONDS = 3599  # what GCE's metadata server answers for `expires_in`
_ACCESS_TOKEN_PREFIX = "ya29.emu-"  # noqa: S105 - a format tag: Google's tokens start `ya29.`
_SECRET_HEADERS = frozenset({"x-goog-api-key", "authorization"})


@dataclass(frozen=True)
class Project:
    """What Google knows about the caller's project.

    - ``id``: when set, a parent or assessment name must name this project (by id or number),
      else `PERMISSION_DENIED`, as IAM answers for a project the caller has no role in.
    - ``api_keys``: keys `x-goog-api-key` may carry.
    - ``require_credentials``: every call must carry a valid API key or an access token this
      emulator issued (on by default once an API key or the metadata server is configured).
    - ``site_keys``: when set, `event.site_key` must be one of them (see keys.py).
    """

    number: str = DEFAULT_PROJECT_NUMBER
    id: str | None = None
    api_keys: frozenset[str] = frozenset()
    require_credentials: bool = False
    site_keys: Mapping[str, SiteKey] | None = None
    service_account: str = ""

    def __post_init__(self) -> None:
        if not self.number or "/" in self.number:
            raise ValueError(f"invalid project number {self.number!r}")
        if self.id is not None and (not self.id or "/" in self.id):
            raise ValueError(f"invalid project id {self.id!r}")

    @classmethod
    def of(
        cls,
        *,
        number: str = DEFAULT_PROJECT_NUMBER,
        id: str | None = None,
        api_keys: Iterable[str] = (),
        site_keys: Iterable[SiteKey | str] | None = None,
        require_credentials: bool | None = None,
    ) -> Project:
        """Build from loose values: key specs as strings, credentials required when any are set."""
        keys = frozenset(api_keys)
        registry = None
        if site_keys is not None:
            parsed = [k if isinstance(k, SiteKey) else SiteKey.parse(k) for k in site_keys]
            registry = {k.id: k for k in parsed}
            if len(registry) != len(parsed):
                raise ValueError("site key ids must be unique")
        return cls(
            number=number,
            id=id,
            api_keys=keys,
            require_credentials=bool(keys) if require_credentials is None else require_credentials,
            site_keys=registry,
        )

    @property
    def email(self) -> str:
        """The service account the metadata server says the workload runs as."""
        return (
            self.service_account
            or f"recaptcha-sidecar@{self.id or 'emulator'}.iam.gserviceaccount.com"
        )

    def owns(self, project: str) -> bool:
        """Whether ``projects/<project>`` is this project (always, when no id is configured)."""
        return self.id is None or project in (self.id, self.number)


@dataclass(frozen=True, slots=True)
class AccessToken:
    expires_at: float
    scopes: tuple[str, ...]


@dataclass
class TokenIssuer:
    """Access tokens the metadata server issued, checked on every call.

    Shared by the gRPC handlers (event loop) and the metadata server (its own threads), hence
    the lock. Tokens are kept by SHA-256 only; a bearer value never rests in memory twice.
    """

    clock: Callable[[], float] = time.time
    lifetime: float = ACCESS_TOKEN_LIFETIME_SECONDS
    _tokens: dict[bytes, AccessToken] = field(default_factory=dict)
    _lock: threading.Lock = field(default_factory=threading.Lock)
    issued: int = 0

    def issue(self, scopes: Sequence[str], lifetime: float | None = None) -> tuple[str, int]:
        """A new access token and its `expires_in` seconds."""
        lifetime = self.lifetime if lifetime is None else lifetime
        token = _ACCESS_TOKEN_PREFIX + secrets.token_urlsafe(32)
        with self._lock:
            self._tokens[_digest(token)] = AccessToken(self.clock() + lifetime, tuple(scopes))
            self.issued += 1
        return token, int(lifetime)

    def lookup(self, token: str) -> AccessToken | None:
        with self._lock:
            return self._tokens.get(_digest(token))

    def expire_all(self) -> int:
        """Make every issued token expired (a client must refresh); returns how many."""
        now = self.clock()
        with self._lock:
            for key, issued in self._tokens.items():
                self._tokens[key] = AccessToken(min(issued.expires_at, now - 1), issued.scopes)
            return len(self._tokens)


def check_credentials(
    project: Project, issuer: TokenIssuer, metadata: Mapping[str, str], rpc: str, now: float
) -> tuple[str, GoogleError | None]:
    """Which credential the call carried ("api_key", "access_token", "both", "none") and the
    error Google answers when it is not good enough (None when the call may proceed)."""
    api_key = metadata.get("x-goog-api-key")
    authorization = metadata.get("authorization")
    kind = {
        (True, True): "both",
        (True, False): "api_key",
        (False, True): "access_token",
        (False, False): "none",
    }[(api_key is not None, authorization is not None)]
    if not project.require_credentials:
        return kind, None
    if api_key is not None and api_key not in project.api_keys:
        return kind, errors.api_key_invalid()
    if authorization is not None:
        scheme, _, value = authorization.partition(" ")
        issued = issuer.lookup(value.strip()) if scheme.lower() == "bearer" else None
        if issued is None:
            return kind, errors.access_token_type_unsupported(rpc)
        if issued.expires_at <= now:
            return kind, errors.access_token_expired(rpc)
        if issued.scopes and CLOUD_PLATFORM_SCOPE not in issued.scopes:
            return kind, errors.access_token_scope_insufficient(rpc)
    if kind == "none":
        return kind, errors.credentials_missing(rpc)
    return kind, None


def redact(key: str, value: str | bytes) -> str | bytes:
    """Credentials in stats show as a digest prefix, so tests can compare but never read them."""
    if key in _SECRET_HEADERS:
        raw = value if isinstance(value, bytes) else value.encode()
        return "sha256:" + hashlib.sha256(raw).hexdigest()[:12]
    return value


def _digest(token: str) -> bytes:
    return hashlib.sha256(token.encode()).digest()
