"""Listener addresses: their syntax, and which of them the network can reach.

Pure functions, free of gRPC, so that the settings can check a configuration at load (a bad
address or an exposed listener without TLS or a token fails before anything starts) and the
server applies the same rules when it binds (`sidecar.server.security`, `listeners`).
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable, Sequence


def is_unix(address: str) -> bool:
    return address.startswith("unix:")


def host_of(address: str) -> str:
    """`127.0.0.1:50051` → `127.0.0.1`; `[::1]:50051` → `::1`."""
    host = address.rsplit(":", 1)[0]
    return host[1:-1] if host.startswith("[") and host.endswith("]") else host


def is_loopback(address: str) -> bool:
    """A TCP address that only this network namespace (the pod) can reach."""
    host = host_of(address)
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False  # a host name: it resolves to something the network can reach


def is_exposed(address: str, *, secure_loopback: bool = False) -> bool:
    """Whether this listener must be secured: every TCP address but loopback, and loopback
    too when `secure_loopback` (hostNetwork pods share loopback with the whole node)."""
    if is_unix(address):
        return False
    return secure_loopback or not is_loopback(address)


def listen_problem(
    listen: Sequence[str],
    *,
    secure_loopback: bool,
    tls: bool,
    token: bool,
    insecure_listen: bool,
    client_ca: bool = False,
    key: str = "listen",
) -> str | None:
    """Why these listeners (the setting `key`) may not start as configured, or None when
    they may.

    An exposed listener must authenticate its callers: a bearer token, or TLS that requires a
    client certificate (mTLS). TLS alone encrypts but serves any peer that can connect, so it
    counts as unauthenticated: only `insecure_listen` accepts it."""
    if token or (tls and client_ca) or insecure_listen:
        return None
    exposed = [a for a in listen if is_exposed(a, secure_loopback=secure_loopback)]
    if not exposed:
        return None
    if tls:
        return (
            f"{key}: {', '.join(exposed)} can be reached from outside the pod and TLS alone "
            "authenticates nobody (any peer that connects is served): add tls_client_ca_file "
            "(mTLS: callers need a certificate from that CA) or auth_token_file (bearer token), "
            "or pass --insecure-listen to serve it unauthenticated on purpose"
        )
    return (
        f"{key}: {', '.join(exposed)} can be reached from outside the pod and is not secured: "
        "set tls_cert_file and tls_key_file (TLS, with tls_client_ca_file for mTLS) or "
        "auth_token_file (bearer token), listen on loopback or a Unix socket, "
        "or pass --insecure-listen to serve it in the clear on purpose"
    )


def metrics_problem(address: str, *, tls: bool, metrics_insecure: bool) -> str | None:
    """Why the Prometheus endpoint may not start on `address`, or None. A loopback endpoint is
    for the pod; any other one needs TLS, or `metrics_insecure` said on purpose (a Prometheus
    that scrapes the pod IP over plain HTTP, as the chart sets up)."""
    if not address or metrics_insecure or tls:
        return None
    host = host_of(address) if not address.startswith(":") else ""
    if host and is_loopback(address):
        return None
    return (
        f"metrics_listen: {address} can be reached from outside the pod: set tls_cert_file and "
        "tls_key_file (the endpoint then serves HTTPS, with tls_client_ca_file requiring client "
        "certificates), listen on loopback, or set metrics_insecure: true to serve plain HTTP "
        "on purpose"
    )


def parse_socket_mode(value: object) -> str:
    """`"0660"`, `"660"` or the int YAML makes of an unquoted `0660` → `"0660"`."""
    if isinstance(value, bool):
        raise ValueError('expected an octal file mode such as "0660"')
    if isinstance(value, int):
        mode = value
    elif isinstance(value, str) and value.strip().isdigit():
        mode = int(value.strip(), 8) if set(value.strip()) <= set("01234567") else -1
    else:
        raise ValueError('expected an octal file mode such as "0660"')
    if not 0 <= mode <= 0o777:
        raise ValueError(f'{value!r}: expected an octal file mode such as "0660" (quote it)')
    return f"0{mode:03o}"


# forward-auth: who may say what about the request a proxy holds (sidecar.server.forward_auth)
IpNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network
DEFAULT_TOKEN_HEADER = "X-Recaptcha-Token"  # noqa: S105 (a header name)
DEFAULT_TRUSTED_PROXIES = ("127.0.0.0/8", "::1/128")


def parse_networks(values: Iterable[str]) -> tuple[IpNetwork, ...]:
    """CIDRs or single addresses (`10.0.0.0/8`, `192.0.2.7`, `::1`); ValueError naming the
    first that is neither."""
    networks = []
    for value in values:
        try:
            networks.append(ipaddress.ip_network(value.strip(), strict=False))
        except ValueError:
            raise ValueError(f"{value!r}: not an IP address or CIDR network") from None
    return tuple(networks)
