"""Builds the sidecar from settings, runs it, and shuts it down in order.

`start_sidecar` returns a running `Sidecar` with its bound addresses, so tests can bind port 0;
`run` adds signal handling for the command line.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import logging
import os
import signal
import socket
import stat
from dataclasses import dataclass, field
from pathlib import Path

import grpc
from grpc_health.v1 import health, health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection
from recaptcha.sidecar.v1 import sidecar_pb2, sidecar_pb2_grpc

from sidecar.config import Settings
from sidecar.core.annotate import DirectAnnotator
from sidecar.core.verify import Verifier, VerifySettings
from sidecar.replay import ReplayStore, open_replay_store
from sidecar.servicer import VerificationServicer
from sidecar.telemetry.metrics import ActionLabels
from sidecar.telemetry.providers import Telemetry, TelemetryOptions, start_telemetry
from sidecar.upstream.client import GoogleUpstream

log = logging.getLogger(__name__)

SERVICE_NAME = sidecar_pb2.DESCRIPTOR.services_by_name["VerificationService"].full_name
EMULATOR_PROJECT = "emulator"


class ListenError(Exception):
    """An address could not be bound; the sidecar refuses to start."""


@dataclass
class Sidecar:
    """A running sidecar and everything it must close, in order."""

    server: grpc.aio.Server
    addresses: list[str]
    health: health.aio.HealthServicer
    replay: ReplayStore
    upstream: GoogleUpstream
    closers: list[grpc.aio.Server] = field(default_factory=list)
    telemetry: Telemetry | None = None

    async def stop(self, grace: float) -> None:
        """Health goes NOT_SERVING first so probes and balancers stop sending, then in-flight
        calls drain for `grace` seconds, then the connections behind them close."""
        await self.health.enter_graceful_shutdown()
        await self.server.stop(grace)
        await self.upstream.close()
        await self.replay.close()
        for server in self.closers:
            await server.stop(0)
        for address in self.addresses:
            if address.startswith("unix:"):
                with contextlib.suppress(FileNotFoundError):
                    os.unlink(_socket_path(address))
        if self.telemetry is not None:
            await self.telemetry.aclose()  # last: flushes the spans of the drained calls


def _socket_path(address: str) -> str:
    return address.removeprefix("unix://").removeprefix("unix:")


def _clear_stale_socket(address: str) -> None:
    """A SIGKILLed sidecar leaves its socket file behind; remove it only if nobody listens."""
    path = _socket_path(address)
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


def bind(server: grpc.aio.Server, addresses: list[str]) -> list[str]:
    """Bind every address or refuse to start; returns them with the real port filled in."""
    bound = []
    for address in addresses:
        if address.startswith("unix:"):
            _clear_stale_socket(address)
        try:
            port = server.add_insecure_port(address)
        except RuntimeError:
            port = 0
        if address.startswith("unix:"):
            if port == 0 and not os.path.exists(_socket_path(address)):
                raise ListenError(f"cannot listen on {address}")
            bound.append(address)
            continue
        if port == 0:
            raise ListenError(f"cannot listen on {address}: address in use or not available")
        host = address.rsplit(":", 1)[0]
        bound.append(f"{host}:{port}")
    return bound


def server_options() -> list[tuple[str, int]]:
    """SO_REUSEPORT off, so a second sidecar on a taken port fails instead of sharing it."""
    return [
        ("grpc.so_reuseport", 0),
        ("grpc.max_receive_message_length", 1024 * 1024),
        ("grpc.keepalive_permit_without_calls", 1),
        ("grpc.http2.min_ping_interval_without_data_ms", 5_000),
    ]


async def start_sidecar(settings: Settings) -> Sidecar:
    """Build and start everything the settings describe."""
    telemetry = start_telemetry(
        TelemetryOptions(settings.metrics_listen, settings.telemetry_console),
        ActionLabels(lambda: settings.policy.actions),  # configured actions get their own label
    )
    closers: list[grpc.aio.Server] = []
    endpoint, plaintext, project = (
        settings.upstream_endpoint,
        settings.upstream_plaintext,
        settings.project,
    )
    if settings.emulator:
        from sidecar.emulator import start_emulator

        emulator_server, _, ports = await start_emulator(["127.0.0.1:0"])
        closers.append(emulator_server)
        endpoint, plaintext, project = f"127.0.0.1:{ports[0]}", True, project or EMULATOR_PROJECT

    upstream = GoogleUpstream(
        project=project,
        endpoint=endpoint,
        plaintext=plaintext,
        api_key=settings.resolved_api_key(),
    )
    replay = open_replay_store(settings.replay_store, max_entries=settings.replay_max_entries)
    policy = settings.policy
    observed_upstream = telemetry.instrument_upstream(upstream)
    verifier = Verifier(
        upstream=observed_upstream,
        replay=telemetry.instrument_replay(replay),
        policy=lambda: policy,
        settings=VerifySettings(
            default_site_key=settings.site_key,
            upstream_timeout=settings.upstream_timeout,
            deadline_margin=settings.deadline_margin,
            replay_ttl=settings.replay_ttl,
            replay_timeout=settings.replay_timeout,
        ),
    )
    annotator = DirectAnnotator(observed_upstream, settings.upstream_timeout)

    server = grpc.aio.server(options=server_options(), interceptors=telemetry.interceptors())
    sidecar_pb2_grpc.add_VerificationServiceServicer_to_server(
        VerificationServicer(verifier, annotator), server
    )
    health_servicer = health.aio.HealthServicer()
    health_pb2_grpc.add_HealthServicer_to_server(health_servicer, server)
    reflection.enable_server_reflection(
        (SERVICE_NAME, health.SERVICE_NAME, reflection.SERVICE_NAME), server
    )
    try:
        addresses = bind(server, list(settings.listen))
    except ListenError:
        await server.stop(None)
        await upstream.close()
        for closer in closers:
            await closer.stop(0)
        await telemetry.aclose()
        raise
    await server.start()
    for name in ("", SERVICE_NAME):
        await health_servicer.set(name, health_pb2.HealthCheckResponse.SERVING)
    return Sidecar(
        server, addresses, health_servicer, replay, upstream, closers, telemetry=telemetry
    )


async def run(settings: Settings, *, grace: float = 10.0) -> int:
    """Serve until SIGTERM or SIGINT, then shut down in order; the exit code."""
    sidecar = await start_sidecar(settings)
    log.info("serving", extra={"addresses": sidecar.addresses, "emulator": settings.emulator})
    print("recaptcha-sidecar serving on " + " ".join(sidecar.addresses), flush=True)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)
    await stop.wait()
    log.info("shutting down", extra={"grace_seconds": grace})
    await sidecar.stop(grace)
    return 0
