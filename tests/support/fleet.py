"""Helpers for tests that drive real sidecar and emulator processes: settings as environment,
the emulator's control plane from another process, and a child's resident memory."""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from pathlib import Path

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc
from recaptcha.sidecar.v1 import sidecar_pb2_grpc

from sidecar.config import ENV_PREFIX
from sidecar.emulator import EmulatorControl
from tests.support.network import free_port
from tests.support.processes import Process, emulator_process, sidecar_process


def settings_env(**settings: object) -> dict[str, str]:
    """`retry_max_attempts=5` → `{"RECAPTCHA_SIDECAR_RETRY_MAX_ATTEMPTS": "5"}`."""
    return {ENV_PREFIX + key.upper(): str(value) for key, value in settings.items()}


def start_emulator() -> tuple[Process, str]:
    process = emulator_process("--listen", f"127.0.0.1:{free_port()}", "--seed", "1")
    return process, process.addresses()[0]


def start_sidecar(
    emulator_address: str, *args: str, env: Mapping[str, str] | None = None
) -> tuple[Process, str]:
    process = sidecar_process(
        "--project",
        "reliability",
        "--listen",
        f"127.0.0.1:{free_port()}",
        "--upstream-endpoint",
        emulator_address,
        "--upstream-plaintext",
        "--site-key",
        "test-site-key",
        *args,
        env=dict(env or {}),
    )
    return process, process.addresses()[0]


@asynccontextmanager
async def control(address: str) -> AsyncIterator[EmulatorControl]:
    """The emulator's control plane over its own channel."""
    channel = grpc.aio.insecure_channel(address)
    try:
        yield EmulatorControl(channel)
    finally:
        await channel.close()


@asynccontextmanager
async def sidecar_stubs(
    address: str,
) -> AsyncIterator[tuple[sidecar_pb2_grpc.VerificationServiceStub, health_pb2_grpc.HealthStub]]:
    channel = grpc.aio.insecure_channel(address)
    try:
        yield sidecar_pb2_grpc.VerificationServiceStub(channel), health_pb2_grpc.HealthStub(channel)
    finally:
        await channel.close()


async def health_status(health: health_pb2_grpc.HealthStub, service: str) -> int:
    answer = await health.Check(health_pb2.HealthCheckRequest(service=service), timeout=5)
    status: int = answer.status
    return status


def rss_kib(pid: int) -> int:
    """Resident set size of a process, from /proc."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise RuntimeError(f"no VmRSS for {pid}")
