"""Lifecycle of the emulator: bind, serve health and reflection, TLS and the metadata server,
stop cleanly.

``launch_emulator`` is kept apart from ``run_emulator`` so tests bind port 0 in-process and
read the ports back, while the CLI runs it until SIGTERM. ``start_emulator`` is the short
form for the plaintext, no-credential emulator most tests use.
"""

from __future__ import annotations

import asyncio
import contextlib
import signal
import tempfile
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_health.v1._async import HealthServicer
from grpc_reflection.v1alpha import reflection

from sidecar.bindcheck import port_taken
from sidecar.emulator.control import CONTROL_SERVICE_NAME, control_handler
from sidecar.emulator.keys import SiteKey
from sidecar.emulator.metadata import MetadataServer, start_metadata_server
from sidecar.emulator.project import DEFAULT_PROJECT_NUMBER, Project
from sidecar.emulator.service import SERVICE_NAME, EmulatorService
from sidecar.emulator.tls import ServerTls

SERVER_OPTIONS = (
    # Two processes must never share a port silently: a test would talk to the wrong one.
    ("grpc.so_reuseport", 0),
)
READY_PREFIX = "recaptcha-emulator listening on"
CA_PREFIX = "recaptcha-emulator CA certificate in"
METADATA_PREFIX = "recaptcha-emulator metadata server on"
STOP_GRACE_SECONDS = 1.0


class EmulatorBindError(RuntimeError):
    """An address given to the emulator could not be bound (in use, bad syntax, no access)."""


@dataclass
class Emulator:
    """A running emulator: where it listens, how to trust it, and its state."""

    server: grpc.aio.Server
    service: EmulatorService
    ports: list[int]
    addresses: list[str]
    health: Any
    tls: ServerTls | None = None
    ca_file: Path | None = None
    metadata_server: MetadataServer | None = None
    _temp: tempfile.TemporaryDirectory[str] | None = field(default=None, repr=False)

    @property
    def address(self) -> str:
        """The first address, with the bound port."""
        return self.addresses[0]

    @property
    def metadata_address(self) -> str | None:
        """``host:port`` of the fake GCE metadata server, if it runs."""
        return None if self.metadata_server is None else self.metadata_server.address

    def channel_credentials(self) -> grpc.ChannelCredentials | None:
        """What a client needs to trust this emulator (None when it is plaintext)."""
        return None if self.tls is None else grpc.ssl_channel_credentials(self.tls.ca_pem)

    def channel(self, address: str | None = None) -> grpc.aio.Channel:
        """An asyncio channel to the emulator, trusting its CA when it serves TLS."""
        target = address or self.address
        credentials = self.channel_credentials()
        if credentials is None:
            return grpc.aio.insecure_channel(target)
        return grpc.aio.secure_channel(target, credentials)

    async def stop(self, grace: float | None = None) -> None:
        """Stop serving; the metadata server and the CA's temporary directory go too."""
        try:
            await self.server.stop(grace)
        finally:
            if self.metadata_server is not None:
                await asyncio.to_thread(self.metadata_server.close)
            if self._temp is not None:
                self._temp.cleanup()


