"""What a new user meets in the first hour: a DEBUG log without other libraries' noise, a
taken port said in one clear line, a replay store URL error that names every scheme."""

from __future__ import annotations

import os
import socket
import subprocess
import sys

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


def test_taken_port_is_one_clear_line_without_grpc_core_output() -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
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
    assert done.stderr.strip().splitlines() == [
        f"recaptcha-sidecar: cannot listen on 127.0.0.1:{port}: Address already in use"
    ], done.stderr


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
