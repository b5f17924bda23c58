"""Fixtures shared by every test layer: a real emulator and a real sidecar on real sockets."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
import grpc
import pytest
from grpc_health.v1 import health_pb2_grpc
from recaptcha.sidecar.v1 import sidecar_pb2_grpc

from sidecar.config import load_settings
from sidecar.emulator import EmulatorControl, EmulatorService, start_emulator
from sidecar.server.app import Sidecar, start_sidecar
from tests.support.google import GoogleEmulator
from tests.support.google import google_emulator as _google_emulator
from tests.support.redis_cluster import RedisCluster, RedisSentinel
from tests.support.redis_server import RedisServer

TEST_SITE_KEY = "test-site-key"


@dataclass
class EmulatorHandle:
    """An in-process emulator: its address, its state, and its control plane."""

    address: str
    service: EmulatorService
    control: EmulatorControl


@dataclass
class SidecarHandle:
    """A sidecar started in-process, with stubs over a real TCP connection."""

    sidecar: Sidecar
    stub: sidecar_pb2_grpc.VerificationServiceStub
    health: health_pb2_grpc.HealthStub
    channels: list[grpc.aio.Channel] = field(default_factory=list)

    @property
    def tcp(self) -> str:
        return next(a for a in self.sidecar.addresses if not a.startswith("unix:"))

    @property
    def uds(self) -> str:
        return next(a for a in self.sidecar.addresses if a.startswith("unix:"))

    def stub_for(self, address: str) -> sidecar_pb2_grpc.VerificationServiceStub:
        channel = grpc.aio.insecure_channel(address)
        self.channels.append(channel)
        return sidecar_pb2_grpc.VerificationServiceStub(channel)


@pytest.fixture
async def emulator() -> AsyncIterator[EmulatorHandle]:
    server, service, ports = await start_emulator(["127.0.0.1:0"])
    address = f"127.0.0.1:{ports[0]}"
    channel = grpc.aio.insecure_channel(address)
    yield EmulatorHandle(address, service, EmulatorControl(channel))
    await channel.close()
    await server.stop(0)


@pytest.fixture
async def google_emulator(tmp_path: Path) -> AsyncIterator[GoogleEmulator]:
    """The emulator as Google really is: TLS with its own CA, an API key, a GCE metadata
    server handing out access tokens, a project id and typed site keys (tests/support/google.py).
    The default upstream for new upstream tests."""
    async with _google_emulator(tmp_path) as google:
        yield google


SidecarFactory = Callable[..., Awaitable[SidecarHandle]]


@pytest.fixture
async def make_sidecar(emulator: EmulatorHandle, tmp_path: Path) -> AsyncIterator[SidecarFactory]:
    """Start sidecars against the emulator fixture; settings given as keyword overrides (and
    an optional `config_file`). Every sidecar listens on 127.0.0.1:0 and a Unix socket."""
    started: list[SidecarHandle] = []

    async def factory(config_file: Path | None = None, **overrides: Any) -> SidecarHandle:
        overrides.setdefault(
            "listen", ["127.0.0.1:0", f"unix://{tmp_path}/sidecar-{len(started)}.sock"]
        )
        overrides.setdefault("project", "test-project")
        overrides.setdefault("upstream_endpoint", emulator.address)
        overrides.setdefault("upstream_plaintext", True)
        # A key for requests that name none (without one the answer is VERDICT_KEYS_MISSING).
        overrides.setdefault("site_key", TEST_SITE_KEY)
        settings = load_settings(config_file, **overrides)
        sidecar = await start_sidecar(settings)
        tcp = [a for a in sidecar.addresses if not a.startswith("unix:")]
        channel = grpc.aio.insecure_channel((tcp or sidecar.addresses)[0])
        handle = SidecarHandle(
            sidecar,
            sidecar_pb2_grpc.VerificationServiceStub(channel),
            health_pb2_grpc.HealthStub(channel),
            [channel],
        )
        started.append(handle)
        return handle

    yield factory
    for handle in started:
        for channel in handle.channels:
            await channel.close()
        await handle.sidecar.stop(0)


@pytest.fixture
async def sidecar(make_sidecar: SidecarFactory) -> SidecarHandle:
    """One sidecar with the default settings."""
    return await make_sidecar()


SITEVERIFY_SECRET = "legacy-secret-of-the-shop"
SITEVERIFY_SITE_KEY = "shop-site-key"


@pytest.fixture
async def http_sidecar(make_sidecar: SidecarFactory, tmp_path: Path) -> SidecarHandle:
    """A sidecar with its HTTP listener on 127.0.0.1:0 and `http.sock` in the test's folder,
    one legacy siteverify secret, and `login` open on upstream failure (the one allowed answer
    that has no score, which tests/interop/test_proxies.py needs)."""
    secrets = tmp_path / "siteverify-secrets"
    secrets.write_text(
        f"# legacy secret -> Enterprise key\n{SITEVERIFY_SECRET} {SITEVERIFY_SITE_KEY}\n"
    )
    config = tmp_path / "sidecar.yaml"
    config.write_text("policy:\n  actions:\n    login: {on_upstream_failure: open}\n")
    return await make_sidecar(
        config,
        http_listen=["127.0.0.1:0", f"unix://{tmp_path}/http.sock"],
        siteverify_secrets_file=secrets,
    )


def http_address(handle: SidecarHandle) -> str:
    """The sidecar's HTTP listener on TCP, `host:port`."""
    assert handle.sidecar.http is not None
    return handle.sidecar.http.addresses[0]


