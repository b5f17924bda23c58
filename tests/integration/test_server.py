"""The server as a whole: health, reflection, listeners, start-up refusals, real processes."""

from __future__ import annotations

import socket
import subprocess
import sys
from pathlib import Path

import grpc
import pytest
from grpc_health.v1 import health_pb2
from grpc_reflection.v1alpha import reflection_pb2, reflection_pb2_grpc
from recaptcha.sidecar.v1 import sidecar_pb2 as pb
from recaptcha.sidecar.v1 import sidecar_pb2_grpc

from sidecar.config import ConfigError, load_settings
from sidecar.emulator import mint_token
from sidecar.emulator.project import redact
from sidecar.server.listeners import ListenError
from tests.conftest import SidecarFactory, SidecarHandle
from tests.support.google import WEB_KEY, GoogleEmulator
from tests.support.network import free_port
from tests.support.processes import ROOT, emulator_process, sidecar_process


@pytest.mark.parametrize("service", ["", "recaptcha.sidecar.v1.VerificationService"])
async def test_health_serving(sidecar: SidecarHandle, service: str) -> None:
    answer = await sidecar.health.Check(health_pb2.HealthCheckRequest(service=service), timeout=5)
    assert answer.status == health_pb2.HealthCheckResponse.SERVING


async def test_reflection_lists_services_and_serves_the_proto(sidecar: SidecarHandle) -> None:
    channel = grpc.aio.insecure_channel(sidecar.tcp)
    stub = reflection_pb2_grpc.ServerReflectionStub(channel)

    async def ask(
        request: reflection_pb2.ServerReflectionRequest,
    ) -> reflection_pb2.ServerReflectionResponse:
        async for answer in stub.ServerReflectionInfo(iter([request]), timeout=5):
            return answer
        raise AssertionError("no answer")

    listed = await ask(reflection_pb2.ServerReflectionRequest(list_services=""))
    names = {s.name for s in listed.list_services_response.service}
    assert {"recaptcha.sidecar.v1.VerificationService", "grpc.health.v1.Health"} <= names
    described = await ask(
        reflection_pb2.ServerReflectionRequest(
            file_containing_symbol="recaptcha.sidecar.v1.AssessRequest"
        )
    )
    assert described.file_descriptor_response.file_descriptor_proto
    await channel.close()


async def test_port_taken_refuses_to_start(make_sidecar: SidecarFactory, tmp_path: Path) -> None:
    first = await make_sidecar()
    with pytest.raises(ListenError, match=r"cannot listen on 127\.0\.0\.1"):
        await make_sidecar(listen=[first.tcp])


async def test_live_unix_socket_refuses_to_start(make_sidecar: SidecarFactory) -> None:
    first = await make_sidecar()
    with pytest.raises(ListenError, match="another process is serving"):
        await make_sidecar(listen=[first.uds])


async def test_stale_unix_socket_is_replaced(make_sidecar: SidecarFactory, tmp_path: Path) -> None:
    import socket

    path = tmp_path / "stale.sock"
    leftover = socket.socket(socket.AF_UNIX)
    leftover.bind(str(path))  # bound but never listening: what a SIGKILLed process leaves
    leftover.close()
    handle = await make_sidecar(listen=[f"unix://{path}"])
    answer = await handle.stub_for(f"unix://{path}").Assess(pb.AssessRequest(token=""), timeout=5)
    assert answer.token_status == pb.TOKEN_STATUS_MISSING


@pytest.mark.parametrize(
    ("yaml", "key"),
    [
        ("policy:\n  default: {threshold: 2}\n", "policy.default.threshold"),
        ("policy:\n  default: {mode: strict}\n", "policy.default.mode"),
        ("policy:\n  actions:\n    login: {threshhold: 0.7}\n", "policy.actions.login.threshhold"),
        ("upstream_timeout: -1\n", "upstream_timeout"),
        ("listen: [nowhere]\n", "listen"),
        ("replay_store: 'mysql://x'\n", "replay_store"),
    ],
)
def test_bad_config_names_the_key(tmp_path: Path, yaml: str, key: str) -> None:
    config = tmp_path / "bad.yaml"
    config.write_text("emulator: true\n" + yaml)
    with pytest.raises(ConfigError, match=key.replace(".", r"\.")):
        load_settings(config)


