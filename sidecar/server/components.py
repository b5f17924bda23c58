"""The components the composition root opens, each registering its close on the exit stack
the moment it is open (see `sidecar.server.app`). One opener per component; the order they
are called in is the order they close in, reversed."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import time
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Protocol

import grpc
from grpc_health.v1 import health, health_pb2_grpc
from grpc_reflection.v1alpha import reflection

from sidecar.config import Settings
from sidecar.core.annotate import DirectDelivery
from sidecar.core.limits import AdmissionLimiter
from sidecar.core.ports import AnnotationSink, RateLimiter, ReplayStore, Upstream
from sidecar.core.shield import LimiterKeys, QuotaShield
from sidecar.core.verify import Verifier
from sidecar.outbox import Flusher, Outbox, OutboxQueue, OutboxSink
from sidecar.outbox.sealing import load_sealer
from sidecar.policy.schema import parse_rate
from sidecar.ratelimit import open_rate_limiter
from sidecar.ratelimit.meter import MeteredUpstream, QuotaMeter
from sidecar.ratelimit.secret import load_secret
from sidecar.replay.health import check_store, watch_store
from sidecar.server.connections import ConnectionWatch
from sidecar.server.decoding import DecodeGuard
from sidecar.server.drain import DrainGate
from sidecar.server.google_face import GoogleFace
from sidecar.server.health import REPLAY_STORE, UPSTREAM, HealthAggregator, watch_upstream
from sidecar.server.listeners import bind_health, bind_listeners, server_options, socket_path
from sidecar.server.module_settings import (
    api_key,
    breaker_settings,
    budget_settings,
    flush_settings,
    redis_outbox_options,
    retry_settings,
)
from sidecar.telemetry.providers import Telemetry
from sidecar.upstream.client import GoogleUpstream
from sidecar.upstream.credentials import ApiKey, CallCredentials, application_default
from sidecar.upstream.retry import ResilientUpstream

if TYPE_CHECKING:
    from sidecar.server.http import HttpListener  # aiohttp: imported only with http_listen

log = logging.getLogger(__name__)

EMULATOR_PROJECT = "emulator"


class GrpcFrontDoor(Protocol):
    """A front door served on the sidecar's gRPC servers."""

    @property
    def services(self) -> tuple[str, ...]:
        """Full names of its gRPC services (reflection, the drain gate, health entries)."""
        ...

    def add_to(self, server: grpc.aio.Server) -> None:
        """Register its services on one server (called for every gRPC server)."""
        ...


class Shutdown:
    """The grace period the stack's closers share: set by `Sidecar.stop`, none on a failed
    start (everything opened so far closes at once)."""

    def __init__(self) -> None:
        self._deadline: float | None = None

    def begin(self, grace: float) -> None:
        self._deadline = time.monotonic() + max(0.0, grace)

    def left(self) -> float:
        if self._deadline is None:
            return 0.0
        return max(0.0, self._deadline - time.monotonic())


async def upstream_credentials(settings: Settings) -> CallCredentials:
    """The API key when one is configured, else Application Default Credentials (found in a
    thread: google-auth's detection pings the metadata server). `CredentialsMissing` (one
    line naming what to set) when there are none."""
    key = api_key(settings)
    if key:
        return ApiKey(key)
    return await asyncio.to_thread(application_default)


def upstream_project(settings: Settings) -> str:
    """The project upstream calls name: the setting, or the embedded emulator's default."""
    return settings.project or (EMULATOR_PROJECT if settings.emulator else "")


def open_quota_meter(stack: contextlib.AsyncExitStack, settings: Settings) -> QuotaMeter:
    """The meter of upstream calls against project_quota_per_minute: shared through the
    replay store's Redis when there is one; its flush and warnings run in a task."""
    keyspace = None
    if not settings.replay_store.startswith("memory:"):
        from sidecar.redisconn.keyspace import open_keyspace

        password = settings.replay_redis_password
        keyspace = open_keyspace(
            settings.replay_store,
            pool_size=2,
            timeout=settings.replay_redis_timeout,
            password=password.get_secret_value() if password else None,
        )
    meter = QuotaMeter(
        settings.project_quota_per_minute,
        keyspace=keyspace,
        key_prefix=settings.rate_limit_key_prefix,
    )
    stack.push_async_callback(meter.close)
    task = asyncio.create_task(meter.run(), name="quota-meter")

    async def cancel() -> None:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)

    stack.push_async_callback(cancel)
    return meter