@pytest.fixture
async def http_client() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as client:
        yield client


@pytest.fixture
async def make_google_sidecar(
    make_sidecar: SidecarFactory, google_emulator: GoogleEmulator
) -> SidecarFactory:
    """Sidecars talking to `google_emulator` over TLS with its API key; keyword overrides
    as for `make_sidecar` (e.g. `api_key="wrong"`, `upstream_ca_file=None`)."""

    async def factory(config_file: Path | None = None, **overrides: Any) -> SidecarHandle:
        return await make_sidecar(config_file, **google_emulator.sidecar_settings(**overrides))

    return factory


@pytest.fixture
def redis_server(tmp_path: Path) -> Iterator[RedisServer]:
    """A real redis-server on a free loopback port, empty, with no persistence; the test may
    stop, kill, freeze or restart it (same port). Killed at teardown."""
    server = RedisServer(tmp_path / "redis").start()
    yield server
    server.close()


@pytest.fixture(scope="session")
def redis_cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisCluster]:
    """A Redis Cluster (3 primaries + 3 replicas) shared by the whole run: tests may make a
    replica lag for a moment but must leave it healthy (use `disposable_redis_cluster` to kill
    nodes). Every node is killed at the end of the run, whatever happened."""
    with RedisCluster(tmp_path_factory.mktemp("redis-cluster")) as cluster:
        yield cluster


@pytest.fixture
def disposable_redis_cluster(tmp_path: Path) -> Iterator[RedisCluster]:
    """A Redis Cluster of this test's own, to kill and promote nodes in."""
    with RedisCluster(tmp_path / "redis-cluster") as cluster:
        yield cluster


@pytest.fixture(scope="session")
def redis_sentinel(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisSentinel]:
    """A primary, 2 replicas and 3 sentinels shared by the whole run (do not kill them)."""
    with RedisSentinel(tmp_path_factory.mktemp("redis-sentinel")) as group:
        yield group


@pytest.fixture
def disposable_redis_sentinel(tmp_path: Path) -> Iterator[RedisSentinel]:
    """A Sentinel group of this test's own, to fail over."""
    with RedisSentinel(tmp_path / "redis-sentinel") as group:
        yield group


@pytest.fixture(params=["memory", "redis"])
def store_url(request: pytest.FixtureRequest) -> str:
    """Each replay store in turn: the memory store, then a real redis-server."""
    if request.param == "memory":
        return "memory://"
    url: str = request.getfixturevalue("redis_server").url
    return url