def test_bad_config_fails_at_start_with_exit_code(tmp_path: Path) -> None:
    config = tmp_path / "bad.yaml"
    config.write_text("policy:\n  default: {threshold: 2}\n")
    done = subprocess.run(
        [sys.executable, "-m", "sidecar", "serve", "--emulator", "--config", str(config)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert done.returncode == 2
    assert "policy.default.threshold" in done.stderr


def test_precedence_flags_over_env_over_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    config = tmp_path / "c.yaml"
    config.write_text("project: from-file\nsite_key: file-key\nupstream_timeout: 3\n")
    monkeypatch.setenv("RECAPTCHA_SIDECAR_SITE_KEY", "env-key")
    monkeypatch.setenv("RECAPTCHA_SIDECAR_UPSTREAM_TIMEOUT", "4")
    settings = load_settings(config, upstream_timeout=2.5)
    assert (settings.project, settings.site_key, settings.upstream_timeout) == (
        "from-file",
        "env-key",
        2.5,
    )


def test_project_required_without_emulator() -> None:
    with pytest.raises(ConfigError, match="project"):
        load_settings()


async def test_api_key_travels_as_metadata(
    make_google_sidecar: SidecarFactory, google_emulator: GoogleEmulator, tmp_path: Path
) -> None:
    """From the key file to `x-goog-api-key`, over TLS (plaintext upstream carries no
    credentials: `upstream_plaintext` is for local emulators only)."""
    key_file = tmp_path / "key"
    key_file.write_text(google_emulator.api_key + "\n")
    handle = await make_google_sidecar(api_key=None, api_key_file=key_file)
    answer = await handle.stub.Assess(
        pb.AssessRequest(token=mint_token(site_key=WEB_KEY)), timeout=5
    )
    assert answer.token_status == pb.TOKEN_STATUS_VALID, "the emulator accepted the key"
    metadata = (await google_emulator.control.stats())["recent_creates"][-1]["metadata"]
    # The emulator's stats show credentials as a digest prefix, never in clear.
    assert metadata.get("x-goog-api-key") == redact("x-goog-api-key", google_emulator.api_key)
    assert metadata.get("x-goog-request-params") == (f"parent=projects%2F{google_emulator.project}")


def _stub(address: str) -> tuple[grpc.Channel, sidecar_pb2_grpc.VerificationServiceStub]:
    channel = grpc.insecure_channel(address)
    return channel, sidecar_pb2_grpc.VerificationServiceStub(channel)


def _pass_once_then_duplicate(address: str) -> str:
    channel, stub = _stub(address)
    token = mint_token(action="login")
    first = stub.Assess(pb.AssessRequest(token=token, expected_action="login"), timeout=10)
    second = stub.Assess(pb.AssessRequest(token=token, expected_action="login"), timeout=10)
    assert (first.allowed, first.token_status) == (True, pb.TOKEN_STATUS_VALID)
    assert (second.allowed, second.token_status) == (False, pb.TOKEN_STATUS_DUPLICATE)
    annotated = stub.Annotate(
        pb.AnnotateRequest(
            assessment_name=first.assessment_name,
            annotation=pb.ANNOTATION_LEGITIMATE,
            reasons=[pb.ANNOTATION_REASON_PASSED_TWO_FACTOR],
            wait_for_upstream=True,
        ),
        timeout=10,
    )
    assert annotated.delivery in (pb.ANNOTATION_DELIVERY_DELIVERED, pb.ANNOTATION_DELIVERY_QUEUED)
    channel.close()
    return first.assessment_name


def test_serve_with_embedded_emulator_process(tmp_path: Path) -> None:
    socket_path = tmp_path / "s.sock"
    process = sidecar_process(
        "--emulator", "--listen", f"127.0.0.1:{free_port()}", "--listen", f"unix://{socket_path}"
    )
    try:
        tcp, uds = process.addresses()
        _pass_once_then_duplicate(tcp)
        _pass_once_then_duplicate(uds)
    finally:
        assert process.terminate() == 0, process.output()
    assert not socket_path.exists()


def test_sidecar_and_standalone_emulator_in_two_processes() -> None:
    import asyncio

    from sidecar.emulator import EmulatorControl

    emulator = emulator_process("--listen", f"127.0.0.1:{free_port()}")
    try:
        (emulator_address,) = emulator.addresses()
        sidecar = sidecar_process(
            "--project",
            "two-procs",
            "--site-key",
            "two-procs-key",
            "--listen",
            f"127.0.0.1:{free_port()}",
            "--upstream-endpoint",
            emulator_address,
            "--upstream-plaintext",
        )
        try:
            name = _pass_once_then_duplicate(sidecar.addresses()[0])
        finally:
            assert sidecar.terminate() == 0, sidecar.output()

        async def annotated() -> list[str]:
            channel = grpc.aio.insecure_channel(emulator_address)
            stats = await EmulatorControl(channel).stats()
            await channel.close()
            return list(stats["annotated_names"])

        assert name in asyncio.run(annotated())
    finally:
        emulator.terminate()


def test_taken_port_refuses_to_start_as_process() -> None:
    port = free_port()
    first = sidecar_process("--emulator", "--listen", f"127.0.0.1:{port}")
    try:
        done = subprocess.run(
            [
                sys.executable,
                "-m",
                "sidecar",
                "serve",
                "--emulator",
                "--listen",
                f"127.0.0.1:{port}",
            ],
            cwd=ROOT,
            capture_output=True,
            text=True,
            timeout=30,
        )
        assert done.returncode == 2
        # One clear line with the OS's reason, and no add_port.cc line from gRPC's C core.
        assert done.stderr.strip().splitlines() == [
            f"recaptcha-sidecar: cannot listen on 127.0.0.1:{port}: Address already in use"
        ], done.stderr
    finally:
        first.terminate()


def test_the_standalone_emulator_on_a_taken_port_says_so_in_one_line() -> None:
    """As `serve`: the OS's reason on one line, no add_port.cc line from gRPC's C core."""
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        done = subprocess.run(
            [sys.executable, "-m", "sidecar", "emulator", "--listen", f"127.0.0.1:{port}"],
            cwd=ROOT,
            capture_output=True,
            text=True,
            timeout=30,
        )
    assert done.returncode != 0
    lines = (done.stdout + done.stderr).strip().splitlines()
    assert lines == [
        f"recaptcha-sidecar emulator: emulator cannot listen on '127.0.0.1:{port}' "
        "(Address already in use)"
    ], lines


def test_mint_token_command_prints_a_token_the_emulator_accepts() -> None:
    done = subprocess.run(
        [sys.executable, "-m", "sidecar", "mint-token", "--score", "0.3", "--action", "signup"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=30,
        check=True,
    )
    from sidecar.emulator import parse_token

    claims = parse_token(done.stdout.strip())
    assert claims is not None
    assert (claims.score, claims.action) == (pytest.approx(0.3), "signup")


def test_mint_token_rejects_unknown_names_in_one_line() -> None:
    done = subprocess.run(
        [sys.executable, "-m", "sidecar", "mint-token", "--invalid-reason", "NOPE"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert done.returncode == 2
    assert done.stderr.startswith("recaptcha-sidecar mint-token:")
    assert "Traceback" not in done.stderr


def test_emulator_on_taken_port_says_so() -> None:
    port = free_port()
    first = emulator_process("--listen", f"127.0.0.1:{port}")
    try:
        done = subprocess.run(
            [sys.executable, "-m", "sidecar", "emulator", "--listen", f"127.0.0.1:{port}"],
            cwd=ROOT,
            capture_output=True,
            text=True,
            timeout=30,
        )
        assert done.returncode == 1
        assert f"127.0.0.1:{port}" in done.stderr and "Traceback" not in done.stderr
    finally:
        first.terminate()
