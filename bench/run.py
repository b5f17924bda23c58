"""`make bench`: the sidecar against its baselines, in one run, on this machine.

1. start the emulator (the upstream) in its own process, and ghz (the load generator);
2. phase one, saturation: for each scenario (bench/scenarios.py) start its server, warm it up,
   check one answer, then let ghz send as fast as the server answers; throughput, CPU seconds
   per 1,000 requests of the server processes (from /proc) and the upstream calls it caused;
3. phase two, fixed rate: every scenario again at one offered rate, half the cache-miss
   sidecar's saturation throughput, so the latency columns compare at equal load: p50/p90/p99
   and the added latency over the direct baseline;
4. memory: bytes per remembered token in the memory replay store, the sidecar's idle and peak RSS;
5. write bench/results/latest.json, latest.md and latest.png.

Figures on a shared machine move between runs; ratios measured in the same run are what count.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import grpc
from google.cloud.recaptchaenterprise_v1.types import Assessment, CreateAssessmentRequest
from recaptcha.sidecar.v1 import sidecar_pb2, sidecar_pb2_grpc

from bench import features, httpload, loadgen, payloads, report
from bench.procs import ROOT, Child, StartError, anon_mib, cpu_seconds, peak_rss_mib, rss_mib
from bench.scenarios import SCENARIOS, Scenario

RESULTS = ROOT / "bench" / "results"
DOCS_PAGE = ROOT / "docs" / "benchmark.md"  # the copy of the latest results the docs show
SIDECAR = [sys.executable, "-m", "sidecar"]
EMULATOR_READY = "recaptcha-emulator listening on"
SIDECAR_READY = "recaptcha-sidecar serving on"
HTTP_READY = "recaptcha-sidecar http on"
MAX_RPS = 8_000  # more than any Python hop here answers; sizes the token files
REPLAY_TOKENS = 1_000  # distinct already-assessed tokens cycled by the replay scenarios
ANNOTATE_NAMES = 2_000
_CONTROL = "/recaptcha.sidecar.emulator.v1.Control/"
REST_PATH = f"/v1/{payloads.PARENT}/assessments"


@dataclass
class Phase:
    """One measurement of one scenario."""

    rps: float
    count: int
    errors: dict[str, int]
    seconds: float
    p50: float
    p90: float
    p99: float
    p999: float
    cpu_hop: float | None  # CPU s per 1,000 requests: proxy or sidecar processes
    cpu_store: float | None  # redis-server, when the scenario uses it
    cpu_upstream: float  # the emulator
    cpu_loadgen: float  # ghz
    upstream_calls_per_request: float
    upstream_dupes: int
    cdf: list[tuple[float, float]]  # (percentile, ms) for the plot
    rounds_rps: list[float] = field(default_factory=list)  # per round, to show the spread
    rounds_p99: list[float] = field(default_factory=list)


@dataclass
class Row:
    scenario: Scenario
    status: str = "ok"  # ok | unavailable | failed
    reason: str = ""
    check: str = ""
    idle_rss_mib: float | None = None
    idle_anon_mib: float | None = None
    peak_rss_mib: float | None = None
    saturation: Phase | None = None
    fixed: Phase | None = None
    notes: list[str] = field(default_factory=list)


class Upstream:
    """The emulator process and its JSON control plane."""

    def __init__(self, work: Path) -> None:
        self.child = Child(
            [sys.executable, "-m", "bench.upstream", "--listen", "127.0.0.1:0"],
            ready=EMULATOR_READY,
            log=work / "emulator.log",
        )
        self.address = self.child.addresses()[0]
        self.channel = grpc.insecure_channel(self.address)
        self._get_stats = self.channel.unary_unary(_CONTROL + "GetStats")
        self._set_faults = self.channel.unary_unary(_CONTROL + "SetFaults")
        self._create = self.channel.unary_unary(
            "/" + payloads.GOOGLE_SERVICE + "/CreateAssessment",
            request_serializer=CreateAssessmentRequest.pb().SerializeToString,
            response_deserializer=Assessment.pb().FromString,
        )

    def stats(self) -> dict[str, Any]:
        stats: dict[str, Any] = json.loads(self._get_stats(b"{}", timeout=30))
        return stats

    def faults(self, knobs: dict[str, float]) -> None:
        """CreateAssessment's fault knobs (a latency for the realistic rows); {} clears."""
        body = {"rpc": "create", "faults": knobs} if knobs else {"clear": True}
        self._set_faults(json.dumps(body).encode(), timeout=30)

    def assessment_names(self, count: int) -> list[str]:
        """Assessments made directly, for Annotate to refer to."""
        names = []
        for start in range(0, count, 200):
            tokens = payloads.mint(min(200, count - start))
            requests = [
                CreateAssessmentRequest.pb().FromString(blob)
                for blob in payloads.create_requests(tokens)
            ]
            futures = [self._create.future(request, timeout=30) for request in requests]
            names.extend(future.result().name for future in futures)
        return names

    def stop(self) -> None:
        self.channel.close()
        self.child.stop()


