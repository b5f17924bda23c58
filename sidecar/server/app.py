"""The composition root: builds the sidecar from settings, runs it, and stops it in order.

Everything opened is registered on one `contextlib.AsyncExitStack` the moment it is opened, so
a failure at any step closes what was opened before it, in reverse order, and `Sidecar.stop`
is the same stack unwound with a grace period: health NOT_SERVING first, then new calls
refused while running ones drain, then the servers, the flusher (with what is left of the
grace), the outbox, the replay store, the upstream, the emulator, and the telemetry flush
last. A failed start raises `StartupError`, one line the command line prints (exit 2).

New front doors plug in with a few lines:
- a gRPC one is a `GrpcFrontDoor` returned by `grpc_front_doors`: its services are added to
  every gRPC server (loopback, exposed), listed by reflection, guarded by the drain gate, and
  get a readiness entry in health;
- a listener of another kind (HTTP) is a component: an opener in `sidecar.server.components`
  called from `_start`, which pushes its stop on the stack (`shutdown.left()` is its grace)
  and reports to `health` if it has a state of its own.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import logging
import signal
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

import grpc

from sidecar.accountid.protected import protect_upstream
from sidecar.accountid.protection import Protection
from sidecar.config import Settings, reload_settings
from sidecar.core.annotate import Annotator
from sidecar.core.ports import ReplayStore
from sidecar.core.related import RelatedAccounts
from sidecar.core.verify import Verifier
from sidecar.outbox import Flusher, OutboxQueue
from sidecar.policy.source import PolicySource
from sidecar.replay import open_replay_store
from sidecar.server.components import (
    GrpcFrontDoor,
    Shutdown,
    limiter,
    open_http,
    open_quota_meter,
    open_servers,
    open_shield,
    open_sink,
    open_upstream,
    upstream_project,
    watch_health,
)
from sidecar.server.ext_authz import AuthorizationFrontDoor
from sidecar.server.gauges import register_gauges, register_shield
from sidecar.server.google_face import GoogleFace, ProjectNames
from sidecar.server.google_grpc import GoogleFrontDoor
from sidecar.server.health import SERVERS, HealthAggregator, standard_entries
from sidecar.server.listeners import ListenError, StartupError
from sidecar.server.module_settings import account_id_protector, telemetry_options, verify_settings
from sidecar.server.servicer import VerificationFrontDoor
from sidecar.server.workers import WorkerSlot
from sidecar.telemetry.metrics import ActionLabels
from sidecar.telemetry.providers import Telemetry, start_telemetry
from sidecar.upstream.retry import ResilientUpstream

if TYPE_CHECKING:
    from sidecar.server.http import HttpListener  # aiohttp: imported only with http_listen

log = logging.getLogger(__name__)

__all__ = ["ListenError", "Sidecar", "StartupError", "run", "start_sidecar"]


@dataclass(frozen=True, slots=True)
class Core:
    """The use cases every front door calls, and the Google-compatible face over them (one
    for its gRPC and REST doors, which share what it learns of the project)."""

    verifier: Verifier
    annotator: Annotator
    related: RelatedAccounts
    google: GoogleFace


def grpc_front_doors(settings: Settings, core: Core) -> list[GrpcFrontDoor]:
    """Every gRPC front door the settings ask for."""
    return [
        VerificationFrontDoor(core.verifier, core.annotator, core.related),
        GoogleFrontDoor(core.google),
        AuthorizationFrontDoor(core.verifier, settings.forward_auth_token_header),
    ]


@dataclass(eq=False)
class Sidecar:
    """A running sidecar: what callers need, and `stop`."""

    server: grpc.aio.Server  # the loopback / Unix-socket gRPC server
    addresses: list[str]
    health_address: str | None
    health: HealthAggregator
    replay: ReplayStore
    outbox: OutboxQueue | None
    policy: PolicySource
    telemetry: Telemetry
    # The retry layer (breaker, RetryInfo window) and the outbox's flusher (paused or not):
    # what operators' tools and the tests read.
    upstream: ResilientUpstream
    flusher: Flusher | None
    _stack: contextlib.AsyncExitStack
    _shutdown: Shutdown
    http: HttpListener | None = None  # siteverify, forward-auth (`http_listen`)
    _stopped: bool = False

    async def stop(self, grace: float) -> None:
        """Health goes NOT_SERVING first so probes and balancers stop sending, then new calls
        are refused and in-flight calls drain for up to `grace` seconds, then the outbox gets
        what is left of `grace` to deliver its rows, then everything closes in reverse order
        of opening. Stopping twice is harmless."""
        if self._stopped:
            return
        self._stopped = True
        self._shutdown.begin(grace)
        await self._stack.aclose()


async def start_sidecar(settings: Settings, slot: WorkerSlot | None = None) -> Sidecar:
    """Build and start everything the settings describe (as worker `slot` of several, if
    given); `StartupError` (one line) when something cannot start, after closing whatever
    had been opened."""
    stack = contextlib.AsyncExitStack()
    shutdown = Shutdown()
    try:
        return await _start(stack, shutdown, settings, slot)
    except BaseException as error:
        await stack.aclose()
        if isinstance(error, StartupError) or not isinstance(error, Exception):
            raise
        log.debug("startup failed", exc_info=error)
        raise StartupError(_one_line(error)) from error


def _one_line(error: Exception) -> str:
    if isinstance(error, OSError) and error.filename is not None:
        return f"{error.filename}: {error.strerror or type(error).__name__}"
    return " ".join(str(error).split()) or type(error).__name__


async def _start(
    stack: contextlib.AsyncExitStack,
    shutdown: Shutdown,
    settings: Settings,
    slot: WorkerSlot | None,
) -> Sidecar:
    policy = PolicySource(
        settings.policy,
        path=settings.config_file,
        load=lambda: reload_settings(settings).policy,
        interval=settings.policy_reload_interval,
    )
    # configured actions get their own metric label, following the live (reloadable) policy
    telemetry = start_telemetry(
        telemetry_options(settings),
        ActionLabels(lambda: policy.current().actions),
    )
    stack.push_async_callback(telemetry.aclose)  # last out: flushes the drained calls' spans

    meter = open_quota_meter(stack, settings)
    upstream = await open_upstream(
        stack, settings, telemetry, meter, emulator=slot.emulator if slot else None
    )
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
        min_replicas=settings.replay_min_replicas,
        replication_timeout=settings.replay_replication_timeout,
    )
    stack.push_async_callback(replay.close)
    sink, outbox, flusher = await open_sink(stack, shutdown, settings, upstream)
    shield, rate_limiter = open_shield(stack, settings, meter)

    protector = account_id_protector(settings)
    observer = telemetry.observer()
    # Account ids are protected over the upstream for Assess and SearchRelatedAccounts (which
    # also reveals the ids that come back), in the use case for Annotate (before the outbox
    # stores anything).
    protected = protect_upstream(upstream, protector)
    verifier = Verifier(
        upstream=protected,
        replay=telemetry.instrument_replay(replay),
        policy=policy.current,
        settings=verify_settings(settings),
        limiter=limiter(settings, "assess"),
        observer=observer,
        shield=shield,
    )
    annotator = Annotator(
        sink,
        protector=None if protector.mode is Protection.PLAIN else protector,
        limiter=limiter(settings, "annotate"),
        observer=observer,
    )
    related = RelatedAccounts(
        protected,
        upstream_timeout=settings.upstream_timeout,
        limiter=limiter(settings, "related"),
        observer=observer,
    )
    project = ProjectNames(upstream_project(settings), settings.project_number)
    core = Core(verifier, annotator, related, GoogleFace(verifier, annotator, project))
    front_doors = grpc_front_doors(settings, core)
    services = tuple(name for door in front_doors for name in door.services)
    health_ = HealthAggregator(standard_entries(services))
    await health_.start()

    shared = slot is not None  # the listeners' ports are shared with the other workers
    server, addresses, health_address = await open_servers(
        stack, shutdown, settings, front_doors, services, health_.servicer, telemetry, shared
    )
    http = await open_http(
        stack, settings, verifier, telemetry, google=core.google, reuse_port=shared
    )
    await policy.start()
    stack.push_async_callback(policy.close)
    await watch_health(stack, settings, health_, replay, upstream)
    if flusher is not None:
        flusher.start()
    register_gauges(telemetry.instruments, upstream, outbox, replay, flusher)
    register_shield(telemetry.instruments, shield, rate_limiter, meter)
    await health_.report(SERVERS, True)
    stack.push_async_callback(health_.shutdown)  # first out
    return Sidecar(
        server,
        addresses,
        health_address,
        health_,
        replay,
        outbox,
        policy,
        telemetry,
        upstream,
        flusher,
        stack,
        shutdown,
        http,
    )


def print_lines(lines: Sequence[str]) -> None:
    for line in lines:
        print(line, flush=True)


async def run(
    settings: Settings,
    *,
    grace: float | None = None,
    slot: WorkerSlot | None = None,
    announce: Callable[[Sequence[str]], None] = print_lines,
) -> int:
    """Serve until SIGTERM or SIGINT, then shut down in order; the exit code. The ready
    lines (what it serves on, the last one) go to `announce`: stdout, or a worker's
    supervisor, which prints them once for all."""
    if grace is None:
        grace = settings.shutdown_grace
    sidecar = await start_sidecar(settings, slot)
    # Everything built so far (modules, descriptors, settings) lives as long as the process:
    # freeze it so full collections stop traversing it. Measured: a gen-2 collection paused the
    # loop 16-20 ms with ~60k startup objects tracked, 0.3 ms frozen.
    gc.collect()
    gc.freeze()
    # Signals first, then the ready line: a SIGTERM sent the moment the sidecar says it
    # serves must shut it down in order, not kill it.
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)
    loop.add_signal_handler(signal.SIGHUP, sidecar.policy.request_reload)
    log.info("serving", extra={"addresses": sidecar.addresses, "emulator": settings.emulator})
    lines = []
    if sidecar.health_address:
        lines.append("recaptcha-sidecar health on " + sidecar.health_address)
    if sidecar.http is not None:
        lines.append("recaptcha-sidecar http on " + " ".join(sidecar.http.addresses))
    lines.append("recaptcha-sidecar serving on " + " ".join(sidecar.addresses))
    announce(lines)
    log.info("policy %s in force", sidecar.policy.version)
    await stop.wait()
    log.info("shutting down", extra={"grace_seconds": grace})
    await sidecar.stop(grace)
    return 0
