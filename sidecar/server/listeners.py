"""Listeners: binding addresses (TCP, Unix sockets) to gRPC servers, or refusing to start.

Loopback and Unix-socket addresses share one server; addresses reachable from outside the pod
get a server of their own with TLS and/or the bearer-token check (`sidecar.server.security`),
so the check applies per listener; `health_listen` gets a server with only the Health service.
"""

from __future__ import annotations

import errno
import logging
import os
import socket
import stat
from collections.abc import Callable, Sequence
from pathlib import Path

import grpc
from grpc_health.v1 import health, health_pb2, health_pb2_grpc

from sidecar.bindcheck import port_taken
from sidecar.config import Settings
from sidecar.config.addresses import is_exposed
from sidecar.core.validation import MAX_MESSAGE_BYTES
from sidecar.server.decoding import DecodeGuard
from sidecar.server.security import SecurityError, apply_socket_mode, listener_security

log = logging.getLogger(__name__)

PENDING_REQUESTS = 4096


class StartupError(Exception):
    """The sidecar cannot start as configured; the message is one line for the operator."""


class ListenError(StartupError):
    """An address could not be bound (or secured); the sidecar refuses to start."""


def socket_path(address: str) -> str:
    return address.removeprefix("unix://").removeprefix("unix:")


def clear_stale_socket(address: str) -> None:
    """A SIGKILLed sidecar leaves its socket file behind; remove it only if nobody listens."""
    path = socket_path(address)
    try:
        mode = os.stat(path).st_mode
    except FileNotFoundError:
        Path(path).parent.mkdir(parents=True, exist_ok=True)
        return
    if not stat.S_ISSOCK(mode):
        raise ListenError(f"cannot listen on {address}: {path} exists and is not a socket")
    probe = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        probe.connect(path)
    except OSError as error:
        if error.errno in (errno.ECONNREFUSED, errno.ENOENT):
            os.unlink(path)
            return
        raise ListenError(f"cannot listen on {address}: {error.strerror}") from None
    finally:
        probe.close()
    raise ListenError(f"cannot listen on {address}: another process is serving there")


def _refuse_taken_port(address: str) -> None:
    """One line with the OS's reason when a TCP port is already taken, before gRPC tries."""
    reason = port_taken(address)
    if reason is not None:
        raise ListenError(f"cannot listen on {address}: {reason}")


def bind(
    server: grpc.aio.Server,
    addresses: list[str],
    credentials: grpc.ServerCredentials | None = None,
    socket_mode: str | None = None,
    *,
    reuse_port: bool = False,
) -> list[str]:
    """Bind every address or refuse to start; returns them with the real port filled in.
    `reuse_port`: a worker's port, which its supervisor checked and holds (so it looks taken)."""
    bound = []
    for address in addresses:
        if address.startswith("unix:"):
            clear_stale_socket(address)
        elif not reuse_port:
            _refuse_taken_port(address)
        try:
            if credentials is not None:
                port = server.add_secure_port(address, credentials)
            else:
                port = server.add_insecure_port(address)
        except RuntimeError:
            port = 0
        if address.startswith("unix:"):
            if port == 0 and not os.path.exists(socket_path(address)):
                raise ListenError(f"cannot listen on {address}")
            if socket_mode is not None:
                apply_socket_mode(address, socket_mode)
            bound.append(address)
            continue
        if port == 0:
            raise ListenError(f"cannot listen on {address}: address in use or not available")
        host = address.rsplit(":", 1)[0]
        bound.append(f"{host}:{port}")
    return bound


def server_options(settings: Settings, *, reuse_port: bool = False) -> list[tuple[str, int]]:
    """SO_REUSEPORT off, so a second sidecar on a taken port fails instead of sharing it
    (on for workers, whose supervisor checked the port and holds it for them);
    a larger pending-call bound, so that overload is answered by the admission limiter; and
    the connection bounds (gRPC core enforces them before any Python runs): connections per
    server, calls per connection, idle close, and a maximum age with a grace, which is what
    ends a call whose message never comes (gRPC calls Python only once it has arrived)."""
    return [
        ("grpc.so_reuseport", int(reuse_port)),
        # Beyond the request bound of the validation, so a slightly large request still gets
        # an INVALID_ARGUMENT that names the problem; far beyond it is refused undecoded.
        ("grpc.max_receive_message_length", MAX_MESSAGE_BYTES),
        ("grpc.keepalive_permit_without_calls", 1),
        ("grpc.http2.min_ping_interval_without_data_ms", 5_000),
        # gRPC core cancels calls (CANCELLED) beyond 1,000 not yet handed to the application;
        # let more through so that the admission limiter answers a burst with a clear
        # RESOURCE_EXHAUSTED. Past this, gRPC's own bound still protects memory.
        ("grpc.server.max_pending_requests", PENDING_REQUESTS),
        ("grpc.max_allowed_incoming_connections", settings.max_connections),
        ("grpc.max_concurrent_streams", settings.max_concurrent_streams),
        ("grpc.max_connection_idle_ms", _millis(settings.max_connection_idle)),
        ("grpc.max_connection_age_ms", _millis(settings.max_connection_age)),
        ("grpc.max_connection_age_grace_ms", _millis(settings.max_connection_age_grace)),
    ]