async def open_upstream(
    stack: contextlib.AsyncExitStack,
    settings: Settings,
    telemetry: Telemetry,
    meter: QuotaMeter | None = None,
    *,
    emulator: str | None = None,
) -> ResilientUpstream:
    """Innermost first: the Google client (or the embedded emulator: this process's own, or
    `emulator`, the one a worker's supervisor runs for all), metered against the project's
    quota and observed per attempt; retries, budget and breaker around it."""
    endpoint, plaintext, project = (
        settings.upstream_endpoint,
        settings.upstream_plaintext,
        settings.project,
    )
    if settings.emulator and emulator is not None:
        endpoint, plaintext, project = emulator, True, upstream_project(settings)
    elif settings.emulator:
        from sidecar.emulator import start_emulator

        emulator_server, _, ports = await start_emulator(["127.0.0.1:0"])
        stack.push_async_callback(emulator_server.stop, 0)
        endpoint, plaintext, project = f"127.0.0.1:{ports[0]}", True, upstream_project(settings)
    google = GoogleUpstream(
        project=project,
        endpoint=endpoint,
        plaintext=plaintext,
        credentials=None if plaintext else await upstream_credentials(settings),
        root_certificates=(
            settings.upstream_ca_file.read_bytes() if settings.upstream_ca_file else None
        ),
    )
    inner = telemetry.instrument_upstream(google)
    if meter is not None:  # inside the retry layer: each attempt counts, refusals do not
        inner = MeteredUpstream(inner, meter)
    upstream = resilient_upstream(inner, settings)
    stack.push_async_callback(upstream.close)
    return upstream


async def open_sink(
    stack: contextlib.AsyncExitStack,
    shutdown: Shutdown,
    settings: Settings,
    upstream: Upstream,
) -> tuple[AnnotationSink, OutboxQueue | None, Flusher | None]:
    """Where annotations go: straight upstream, or the durable outbox (a SQLite file, or a
    Redis stream every replica shares) and its flusher."""
    if settings.outbox is None:
        return DirectDelivery(upstream, settings.upstream_timeout), None, None
    outbox = await open_outbox(settings)
    stack.push_async_callback(outbox.close)
    flusher = Flusher(
        outbox,
        upstream,
        flush_settings(settings),
    )

    async def stop_flusher() -> None:
        left = await flusher.stop(shutdown.left())
        if left:
            log.warning("outbox keeps annotations for the next start", extra={"depth": left})

    stack.push_async_callback(stop_flusher)
    sink = OutboxSink(
        outbox,
        flusher,
        wait_for_upstream=settings.outbox_wait_for_upstream,
        upstream_timeout=settings.upstream_timeout,
        deadline_margin=settings.deadline_margin,
    )
    return sink, outbox, flusher


async def open_outbox(settings: Settings) -> OutboxQueue:
    """The outbox `settings.outbox` names, its payloads sealed with `outbox_key_file`."""
    sealer = load_sealer(settings.outbox_key_file)
    if isinstance(settings.outbox, Path):
        return await Outbox.open(
            settings.outbox, max_items=settings.outbox_max_items, sealer=sealer
        )
    assert settings.outbox is not None
    # Only a Redis outbox imports redis-py (14 MiB of RSS a memory-store sidecar never needs).
    from sidecar.outbox.streams import RedisOutbox
    from sidecar.redisconn.keyspace import open_keyspace

    keyspace = open_keyspace(
        settings.outbox,
        pool_size=16,
        timeout=settings.outbox_replication_timeout + 1.0,
        setting="outbox",
    )
    return await RedisOutbox.open(keyspace, sealer, **redis_outbox_options(settings))


def open_shield(
    stack: contextlib.AsyncExitStack, settings: Settings, meter: QuotaMeter
) -> tuple[QuotaShield, RateLimiter]:
    """The quota shield over the rate limiter of the replay store's kind (Redis: shared by
    every replica, this replica's own while Redis cannot answer); it counts nothing inside
    Google's RetryInfo window, which the meter keeps for the fleet."""
    password = settings.replay_redis_password
    limiter = open_rate_limiter(
        settings.replay_store,
        max_keys=settings.rate_limit_max_keys,
        pool_size=settings.replay_redis_pool_size,
        timeout=settings.replay_redis_timeout,
        password=password.get_secret_value() if password else None,
    )
    stack.push_async_callback(limiter.close)
    cap = parse_rate(settings.upstream_rate_limit) if settings.upstream_rate_limit else None
    shield = QuotaShield(
        limiter,
        LimiterKeys(load_secret(settings.rate_limit_key_file), settings.rate_limit_key_prefix),
        cap=cap,
        timeout=settings.replay_timeout,
        quota_window=meter.quiet_left,
    )
    return shield, limiter


def limiter(settings: Settings, name: str) -> AdmissionLimiter:
    return AdmissionLimiter(
        settings.max_in_flight, settings.max_queued, max_wait=settings.upstream_timeout, name=name
    )


