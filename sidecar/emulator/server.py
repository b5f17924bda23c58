"""Lifecycle of the emulator's gRPC server: bind, serve health and reflection, stop cleanly.

``start_emulator`` is kept apart from ``run_emulator`` so tests bind port 0 in-process and
read the ports back, while the CLI runs it until SIGTERM.
"""

from __future__ import annotations

import asyncio
import signal
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_health.v1._async import HealthServicer
from grpc_reflection.v1alpha import reflection

from sidecar.emulator.control import CONTROL_SERVICE_NAME, control_handler
from sidecar.emulator.service import DEFAULT_PROJECT_NUMBER, SERVICE_NAME, EmulatorService

SERVER_OPTIONS = (
    # Two processes must never share a port silently: a test would talk to the wrong one.
    ("grpc.so_reuseport", 0),
)
READY_PREFIX = "recaptcha-emulator listening on"
STOP_GRACE_SECONDS = 1.0


class EmulatorBindError(RuntimeError):
    """An address given to the emulator could not be bound (in use, bad syntax, no access)."""


@dataclass(slots=True)
class _Running:
    server: Any
    service: EmulatorService
    ports: list[int]
    health: Any


async def start_emulator(
    listen: Sequence[str],
    *,
    project_number: str = DEFAULT_PROJECT_NUMBER,
    seed: int | None = None,
) -> tuple[grpc.aio.Server, EmulatorService, list[int]]:
    """Start an emulator on every address (gRPC target syntax: ``127.0.0.1:0``,
    ``unix:///path``) and return the server, its state, and the bound port per address
    (0 for Unix sockets). Stop it with ``await server.stop(grace)``.
    """
    running = await _start(listen, project_number=project_number, seed=seed)
    return running.server, running.service, running.ports


async def run_emulator(
    listen: Sequence[str],
    *,
    project_number: str = DEFAULT_PROJECT_NUMBER,
    seed: int | None = None,
) -> None:
    """Serve until cancelled, SIGTERM or SIGINT, after printing one line with the bound
    addresses (``recaptcha-emulator listening on ADDR [ADDR...]``) for scripts to wait on."""
    running = await _start(listen, project_number=project_number, seed=seed)
    addresses = [_bound_address(a, p) for a, p in zip(listen, running.ports, strict=True)]
    print(f"{READY_PREFIX} {' '.join(addresses)}", flush=True)
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
        await running.server.stop(STOP_GRACE_SECONDS)


async def _start(listen: Sequence[str], *, project_number: str, seed: int | None) -> _Running:
    if isinstance(listen, str):
        listen = [listen]  # a lone str is a Sequence[str] too; do not bind each character
    if not listen:
        raise ValueError("the emulator needs at least one address to listen on")
    service = EmulatorService(project_number=project_number, seed=seed)
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
    ports: list[int] = []
    try:
        for address in listen:
            ports.append(_bind(server, address))
    except BaseException:
        await server.stop(None)
        raise
    await server.start()
    for name in ("", SERVICE_NAME, CONTROL_SERVICE_NAME):
        await health.set(name, health_pb2.HealthCheckResponse.SERVING)
    return _Running(server=server, service=service, ports=ports, health=health)


def _is_unix(address: str) -> bool:
    return address.startswith(("unix:", "unix-abstract:"))


def _bind(server: Any, address: str) -> int:
    """Bind one address, turning gRPC's terse failure into an error naming the address."""
    try:
        port = int(server.add_insecure_port(address))
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
