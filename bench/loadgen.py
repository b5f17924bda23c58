"""The load generator: ghz, a Go gRPC benchmarking tool, run as its own process.

It is installed once with `go install` at a pinned version into `.tools/bin` (git-ignored) and
reused; each measurement is one ghz run whose JSON report (with per-request details) is parsed
here into throughput and latency percentiles.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

from bench.procs import ROOT

GHZ_MODULE = "github.com/bojand/ghz/cmd/ghz"
GHZ_VERSION = "v0.121.0"
TOOLS = ROOT / ".tools" / "bin"


class LoadGenError(RuntimeError):
    """ghz could not be installed or did not produce a report."""


def ensure_ghz() -> Path:
    """The pinned ghz binary, installed on first use (about half a minute with Go's caches)."""
    binary = TOOLS / "ghz"
    stamp = TOOLS / ".ghz-version"
    if binary.exists() and stamp.exists() and stamp.read_text().strip() == GHZ_VERSION:
        return binary
    go = shutil.which("go") or (
        "/usr/local/go/bin/go" if Path("/usr/local/go/bin/go").exists() else None
    )
    if go is None:
        raise LoadGenError("ghz needs Go (https://go.dev/dl/) to be installed: `go` not found")
    TOOLS.mkdir(parents=True, exist_ok=True)
    env = {**os.environ, "GOBIN": str(TOOLS), "GOFLAGS": "-mod=mod", "CGO_ENABLED": "0"}
    done = subprocess.run(
        [go, "install", f"{GHZ_MODULE}@{GHZ_VERSION}"],
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )
    if done.returncode != 0 or not binary.exists():
        raise LoadGenError(f"go install {GHZ_MODULE}@{GHZ_VERSION} failed:\n{done.stderr}")
    stamp.write_text(GHZ_VERSION + "\n")
    return binary


@dataclass
class Load:
    """One ghz run, reduced to what the report needs."""

    count: int  # requests answered OK
    errors: dict[str, int]  # status → count, for everything not OK
    seconds: float
    rps: float  # OK answers per second over the run
    latencies_ms: list[float]  # per OK request, sorted

    def percentile(self, q: float) -> float:
        """Nearest-rank percentile, q in [0, 100]."""
        if not self.latencies_ms:
            return float("nan")
        rank = max(1, min(len(self.latencies_ms), round(q / 100 * len(self.latencies_ms) + 0.5)))
        return self.latencies_ms[rank - 1]


def run(
    ghz: Path,
    *,
    protoset: Path,
    call: str,
    target: str,
    data: Path,
    concurrency: int,
    connections: int = 1,
    total: int = 0,
    seconds: float = 0.0,
    rps: int = 0,
    report: Path,
) -> Load:
    """Send exactly `total` requests, or send for `seconds` (ghz's `--max-duration` would
    ignore `--total`, so it is one or the other), `concurrency` at a time, unthrottled or at
    `rps` per second. Requests still in flight when the time is up are left out of the
    figures (`--duration-stop=ignore`)."""
    if bool(total) == bool(seconds):
        raise ValueError("give either total or seconds")
    args = [
        str(ghz),
        "--insecure",
        "--protoset",
        str(protoset),
        "--call",
        call,
        "--binary-file",
        str(data),
        "--concurrency",
        str(concurrency),
        "--connections",
        str(connections),
        "--timeout",
        "10s",
        "--format",
        "json",
        "--output",
        str(report),
    ]
    if total:
        args += ["--total", str(total)]
    else:
        args += ["--duration", f"{seconds:.3f}s", "--duration-stop", "ignore"]
    if rps:
        args += ["--rps", str(rps)]
    done = subprocess.run([*args, target], capture_output=True, text=True, check=False)
    if done.returncode != 0 or not report.exists():
        raise LoadGenError(f"ghz failed ({done.returncode}): {done.stderr.strip()[-2000:]}")
    result = json.loads(report.read_text())
    latencies = []
    errors: dict[str, int] = {}
    for item in result.get("details") or ():
        status = item.get("status") or "OK"
        if status == "OK" and not item.get("error"):
            latencies.append(item["latency"] / 1e6)
        else:
            errors[status] = errors.get(status, 0) + 1
    latencies.sort()
    seconds = result["total"] / 1e9
    return Load(
        count=len(latencies),
        errors=errors,
        seconds=seconds,
        rps=len(latencies) / seconds if seconds else 0.0,
        latencies_ms=latencies,
    )
