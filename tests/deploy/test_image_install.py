"""The image's install, without Docker: scripts/image-install.sh (the Dockerfile's build stage
runs the same script) into a fresh virtual environment, from requirements.lock and the project
wheel; then the installed command starts on the emulator and answers health and Assess.

What this cannot prove without a container engine: the base image, the COPY of the
environment into the runtime stage, the numeric user and the read-only root file system."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc
from recaptcha.sidecar.v1 import sidecar_pb2 as pb
from recaptcha.sidecar.v1 import sidecar_pb2_grpc

from sidecar.emulator import mint_token
from tests.support.processes import ROOT, Process

# Installing ~30 wheels and building one (from the pip cache when warm) on a shared machine.
pytestmark = pytest.mark.timeout(300)


@pytest.fixture(scope="module")
def image_env(tmp_path_factory: pytest.TempPathFactory) -> Path:
    venv = tmp_path_factory.mktemp("image") / "opt-recaptcha-sidecar"
    done = subprocess.run(
        ["bash", str(ROOT / "scripts/image-install.sh"), str(venv), str(ROOT)],
        env={**os.environ, "PYTHON": sys.executable},
        capture_output=True,
        text=True,
        timeout=280,
    )
    assert done.returncode == 0, (
        f"image install failed (is requirements.lock current? `make lock`):\n"
        f"{done.stdout}{done.stderr}"
    )
    return venv


def canonical(name: str) -> str:
    """PEP 503 names: pip prints typing_extensions, the lock typing-extensions."""
    return re.sub(r"[-_.]+", "-", name).lower()


def image_environment(venv: Path) -> dict[str, str]:
    """What the runtime stage sets, and nothing from this test run's Python."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PYTHON", "VIRTUAL_ENV"))}
    return {
        **env,
        "PATH": f"{venv}/bin:{env.get('PATH', '')}",
        "PYTHONDONTWRITEBYTECODE": "1",
        "PYTHONUNBUFFERED": "1",
    }


@pytest.fixture
def started(image_env: Path, tmp_path: Path) -> Iterator[Process]:
    socket = tmp_path / "run/sidecar.sock"
    process = Process(
        [
            str(image_env / "bin/recaptcha-sidecar"),
            "serve",
            "--emulator",
            "--listen",
            f"unix://{socket}",
            "--listen",
            "127.0.0.1:0",
            "--health-listen",
            "127.0.0.1:0",
        ],
        ready="recaptcha-sidecar serving on",
        env=image_environment(image_env),
    )
    yield process
    process.terminate()


def test_environment_holds_only_the_lock_and_the_project(image_env: Path) -> None:
    python = image_env / "bin/python"
    where = subprocess.run(
        [
            python,
            "-c",
            "import sidecar, recaptcha.sidecar.v1 as v; print(sidecar.__file__, v.__file__)",
        ],
        cwd=image_env,
        env=image_environment(image_env),
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    ).stdout.split()
    assert all(path.startswith(str(image_env)) for path in where), "imported from the source tree"
    assert not (image_env / "bin/pip").exists(), "no pip in the runtime environment"
    listed = subprocess.run(
        [sys.executable, "-m", "pip", "--python", python, "list", "--format=freeze"],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    ).stdout
    installed = {canonical(line.split("==")[0]) for line in listed.split()}
    locked = {
        canonical(line.split("==")[0])
        for line in (ROOT / "requirements.lock").read_text().splitlines()
        if "==" in line and not line.startswith((" ", "#"))
    }
    assert installed - locked == {"recaptcha-sidecar"}, "one project wheel, stubs inside"


def test_installed_sidecar_serves_health_and_assess(started: Process) -> None:
    health_line = next(line for line in started.lines if "health on" in line)
    health_address = health_line.split(" on ", 1)[1].strip()
    with grpc.insecure_channel(health_address) as channel:
        answer = health_pb2_grpc.HealthStub(channel).Check(
            health_pb2.HealthCheckRequest(service="recaptcha.sidecar.v1.VerificationService"),
            timeout=10,
        )
    assert answer.status == health_pb2.HealthCheckResponse.SERVING
    for address in started.addresses():
        with grpc.insecure_channel(address) as channel:
            stub = sidecar_pb2_grpc.VerificationServiceStub(channel)
            token = mint_token(score=0.9, action="login")
            request = pb.AssessRequest(token=token, expected_action="login")
            assert stub.Assess(request, timeout=10).allowed
    assert started.terminate() == 0
