"""Each language's generated client calls a real sidecar end to end.

One sidecar (embedded emulator, no credentials) serves this module on a loopback port and a
Unix socket. Each language's own end-to-end test (clients/<lang>) then runs as a subprocess
with RECAPTCHA_SIDECAR_TARGET and RECAPTCHA_SIDECAR_UDS set: it assesses a fresh token,
repeats it, annotates the assessment and reads grpc.health.v1, over both addresses, and
exercises one of the newer fields (Go: `client_type`; Java: `express`; Python:
`sms_toll_fraud_risk`; Node: `SearchRelatedAccounts`). The sidecar has a web and an express
key (`SITE_KEYS`), so a request without a client type uses the web key, and encrypts account
ids (deterministic-encryption), so related accounts come back decrypted.

The toolchains' dependencies must be in place first (`bash scripts/ci-clients.sh deps`). A
language whose toolchain (go, mvn, npm) is missing is skipped, except under CI, where it fails.
"""

from __future__ import annotations

import base64
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc

from tests.support.network import free_port

ROOT = Path(__file__).resolve().parents[2]
CLIENTS = ROOT / "clients"
SIDECAR = ROOT / ".venv" / "bin" / "recaptcha-sidecar"
STARTUP_TIMEOUT_S = 30.0
STOP_TIMEOUT_S = 15.0
# What the clients' tests rely on: a web key only (an Android client type is KEYS_MISSING) and
# an express key.
SITE_KEYS = '{"web": "e2e-web-key", "express": "e2e-express-key"}'


@dataclass(frozen=True)
class Sidecar:
    tcp: str  # 127.0.0.1:PORT
    uds: str  # unix:///path/sidecar.sock
    log: Path


@dataclass(frozen=True)
class Client:
    tool: str  # the executable that must be on PATH
    cwd: Path
    argv: list[str]
    timeout_s: float


CLIENT_TESTS = {
    "go": Client("go", CLIENTS / "go", ["go", "test", "-count=1", "-v", "./e2e/"], 300),
    "java": Client(
        "mvn",
        CLIENTS / "java",
        ["mvn", "-B", "--no-transfer-progress", "test", "-Dtest=EndToEndTest"],
        300,
    ),
    "node": Client("npm", CLIENTS / "node", ["npm", "test", "--silent"], 180),
    "python": Client(
        sys.executable,
        ROOT,
        [sys.executable, "-m", "pytest", "-q", "-s", "-p", "no:cacheprovider", "clients/python"],
        120,
    ),
}


def _serving(target: str) -> bool:
    with grpc.insecure_channel(target) as channel:
        try:
            reply = health_pb2_grpc.HealthStub(channel).Check(
                health_pb2.HealthCheckRequest(), timeout=1.0
            )
        except grpc.RpcError:
            return False
    return reply.status == health_pb2.HealthCheckResponse.SERVING


def _tail(path: Path, lines: int = 40) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return "(no log)"


@pytest.fixture(scope="module")
def sidecar() -> Iterator[Sidecar]:
    if not SIDECAR.exists():
        pytest.fail(f"{SIDECAR} is missing: run `make` targets that install the venv first")
    # A short directory: a Unix socket path must fit in 108 bytes.
    workdir = Path(tempfile.mkdtemp(prefix="rs-clients-"))
    tcp = f"127.0.0.1:{free_port()}"
    uds = f"unix://{workdir}/sidecar.sock"
    log = workdir / "sidecar.log"
    with log.open("wb") as out:
        proc = subprocess.Popen(
            [str(SIDECAR), "serve", "--emulator", "--listen", tcp, "--listen", uds],
            cwd=workdir,
            env={
                **os.environ,
                "RECAPTCHA_SIDECAR_SITE_KEYS": SITE_KEYS,
                "RECAPTCHA_SIDECAR_ACCOUNT_ID_PROTECTION": "deterministic-encryption",
                "RECAPTCHA_SIDECAR_ACCOUNT_ID_KEY": base64.b64encode(os.urandom(64)).decode(),
            },
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    try:
        deadline = time.monotonic() + STARTUP_TIMEOUT_S
        while not _serving(tcp):
            if proc.poll() is not None:
                pytest.fail(f"sidecar exited with {proc.returncode}:\n{_tail(log)}")
            if time.monotonic() > deadline:
                pytest.fail(f"sidecar not SERVING after {STARTUP_TIMEOUT_S}s:\n{_tail(log)}")
            time.sleep(0.2)
        yield Sidecar(tcp=tcp, uds=uds, log=log)
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(timeout=STOP_TIMEOUT_S)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(timeout=5)
        shutil.rmtree(workdir, ignore_errors=True)


@pytest.mark.timeout(360)
@pytest.mark.parametrize("language", sorted(CLIENT_TESTS))
def test_client_end_to_end(language: str, sidecar: Sidecar) -> None:
    client = CLIENT_TESTS[language]
    if shutil.which(client.tool) is None:
        message = f"{client.tool} is not on PATH"
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message)
    env = {
        **os.environ,
        "RECAPTCHA_SIDECAR_TARGET": sidecar.tcp,
        "RECAPTCHA_SIDECAR_UDS": sidecar.uds,
    }
    try:
        result = subprocess.run(
            client.argv,
            cwd=client.cwd,
            env=env,
            stdin=subprocess.DEVNULL,
            capture_output=True,
            text=True,
            timeout=client.timeout_s,
            check=False,
        )
    except subprocess.TimeoutExpired as exc:
        partial = exc.stdout or ""
        output = partial.decode(errors="replace") if isinstance(partial, bytes) else partial
        pytest.fail(
            f"{language}: {' '.join(client.argv)} did not finish in {client.timeout_s}s\n"
            f"{output}\n--- sidecar log ---\n{_tail(sidecar.log)}"
        )
    output = f"{result.stdout}\n{result.stderr}"
    assert result.returncode == 0, (
        f"{language}: {' '.join(client.argv)} exited {result.returncode} (toolchain"
        f" dependencies come from `bash scripts/ci-clients.sh deps`)\n{output}\n"
        f"--- sidecar log ---\n{_tail(sidecar.log)}"
    )
    # Each client test skips itself without the addresses; make sure both really ran.
    lines = output.splitlines()
    for address in (sidecar.tcp, sidecar.uds):
        assert any("e2e ok" in line and address in line for line in lines), (
            f"{language}: no 'e2e ok' line for {address}: was the test skipped?\n{output}"
        )
