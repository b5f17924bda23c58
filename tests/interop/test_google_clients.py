"""Google's own client libraries, nobody here wrote them, against a running sidecar on the
emulator: each changed only in its construction (the sidecar's endpoint, an insecure channel,
no credentials), each in its own toolchain and process (tests/interop/google/<language>).

Each creates an assessment (valid, score, action), creates it again (DUPE with no name, and
the emulator counted one call), annotates it, reads the sidecar's decision headers from the
response metadata, and calls a method the sidecar does not serve (UNIMPLEMENTED naming the
two it does). Node runs twice: over gRPC and over its HTTP/1.1 JSON transport (`fallback:
true`) against the REST face on the HTTP listener, which sends enums as numbers and asks for
them back so (`$alt=json;enum-encoding=int`) and exposes no response headers. Python's library
has no REST transport, Go's v2.29.1 no REST client and Java's 3.55.0 no HttpJson stub for this
service, so theirs run over gRPC only. The toolchains' dependencies come from
`scripts/ci-interop.sh` (run by `make test`); a missing toolchain fails the test, it is never
skipped.
"""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from sidecar.emulator.tokens import mint_token
from tests.conftest import EmulatorHandle, SidecarFactory

ROOT = Path(__file__).resolve().parents[2]
HERE = Path(__file__).resolve().parent / "google"
PROJECT = "interop-project"
SITE_KEY = "interop-site-key"
RUN_TIMEOUT_S = 180.0

pytestmark = pytest.mark.interop


@dataclass(frozen=True)
class Client:
    tool: str  # what must be on PATH
    cwd: Path
    argv: tuple[str, ...]


def _java_argv() -> tuple[str, ...]:
    target = HERE / "java" / "target"
    classpath = (target / "classpath.txt").read_text().strip() if target.exists() else ""
    return ("java", "-cp", f"{target / 'classes'}{os.pathsep}{classpath}", "interop.Interop")


CLIENTS = {
    "python": Client(sys.executable, HERE / "python", (sys.executable, "interop.py")),
    "go": Client("go", HERE / "go", ("go", "run", ".")),
    "node": Client("node", HERE / "node", ("node", "interop.js")),
    "java": Client("java", HERE / "java", ()),
}


async def run_client(language: str, env: dict[str, str]) -> dict[str, Any]:
    """Run one language's program; its JSON answer."""
    client = CLIENTS[language]
    if shutil.which(client.tool) is None:
        pytest.fail(f"{language}: {client.tool} is not on PATH (make test installs it)")
    argv = client.argv or _java_argv()
    environment = {**os.environ, "GOFLAGS": "-mod=readonly", **env}
    process = await asyncio.create_subprocess_exec(
        *argv,
        cwd=client.cwd,
        env=environment,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    try:
        out, err = await asyncio.wait_for(process.communicate(), RUN_TIMEOUT_S)
    except TimeoutError:
        process.kill()
        await process.wait()
        pytest.fail(f"{language}: no answer in {RUN_TIMEOUT_S} s")
    if process.returncode != 0:
        pytest.fail(f"{language} exited {process.returncode}:\n{err.decode()[-4000:]}")
    lines = [line for line in out.decode().splitlines() if line.startswith("{")]
    assert lines, f"{language} printed no answer:\n{out.decode()}\n{err.decode()[-2000:]}"
    answer: dict[str, Any] = json.loads(lines[-1])
    return answer


# (language, transport): every client over gRPC, and Node's HTTP transport on the REST face.
RUNS = [*((language, "grpc") for language in sorted(CLIENTS)), ("node", "rest")]


@pytest.mark.parametrize(("language", "mode"), RUNS, ids=[f"{lang}-{mode}" for lang, mode in RUNS])
async def test_googles_client_moves_to_the_sidecar_by_its_endpoint(
    language: str, mode: str, make_sidecar: SidecarFactory, emulator: EmulatorHandle
) -> None:
    sidecar = await make_sidecar(project=PROJECT, http_listen=["127.0.0.1:0"])
    assert sidecar.sidecar.http is not None
    token = mint_token(action="login", score=0.7, site_key=SITE_KEY)
    answer = await run_client(
        language,
        {
            "SIDECAR": sidecar.tcp,
            "SIDECAR_HTTP": sidecar.sidecar.http.addresses[0],
            "MODE": mode,
            "PARENT": f"projects/{PROJECT}",
            "TOKEN": token,
            "SITE_KEY": SITE_KEY,
        },
    )
    first, again = answer["first"], answer["again"]
    assert first["valid"] is True, answer
    assert first["score"] == pytest.approx(0.7, abs=1e-6)
    assert first["action"] == "login"
    assert first["name"].startswith("projects/") and "/assessments/" in first["name"]
    assert again["valid"] is False
    assert again["invalid_reason"] == "DUPE"
    assert again["name"] == ""
    assert await emulator.control.calls_for(token) == 1
    if mode == "grpc":  # Node's HTTP transport exposes no response headers
        assert first["headers"]["x-recaptcha-allowed"] == "true"
        assert first["headers"]["x-recaptcha-token-status"] == "VALID"
        assert first["headers"]["x-recaptcha-verdict"] == "PASSED"
        assert first["headers"]["x-recaptcha-assessment"] == first["name"]
        assert again["headers"]["x-recaptcha-allowed"] == "false"
        assert again["headers"]["x-recaptcha-token-status"] == "DUPLICATE"

    assert answer["annotate"] == "OK"
    annotations = (await emulator.control.stats())["annotations"]
    sent = [a for a in annotations if a["name"] == first["name"]]
    assert [(a["annotation"], a["reasons"]) for a in sent] == [
        ("LEGITIMATE", ["PASSED_TWO_FACTOR"])
    ]

    assert "UNIMPLEMENTED" in answer["list_keys"].upper() or "12" in answer["list_keys"]
    assert "CreateAssessment" in answer["list_keys"]
    assert "AnnotateAssessment" in answer["list_keys"]