@dataclass
class Server:
    """What a scenario runs: its hop (absent for the direct baseline) and its target."""

    target: str
    hop: Child | None
    store: Child | None = None
    http: str = ""  # the sidecar's HTTP listener (http://host:port), when it has one


class Bench:
    def __init__(self, args: argparse.Namespace) -> None:
        self.args = args
        self.work = Path(tempfile.mkdtemp(prefix="rsbench-"))  # short: Unix socket paths
        self.ghz = loadgen.ensure_ghz()
        self.protoset = payloads.write_protoset(self.work / "bench.protoset")
        self.upstream = Upstream(self.work)
        self.redis: Child | None = None
        self.otlp: Child | None = None
        self.servers: dict[str, Server] = {}
        self.names: list[str] = []
        self.rate = 0
        self.base_env = {
            key: value
            for key, value in os.environ.items()
            if not key.startswith(("OTEL_", "RECAPTCHA_SIDECAR_"))
        }

    # ---- servers --------------------------------------------------------------------------

    def _redis(self) -> Child:
        if self.redis is None:
            port = _free_port()
            self.redis = Child(
                [
                    "redis-server",
                    "--port",
                    str(port),
                    "--bind",
                    "127.0.0.1",
                    "--save",
                    "",
                    "--appendonly",
                    "no",
                ],
                ready="Ready to accept connections",
                log=self.work / "redis.log",
            )
            self.redis.ready_line = f"redis on 127.0.0.1:{port}"
        return self.redis

    def _otlp(self) -> Child:
        if self.otlp is None:
            self.otlp = Child(
                [sys.executable, "-m", "bench.otlp_sink", "--listen", "127.0.0.1:0"],
                ready="otlp-sink listening on",
                log=self.work / "otlp.log",
            )
        return self.otlp

    def start(self, scenario: Scenario) -> Server:
        if scenario.hop == "direct":
            return Server(self.upstream.address, None)
        log = self.work / f"{scenario.name}.log"
        if scenario.hop == "passthrough":
            child = Child(
                [sys.executable, "-m", "bench.passthrough", "--upstream", self.upstream.address],
                ready="passthrough listening on",
                log=log,
            )
            return Server(child.addresses()[0], child)
        fill: dict[str, str] = {}
        store = None
        if "{redis}" in " ".join(scenario.args):
            store = self._redis()
            fill["redis"] = store.addresses()[0]
        if any("{otlp}" in value for value in scenario.env.values()):
            fill["otlp"] = self._otlp().addresses()[0]
        fill["outbox"] = str(self.work / f"{scenario.name}.sqlite3")
        uds = f"unix://{self.work}/{scenario.name}.sock"
        listen = ["--listen", "127.0.0.1:0", *(["--listen", uds] if scenario.uds else [])]
        child = Child(
            [
                *SIDECAR,
                "serve",
                *listen,
                "--upstream-endpoint",
                self.upstream.address,
                "--upstream-plaintext",
                "--project",
                "bench",
                "--site-key",
                "bench-site-key",
                *(arg.format(**fill) for arg in scenario.args),
            ],
            ready=SIDECAR_READY,
            log=log,
            env={
                **self.base_env,
                **{key: value.format(**fill) for key, value in scenario.env.items()},
            },
        )
        addresses = child.addresses()
        target = next(a for a in addresses if a.startswith("unix:")) if scenario.uds else None
        http = next(
            (
                "http://" + line.split(" on ", 1)[1].split()[0]
                for line in child.output().splitlines()
                if line.startswith(HTTP_READY)
            ),
            "",
        )
        return Server(target or addresses[0], child, store, http)

    # ---- data and checks ------------------------------------------------------------------

    def _call(self, scenario: Scenario) -> str:
        if scenario.workload == "create":
            return payloads.CREATE
        return payloads.ANNOTATE if scenario.workload == "annotate" else payloads.ASSESS

    def _data(self, scenario: Scenario, server: Server, count: int) -> Path:
        """A data file for `count` requests, made right before they are sent."""
        path = self.work / f"{scenario.name}.bin"
        if scenario.workload == "rest-create":
            lines = payloads.rest_bodies(payloads.mint(count))
            path.write_text("\n".join(lines) + "\n")
            return path
        if scenario.workload == "create":
            blobs = payloads.create_requests(payloads.mint(count))
        elif scenario.workload == "assess-miss":
            blobs = payloads.assess_requests(payloads.mint(count))
        elif scenario.workload == "shield":
            blobs = payloads.shield_requests(count)
        elif scenario.workload == "assess-replay":
            # Assessed once now (fresh, so they are still in the store for the whole phase),
            # then presented again and again: every measured call is a replay.
            blobs = payloads.assess_requests(payloads.mint(REPLAY_TOKENS))
            payloads.write_delimited(path, blobs)
            first = self._load(scenario, server, path, 50, total=REPLAY_TOKENS)
            if first.count != REPLAY_TOKENS:
                raise RuntimeError(f"replay seeding answered {first.count}/{REPLAY_TOKENS}")
        else:
            if not self.names:
                self.names = self.upstream.assessment_names(ANNOTATE_NAMES)
            blobs = payloads.annotate_requests(self.names)
        return payloads.write_delimited(path, blobs)

    def _check(self, scenario: Scenario, server: Server) -> str:
        """One call through the Python stubs: is the answer what the scenario means to
        measure (a real VALID assessment, a DUPLICATE, an accepted annotation)?"""
        if scenario.workload == "rest-create":
            return self._check_rest(server)
        with grpc.insecure_channel(server.target) as channel:
            token = payloads.mint(1)[0]
            if scenario.workload == "create":
                blob = payloads.create_requests([token])[0]
                call = channel.unary_unary(
                    "/" + payloads.GOOGLE_SERVICE + "/CreateAssessment",
                    response_deserializer=Assessment.pb().FromString,
                )
                answer = call(blob, timeout=10)
                return "ok" if answer.token_properties.valid else f"not valid: {answer}"
            stub = sidecar_pb2_grpc.VerificationServiceStub(channel)
            if scenario.workload == "annotate":
                name = self.names[0] if self.names else self.upstream.assessment_names(1)[0]
                reply = stub.Annotate(
                    sidecar_pb2.AnnotateRequest(
                        assessment_name=name, annotation=sidecar_pb2.ANNOTATION_LEGITIMATE
                    ),
                    timeout=10,
                )
                return "ok " + sidecar_pb2.AnnotationDelivery.Name(reply.delivery)
            if scenario.workload == "shield":
                return self._check_shield(stub)
            request = sidecar_pb2.AssessRequest(token=token, expected_action=payloads.ACTION)
            first = stub.Assess(request, timeout=10)
            if not (first.allowed and first.token_status == sidecar_pb2.TOKEN_STATUS_VALID):
                return f"fresh token not allowed: {first}"
            if scenario.workload == "assess-replay":
                again = stub.Assess(request, timeout=10)
                if again.allowed or again.token_status != sidecar_pb2.TOKEN_STATUS_DUPLICATE:
                    return f"replay not DUPLICATE: {again}"
            return "ok"

    @staticmethod
    def _check_shield(stub: sidecar_pb2_grpc.VerificationServiceStub) -> str:
        """Each third of the shield workload is answered as meant: MISSING, token_shape:*,
        and (after the first call of the IP) rate_limited:ip."""
        expected = ("token_missing", "token_shape:too_short", "rate_limited:ip")
        seen = []
        for blob in payloads.shield_requests(6):
            request = sidecar_pb2.AssessRequest.FromString(blob)
            seen.append(stub.Assess(request, timeout=10).decided_by)
        if tuple(seen[3:]) != expected or seen[0] != expected[0] or seen[1] != expected[1]:
            return f"shield answers not as meant: {seen}"
        return "ok"

    @staticmethod
    def _check_rest(server: Server) -> str:
        """One POST to the REST face: a valid assessment, as Google's JSON names it."""
        body = payloads.rest_bodies(payloads.mint(1))[0].encode()
        request = urllib.request.Request(
            server.http + REST_PATH, data=body, headers={"Content-Type": "application/json"}
        )
        try:
            with urllib.request.urlopen(request, timeout=10) as reply:  # loopback
                answer = json.loads(reply.read())
        except (OSError, ValueError) as error:
            return f"REST face did not answer: {error}"
        valid = answer.get("tokenProperties", {}).get("valid")
        return "ok" if valid else f"not valid: {answer}"

    # ---- measurement ----------------------------------------------------------------------

    def _load(
        self,
        scenario: Scenario,
        server: Server,
        data: Path,
        concurrency: int,
        *,
        total: int = 0,
        seconds: float = 0.0,
        rps: int = 0,
    ) -> loadgen.Load:
        if scenario.workload == "rest-create":
            return httpload.run(
                server.http,
                path=REST_PATH,
                bodies=data,
                connections=concurrency,
                seconds=seconds or max(1.0, total / 500),
                rps=rps,
                script=self.work / "wrk.lua",
            )
        return loadgen.run(
            self.ghz,
            protoset=self.protoset,
            call=self._call(scenario),
            target=server.target,
            data=data,
            concurrency=concurrency,
            connections=scenario.connections,
            total=total,
            seconds=seconds,
            rps=rps,
            report=self.work / f"{scenario.name}.ghz.json",
        )

    def measure(self, scenario: Scenario, server: Server, rps: int = 0) -> Phase:
        seconds = self.args.rate_seconds if rps else self.args.seconds
        capacity = round((rps * 1.2 if rps else MAX_RPS) * seconds)
        fresh = scenario.workload in ("create", "assess-miss", "shield", "rest-create")
        data = self._data(scenario, server, capacity if fresh else 0)
        hop = server.hop.pids() if server.hop else []
        store = server.store.pids() if server.store else []
        emulator = self.upstream.child.pids()
        before = self.upstream.stats()
        cpu0 = (cpu_seconds(hop), cpu_seconds(store), cpu_seconds(emulator), _children_cpu())
        if scenario.upstream:
            self.upstream.faults(scenario.upstream)
        try:
            load = self._load(scenario, server, data, 50, seconds=seconds, rps=rps)
        finally:
            if scenario.upstream:
                self.upstream.faults({})
        if fresh and load.count + sum(load.errors.values()) > capacity:
            raise RuntimeError(f"sent more than the {capacity} fresh tokens prepared")
        if scenario.workload == "annotate":
            self._drain_annotations(before, load.count + sum(load.errors.values()))
        cpu1 = (cpu_seconds(hop), cpu_seconds(store), cpu_seconds(emulator), _children_cpu())
        after = self.upstream.stats()
        sent = max(1, load.count + sum(load.errors.values()))
        per_1k = [(b - a) * 1000 / max(1, load.count) for a, b in zip(cpu0, cpu1, strict=True)]
        upstream_calls = after["create_calls"] - before["create_calls"]
        if scenario.workload == "annotate":
            upstream_calls = after["annotations_total"] - before["annotations_total"]
        dupes = after["outcomes"].get("DUPE", 0) - before["outcomes"].get("DUPE", 0)
        return Phase(
            rps=load.rps,
            count=load.count,
            errors=load.errors,
            seconds=load.seconds,
            p50=load.percentile(50),
            p90=load.percentile(90),
            p99=load.percentile(99),
            p999=load.percentile(99.9),
            cpu_hop=per_1k[0] if hop else None,
            cpu_store=per_1k[1] if store else None,
            cpu_upstream=per_1k[2],
            cpu_loadgen=per_1k[3],
            upstream_calls_per_request=upstream_calls / sent,
            upstream_dupes=dupes,
            cdf=[(q, load.percentile(q)) for q in report.CDF_POINTS],
        )

    def _drain_annotations(self, before: dict[str, Any], sent: int) -> None:
        """An outbox answers before upstream has the annotation: wait (bounded) until the
        flusher has delivered what was accepted, so its work is counted in the CPU figures."""
        give_up = time.monotonic() + 15
        while time.monotonic() < give_up:
            delivered = self.upstream.stats()["annotations_total"] - before["annotations_total"]
            if delivered >= sent:
                return
            time.sleep(0.2)

    # ---- the run --------------------------------------------------------------------------

    def run(self, scenarios: list[Scenario]) -> list[Row]:
        """Start and check every row, then measure in rounds: each round visits every row,
        so a burst of load from elsewhere on the machine hits the rows alike, and a row's
        figure is the median of its rounds."""
        rows = [Row(scenario) for scenario in scenarios]
        for row in rows:
            self._prepare(row)
        saturation: dict[str, list[Phase]] = {}
        fixed: dict[str, list[Phase]] = {}
        for number in range(self.args.rounds):
            print(f"bench: saturation, round {number + 1}/{self.args.rounds}", flush=True)
            for row in rows:
                self._round(row, saturation, 0)
        for row in rows:
            if row.status == "ok":
                row.saturation = combine(saturation[row.scenario.name])
        self.rate = rate = self._offered_rate(rows)
        own = self._own_rate([row for row in rows if row.scenario.own_rate])
        for number in range(self.args.rounds):
            print(f"bench: {rate} req/s, round {number + 1}/{self.args.rounds}", flush=True)
            for row in rows:
                self._round(row, fixed, own if row.scenario.own_rate else rate)
        for row in rows:
            server = self.servers.get(row.scenario.name)
            if row.status == "ok":
                row.fixed = combine(fixed[row.scenario.name])
            if server and server.hop:
                row.peak_rss_mib = peak_rss_mib(server.hop.pids())
        return rows

    def _round(self, row: Row, into: dict[str, list[Phase]], rate: int) -> None:
        if row.status != "ok":
            return
        name = row.scenario.name
        try:
            phase = self.measure(row.scenario, self.servers[name], rps=rate)
        except (RuntimeError, grpc.RpcError) as error:
            row.status, row.reason = "failed", str(error)
            print(f"  {name}: failed: {error}", flush=True)
            return
        into.setdefault(name, []).append(phase)
        print(
            f"  {name:28} {phase.rps:7.0f} req/s  p50 {phase.p50:6.2f}  p99 {phase.p99:6.2f} ms"
            f"  CPU {phase.cpu_hop or phase.cpu_upstream:.3f} s/1k",
            flush=True,
        )

    def _prepare(self, row: Row) -> None:
        """Start the row's server, note its idle RSS, check one answer, warm it up."""
        scenario = row.scenario
        for feature in scenario.needs:
            why = features.missing(feature)
            if why:
                row.status, row.reason = "unavailable", why
                print(f"  {scenario.name}: not available in this build ({why})", flush=True)
                return
        try:
            server = self.start(scenario)
        except StartError as error:
            row.status = "unavailable" if scenario.needs else "failed"
            row.reason = f"did not start: {error.output}"
            print(f"  {scenario.name}: {row.status}: {row.reason}", flush=True)
            return
        self.servers[scenario.name] = server
        if server.hop:
            time.sleep(0.5)  # imports done, threads started: this is the idle footprint
            row.idle_rss_mib = rss_mib(server.hop.pids())
            row.idle_anon_mib = anon_mib(server.hop.pids())
        try:
            row.check = self._check(scenario, server)
            if not row.check.startswith("ok"):
                row.status, row.reason = "failed", row.check
                return
            warm = self._data(scenario, server, 500)
            self._load(scenario, server, warm, 20, total=500)
        except (RuntimeError, grpc.RpcError) as error:
            row.status, row.reason = "failed", str(error)
        print(f"  {scenario.name}: {row.status} {row.check or row.reason}", flush=True)

    @staticmethod
    def _own_rate(rows: list[Row]) -> int:
        """For the rows whose upstream is slow (they saturate at concurrency / latency):
        min(1,000/s, half their saturation), the lowest of them, so that they compare at
        one rate."""
        saturated = [row.saturation.rps for row in rows if row.saturation]
        return max(10, min(1000, round(min(saturated, default=100.0) / 2 / 10) * 10))

    def _offered_rate(self, rows: list[Row]) -> int:
        by_name = {row.scenario.name: row for row in rows}
        for name in ("assess-miss", "passthrough", "direct"):
            row = by_name.get(name)
            if row and row.saturation:
                return max(50, round(row.saturation.rps * self.args.load / 100 / 50) * 50)
        return 500

    def close(self) -> dict[str, Any]:
        """Stop everything; what the OTLP sink received (proof tracing exported)."""
        exported: dict[str, Any] = {}
        for server in self.servers.values():
            if server.hop:
                server.hop.stop()
        if self.otlp:
            self.otlp.stop()
            for line in self.otlp.output().splitlines():
                if line.startswith("otlp-sink received"):
                    parts = line.split()
                    exported = {"calls": int(parts[2]), "bytes": int(parts[4])}
        if self.redis:
            self.redis.stop()
        self.upstream.stop()
        if not self.args.keep:
            shutil.rmtree(self.work, ignore_errors=True)
        return exported