async def launch_emulator(
    listen: Sequence[str],
    *,
    project_number: str = DEFAULT_PROJECT_NUMBER,
    project_id: str | None = None,
    seed: int | None = None,
    tls: bool = False,
    ca_file: Path | None = None,
    api_keys: Iterable[str] = (),
    site_keys: Iterable[SiteKey | str] | None = None,
    metadata_listen: str | None = None,
    require_credentials: bool | None = None,
) -> Emulator:
    """Start an emulator on every address (gRPC target syntax: ``127.0.0.1:0``,
    ``unix:///path``).

    ``tls`` serves TLS with a CA minted now, written to ``ca_file`` (a temporary file by
    default); ``metadata_listen`` (``127.0.0.1:0``) serves a fake GCE metadata server handing
    out access tokens; credentials are then required on every call, as they are when
    ``api_keys`` are given (``require_credentials`` overrides). ``project_id`` and
    ``site_keys`` turn on Google's project and key checks (see project.py, keys.py).
    """
    if isinstance(listen, str):
        listen = [listen]  # a lone str is a Sequence[str] too; do not bind each character
    if not listen:
        raise ValueError("the emulator needs at least one address to listen on")
    api_keys = tuple(api_keys)
    if require_credentials is None:
        require_credentials = bool(api_keys) or metadata_listen is not None
    project = Project.of(
        number=project_number,
        id=project_id,
        api_keys=api_keys,
        site_keys=site_keys,
        require_credentials=require_credentials,
    )
    service = EmulatorService(project=project, seed=seed)
    material = ServerTls.mint() if tls else None
    server = grpc.aio.server(options=SERVER_OPTIONS)
    server.add_generic_rpc_handlers((service.rpc_handler(), control_handler(service)))
    health = HealthServicer()
    health_pb2_grpc.add_HealthServicer_to_server(health, server)
    # The control service speaks JSON and has no descriptor, so reflection leaves it out:
    # tools such as grpcui give up when a listed service cannot be resolved.
    reflection.enable_server_reflection(
        (
            SERVICE_NAME,
            health_pb2.DESCRIPTOR.services_by_name["Health"].full_name,
            reflection.SERVICE_NAME,
        ),
        server,
    )
    credentials = None
    if material is not None:
        credentials = grpc.ssl_server_credentials([(material.key_pem, material.cert_pem)])
    ports: list[int] = []
    running = Emulator(server, service, ports, [], health, tls=material)
    try:
        for address in listen:
            ports.append(_bind(server, address, credentials))
        running.addresses = [_bound_address(a, p) for a, p in zip(listen, ports, strict=True)]
        if material is not None:
            if ca_file is None:
                running._temp = tempfile.TemporaryDirectory(prefix="recaptcha-emulator-")
                ca_file = Path(running._temp.name) / "ca.pem"
            running.ca_file = material.write_ca(ca_file)
        if metadata_listen is not None:
            try:
                running.metadata_server = start_metadata_server(
                    metadata_listen, project, service.issuer, service.metadata
                )
            except OSError as exc:
                raise EmulatorBindError(
                    f"metadata server cannot listen on {metadata_listen!r} ({exc.strerror})"
                ) from exc
        await server.start()
    except BaseException:
        with contextlib.suppress(Exception):
            await running.stop(None)
        raise
    for name in ("", SERVICE_NAME, CONTROL_SERVICE_NAME):
        await health.set(name, health_pb2.HealthCheckResponse.SERVING)
    return running


async def start_emulator(
    listen: Sequence[str],
    *,
    project_number: str = DEFAULT_PROJECT_NUMBER,
    seed: int | None = None,
) -> tuple[grpc.aio.Server, EmulatorService, list[int]]:
    """The plaintext, no-credential emulator: returns the server, its state, and the bound
    port per address (0 for Unix sockets). Stop it with ``await server.stop(grace)``."""
    running = await launch_emulator(listen, project_number=project_number, seed=seed)
    return running.server, running.service, running.ports


async def run_emulator(listen: Sequence[str], **options: Any) -> None:
    """Serve until cancelled, SIGTERM or SIGINT (options as for ``launch_emulator``).

    Prints, for scripts to wait on, the CA file and the metadata server when there are any,
    then last one line with the bound addresses: ``recaptcha-emulator listening on ADDR...``.
    """
    running = await launch_emulator(listen, **options)
    if running.ca_file is not None:
        print(f"{CA_PREFIX} {running.ca_file}", flush=True)
    if running.metadata_address is not None:
        print(f"{METADATA_PREFIX} {running.metadata_address}", flush=True)
    print(f"{READY_PREFIX} {' '.join(running.addresses)}", flush=True)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    installed: list[signal.Signals] = []
    for sig in (signal.SIGTERM, signal.SIGINT):
        try:
            loop.add_signal_handler(sig, stop.set)
        except (NotImplementedError, RuntimeError, ValueError):
            continue  # not the main thread, or not a Unix loop: cancellation still works
        installed.append(sig)
    try:
        await stop.wait()
    finally:
        for sig in installed:
            loop.remove_signal_handler(sig)
        await running.health.enter_graceful_shutdown()
        await running.stop(STOP_GRACE_SECONDS)


def _is_unix(address: str) -> bool:
    return address.startswith(("unix:", "unix-abstract:"))


def _bind(server: Any, address: str, credentials: grpc.ServerCredentials | None) -> int:
    """Bind one address, turning gRPC's terse failure into an error naming the address."""
    reason = port_taken(address)
    if reason is not None:  # before gRPC's core prints its own add_port.cc line
        raise EmulatorBindError(f"emulator cannot listen on {address!r} ({reason})")
    try:
        if credentials is None:
            port = int(server.add_insecure_port(address))
        else:
            port = int(server.add_secure_port(address, credentials))
    except RuntimeError as exc:
        raise EmulatorBindError(
            f"emulator cannot listen on {address!r} (in use, unresolvable or not permitted)"
        ) from exc
    if _is_unix(address):
        return 0
    if port <= 0:
        raise EmulatorBindError(f"emulator cannot listen on {address!r}")
    return port


def _bound_address(address: str, port: int) -> str:
    """The address with port 0 replaced by the port actually bound."""
    if _is_unix(address):
        return address
    host, sep, _ = address.rpartition(":")
    return f"{host}{sep}{port}" if sep else f"{address}:{port}"
