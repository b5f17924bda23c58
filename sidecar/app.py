"""Builds the sidecar from settings, runs it, and shuts it down in order.

`start_sidecar` returns a running `Sidecar` with its bound addresses, so tests can bind port 0;
`run` adds signal handling for the command line.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import gc
import logging
import os
import signal
import socket
import stat
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import grpc
from grpc_health.v1 import health, health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection
from recaptcha.sidecar.v1 import sidecar_pb2, sidecar_pb2_grpc

from sidecar.config import Settings
from sidecar.core.annotate import Annotator, DirectAnnotator
from sidecar.core.limits import AdmissionLimiter, LimitedAnnotator
from sidecar.core.verify import Verifier, VerifySettings
from sidecar.drain import DrainGate
from sidecar.outbox import Flusher, FlushSettings, Outbox, OutboxAnnotator
from sidecar.policy_source import PolicySource
from sidecar.replay import ReplayStore, open_replay_store
from sidecar.replay.health import watch_store
from sidecar.security import (
    SecurityError,
    apply_socket_mode,
    is_exposed,
    listener_security,
)
from sidecar.servicer import VerificationServicer
from sidecar.telemetry.gauges import register_gauges
from sidecar.telemetry.metrics import ActionLabels
from sidecar.telemetry.providers import Telemetry, TelemetryOptions, start_telemetry
from sidecar.upstream.base import Upstream
from sidecar.upstream.client import GoogleUpstream
from sidecar.upstream.protected import protect_annotator, protect_upstream
from sidecar.upstream.resilience import (
    BreakerSettings,
    BudgetSettings,
    ResilientUpstream,
    RetrySettings,
)

log = logging.getLogger(__name__)

SERVICE_NAME = sidecar_pb2.DESCRIPTOR.services_by_name["VerificationService"].full_name
EMULATOR_PROJECT = "emulator"
_NOT_SERVING = health_pb2.HealthCheckResponse.NOT_SERVING
# A health entry of its own: NOT_SERVING while the breaker is open or quota / credential
# errors are recent. The overall entry stays SERVING: Google's outage is the failure
# policy's business, and restarting or unrouting the pod would not cure it.
UPSTREAM_HEALTH = "upstream"
HEALTH_POLL_SECONDS = 0.5
PENDING_REQUESTS = 4096


class ListenError(Exception):
    """An address could not be bound; the sidecar refuses to start."""


@dataclass
class Sidecar:
    """A running sidecar and everything it must close, in order."""

    server: grpc.aio.Server
    addresses: list[str]
    health: health.aio.HealthServicer
    replay: ReplayStore
    upstream: ResilientUpstream
    closers: list[grpc.aio.Server] = field(default_factory=list)
    outbox: Outbox | None = None
    flusher: Flusher | None = None
    assess_limiter: AdmissionLimiter | None = None
    annotate_limiter: AdmissionLimiter | None = None
    tasks: list[asyncio.Task[None]] = field(default_factory=list)
    gate: DrainGate | None = None
    policy: PolicySource | None = None
    # Servers of the exposed listeners and of health_listen, drained alongside `server`.
    listeners: list[grpc.aio.Server] = field(default_factory=list)
    health_address: str | None = None
    telemetry: Telemetry | None = None
    stopped: bool = False

    async def stop(self, grace: float) -> None:
        """Health goes NOT_SERVING first so probes and balancers stop sending, then new calls
        are refused and in-flight calls drain for up to `grace` seconds, then the outbox gets
        what is left of `grace` to deliver its rows, then the connections close. Stopping
        twice is harmless."""
        if self.stopped:
            return
        self.stopped = True
        started = time.monotonic()
        await self.health.enter_graceful_shutdown()
        if self.policy is not None:
            await self.policy.close()
        if self.gate is not None:
            self.gate.close()  # new calls: UNAVAILABLE; running calls go on
            await self.gate.wait_idle(grace)
        left = max(0.0, grace - (time.monotonic() - started))
        await asyncio.gather(self.server.stop(left), *(s.stop(left) for s in self.listeners))
        for task in self.tasks:
            task.cancel()
        await asyncio.gather(*self.tasks, return_exceptions=True)
        if self.flusher is not None:
            left = await self.flusher.stop(grace - (time.monotonic() - started))
            if left:
                log.warning("outbox keeps annotations for the next start", extra={"depth": left})
        if self.outbox is not None:
            await self.outbox.close()
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


def bind(
    server: grpc.aio.Server,
    addresses: list[str],
    credentials: grpc.ServerCredentials | None = None,
    socket_mode: str | None = None,
) -> list[str]:
    """Bind every address or refuse to start; returns them with the real port filled in."""
    bound = []
    for address in addresses:
        if address.startswith("unix:"):
            _clear_stale_socket(address)
        try:
            if credentials is not None:
                port = server.add_secure_port(address, credentials)
            else:
                port = server.add_insecure_port(address)
        except RuntimeError:
            port = 0
        if address.startswith("unix:"):
            if port == 0 and not os.path.exists(_socket_path(address)):
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


def server_options() -> list[tuple[str, int]]:
    """SO_REUSEPORT off, so a second sidecar on a taken port fails instead of sharing it;
    a larger pending-call bound, so that overload is answered by the admission limiter."""
    return [
        ("grpc.so_reuseport", 0),
        ("grpc.max_receive_message_length", 1024 * 1024),
        ("grpc.keepalive_permit_without_calls", 1),
        ("grpc.http2.min_ping_interval_without_data_ms", 5_000),
        # gRPC core cancels calls (CANCELLED) beyond 1,000 not yet handed to the application;
        # let more through so that the admission limiter answers a burst with a clear
        # RESOURCE_EXHAUSTED. Past this, gRPC's own bound still protects memory.
        ("grpc.server.max_pending_requests", PENDING_REQUESTS),
    ]


async def start_sidecar(settings: Settings) -> Sidecar:
    """Build and start everything the settings describe."""
    policy_source = PolicySource(
        settings.policy,
        path=settings.config_file,
        load=lambda: settings.reloaded().policy,
        interval=settings.policy_reload_interval,
    )
    telemetry = start_telemetry(
        TelemetryOptions(settings.metrics_listen, settings.telemetry_console),
        # configured actions get their own label, following the live (reloadable) policy
        ActionLabels(lambda: policy_source.current().actions),
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

    # Innermost first: the Google client, observed per attempt; retries, budget and breaker
    # around it. Account ids are protected on top: for Assess over the upstream, for Annotate
    # over the annotator (before the outbox stores anything).
    google = GoogleUpstream(
        project=project,
        endpoint=endpoint,
        plaintext=plaintext,
        api_key=settings.resolved_api_key(),
    )
    upstream = resilient_upstream(telemetry.instrument_upstream(google), settings)
    replay = open_replay_store(
        settings.replay_store,
        max_entries=settings.replay_max_entries,
        key_prefix=settings.replay_key_prefix,
        pool_size=settings.replay_redis_pool_size,
        timeout=settings.replay_redis_timeout,
        password=(
            settings.replay_redis_password.get_secret_value()
            if settings.replay_redis_password
            else None
        ),
    )
    protector = settings.account_id_protector()
    protected = protect_upstream(upstream, protector)
    assess_limiter = AdmissionLimiter(
        settings.max_in_flight,
        settings.max_queued,
        max_wait=settings.upstream_timeout,
        name="assess",
    )
    verifier = Verifier(
        upstream=protected,
        replay=telemetry.instrument_replay(replay),
        policy=policy_source.current,
        settings=VerifySettings(
            default_site_key=settings.site_key,
            upstream_timeout=settings.upstream_timeout,
            deadline_margin=settings.deadline_margin,
            replay_ttl=settings.replay_ttl,
            replay_timeout=settings.replay_timeout,
        ),
        limiter=assess_limiter,
    )
    outbox, flusher = None, None
    annotator: Annotator = DirectAnnotator(upstream, settings.upstream_timeout)
    if settings.outbox is not None:
        try:
            outbox = await Outbox.open(settings.outbox, max_items=settings.outbox_max_items)
        except BaseException:
            await upstream.close()
            for closer in closers:
                await closer.stop(0)
            await telemetry.aclose()
            raise
        flusher = Flusher(
            outbox,
            upstream,
            FlushSettings(
                batch_size=settings.outbox_batch_size,
                flush_interval=settings.outbox_flush_interval,
                concurrency=settings.outbox_concurrency,
                max_attempts=settings.outbox_max_attempts,
                send_timeout=settings.upstream_timeout,
                max_backoff=settings.outbox_max_backoff,
            ),
        )
        annotator = OutboxAnnotator(
            outbox,
            flusher,
            wait_for_upstream=settings.outbox_wait_for_upstream,
            upstream_timeout=settings.upstream_timeout,
            deadline_margin=settings.deadline_margin,
        )
    annotate_limiter = AdmissionLimiter(
        settings.max_in_flight,
        settings.max_queued,
        max_wait=settings.upstream_timeout,
        name="annotate",
    )
    annotator = LimitedAnnotator(protect_annotator(annotator, protector), annotate_limiter)

    register_gauges(telemetry.instruments, upstream, outbox)
    gate = DrainGate((SERVICE_NAME,))
    # Telemetry outermost, so that calls refused while draining or unauthenticated are still
    # logged and counted.
    front: list[grpc.aio.ServerInterceptor] = [*telemetry.interceptors(), gate]
    servicer = VerificationServicer(verifier, annotator)
    health_servicer = health.aio.HealthServicer()

    def add_services(target: grpc.aio.Server) -> grpc.aio.Server:
        sidecar_pb2_grpc.add_VerificationServiceServicer_to_server(servicer, target)
        health_pb2_grpc.add_HealthServicer_to_server(health_servicer, target)
        reflection.enable_server_reflection(
            (SERVICE_NAME, health.SERVICE_NAME, reflection.SERVICE_NAME), target
        )
        return target

    server = add_services(grpc.aio.server(options=server_options(), interceptors=front))
    listeners: list[grpc.aio.Server] = []
    try:
        addresses = _bind_listeners(settings, server, add_services, listeners, front)
        health_address = _bind_health(settings, health_servicer, listeners)
    except ListenError:
        for target in (server, *listeners):
            await target.stop(None)
        await upstream.close()
        await replay.close()
        if outbox is not None:
            await outbox.close()
        for closer in closers:
            await closer.stop(0)
        await telemetry.aclose()
        raise
    for target in (server, *listeners):
        await target.start()
    await policy_source.start()
    for name in ("", SERVICE_NAME, UPSTREAM_HEALTH):
        await health_servicer.set(name, health_pb2.HealthCheckResponse.SERVING)

    async def report_store(reachable: bool) -> None:
        """Readiness (the service name) follows the replay store; liveness ("") does not,
        since restarting the sidecar would not bring the store back."""
        status = health_pb2.HealthCheckResponse.SERVING if reachable else _NOT_SERVING
        await health_servicer.set(SERVICE_NAME, status)

    store_watch = asyncio.create_task(
        watch_store(
            replay,
            report_store,
            interval=settings.replay_health_interval,
            timeout=max(settings.replay_timeout, settings.replay_redis_timeout),
        )
    )
    if flusher is not None:
        flusher.start()
    watcher = asyncio.create_task(_watch_upstream(health_servicer, upstream))
    return Sidecar(
        server,
        addresses,
        health_servicer,
        replay,
        upstream,
        closers,
        outbox=outbox,
        flusher=flusher,
        assess_limiter=assess_limiter,
        annotate_limiter=annotate_limiter,
        tasks=[watcher, store_watch],
        gate=gate,
        policy=policy_source,
        listeners=listeners,
        health_address=health_address,
        telemetry=telemetry,
    )


def _bind_listeners(
    settings: Settings,
    local: grpc.aio.Server,
    add_services: Callable[[grpc.aio.Server], grpc.aio.Server],
    listeners: list[grpc.aio.Server],
    front: list[grpc.aio.ServerInterceptor],
) -> list[str]:
    """Loopback and Unix-socket addresses go on `local`. Addresses reachable from outside the
    pod go on a server of their own, with TLS and/or the token check (see sidecar.security),
    so the check applies per listener; it is appended to `listeners`. Returns the bound
    addresses in the order configured."""
    exposed: grpc.aio.Server | None = None
    credentials = None
    bound = []
    for address in settings.listen:
        if not is_exposed(address, secure_loopback=settings.secure_loopback):
            bound += bind(local, [address], None, settings.socket_mode)
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
            exposed = add_services(
                grpc.aio.server(
                    options=server_options(), interceptors=[*front, *security.interceptors]
                )
            )
            listeners.append(exposed)
            log.info("exposed listeners secured", extra={"security": security.describe})
        bound += bind(exposed, [address], credentials)
    return bound


def _bind_health(
    settings: Settings, servicer: health.aio.HealthServicer, listeners: list[grpc.aio.Server]
) -> str | None:
    """health_listen: a server with only the Health service, for kubelet's gRPC probes, which
    speak neither TLS nor tokens. It shares the servicer, so it flips NOT_SERVING with the rest."""
    if settings.health_listen is None:
        return None
    probe = grpc.aio.server(options=server_options())
    listeners.append(probe)
    health_pb2_grpc.add_HealthServicer_to_server(servicer, probe)
    return bind(probe, [settings.health_listen], None, settings.socket_mode)[0]


def resilient_upstream(inner: Upstream, settings: Settings) -> ResilientUpstream:
    """Deadlines, retries, budget and breaker around the Google client, from the settings."""
    return ResilientUpstream(
        inner,
        retry=RetrySettings(
            max_attempts=settings.retry_max_attempts,
            initial_backoff=settings.retry_initial_backoff,
            max_backoff=settings.retry_max_backoff,
            multiplier=settings.retry_backoff_multiplier,
        ),
        budget=BudgetSettings(
            ratio=settings.retry_budget_ratio,
            min_per_second=settings.retry_budget_min_per_second,
        ),
        breaker=BreakerSettings(
            failure_ratio=settings.breaker_failure_ratio,
            min_calls=settings.breaker_min_calls,
            window=settings.breaker_window,
            cooldown=settings.breaker_cooldown,
        ),
    )


async def _watch_upstream(
    health_servicer: health.aio.HealthServicer, upstream: ResilientUpstream
) -> None:
    """Mirror the upstream's state into the `upstream` health entry, logging each change."""
    serving_now = True
    while True:
        await asyncio.sleep(HEALTH_POLL_SECONDS)
        serving, reason = upstream.health()
        if serving == serving_now:
            continue
        serving_now = serving
        status = health_pb2.HealthCheckResponse.SERVING
        if not serving:
            status = health_pb2.HealthCheckResponse.NOT_SERVING
            log.warning("upstream unhealthy", extra={"reason": reason})
        else:
            log.info("upstream healthy again")
        await health_servicer.set(UPSTREAM_HEALTH, status)


async def run(settings: Settings, *, grace: float | None = None) -> int:
    """Serve until SIGTERM or SIGINT, then shut down in order; the exit code."""
    if grace is None:
        grace = settings.shutdown_grace
    sidecar = await start_sidecar(settings)
    # Everything built so far (modules, descriptors, settings) lives as long as the process:
    # freeze it so full collections stop traversing it. Measured: a gen-2 collection paused the
    # loop 16-20 ms with ~60k startup objects tracked, 0.3 ms frozen.
    gc.collect()
    gc.freeze()
    log.info("serving", extra={"addresses": sidecar.addresses, "emulator": settings.emulator})
    if sidecar.health_address:
        print("recaptcha-sidecar health on " + sidecar.health_address, flush=True)
    print("recaptcha-sidecar serving on " + " ".join(sidecar.addresses), flush=True)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)
    if sidecar.policy is not None:
        loop.add_signal_handler(signal.SIGHUP, sidecar.policy.request_reload)
        log.info("policy %s in force", sidecar.policy.version)
    await stop.wait()
    log.info("shutting down", extra={"grace_seconds": grace})
    await sidecar.stop(grace)
    return 0