def combine(phases: list[Phase]) -> Phase:
    """One figure per row from its rounds: medians, with counts and upstream calls summed."""
    med = statistics.median
    count = sum(p.count for p in phases)
    errors: dict[str, int] = {}
    for phase in phases:
        for status, n in phase.errors.items():
            errors[status] = errors.get(status, 0) + n
    sent = sum(p.count + sum(p.errors.values()) for p in phases)

    def cpu(values: list[float | None]) -> float | None:
        known = [v for v in values if v is not None]
        return med(known) if known else None

    return Phase(
        rps=med(p.rps for p in phases),
        count=count,
        errors=errors,
        seconds=sum(p.seconds for p in phases),
        p50=med(p.p50 for p in phases),
        p90=med(p.p90 for p in phases),
        p99=med(p.p99 for p in phases),
        p999=med(p.p999 for p in phases),
        cpu_hop=cpu([p.cpu_hop for p in phases]),
        cpu_store=cpu([p.cpu_store for p in phases]),
        cpu_upstream=med(p.cpu_upstream for p in phases),
        cpu_loadgen=med(p.cpu_loadgen for p in phases),
        upstream_calls_per_request=sum(
            p.upstream_calls_per_request * (p.count + sum(p.errors.values())) for p in phases
        )
        / max(1, sent),
        upstream_dupes=sum(p.upstream_dupes for p in phases),
        cdf=[(q, med(p.cdf[i][1] for p in phases)) for i, (q, _) in enumerate(phases[0].cdf)],
        rounds_rps=[round(p.rps, 1) for p in phases],
        rounds_p99=[round(p.p99, 3) for p in phases],
    )


