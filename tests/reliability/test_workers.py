"""`serve --workers N` as real processes: one port served by every worker (SO_REUSEPORT), single
use across them through a real Redis, the embedded emulator shared, a SIGKILLed worker
replaced, no worker outliving a SIGKILLed supervisor, and the refusals (memory://, Unix
sockets, a taken port, a worker that cannot start) each one line and exit 2."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import aiohttp
import grpc
import pytest
from recaptcha.sidecar.v1 import sidecar_pb2, sidecar_pb2_grpc

from sidecar.emulator import mint_token
from tests.support.network import free_port
from tests.support.processes import ROOT, Process, sidecar_process, wait_until
from tests.support.prometheus import series
from tests.support.redis_server import RedisServer

pytestmark = [pytest.mark.redis, pytest.mark.timeout(180)]

ACTION = "login"


def children(pid: int) -> dict[int, str]:
    """pid → command line of every live child of `pid`."""
    found = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
            command = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode()
        except OSError:
            continue
        fields = stat.rsplit(")", 1)[1].split()
        if int(fields[1]) == pid and fields[0] != "Z":
            found[int(entry.name)] = command
    return found


def workers_of(supervisor: int) -> set[int]:
    return {pid for pid, command in children(supervisor).items() if " serve " in command}


def alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


def loaded_grpc(pid: int) -> bool:
    """Whether gRPC's C core is mapped into the process."""
    return "cygrpc" in Path(f"/proc/{pid}/maps").read_text()


def two_free_ports() -> int:
    """A port P such that P and P + 1 are both free (worker 1 serves metrics on P + 1)."""
    for _ in range(50):
        port = free_port()
        with socket.socket() as probe:
            try:
                probe.bind(("127.0.0.1", port + 1))
            except OSError:
                continue
        return port
    raise RuntimeError("no two consecutive free ports")


def serve(redis: RedisServer, *args: str) -> Process:
    return sidecar_process(
        "--emulator",
        "--workers",
        "2",
        "--replay-store",
        redis.url,
        "--listen",
        "127.0.0.1:0",
        *args,
    )


@pytest.fixture
def redis(tmp_path: Path) -> Iterator[RedisServer]:
    server = RedisServer(tmp_path / "redis").start()
    yield server
    server.close()


async def assess_each_on_its_own_connection(
    address: str, tokens: list[str]
) -> list[sidecar_pb2.AssessResponse]:
    """One channel per call: SO_REUSEPORT spreads connections, not calls."""

    async def one(token: str) -> sidecar_pb2.AssessResponse:
        options = [("grpc.use_local_subchannel_pool", 1)]
        async with grpc.aio.insecure_channel(address, options=options) as channel:
            stub = sidecar_pb2_grpc.VerificationServiceStub(channel)
            request = sidecar_pb2.AssessRequest(token=token, expected_action=ACTION)
            answer: sidecar_pb2.AssessResponse = await stub.Assess(request, timeout=10)
            return answer

    return list(await asyncio.gather(*(one(token) for token in tokens)))


async def annotate_each_on_its_own_connection(address: str, names: list[str]) -> list[int]:
    codes = []
    for name in names:
        options = [("grpc.use_local_subchannel_pool", 1)]
        async with grpc.aio.insecure_channel(address, options=options) as channel:
            stub = sidecar_pb2_grpc.VerificationServiceStub(channel)
            request = sidecar_pb2.AnnotateRequest(
                assessment_name=name, annotation=sidecar_pb2.ANNOTATION_LEGITIMATE
            )
            try:
                await stub.Annotate(request, timeout=10)
                codes.append(grpc.StatusCode.OK.value[0])
            except grpc.aio.AioRpcError as error:
                codes.append(error.code().value[0])
    return codes


def assess_calls(metrics: str) -> float:
    counts = series(metrics, "rpc_server_call_duration_seconds_count", "rpc_method")
    return counts.get("Assess", 0.0)


async def test_workers_share_one_port_single_use_and_the_emulator(
    redis: RedisServer, tmp_path: Path
) -> None:
    metrics = two_free_ports()
    outbox = tmp_path / "outbox.sqlite3"
    process = serve(
        redis,
        "--http-listen",
        "127.0.0.1:0",
        "--metrics-listen",
        f"127.0.0.1:{metrics}",
        "--outbox",
        str(outbox),
    )
    try:
        address = process.addresses()[0]
        supervisor = process.popen.pid
        workers = workers_of(supervisor)
        assert len(workers) == 2, children(supervisor)
        assert not loaded_grpc(supervisor), "the supervisor forks; it never starts gRPC"
        assert all(loaded_grpc(pid) for pid in workers)

        fresh = [mint_token(action=ACTION) for _ in range(40)]
        answers = await assess_each_on_its_own_connection(address, fresh)
        assert [a.allowed for a in answers] == [True] * 40
        replayed = await assess_each_on_its_own_connection(address, [fresh[0]] * 20)
        assert sum(a.allowed for a in replayed) == 0, "a token is accepted once, by one worker"
        once = mint_token(action=ACTION)
        raced = await assess_each_on_its_own_connection(address, [once] * 20)
        assert sum(a.allowed for a in raced) == 1

        # Each worker answered some of the 80 connections, and counted only its own.
        per_worker = [assess_calls(f"127.0.0.1:{metrics + k}") for k in (0, 1)]
        assert sum(per_worker) == 80 and min(per_worker) > 0, per_worker

        # An assessment created through one worker is annotated through either: one emulator.
        names = [a.assessment_name for a in answers[:10]]
        assert await annotate_each_on_its_own_connection(address, names) == [0] * 10
        assert outbox.exists() and (tmp_path / "outbox-worker1.sqlite3").exists()

        # The HTTP listener is shared too: Google's REST face through it.
        http = next(line for line in process.lines if line.startswith("recaptcha-sidecar http on"))
        http_address = http.split(" on ", 1)[1].strip()
        body = {"event": {"token": mint_token(action=ACTION), "expectedAction": ACTION}}
        async with aiohttp.ClientSession() as session:
            url = f"http://{http_address}/v1/projects/emulator/assessments"
            async with session.post(url, json=body) as answer:
                assert answer.status == 200, await answer.text()
                assert json.loads(await answer.text())["tokenProperties"]["valid"] is True

        assert process.terminate() == 0
        assert not any(alive(pid) for pid in workers)
    finally:
        process.kill()
    port = int(address.rsplit(":", 1)[1])
    with socket.socket() as again:
        again.bind(("127.0.0.1", port))  # nothing holds the port any more


