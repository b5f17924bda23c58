"""Which reCAPTCHA key a request is assessed with, or why none can be had.

reCAPTCHA keys are per platform (a web key, an Android key, an iOS key, an express key), and a
token only verifies against the key it was minted for. A sidecar may hold one default key
(`site_key`) and a key per client type (`site_keys`); the choice, in order:

1. the request's own `site_key`;
2. with a client type: `site_keys[client type]` when the sidecar has per-client keys, and
   KEYS_MISSING when it has none for that type (never another type's key: the token would
   come back `KEY_MISMATCH` after costing an upstream call and the token itself);
3. without a client type: CLIENT_TYPE_MISSING when `site_keys` names two or more of web /
   android / ios (it cannot tell which the token belongs to: Identity Platform's "outdated
   client" case); the one key when it names exactly one;
4. else the default `site_key`; and with none at all, KEYS_MISSING.

Express assessments (no token) use `site_keys["express"]` unless the request names its key.
"Per-client keys" means `site_keys` names at least one of web / android / ios: an express key
alone says nothing about which key tokens belong to. Pure: no I/O, no clock.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from sidecar.core.model import AssessmentRequest, ClientType
from sidecar.core.ports import FailureKind

EXPRESS = "express"
# The `site_keys` names of the platforms tokens come from (express mints none).
PLATFORMS: tuple[str, ...] = (ClientType.WEB.value, ClientType.ANDROID.value, ClientType.IOS.value)
SITE_KEY_NAMES: tuple[str, ...] = (*PLATFORMS, EXPRESS)


@dataclass(frozen=True, slots=True)
class NoKey:
    """Why no key could be chosen: the failure kind (its policy decides `allowed`) and what
    was missing (`decided_by` names it: `keys_missing:android`, `client_type_missing`)."""

    kind: FailureKind
    detail: str = ""


@dataclass(frozen=True, slots=True)
class SiteKeys:
    """The keys a sidecar holds: the default `site_key` and `site_keys` by client type."""

    default: str = ""
    by_type: Mapping[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        unknown = sorted(set(self.by_type) - set(SITE_KEY_NAMES))
        if unknown:
            raise ValueError(f"site_keys: unknown client type(s) {unknown}")

    @property
    def platform_keys(self) -> tuple[str, ...]:
        """The client types with a key of their own, in web, android, ios order."""
        return tuple(name for name in PLATFORMS if self.by_type.get(name))

    def choose(self, request: AssessmentRequest) -> str | NoKey:
        """The key to assess `request` with, or why there is none (see the module doc)."""
        if request.site_key:
            return request.site_key
        if request.express:
            return self.by_type.get(EXPRESS) or NoKey(FailureKind.KEYS_MISSING, EXPRESS)
        platforms = self.platform_keys
        if request.client_type:
            if platforms:
                chosen = self.by_type.get(request.client_type.value)
                return chosen or NoKey(FailureKind.KEYS_MISSING, request.client_type.value)
        elif len(platforms) >= 2:
            return NoKey(FailureKind.CLIENT_TYPE_MISSING)
        elif platforms:
            return self.by_type[platforms[0]]
        return self.default or NoKey(FailureKind.KEYS_MISSING, "default")
