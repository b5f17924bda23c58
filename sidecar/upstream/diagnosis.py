"""Why no connection to upstream could be made, asked of the resolver and of TLS directly.

gRPC reports an unresolvable endpoint, a refused connection and an untrusted certificate all
as `UNAVAILABLE`, told apart only by the words of its message (which change between
releases). So on an `UNAVAILABLE`, the sidecar asks the same questions itself and reads the
typed answers: `socket.gaierror` (the name does not exist: `EAI_NONAME`), and
`ssl.SSLCertVerificationError` (the certificate does not chain to the roots gRPC was given:
`upstream_ca_file`, `GRPC_DEFAULT_SSL_ROOTS_FILE_PATH`, or gRPC's bundled roots). Either is a
configuration problem: `config`, closed unless `on_config_error` says otherwise, nothing sent
(the token released), not retried, not counted by the breaker.

Anything else (a refused connection, a timeout, a resolver that could not answer right now) is
left to `classify`: transient. The answer is cached for `CACHE_SECONDS`, so a burst of failed
calls costs one probe. Behind an HTTP CONNECT proxy (`grpc_proxy` / `https_proxy`) the proxy
resolves and connects, so the probe does not run and the failure stays transient.
"""

from __future__ import annotations

import asyncio
import os
import socket
import ssl
import time
from pathlib import Path

import grpc

from sidecar.core.ports import Clock, FailureKind, UpstreamFailure

CACHE_SECONDS = 5.0
PROBE_SECONDS = 2.0  # the longest a probe may take, whatever the caller has left
UNRESOLVABLE = "ENDPOINT_UNRESOLVABLE"
UNTRUSTED = "TLS_UNTRUSTED"
_NO_SUCH_NAME = {getattr(socket, n) for n in ("EAI_NONAME", "EAI_NODATA") if hasattr(socket, n)}
_PROXY_VARIABLES = ("grpc_proxy", "https_proxy", "http_proxy")
_NO_PROXY_VARIABLES = ("no_grpc_proxy", "no_proxy")


class EndpointProbe:
    """Typed reasons an endpoint cannot be reached; one per `CACHE_SECONDS`."""

    def __init__(
        self, endpoint: str, root_certificates: bytes | None, *, clock: Clock = time.monotonic
    ) -> None:
        self._target = _host_port(endpoint)
        self._roots = root_certificates
        self._clock = clock
        self._cached: tuple[float, UpstreamFailure | None] | None = None

    async def diagnose(self, timeout: float) -> UpstreamFailure | None:
        """A `config` failure when the endpoint provably cannot work, else None."""
        if self._target is None or _proxied(self._target[0]):
            return None
        if self._cached is not None and self._clock() - self._cached[0] < CACHE_SECONDS:
            return self._cached[1]
        try:
            found = await asyncio.wait_for(
                asyncio.to_thread(self._probe), min(PROBE_SECONDS, max(0.0, timeout))
            )
        except TimeoutError:
            return None  # no answer in time is no evidence either way
        self._cached = (self._clock(), found)
        return found

    def _probe(self) -> UpstreamFailure | None:
        assert self._target is not None
        host, port = self._target
        try:
            addresses = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
        except socket.gaierror as error:
            if error.errno in _NO_SUCH_NAME:
                return _config(UNRESOLVABLE, f"upstream_endpoint: {host} does not resolve")
            return None
        family, kind, proto, _, address = addresses[0]
        context = ssl.create_default_context(cadata=(self._roots or _default_roots()).decode())
        try:
            with (
                socket.socket(family, kind, proto) as raw,
                context.wrap_socket(
                    raw, server_hostname=host, do_handshake_on_connect=False
                ) as tls,
            ):
                tls.settimeout(PROBE_SECONDS)
                tls.connect(address)
                tls.do_handshake()
        except ssl.SSLCertVerificationError as error:
            return _config(
                UNTRUSTED,
                f"upstream's TLS certificate is not trusted ({error.verify_message}): "
                "set upstream_ca_file to the CA it chains to",
            )
        except OSError:
            return None  # refused, reset, timed out: transient, as gRPC said
        return None


def _config(code: str, message: str) -> UpstreamFailure:
    return UpstreamFailure(FailureKind.CONFIG, code, message, reached=False)


def _host_port(endpoint: str) -> tuple[str, int] | None:
    """`host:port`, `dns:///host:port`, `[v6]:port`; None for what cannot be probed (Unix)."""
    if endpoint.startswith(("unix:", "unix-abstract:", "vsock:")):
        return None
    target = endpoint.removeprefix("dns:").lstrip("/")
    host, sep, port = target.rpartition(":")
    if not sep or not port.isdigit():
        host, port = target, "443"
    host = host.strip("[]")
    return (host, int(port)) if host else None


def _proxied(host: str) -> bool:
    """Whether gRPC would go through an HTTP CONNECT proxy for ``host``."""
    if not any(os.environ.get(v) or os.environ.get(v.upper()) for v in _PROXY_VARIABLES):
        return False
    for variable in _NO_PROXY_VARIABLES:
        value = os.environ.get(variable) or os.environ.get(variable.upper()) or ""
        for entry in (e.strip().lstrip(".") for e in value.split(",")):
            if entry and (entry == "*" or host == entry or host.endswith("." + entry)):
                return False
    return True


def _default_roots() -> bytes:
    """The roots gRPC itself trusts when given none."""
    override = os.environ.get("GRPC_DEFAULT_SSL_ROOTS_FILE_PATH")
    if override and Path(override).is_file():
        return Path(override).read_bytes()
    return (Path(grpc.__file__).parent / "_cython" / "_credentials" / "roots.pem").read_bytes()
