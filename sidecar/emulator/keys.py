"""reCAPTCHA keys as a project holds them: each has a platform and what it allows.

Google checks a token against the key the assessment names: a token minted for another key is
`KEY_MISMATCH`, a page outside a web key's domains is `DOMAIN_MISMATCH`, and the answer names
where the token came from in the field that fits the key (`hostname` for web,
`android_package_name`, `ios_bundle_id`). Express keys mint no tokens: they score requests
from server-side signals alone (`event.express = true`).

A key is written as a spec string so the CLI, tests and docs share one syntax:
``ID`` or ``ID=web`` (any domain), ``ID=web:example.com,shop.example``,
``ID=android:com.example.app``, ``ID=ios:com.example.App``, ``ID=express``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from enum import StrEnum

from sidecar.emulator.tokens import TokenClaims

_KEY_ID = re.compile(r"[A-Za-z0-9_-]{1,100}")
DEFAULT_ANDROID_PACKAGE = "com.example.app"
DEFAULT_IOS_BUNDLE = "com.example.App"


class Platform(StrEnum):
    """Where a key's tokens come from (Google's web/android/ios/express key settings)."""

    WEB = "web"
    ANDROID = "android"
    IOS = "ios"
    EXPRESS = "express"


# The TokenProperties field that names where a token came from, per platform.
ORIGIN_FIELD = {
    Platform.WEB: "hostname",
    Platform.ANDROID: "android_package_name",
    Platform.IOS: "ios_bundle_id",
}


@dataclass(frozen=True, slots=True)
class Origin:
    """Where a valid token came from: the TokenProperties field and its value."""

    field: str
    value: str


@dataclass(frozen=True, slots=True)
class SiteKey:
    """One key of the project. ``allowed`` holds domains (web), package names (Android) or
    bundle ids (iOS); empty allows all, as Google's ``allow_all_*`` settings do."""

    id: str
    platform: Platform = Platform.WEB
    allowed: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        if not _KEY_ID.fullmatch(self.id):
            raise ValueError(f"site key id {self.id!r}: letters, digits, '-' and '_' only")
        if self.platform is Platform.EXPRESS and self.allowed:
            raise ValueError(f"site key {self.id!r}: an express key allows no domains or apps")

    @classmethod
    def parse(cls, spec: str) -> SiteKey:
        """``ID[=PLATFORM[:ALLOWED,...]]``; ValueError says what is wrong."""
        key_id, _, rest = spec.partition("=")
        platform_name, _, allowed = rest.partition(":")
        try:
            platform = Platform(platform_name or Platform.WEB)
        except ValueError:
            names = ", ".join(p.value for p in Platform)
            raise ValueError(f"site key {spec!r}: platform must be one of {names}") from None
        entries = tuple(a.strip() for a in allowed.split(",") if a.strip())
        return cls(key_id, platform, entries)

    def spec(self) -> str:
        """The spec string this key parses from."""
        tail = f":{','.join(self.allowed)}" if self.allowed else ""
        return f"{self.id}={self.platform.value}{tail}"

    def check(self, claims: TokenClaims) -> str | Origin:
        """The InvalidReason name for a token this key refuses, else the token's origin.

        A token that names no app came from the key's own platform (minting stays short:
        ``mint_token(site_key="android-key")`` is an Android token).
        """
        if self.platform is Platform.EXPRESS:
            return "KEY_MISMATCH"  # express keys never mint tokens
        platform = _token_platform(claims) or self.platform
        if platform is not self.platform:
            return "KEY_MISMATCH"
        if platform is Platform.WEB:
            if self.allowed and not any(_within(claims.hostname, d) for d in self.allowed):
                return "DOMAIN_MISMATCH"
            return Origin("hostname", claims.hostname)
        app = claims.android_package_name if platform is Platform.ANDROID else claims.ios_bundle_id
        if app is None:
            app = self.allowed[0] if self.allowed else _default_app(platform)
        if self.allowed and app not in self.allowed:
            # Google's SDK refuses to mint for an app the key does not list; the closest
            # answer an assessment can give is that the token does not belong to this key.
            return "KEY_MISMATCH"
        return Origin(ORIGIN_FIELD[platform], app)


def origin_without_key(claims: TokenClaims) -> Origin:
    """Where a token came from when the emulator checks no keys (the lenient default)."""
    if claims.android_package_name is not None:
        return Origin("android_package_name", claims.android_package_name)
    if claims.ios_bundle_id is not None:
        return Origin("ios_bundle_id", claims.ios_bundle_id)
    return Origin("hostname", claims.hostname)


def _token_platform(claims: TokenClaims) -> Platform | None:
    if claims.android_package_name is not None:
        return Platform.ANDROID
    if claims.ios_bundle_id is not None:
        return Platform.IOS
    return None


def _default_app(platform: Platform) -> str:
    return DEFAULT_ANDROID_PACKAGE if platform is Platform.ANDROID else DEFAULT_IOS_BUNDLE


def _within(hostname: str, domain: str) -> bool:
    """Google allows a domain and every subdomain of it."""
    hostname, domain = hostname.lower().rstrip("."), domain.lower().rstrip(".")
    return hostname == domain or hostname.endswith("." + domain)
