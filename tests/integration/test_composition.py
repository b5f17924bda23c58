"""The composition root: health settles before start returns and follows its components, a
graceful stop goes through health first, and a failed start closes everything it opened."""

from __future__ import annotations

import asyncio
import threading
from pathlib import Path

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc
from recaptcha.sidecar.v1 import sidecar_pb2 as pb
from recaptcha.sidecar.v1 import sidecar_pb2_grpc

from sidecar.config import load_settings
from sidecar.emulator import mint_token
from sidecar.server.app import StartupError, start_sidecar
from sidecar.server.servicer import SERVICE
from tests.conftest import EmulatorHandle, SidecarFactory
from tests.support.network import free_port
from tests.support.polling import eventually

SERVING = health_pb2.HealthCheckResponse.SERVING
NOT_SERVING = health_pb2.HealthCheckResponse.NOT_SERVING


async def status(health: health_pb2_grpc.HealthStub, service: str = "") -> int:
    answer = await health.Check(health_pb2.HealthCheckRequest(service=service), timeout=5)
    value: int = answer.status
    return value


async def test_health_is_settled_when_start_returns(make_sidecar: SidecarFactory) -> None:
    handle = await make_sidecar()
    for service in ("", SERVICE, "upstream"):
        assert await status(handle.health, service) == SERVING


async def test_readiness_waits_for_the_replay_store(make_sidecar: SidecarFactory) -> None:
    """A store that cannot be reached at start: the sidecar starts (liveness SERVING) but is not
    ready, rather than SERVING before the store was ever asked."""
    handle = await make_sidecar(
        replay_store=f"redis://127.0.0.1:{free_port()}/0",
        replay_redis_timeout=0.2,
        replay_timeout=0.2,
    )
    assert await status(handle.health, "") == SERVING
    assert await status(handle.health, SERVICE) == NOT_SERVING


async def test_stop_turns_health_off_first_then_drains(
    make_sidecar: SidecarFactory, emulator: EmulatorHandle
) -> None:
    """Through `Sidecar.stop`: while a call is still running, probes already read NOT_SERVING
    and new calls are refused; the running call gets its real answer."""
    handle = await make_sidecar()
    await emulator.control.set_faults("create", latency_ms=1500)
    running = asyncio.ensure_future(
        handle.stub.Assess(pb.AssessRequest(token=mint_token()), timeout=10)
    )
    await eventually(lambda: emulator.service.stats()["create_calls"] >= 1, timeout=5)
    stopping = asyncio.ensure_future(handle.sidecar.stop(5.0))

    async def draining() -> bool:
        return await status(handle.health, "") == NOT_SERVING

    await eventually(draining, timeout=5)
    assert not running.done()
    assert await status(handle.health, SERVICE) == NOT_SERVING
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await handle.stub.Assess(pb.AssessRequest(token=mint_token()), timeout=5)
    assert caught.value.code() == grpc.StatusCode.UNAVAILABLE
    answer = await running
    assert answer.token_status == pb.TOKEN_STATUS_VALID
    await stopping


def _listening_inodes() -> set[str]:
    """Inodes of the TCP sockets this process listens on (from /proc)."""
    mine = set()
    for fd in Path("/proc/self/fd").iterdir():
        try:
            target = fd.readlink().name
        except OSError:
            continue
        if target.startswith("socket:["):
            mine.add(target[8:-1])
    listening = set()
    for table in ("/proc/self/net/tcp", "/proc/self/net/tcp6"):
        for line in Path(table).read_text().splitlines()[1:]:
            fields = line.split()
            if fields[3] == "0A" and fields[9] in mine:  # 0A: LISTEN
                listening.add(fields[9])
    return listening


async def test_a_failed_start_closes_everything_it_opened(tmp_path: Path) -> None:
    """The emulator, the Prometheus endpoint (and its thread), the upstream channel and the
    replay store are open by the time the listener is bound; a taken port then fails the
    start with one line, and nothing is left listening or running."""
    taken = grpc.aio.server()
    port = taken.add_insecure_port("127.0.0.1:0")
    await taken.start()
    metrics = free_port()
    settings = load_settings(
        emulator=True,
        listen=[f"127.0.0.1:{port}"],
        metrics_listen=f"127.0.0.1:{metrics}",
        outbox=tmp_path / "outbox.db",
    )
    before, threads = _listening_inodes(), set(threading.enumerate())
    try:
        with pytest.raises(StartupError, match=f"cannot listen on 127.0.0.1:{port}") as caught:
            await start_sidecar(settings)
        assert "\n" not in str(caught.value)
        assert _listening_inodes() == before
        await eventually(lambda: set(threading.enumerate()) <= threads, timeout=10)
        # the outbox file was let go: another sidecar can own it now
        settings = load_settings(
            emulator=True, listen=["127.0.0.1:0"], outbox=tmp_path / "outbox.db"
        )
        again = await start_sidecar(settings)
        await again.stop(0)
    finally:
        await taken.stop(0)


async def test_front_doors_share_every_server_and_health(make_sidecar: SidecarFactory) -> None:
    handle = await make_sidecar()
    channel = grpc.aio.insecure_channel(handle.uds)
    try:
        stub = sidecar_pb2_grpc.VerificationServiceStub(channel)
        answer = await stub.Assess(pb.AssessRequest(token=""), timeout=5)
        assert answer.token_status == pb.TOKEN_STATUS_MISSING
        assert await status(health_pb2_grpc.HealthStub(channel), SERVICE) == SERVING
    finally:
        await channel.close()
