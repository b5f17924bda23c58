"""What a new user meets in the first hour: a DEBUG log without other libraries' noise, a
replay store URL error that names every scheme, --version, the built-in client. (A taken
port: tests/integration/test_server.py.)"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from sidecar.config import ConfigError, load_settings
from tests.support.processes import ROOT


def _serve_briefly(*args: str, env: dict[str, str] | None = None) -> str:
    """`serve` until it has started and stopped (SIGTERM after its ready line): all it wrote."""
    process = subprocess.Popen(
        [sys.executable, "-m", "sidecar", "serve", "--emulator", "--log-format", "text", *args],
        cwd=ROOT,
        env={**os.environ, **(env or {})},
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    assert process.stdout is not None
    lines = []
    for line in process.stdout:
        lines.append(line)
        if "serving on" in line:
            process.terminate()
    process.wait(30)
    return "".join(lines)


def test_debug_log_holds_our_lines_and_no_library_noise() -> None:
    out = _serve_briefly("--listen", "127.0.0.1:0", "--log-level", "DEBUG")
    assert " DEBUG sidecar." in out or " INFO sidecar." in out
    assert "Loaded running loop" not in out and " DEBUG grpc." not in out, out


def test_library_noise_when_asked_for() -> None:
    out = _serve_briefly(
        "--listen",
        "127.0.0.1:0",
        "--log-level",
        "DEBUG",
        env={"RECAPTCHA_SIDECAR_LIBRARY_LOG_LEVEL": "DEBUG"},
    )
    assert "Loaded running loop" in out


@pytest.mark.parametrize("url", ["ftp://store", "redis-ish"])
def test_replay_store_url_error_names_every_scheme(url: str) -> None:
    with pytest.raises(ConfigError) as caught:
        load_settings(None, emulator=True, replay_store=url)
    message = str(caught.value)
    for scheme in ("memory://", "redis://", "rediss://", "unix://"):
        assert scheme in message, message


def test_version_is_the_one_in_VERSION() -> None:
    done = subprocess.run(
        [sys.executable, "-m", "sidecar", "--version"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=30,
        check=True,
    )
    assert done.stdout.strip() == f"recaptcha-sidecar {(ROOT / 'VERSION').read_text().strip()}"


def _cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "sidecar", *args],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_built_in_client_json_and_its_errors(tmp_path: Path) -> None:
    import json

    from sidecar.emulator import mint_token
    from tests.support.processes import sidecar_process

    socket_path = tmp_path / "s.sock"
    sidecar = sidecar_process("--emulator", "--listen", f"unix://{socket_path}")
    try:
        target = f"unix://{socket_path}"
        token = mint_token(score=0.9, action="login")
        first = _cli("assess", "--target", target, "--token", token, "--action", "login", "--json")
        assert first.returncode == 0, first.stderr
        answer = json.loads(first.stdout)
        assert (answer["allowed"], answer["token_status"]) == (True, "TOKEN_STATUS_VALID")
        bad = _cli(
            "annotate",
            "--target",
            target,
            "--assessment",
            answer["assessment_name"],
            "--annotation",
            "NOPE",
        )
        assert bad.returncode == 2 and "expected one of LEGITIMATE" in bad.stderr
        good = _cli(
            "annotate",
            "--target",
            target,
            "--assessment",
            answer["assessment_name"],
            "--annotation",
            "legitimate",
            "--reason",
            "PASSED_TWO_FACTOR",
            "--json",
        )
        assert json.loads(good.stdout) == {"delivery": "ANNOTATION_DELIVERY_DELIVERED"}
    finally:
        sidecar.terminate()
    gone = _cli("assess", "--target", f"unix://{socket_path}", "--token", "x", "--timeout", "1")
    assert gone.returncode == 1
    assert gone.stderr.startswith("recaptcha-sidecar assess: ") and "Traceback" not in gone.stderr
