"""`make run`, the README's first command: the emulator on the README's addresses by default;
with ARGS="--config FILE" the file decides (its listen), not the Makefile's flags."""

from __future__ import annotations

import os
import signal
import subprocess
import time
from pathlib import Path

from tests.support.processes import ROOT


def _dry_run(*make_args: str) -> str:
    """The command `make run` would run (make -n: nothing is started or installed)."""
    done = subprocess.run(
        ["make", "-n", "--no-print-directory", "run", *make_args],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    return done.stdout.strip().splitlines()[-1]


def test_default_is_the_emulator_on_the_readme_addresses() -> None:
    command = _dry_run()
    assert command.endswith(
        "recaptcha-sidecar serve --emulator --listen 127.0.0.1:50051 "
        "--listen unix:///tmp/recaptcha-sidecar.sock"
    ), command


def test_a_config_file_decides_where_make_run_listens(tmp_path: Path) -> None:
    socket = tmp_path / "from-the-file.sock"
    config = tmp_path / "my.yaml"
    config.write_text(f"emulator: true\nlisten: ['unix://{socket}']\n")
    assert "--listen" not in _dry_run(f"ARGS=--config {config}")
    process = subprocess.Popen(
        ["make", "--no-print-directory", "run", f"ARGS=--config {config}"],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,  # make and the sidecar it starts: one group to stop
    )
    try:
        assert process.stdout is not None
        deadline = time.monotonic() + 60
        ready = ""
        for line in process.stdout:
            if "recaptcha-sidecar serving on" in line:
                ready = line.strip()
                break
            assert time.monotonic() < deadline, "make run did not start"
        assert ready.split(" on ", 1)[1].split() == [f"unix://{socket}"], ready
    finally:
        os.killpg(process.pid, signal.SIGTERM)
        process.wait(30)
