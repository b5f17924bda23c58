"""SIGTERM under load: health goes NOT_SERVING, new calls are refused with UNAVAILABLE, calls in
flight finish with their real answers, queued annotations are flushed, and the exit code is 0."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import grpc
import pytest
from grpc_health.v1 import health_pb2
from recaptcha.sidecar.v1 import sidecar_pb2 as pb
from recaptcha.sidecar.v1 import sidecar_pb2_grpc

from sidecar.emulator import mint_token
from tests.support.fleet import (
    control,
    health_status,
    settings_env,
    sidecar_stubs,
    start_emulator,
    start_sidecar,
)
from tests.support.polling import eventually

pytestmark = pytest.mark.slow

IN_FLIGHT = 20
UPSTREAM_LATENCY_MS = 1500


async def test_sigterm_drains_in_flight_refuses_new_and_exits_zero(tmp_path: Path) -> None:
    emulator, emulator_address = start_emulator()
    sidecar, address = start_sidecar(
        emulator_address,
        "--outbox",
        str(tmp_path / "outbox.db"),
        env=settings_env(shutdown_grace=10, outbox_flush_interval=60, outbox_batch_size=1000),
    )
    try:
        async with control(emulator_address) as ctl, sidecar_stubs(address) as (stub, _):
            # Annotations queued and not yet flushed (the interval is long): shutdown sends them.
            names = []
            for _ in range(5):
                answer = await stub.Assess(pb.AssessRequest(token=mint_token()), timeout=5)
                names.append(answer.assessment_name)
                queued = await stub.Annotate(
                    pb.AnnotateRequest(
                        assessment_name=answer.assessment_name,
                        annotation=pb.ANNOTATION_LEGITIMATE,
                    ),
                    timeout=5,
                )
                assert queued.delivery == pb.ANNOTATION_DELIVERY_QUEUED
            assert not set(names) & set((await ctl.stats())["annotated_names"])

            await ctl.set_faults("create", latency_ms=UPSTREAM_LATENCY_MS)
            before = (await ctl.stats())["create_calls"]
            tokens = [mint_token() for _ in range(IN_FLIGHT)]
            in_flight = [
                asyncio.ensure_future(stub.Assess(pb.AssessRequest(token=t), timeout=20))
                for t in tokens
            ]

            async def all_upstream() -> bool:
                return (await ctl.stats())["create_calls"] - before >= IN_FLIGHT

            await eventually(all_upstream, timeout=10, interval=0.02)
            sidecar.popen.terminate()  # SIGTERM, without waiting
            signalled = time.monotonic()

            # New calls on a fresh connection, until one is refused; then all are.
            refused: list[grpc.StatusCode] = []
            while not refused and time.monotonic() - signalled < 5:
                channel = grpc.aio.insecure_channel(address)
                try:
                    await sidecar_pb2_grpc.VerificationServiceStub(channel).Assess(
                        pb.AssessRequest(token=""), timeout=2
                    )
                except grpc.aio.AioRpcError as error:
                    refused.append(error.code())
                finally:
                    await channel.close()
            still_running = sum(not call.done() for call in in_flight)
            async with sidecar_stubs(address) as (_, health):  # probes read the drain
                draining_health = await health_status(health, "")
            try:  # the old connection, too
                await stub.Assess(pb.AssessRequest(token=""), timeout=2)
            except grpc.aio.AioRpcError as error:
                refused.append(error.code())

            answers = await asyncio.gather(*in_flight)
            code = await asyncio.to_thread(sidecar.popen.wait, 30)
            stats = await ctl.stats()
    finally:
        sidecar.kill()
        emulator.terminate()

    assert refused == [grpc.StatusCode.UNAVAILABLE] * 2, refused
    assert still_running > 0, "new calls were refused while old ones were still running"
    assert draining_health == health_pb2.HealthCheckResponse.NOT_SERVING
    assert all(a.token_status == pb.TOKEN_STATUS_VALID for a in answers)
    assert code == 0, sidecar.output()[-2000:]
    assert set(names) <= set(stats["annotated_names"]), "the outbox was flushed on the way out"
