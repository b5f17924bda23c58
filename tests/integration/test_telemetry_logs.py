"""Logs of a real sidecar process: JSON lines with the caller's trace id, one access line per
RPC (health checks aside), and levels and format that the settings change."""

from __future__ import annotations

import json
import secrets

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc
from recaptcha.sidecar.v1 import sidecar_pb2 as pb
from recaptcha.sidecar.v1 import sidecar_pb2_grpc

from sidecar.emulator import mint_token
from tests.conftest import EmulatorHandle
from tests.support.otlp_receiver import start_grpc_receiver
from tests.support.polling import wait_until
from tests.support.processes import Process, sidecar_process


def start(emulator: EmulatorHandle, *args: str, env: dict[str, str] | None = None) -> Process:
    return sidecar_process(
        "--listen",
        "127.0.0.1:0",
        "--project",
        "logs-project",
        "--site-key",
        "logs-site-key",
        "--upstream-endpoint",
        emulator.address,
        "--upstream-plaintext",
        *args,
        env=env,
    )


async def calls(process: Process, trace_id: str) -> str:
    """Two Assess calls and one Annotate in the caller's trace, plus health checks; the
    assessment name."""
    header = f"00-{trace_id}-{secrets.token_hex(8)}-01"
    async with grpc.aio.insecure_channel(process.addresses()[0]) as channel:
        stub = sidecar_pb2_grpc.VerificationServiceStub(channel)
        token = mint_token(action="login")
        first = await stub.Assess(
            pb.AssessRequest(token=token, expected_action="login"),
            metadata=(("traceparent", header),),
            timeout=5,
        )
        await stub.Assess(
            pb.AssessRequest(token=token, expected_action="login"),
            metadata=(("traceparent", header),),
            timeout=5,
        )
        await stub.Annotate(
            pb.AnnotateRequest(
                assessment_name=first.assessment_name, annotation=pb.ANNOTATION_LEGITIMATE
            ),
            metadata=(("traceparent", header),),
            timeout=5,
        )
        for _ in range(3):
            await health_pb2_grpc.HealthStub(channel).Check(
                health_pb2.HealthCheckRequest(), timeout=5
            )
    return str(first.assessment_name)


def log_lines(process: Process) -> list[str]:
    return [line for line in process.lines if "recaptcha-sidecar serving on" not in line]


async def test_json_lines_with_trace_ids_and_one_access_line_per_rpc(
    emulator: EmulatorHandle,
) -> None:
    """Traces go to a real OTLP receiver; each access line names the server span it belongs
    to, so a log backend can join the two."""
    receiver = start_grpc_receiver()
    process = start(
        emulator,
        env={"OTEL_EXPORTER_OTLP_ENDPOINT": receiver.endpoint, "OTEL_BSP_SCHEDULE_DELAY": "50"},
    )
    trace_id = secrets.token_hex(16)
    try:
        await calls(process, trace_id)
        assert wait_until(lambda: sum('"sidecar.access"' in line for line in process.lines) >= 3), (
            process.output()
        )
    finally:
        assert process.terminate() == 0
        spans = receiver.spans()
        receiver.close()
    records = [json.loads(line) for line in log_lines(process)]
    for record in records:
        assert {"time", "level", "logger", "message"} <= set(record), record
    access = [r for r in records if r["logger"] == "sidecar.access"]
    assert [(r["rpc_method"], r["code"]) for r in access] == [
        ("Assess", "OK"),
        ("Assess", "OK"),
        ("Annotate", "OK"),
    ]
    assert [r.get("token_status") for r in access] == ["VALID", "DUPLICATE", None]
    assert [r.get("verdict") for r in access] == ["PASSED", "FAILED_ENFORCE", None]
    assert access[2]["delivery"] == "DELIVERED"
    assert all(r["trace_id"] == trace_id for r in access)
    servers = [s.span_id for s in spans if s.is_server and s.trace_id == trace_id]
    assert sorted(r["span_id"] for r in access) == sorted(servers)
    assert all(isinstance(r["duration_ms"], float) and r["duration_ms"] > 0 for r in access)
    assert all(r["action"] == "other" for r in access[:2]), "no policy entry: bounded label"


async def test_access_lines_without_tracing_have_no_trace_ids(emulator: EmulatorHandle) -> None:
    process = start(emulator, "--log-level", "INFO")
    try:
        await calls(process, secrets.token_hex(16))
        assert wait_until(lambda: sum('"sidecar.access"' in line for line in process.lines) >= 3)
    finally:
        assert process.terminate() == 0
    access = [json.loads(line) for line in process.lines if '"sidecar.access"' in line]
    assert len(access) == 3
    assert all("trace_id" not in record for record in access), "nothing is traced"


async def test_warning_level_silences_access_lines_and_text_format_is_plain(
    emulator: EmulatorHandle,
) -> None:
    quiet = start(emulator, "--log-level", "WARNING")
    try:
        await calls(quiet, secrets.token_hex(16))
    finally:
        assert quiet.terminate() == 0
    assert log_lines(quiet) == [], quiet.output()

    text = start(emulator, "--log-format", "text")
    try:
        await calls(text, secrets.token_hex(16))
        assert wait_until(lambda: sum("sidecar.access rpc" in line for line in text.lines) >= 3)
    finally:
        assert text.terminate() == 0
    lines = log_lines(text)
    assert lines and not any(line.startswith("{") for line in lines)
    assert any("rpc_method=Assess" in line and "code=OK" in line for line in lines)
