"""Profile one scenario's server under saturation with py-spy: where does a request's CPU go?

`python -m bench.profile assess-miss` starts the emulator and the scenario's server as the
benchmark does, records the server with py-spy (sampling, from outside the process, so the
profile costs the server nothing) while ghz saturates it, and prints the functions with the most
samples, by own time and by time including callees, plus a share per area (this project's
code, grpc, asyncio, protobuf). `--native` adds the C/Cython frames; `--svg` writes a
flame graph. Needs py-spy (`pip install -e '.[bench]'`) and ptrace rights over the child
(root, or kernel.yama.ptrace_scope=0).
"""

from __future__ import annotations

import argparse
import collections
import shutil
import subprocess
import sys
import time
from pathlib import Path

from bench.run import Bench
from bench.scenarios import SCENARIOS

AREAS = (
    ("sidecar (this project)", ("sidecar/",)),
    ("bench", ("bench/",)),
    ("grpc", ("grpc/", "cygrpc", "_cython")),
    ("asyncio", ("asyncio/",)),
    ("protobuf", ("google/protobuf",)),
    ("logging", ("logging/",)),
)


def summarize(raw: Path, top: int) -> str:
    own: collections.Counter[str] = collections.Counter()
    inclusive: collections.Counter[str] = collections.Counter()
    areas: collections.Counter[str] = collections.Counter()
    total = 0
    for line in raw.read_text().splitlines():
        stack, _, count = line.rpartition(" ")
        if not stack:
            continue
        samples = int(count)
        total += samples
        frames = stack.split(";")
        own[frames[-1]] += samples
        for frame in set(frames):
            inclusive[frame] += samples
        leaf = frames[-1]
        area = next((name for name, keys in AREAS if any(k in leaf for k in keys)), "other")
        areas[area] += samples
    if not total:
        return "no samples"
    out = [f"{total} samples"]
    out.append("own time by area (leaf frame):")
    out += [f"  {n / total:6.1%}  {name}" for name, n in areas.most_common()]
    out.append(f"top {top} by own time:")
    out += [f"  {n / total:6.1%}  {frame}" for frame, n in own.most_common(top)]
    out.append(f"top {top} project frames by inclusive time:")
    project = [(f, n) for f, n in inclusive.most_common() if "sidecar/" in f or "bench/" in f]
    out += [f"  {n / total:6.1%}  {frame}" for frame, n in project[:top]]
    return "\n".join(out)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("scenario", choices=[s.name for s in SCENARIOS])
    parser.add_argument("--seconds", type=float, default=8.0)
    parser.add_argument("--rate", type=int, default=0, help="fixed rate instead of saturation")
    parser.add_argument("--top", type=int, default=25)
    parser.add_argument("--native", action="store_true", help="include C/Cython frames")
    parser.add_argument("--svg", type=Path, help="also write a flame graph here")
    parser.add_argument("--raw", type=Path, help="keep the collapsed stacks here")
    args = parser.parse_args()
    py_spy = shutil.which("py-spy") or str(Path(sys.executable).parent / "py-spy")
    scenario = next(s for s in SCENARIOS if s.name == args.scenario)
    bench = Bench(
        argparse.Namespace(
            seconds=args.seconds, rate_seconds=args.seconds, rounds=1, load=50, keep=False
        )
    )
    try:
        server = bench.start(scenario)
        bench.servers[scenario.name] = server
        if server.hop is None:
            print("the direct baseline has no hop to profile", file=sys.stderr)
            return 2
        warm = bench._data(scenario, server, 500)
        bench._load(scenario, server, warm, 20, total=500)
        raw = args.raw or bench.work / "profile.raw"
        record = [py_spy, "record", "--pid", str(server.hop.pid), "--rate", "250"]
        record += ["--duration", str(round(args.seconds))]
        # Native frames need the process paused per sample; Python-only sampling does not.
        record += ["--native"] if args.native else ["--nonblocking"]
        spy = subprocess.Popen([*record, "--format", "raw", "--output", str(raw)])
        svg = None
        if args.svg:
            svg = subprocess.Popen([*record, "--format", "flamegraph", "--output", str(args.svg)])
        time.sleep(0.5)
        phase = bench.measure(scenario, server, rps=args.rate)
        spy.wait(60)
        if svg:
            svg.wait(60)
        print(
            f"{scenario.name}: {phase.rps:.0f} req/s, p50 {phase.p50:.2f} ms, "
            f"p99 {phase.p99:.2f} ms, CPU {phase.cpu_hop or 0:.3f} s per 1k requests"
        )
        print(summarize(raw, args.top))
    finally:
        bench.close()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