def _millis(seconds: float) -> int:
    return max(1, round(seconds * 1000))


def bind_listeners(
    settings: Settings,
    local: grpc.aio.Server,
    make_server: Callable[[Sequence[grpc.aio.ServerInterceptor]], grpc.aio.Server],
    servers: list[grpc.aio.Server],
    *,
    reuse_port: bool = False,
) -> list[str]:
    """Loopback and Unix-socket addresses go on `local`. Addresses reachable from outside the
    pod go on a server of their own, made by `make_server` with the TLS and/or token
    interceptors (see sidecar.server.security), so the check applies per listener; it is
    appended to `servers`. Returns the bound addresses in the order configured."""
    exposed: grpc.aio.Server | None = None
    credentials = None
    bound = []
    for address in settings.listen:
        if not is_exposed(address, secure_loopback=settings.secure_loopback):
            bound += bind(local, [address], None, settings.socket_mode, reuse_port=reuse_port)
            continue
        if exposed is None:
            try:
                security = listener_security(
                    tls_cert_file=settings.tls_cert_file,
                    tls_key_file=settings.tls_key_file,
                    tls_client_ca_file=settings.tls_client_ca_file,
                    auth_token_file=settings.auth_token_file,
                )
            except SecurityError as error:
                raise ListenError(str(error)) from None
            credentials = security.credentials
            exposed = make_server(security.interceptors)
            servers.append(exposed)
            log.info("exposed listeners secured", extra={"security": security.describe})
        bound += bind(exposed, [address], credentials, reuse_port=reuse_port)
    return bound


class ProbeHealth(health_pb2_grpc.HealthServicer):  # type: ignore[misc]
    """The Health service as unauthenticated probes see it: only the entries a probe needs
    (`""`, liveness, and the services' readiness). Any other entry (`upstream`, which says
    when the sidecar is failing open) is answered as unknown, so outsiders learn nothing."""

    def __init__(self, inner: health.aio.HealthServicer, names: Sequence[str]) -> None:
        self._inner = inner
        self._names = frozenset(names)

    async def Check(
        self, request: health_pb2.HealthCheckRequest, context: grpc.aio.ServicerContext
    ) -> health_pb2.HealthCheckResponse:
        if request.service not in self._names:
            await context.abort(grpc.StatusCode.NOT_FOUND, "unknown service")
        return await self._inner.Check(request, context)

    async def Watch(
        self, request: health_pb2.HealthCheckRequest, context: grpc.aio.ServicerContext
    ) -> None:
        if request.service not in self._names:
            # What the protocol answers for a service it does not know.
            unknown = health_pb2.HealthCheckResponse.SERVICE_UNKNOWN
            await context.write(health_pb2.HealthCheckResponse(status=unknown))
            return
        await self._inner.Watch(request, context)

    async def List(
        self, request: health_pb2.HealthListRequest, context: grpc.aio.ServicerContext
    ) -> health_pb2.HealthListResponse:
        statuses = {}
        for name in sorted(self._names):
            answer = await self._inner.Check(health_pb2.HealthCheckRequest(service=name), context)
            statuses[name] = answer
        return health_pb2.HealthListResponse(statuses=statuses)


def bind_health(
    settings: Settings,
    servicer: health.aio.HealthServicer,
    servers: list[grpc.aio.Server],
    names: Sequence[str],
    *,
    reuse_port: bool = False,
) -> str | None:
    """health_listen: a server with only the Health service, for kubelet's gRPC probes, which
    speak neither TLS nor tokens, and only the entries `names` (see `ProbeHealth`). It shares
    the servicer, so it flips NOT_SERVING with the rest."""
    if settings.health_listen is None:
        return None
    options = server_options(settings, reuse_port=reuse_port)
    probe = grpc.aio.server(options=options, interceptors=[DecodeGuard()])
    servers.append(probe)
    health_pb2_grpc.add_HealthServicer_to_server(ProbeHealth(servicer, names), probe)
    return bind(probe, [settings.health_listen], None, settings.socket_mode, reuse_port=reuse_port)[
        0
    ]
