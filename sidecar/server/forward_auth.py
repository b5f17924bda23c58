"""The forward-auth front door's wire format (nginx `auth_request`, Caddy `forward_auth`,
Traefik `ForwardAuth`): what a proxy's auth subrequest says about the request it holds.

Who may say what:
- the token: the `forward_auth_token_header` (default `X-Recaptcha-Token`), sent by the
  browser; given more than once it is refused, never guessed;
- the expected action: **only** the auth URL's `?action=`, which the proxy configuration
  sets per route; never a header, which the end user could send to pick the weakest action;
- the client IP, requested URI and JA3/JA4: from `X-Forwarded-For` / `X-Real-IP`,
  `X-Forwarded-Proto|Host|Uri` (or `X-Original-URI`) and `x-ja3-fingerprint` /
  `x-ja4-fingerprint` only when the direct peer is one of `forward_auth_trusted_proxies`
  (loopback by default; a Unix-socket peer is inside the pod and counts as loopback); from
  anyone else they are ignored and the peer itself is the client;
- the user agent: the `User-Agent` the proxy copied from the end user's request.

Pure functions: the HTTP glue hands over the peer, the headers and the query.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Sequence
from dataclasses import dataclass

from sidecar.config.addresses import (
    DEFAULT_TOKEN_HEADER,
    DEFAULT_TRUSTED_PROXIES,
    IpNetwork,
    parse_networks,
)
from sidecar.core.model import AssessmentRequest

__all__ = [
    "DEFAULT_TOKEN_HEADER",
    "DEFAULT_TRUSTED_PROXIES",
    "BadForwardAuth",
    "ForwardAuthSettings",
    "parse_networks",
    "to_assessment_request",
]

IpAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
_LOOPBACK = ipaddress.ip_address("127.0.0.1")


class BadForwardAuth(Exception):
    """A subrequest that cannot be assessed as it stands (a header or `action` given twice,
    an unreadable action): denied without consuming the token. The message is for the log
    and names no value."""


@dataclass(frozen=True, slots=True)
class ForwardAuthSettings:
    """What the forward-auth door is told (from the settings)."""

    token_header: str = DEFAULT_TOKEN_HEADER
    trusted_proxies: tuple[IpNetwork, ...] = tuple(
        ipaddress.ip_network(n) for n in DEFAULT_TRUSTED_PROXIES
    )


def _ip(value: str) -> IpAddress | None:
    text = value.strip()
    if text.startswith("[") and "]" in text:  # [v6]:port
        text = text[1 : text.index("]")]
    elif text.count(":") == 1:  # v4:port
        text = text.split(":", 1)[0]
    try:
        address = ipaddress.ip_address(text)
    except ValueError:
        return None
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        return address.ipv4_mapped
    return address


def peer_address(peer: str | None) -> IpAddress:
    """The direct peer's IP; a Unix socket (no IP) is the pod itself: loopback."""
    address = _ip(peer) if peer else None
    return address if address is not None else _LOOPBACK


def is_trusted(address: IpAddress, trusted: Sequence[IpNetwork]) -> bool:
    return any(address in network for network in trusted)


def _one(headers: Sequence[tuple[str, str]], name: str) -> str:
    """The single value of a header, "" when absent; `BadForwardAuth` when given twice."""
    wanted = name.lower()
    values = [value for key, value in headers if key.lower() == wanted]
    if len(values) > 1:
        raise BadForwardAuth(f"{name}: given more than once")
    return values[0].strip() if values else ""


def client_ip(
    headers: Sequence[tuple[str, str]], peer: IpAddress, trusted: Sequence[IpNetwork]
) -> str:
    """The end user's IP. From an untrusted peer: the peer. From a trusted proxy: the
    right-most `X-Forwarded-For` entry that is not itself a trusted proxy (entries to its left
    were written by whoever the first untrusted hop was, i.e. possibly the end user), else
    `X-Real-IP`, else the peer. Unparsable entries end the walk: nothing left of them counts."""
    if not is_trusted(peer, trusted):
        return str(peer)
    forwarded = [value for key, value in headers if key.lower() == "x-forwarded-for"]
    hops = [hop for value in forwarded for hop in value.split(",")]
    for hop in reversed(hops):
        address = _ip(hop)
        if address is None:
            break
        if not is_trusted(address, trusted):
            return str(address)
    if not hops:
        real = _ip(_one(headers, "X-Real-IP"))
        if real is not None:
            return str(real)
    return str(peer)


def requested_uri(headers: Sequence[tuple[str, str]]) -> str:
    """The URI the end user asked the proxy for: Caddy and Traefik send X-Forwarded-Proto,
    -Host and -Uri; the nginx example sends X-Original-URI (with Host)."""
    uri = _one(headers, "X-Forwarded-Uri") or _one(headers, "X-Original-URI")
    host = _one(headers, "X-Forwarded-Host") or _one(headers, "Host")
    proto = _one(headers, "X-Forwarded-Proto") or "http"
    if not uri:
        return ""
    if not host:
        return uri
    return f"{proto}://{host}{uri}"


def expected_action(query: Sequence[tuple[str, str]]) -> str:
    """The auth URL's `?action=`; given twice (a proxy appending the end user's query string
    would do that) it is refused rather than letting either copy win."""
    actions = [value for key, value in query if key == "action"]
    if len(actions) > 1:
        raise BadForwardAuth("action: given more than once in the auth URL")
    return actions[0] if actions else ""


def to_assessment_request(
    *,
    peer: str | None,
    headers: Sequence[tuple[str, str]],
    query: Sequence[tuple[str, str]],
    settings: ForwardAuthSettings,
) -> AssessmentRequest:
    """The core's request for one auth subrequest."""
    address = peer_address(peer)
    trusted = is_trusted(address, settings.trusted_proxies)
    return AssessmentRequest(
        token=_one(headers, settings.token_header),
        expected_action=expected_action(query),
        user_ip_address=client_ip(headers, address, settings.trusted_proxies),
        user_agent=_one(headers, "User-Agent"),
        ja3=_one(headers, "x-ja3-fingerprint") if trusted else "",
        ja4=_one(headers, "x-ja4-fingerprint") if trusted else "",
        requested_uri=requested_uri(headers) if trusted else "",
    )
