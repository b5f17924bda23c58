"""Every code block of the README runs as written, or says why it cannot.

Each block carries a `<!-- docs-test: … -->` line above it. Blocks marked "run against `make
run`" run with bash in order, after `make run` (the README's first command, as written) has
started; the `# …` comment that ends a line names what its output must show. They run in a
network, mount and PID namespace of their own (loopback only, a private /tmp, every process
ended with it), so the README's fixed 127.0.0.1:50051 and /tmp/recaptcha-sidecar.sock collide
with nothing else on the machine.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess

import pytest

from tests.support.processes import ROOT

README = ROOT / "README.md"
BLOCK = re.compile(
    r"^(?:<!-- docs-test: (?P<marker>.+?) -->\n)?```(?P<lang>\w*)\n(?P<body>.*?)^```", re.M | re.S
)
RUN = "run against `make run`"


def blocks() -> list[tuple[str | None, str, str]]:
    return [(m["marker"], m["lang"], m["body"]) for m in BLOCK.finditer(README.read_text())]


def test_every_block_is_run_or_says_why_not() -> None:
    found = blocks()
    assert found, "the README has code blocks"
    for marker, lang, body in found:
        assert marker, f"a ```{lang} block without a docs-test marker:\n{body}"
        if marker != RUN:
            assert marker.startswith("not run"), marker
            assert len(marker) > len("not run: ") + 20, f"say why: {marker}"
    assert any(marker == RUN for marker, _, _ in found)


def expectations(body: str) -> list[str]:
    """The `# allowed: true, token_status: DUPLICATE` comments: each part must be printed."""
    wanted = []
    for line in body.splitlines():
        if "  # " in line:
            wanted += [part.strip() for part in line.split("  # ", 1)[1].split(",")]
    return wanted


def private_tmp() -> list[str]:
    """Shell lines giving the namespace an empty /tmp (the README's socket path is there) while
    the checkout stays visible: a clone under /tmp (as CI may make it) is bound back in."""
    lines = ["mount -t tmpfs tmpfs /tmp"]
    if ROOT.is_relative_to("/tmp"):
        lines = [
            "mount -t tmpfs tmpfs /mnt",
            "mkdir /mnt/outer-tmp",
            "mount --bind /tmp /mnt/outer-tmp",
            *lines,
            f"mkdir -p {ROOT}",
            f"mount --bind /mnt/outer-tmp/{ROOT.relative_to('/tmp')} {ROOT}",
            f"cd {ROOT}",
        ]
    return lines


def test_runnable_blocks_run_as_written() -> None:
    for tool in ("unshare", "ip"):
        if shutil.which(tool) is None:
            if os.environ.get("CI"):
                pytest.fail(f"{tool} is needed (util-linux, iproute2)")
            pytest.skip(f"{tool} is not installed")
    runnable = [body for marker, _, body in blocks() if marker == RUN]
    script = "\n".join(
        [
            "set -euo pipefail",
            "ip link set lo up",
            *private_tmp(),
            "make --no-print-directory run > /tmp/make-run.log 2>&1 &",
            "for _ in $(seq 600); do",
            "  grep -q 'serving on' /tmp/make-run.log && break; sleep 0.1",
            "done",
            "grep -q 'serving on' /tmp/make-run.log || { cat /tmp/make-run.log; exit 1; }",
            *(f"bash -euo pipefail <<'README_BLOCK'\n{body}README_BLOCK" for body in runnable),
        ]
    )
    done = subprocess.run(
        ["unshare", "--net", "--mount", "--pid", "--fork", "--mount-proc", "bash", "-c", script],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, f"{done.stdout}\n{done.stderr}"
    for body in runnable:
        for wanted in expectations(body):
            assert wanted in done.stdout, f"{wanted!r} not printed:\n{done.stdout}"