def _children_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def _free_port() -> int:
    import socket

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


def memory_figures() -> dict[str, Any]:
    done = subprocess.run(
        [sys.executable, "-m", "bench.memprobe"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=True,
    )
    figures: dict[str, Any] = json.loads(done.stdout)
    return figures


def machine() -> dict[str, Any]:
    model = ""
    with open("/proc/cpuinfo") as info:
        for line in info:
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    with open("/proc/meminfo") as info:
        mem_kib = int(info.readline().split()[1])
    return {
        "cpu": model,
        "cores": os.cpu_count(),
        "memory_gib": round(mem_kib / 1024 / 1024, 1),
        "kernel": platform.release(),
        "python": platform.python_version(),
        "grpcio": grpc.__version__,
        "ghz": loadgen.GHZ_VERSION,
        "load_average_at_start": list(os.getloadavg()),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Benchmark the sidecar against its baselines.")
    parser.add_argument("--rounds", type=int, default=4, help="measurements per row and phase")
    parser.add_argument("--seconds", type=float, default=2.0, help="saturation, per round")
    parser.add_argument("--rate-seconds", type=float, default=2.0, help="fixed rate, per round")
    parser.add_argument(
        "--load", type=float, default=50.0, help="fixed rate, % of cache-miss saturation"
    )
    parser.add_argument("--only", action="append", help="run only these scenarios (repeatable)")
    parser.add_argument("--out", type=Path, default=RESULTS, help="where results are written")
    parser.add_argument("--keep", action="store_true", help="keep the work dir (logs, reports)")
    parser.add_argument(
        "--no-docs",
        "--no-readme",
        dest="docs",
        action="store_false",
        help="leave the copy of the results in docs/benchmark.md alone",
    )
    args = parser.parse_args(argv)

    started = time.monotonic()
    scenarios = [s for s in SCENARIOS if not args.only or s.name in args.only]
    print("bench: ghz, emulator", flush=True)
    about = machine()
    bench = Bench(args)
    print(f"bench: work dir {bench.work}", flush=True)
    try:
        rows = bench.run(scenarios)
    finally:
        exported = bench.close()
    for row in rows:
        traced = "OTEL_TRACES_EXPORTER" in row.scenario.env
        if traced and row.status == "ok" and not exported.get("bytes"):
            row.notes.append("the OTLP sink received nothing: no tracing cost was measured")
    print("bench: memory store probe", flush=True)
    memory = memory_figures()
    about["load_average_at_end"] = list(os.getloadavg())
    result = report.build(
        rows,
        method={
            "rounds": args.rounds,
            "saturation_seconds_per_round": args.seconds,
            "fixed_rate_seconds_per_round": args.rate_seconds,
            "concurrency": 50,
            "loadgen": f"ghz {loadgen.GHZ_VERSION}",
        },
        rate=bench.rate,
        load_percent=args.load,
        memory=memory,
        machine=about,
        exported=exported,
        seconds=time.monotonic() - started,
    )
    paths = report.write(result, args.out)
    if args.docs and args.out.resolve() == RESULTS.resolve():
        plot = os.path.relpath(RESULTS / "latest.png", DOCS_PAGE.parent)
        block = report.docs_block(result, [(s.name, s.what) for s in scenarios], plot)
        if report.update_docs(DOCS_PAGE, block):
            paths.append(DOCS_PAGE)
    print(report.markdown(result))
    print("bench: wrote " + ", ".join(str(p) for p in paths), flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
