"""Connections are bounded and visible (issue 13 item 11), on a real sidecar process.

A listener holds at most `max_connections`; calls that never send their message end when
their connection reaches `max_connection_age` plus the grace (gRPC hands Python nothing
before the message, so only the connection's age can end them); idle connections close; and
open descriptors and connections per listener are gauges read from /proc, with a warning
(rate-limited) near the limit.
"""

from __future__ import annotations

import asyncio
import json
import resource
import socket
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc

from tests.support.fleet import start_emulator
from tests.support.network import free_port
from tests.support.polling import eventually
from tests.support.processes import Process, sidecar_process
from tests.support.prometheus import series, value


def connections(metrics: str, listener: str) -> float:
    return series(metrics, "rpc_server_connections", "listener").get(listener, -1.0)


@asynccontextmanager
async def sidecar(*args: str, preexec: object = None) -> AsyncIterator[tuple[Process, str, str]]:
    emulator, upstream = start_emulator()
    metrics = f"127.0.0.1:{free_port()}"
    process = sidecar_process(
        *("--project", "bounds", "--upstream-endpoint", upstream, "--upstream-plaintext"),
        *("--listen", f"127.0.0.1:{free_port()}", "--metrics-listen", metrics),
        *args,
        preexec=preexec,  # type: ignore[arg-type]
    )
    try:
        yield process, process.addresses()[0], metrics
    finally:
        process.terminate()
        emulator.kill()


def channel_of_its_own(address: str) -> grpc.aio.Channel:
    """A channel on its own connection (no subchannel shared with the other channels)."""
    return grpc.aio.insecure_channel(address, options=[("grpc.use_local_subchannel_pool", 1)])


async def check(channel: grpc.aio.Channel) -> grpc.StatusCode:
    try:
        await health_pb2_grpc.HealthStub(channel).Check(health_pb2.HealthCheckRequest(), timeout=3)
    except grpc.aio.AioRpcError as error:
        return error.code()
    return grpc.StatusCode.OK


def warnings(process: Process, message: str) -> list[dict[str, object]]:
    found = []
    for line in process.lines:
        if line.startswith("{") and message in line:
            found.append(json.loads(line))
    return found


async def test_a_listener_holds_at_most_max_connections_and_counts_them() -> None:
    async with sidecar("--max-connections", "20") as (process, address, metrics):
        channels = [channel_of_its_own(address) for _ in range(25)]
        try:
            first = [await check(channel) for channel in channels[:20]]
            assert first == [grpc.StatusCode.OK] * 20
            beyond = [await check(channel) for channel in channels[20:]]
            assert beyond == [grpc.StatusCode.UNAVAILABLE] * 5, beyond
            await eventually(lambda: connections(metrics, address) == 20, timeout=20)
            await eventually(
                lambda: warnings(process, "connections near max_connections"), timeout=20
            )
            # The connections that were let in keep working.
            assert await check(channels[0]) == grpc.StatusCode.OK
        finally:
            for channel in channels:
                await channel.close()


async def test_calls_that_never_send_their_message_end_with_their_connection() -> None:
    async with sidecar("--max-connection-age", "1", "--max-connection-age-grace", "1") as (
        _,
        address,
        _metrics,
    ):
        async with channel_of_its_own(address) as channel:
            stuck = channel.stream_unary(
                "/recaptcha.sidecar.v1.VerificationService/Assess",
                request_serializer=lambda b: b,
                response_deserializer=lambda b: b,
            )

            async def never() -> AsyncIterator[bytes]:
                await asyncio.sleep(3600)
                yield b""

            async def one() -> grpc.StatusCode:
                try:
                    await stuck(never(), timeout=30)
                except grpc.aio.AioRpcError as error:
                    return error.code()
                return grpc.StatusCode.OK

            ended = await asyncio.gather(*(one() for _ in range(10)))
        # Cut by the server (the connection's age and grace), long before the caller's
        # 30 s deadline would have ended them.
        assert set(ended) == {grpc.StatusCode.UNAVAILABLE}, ended


async def test_idle_connections_are_closed() -> None:
    async with (
        sidecar("--max-connection-idle", "1") as (_, address, metrics),
        channel_of_its_own(address) as channel,
    ):
        assert await check(channel) == grpc.StatusCode.OK
        assert channel.get_state() == grpc.ChannelConnectivity.READY
        # The server closes the idle connection: the client's channel falls back to IDLE.
        await eventually(lambda: channel.get_state() == grpc.ChannelConnectivity.IDLE, timeout=20)
        await eventually(lambda: connections(metrics, address) == 0, timeout=20)
        assert await check(channel) == grpc.StatusCode.OK  # the client reconnects


def _few_descriptors() -> None:
    resource.setrlimit(resource.RLIMIT_NOFILE, (128, 128))


async def test_descriptors_near_the_limit_are_a_gauge_and_a_warning() -> None:
    async with sidecar(preexec=_few_descriptors) as (process, address, metrics):
        host, port = address.rsplit(":", 1)
        held = []
        try:
            for _ in range(100):  # plain TCP connections: each costs the sidecar a descriptor
                held.append(socket.create_connection((host, int(port)), timeout=5))
            await eventually(
                lambda: warnings(process, "file descriptors near the limit"), timeout=30
            )
            assert value(metrics, "process_file_descriptor_limit") == 128
            assert value(metrics, "process_open_file_descriptor_count") >= 0.8 * 128
            (warning,) = warnings(process, "file descriptors near the limit")[:1]
            assert warning["max_fds"] == 128
        finally:
            for connection in held:
                connection.close()