async def test_a_killed_worker_is_replaced_and_serving_goes_on(redis: RedisServer) -> None:
    process = serve(redis)
    try:
        address = process.addresses()[0]
        supervisor = process.popen.pid
        before = workers_of(supervisor)
        victim = min(before)
        os.kill(victim, signal.SIGKILL)
        assert wait_until(
            lambda: len(workers_of(supervisor)) == 2 and victim not in workers_of(supervisor),
            timeout=30,
        ), process.output()
        assert wait_until(lambda: "worker serving" in process.output(), timeout=30)
        after = workers_of(supervisor)
        assert victim not in after and len(after & before) == 1
        tokens = [mint_token(action=ACTION) for _ in range(30)]
        answers = await assess_each_on_its_own_connection(address, tokens)
        assert [a.allowed for a in answers] == [True] * 30
        assert '"exit_code":-9' in process.output()
        assert process.terminate() == 0
    finally:
        process.kill()


def test_no_worker_outlives_a_killed_supervisor(redis: RedisServer) -> None:
    process = serve(redis)
    supervisor = process.popen.pid
    left = set(children(supervisor))  # the workers and the shared emulator
    assert len(left) == 3, children(supervisor)
    process.kill()
    assert wait_until(lambda: not any(alive(pid) for pid in left), timeout=20), [
        pid for pid in left if alive(pid)
    ]


def run_serve(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "sidecar", "serve", *args],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
    )


@pytest.mark.parametrize(
    ("args", "says"),
    [
        ((), "workers: more than one needs a Redis replay_store"),
        (
            ("--replay-store", "redis://127.0.0.1:1/0", "--listen", "unix:///tmp/w.sock"),
            "workers: more than one serves TCP listeners only (unix:///tmp/w.sock",
        ),
    ],
)
def test_what_workers_cannot_share_is_refused(args: tuple[str, ...], says: str) -> None:
    done = run_serve("--emulator", "--workers", "2", *args)
    assert done.returncode == 2, done.stderr
    assert says in done.stderr


def test_a_taken_port_is_refused_before_any_worker_starts(redis: RedisServer) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        done = run_serve(
            "--emulator", "--workers", "2", "--replay-store", redis.url,
            "--listen", f"127.0.0.1:{port}",
        )  # fmt: skip
    assert done.returncode == 2, done.stderr
    assert done.stderr.strip().splitlines() == [
        f"recaptcha-sidecar: cannot listen on 127.0.0.1:{port}: Address already in use"
    ]
    assert "serving on" not in done.stdout


def test_a_worker_that_cannot_start_stops_them_all(redis: RedisServer) -> None:
    metrics = two_free_ports()
    with socket.socket() as taken:  # worker 1's metrics port
        taken.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        taken.bind(("127.0.0.1", metrics + 1))
        taken.listen()
        done = run_serve(
            "--emulator", "--workers", "2", "--replay-store", redis.url,
            "--listen", "127.0.0.1:0", "--metrics-listen", f"127.0.0.1:{metrics}",
        )  # fmt: skip
    assert done.returncode == 2, done.stderr
    assert f"127.0.0.1:{metrics + 1}" in done.stderr
    assert "serving on" not in done.stdout


async def test_sighup_reloads_the_policy_in_every_worker(
    redis: RedisServer, tmp_path: Path
) -> None:
    config = tmp_path / "sidecar.yaml"
    config.write_text("policy:\n  default: {threshold: 0.5}\n")
    process = serve(redis, "--config", str(config), "--policy-reload-interval", "0")
    try:
        address = process.addresses()[0]
        before = {a.policy_version for a in await assess_each_on_its_own_connection(
            address, [mint_token(action=ACTION) for _ in range(10)]
        )}  # fmt: skip
        config.write_text("policy:\n  default: {threshold: 0.95}\n")
        process.popen.send_signal(signal.SIGHUP)
        assert wait_until(lambda: process.output().count(" in force (was ") == 2, timeout=20)
        answers = await assess_each_on_its_own_connection(
            address, [mint_token(action=ACTION) for _ in range(30)]
        )
        after = {(a.policy_version, a.threshold) for a in answers}
        assert len(before) == 1 and len(after) == 1, (before, after)
        assert next(iter(after))[1] == pytest.approx(0.95)
        assert before != {next(iter(after))[0]}
        assert process.popen.poll() is None  # SIGHUP stopped nothing
        assert process.terminate() == 0
    finally:
        process.kill()