async def open_servers(
    stack: contextlib.AsyncExitStack,
    shutdown: Shutdown,
    settings: Settings,
    front_doors: Sequence[GrpcFrontDoor],
    services: tuple[str, ...],
    health_servicer: health.aio.HealthServicer,
    telemetry: Telemetry,
    reuse_port: bool = False,
) -> tuple[grpc.aio.Server, list[str], str | None]:
    """The gRPC servers, bound and started (on ports shared with the other workers when
    `reuse_port`); their drain and stop pushed on the stack."""
    gate = DrainGate(services)
    # Telemetry outermost, so that calls refused while draining or unauthenticated are still
    # logged and counted.
    front: list[grpc.aio.ServerInterceptor] = [*telemetry.interceptors(), gate]
    # Innermost, after the token check (`extra`): undecodable requests become INVALID_ARGUMENT
    # calls, and an unauthenticated caller's bytes are never decoded.
    decoder = DecodeGuard()
    reflected = (*services, health.SERVICE_NAME, reflection.SERVICE_NAME)

    def make_server(extra: Sequence[grpc.aio.ServerInterceptor] = ()) -> grpc.aio.Server:
        interceptors = [*front, *extra, decoder]
        options = server_options(settings, reuse_port=reuse_port)
        server = grpc.aio.server(options=options, interceptors=interceptors)
        for door in front_doors:
            door.add_to(server)
        health_pb2_grpc.add_HealthServicer_to_server(health_servicer, server)
        reflection.enable_server_reflection(reflected, server)
        return server

    local = make_server()
    servers = [local]
    addresses: list[str] = []

    async def stop_servers() -> None:
        gate.close()  # new calls: UNAVAILABLE; running calls go on
        await gate.wait_idle(shutdown.left())
        grace = shutdown.left()
        await asyncio.gather(*(server.stop(grace) for server in servers))
        for address in addresses:
            if address.startswith("unix:"):
                with contextlib.suppress(FileNotFoundError):
                    os.unlink(socket_path(address))

    stack.push_async_callback(stop_servers)
    addresses += bind_listeners(settings, local, make_server, servers, reuse_port=reuse_port)
    # Unauthenticated probes see liveness and readiness only (issue 13 item 4).
    health_address = bind_health(
        settings, health_servicer, servers, ("", *services), reuse_port=reuse_port
    )
    for server in servers:
        await server.start()
    watch = ConnectionWatch(
        [*addresses, *([health_address] if health_address else [])], settings.max_connections
    )
    watch.refresh()
    telemetry.instruments.register_connections(watch)
    watcher = asyncio.create_task(watch.run(), name="connection-watch")

    async def stop_watch() -> None:
        watcher.cancel()
        await asyncio.gather(watcher, return_exceptions=True)

    stack.push_async_callback(stop_watch)
    return local, addresses, health_address


async def open_http(
    stack: contextlib.AsyncExitStack,
    settings: Settings,
    verifier: Verifier,
    telemetry: Telemetry,
    *,
    google: GoogleFace,
    reuse_port: bool = False,
) -> HttpListener | None:
    """The HTTP listener (siteverify, forward-auth, Google's REST API) when `http_listen` is
    set, bound and serving, its stop pushed on the stack; aiohttp is imported only then
    (~9 MB of RSS)."""
    if not settings.http_listen:
        return None
    from sidecar.server.google_rest import GoogleRest
    from sidecar.server.http_doors import start_http

    rest = GoogleRest(google)
    listener = await start_http(
        settings,
        verifier,
        telemetry.http_middlewares(),
        routes=rest.routes(),
        refusals=[(rest.PREFIX, rest.refusal)],
        reuse_port=reuse_port,
    )
    stack.push_async_callback(listener.stop)
    return listener


async def watch_health(
    stack: contextlib.AsyncExitStack,
    settings: Settings,
    aggregator: HealthAggregator,
    replay: ReplayStore,
    upstream: ResilientUpstream,
) -> None:
    """First reports now (so health is settled when start returns), then watchers."""

    async def report_store(reachable: bool) -> None:
        await aggregator.report(REPLAY_STORE, reachable)

    timeout = max(settings.replay_timeout, settings.replay_redis_timeout)
    reachable = await check_store(replay, report_store, timeout=timeout)
    serving, _ = upstream.health()
    await aggregator.report(UPSTREAM, serving)
    tasks = [
        asyncio.create_task(
            watch_store(
                replay,
                report_store,
                interval=settings.replay_health_interval,
                timeout=timeout,
                last=reachable,
            ),
            name="replay-health",
        ),
        asyncio.create_task(
            watch_upstream(aggregator, upstream, serving_now=serving), name="upstream-health"
        ),
    ]

    async def cancel() -> None:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

    stack.push_async_callback(cancel)


def resilient_upstream(inner: Upstream, settings: Settings) -> ResilientUpstream:
    """Deadlines, retries, budget and breaker around the Google client, from the settings."""
    return ResilientUpstream(
        inner,
        retry=retry_settings(settings),
        budget=budget_settings(settings),
        breaker=breaker_settings(settings),
    )
