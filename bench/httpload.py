"""The HTTP load generator: wrk (C, epoll, one thread drives every connection), for the rows
that call the sidecar over HTTP (the Google-compatible REST face).

ghz speaks gRPC only. wrk runs a Lua script (below) that sends the request bodies of a file
one after another, each once, as ghz does with its data file; one wrk thread, so no two
threads send the same fresh token. A fixed rate is approximated by a pause per connection
(`delay()`: connections / rate seconds between a connection's requests). Its report is the
latency distribution (a thousand quantiles, so the runner's percentiles and plot work on it
as on ghz's per-request details) and the count of answers that were not 2xx.
"""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

from bench.loadgen import Load, LoadGenError

QUANTILES = 1000
_SCRIPT = r"""
local bodies, i, pause = {}, 0, 0
local path = os.getenv("BENCH_PATH")
init = function(args)
  for line in io.lines(args[1]) do bodies[#bodies + 1] = line end
  pause = tonumber(args[2]) or 0
end
request = function()
  i = i + 1
  if i > #bodies then i = 1 end
  return wrk.format("POST", path, {["Content-Type"] = "application/json"}, bodies[i])
end
delay = function() return pause end
done = function(summary, latency, requests)
  local q = {}
  for k = 1, QUANTILES do q[k] = latency:percentile(100 * (k - 0.5) / QUANTILES) / 1000 end
  local e = summary.errors
  io.write("BENCH-JSON ", string.format(
    '{"requests":%d,"duration_us":%d,"socket_errors":%d,"non2xx":%d,"quantiles_ms":[%s]}',
    summary.requests, summary.duration, e.connect + e.read + e.write + e.timeout, e.status,
    table.concat(q, ",")), "\n")
end
""".replace("QUANTILES", str(QUANTILES))


def available() -> str | None:
    """None when wrk is installed, else why the HTTP rows cannot run."""
    return None if shutil.which("wrk") else "wrk is not installed (apt-get install wrk)"


def run(
    url: str,
    *,
    path: str,
    bodies: Path,
    connections: int,
    seconds: float,
    rps: int = 0,
    script: Path,
) -> Load:
    """POST each line of `bodies` to `url` + `path` for `seconds`, `connections` at a time,
    unthrottled or at about `rps` per second."""
    wrk = shutil.which("wrk")
    if wrk is None:
        raise LoadGenError("wrk is not installed")
    script.write_text(_SCRIPT)
    pause_ms = round(connections * 1000 / rps) if rps else 0
    done = subprocess.run(
        [
            wrk,
            "-t1",
            f"-c{connections}",
            f"-d{max(1, round(seconds))}s",
            "--timeout",
            "10s",
            "-s",
            str(script),
            url,
            "--",
            str(bodies),
            str(pause_ms),
        ],
        capture_output=True,
        text=True,
        check=False,
        env={"BENCH_PATH": path, "PATH": "/usr/bin:/bin"},
    )
    line = next((x for x in done.stdout.splitlines() if x.startswith("BENCH-JSON ")), None)
    if done.returncode != 0 or line is None:
        raise LoadGenError(f"wrk failed ({done.returncode}): {done.stderr.strip()[-2000:]}")
    report = json.loads(line.removeprefix("BENCH-JSON "))
    bad = report["socket_errors"] + report["non2xx"]
    ok = max(0, report["requests"] - bad)
    elapsed = report["duration_us"] / 1e6
    errors = {
        k: v for k, v in (("non-2xx", report["non2xx"]), ("socket", report["socket_errors"])) if v
    }
    return Load(
        count=ok,
        errors=errors,
        seconds=elapsed,
        rps=ok / elapsed if elapsed else 0.0,
        latencies_ms=sorted(report["quantiles_ms"]),
    )
