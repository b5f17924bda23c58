"""Hostile input against a real sidecar process (issue 13 items 5 and 6).

Undecodable requests (random bytes, truncated messages, bad UTF-8, deep nesting) are answered
INVALID_ARGUMENT, counted in the RPC metrics and the access log like any other call, with no
traceback; on a token-protected listener they are refused UNAUTHENTICATED before they are
decoded. Requests at the size limits cost bounded memory, measured from /proc.
"""

from __future__ import annotations

import asyncio
import json
import random
from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path

import grpc
import pytest
from google.protobuf.message import DecodeError
from recaptcha.sidecar.v1 import sidecar_pb2 as pb

from sidecar.emulator import mint_token
from tests.support.fleet import start_emulator
from tests.support.network import free_port
from tests.support.processes import Process, sidecar_process
from tests.support.prometheus import scrape

ASSESS = "/recaptcha.sidecar.v1.VerificationService/Assess"
ANNOTATE = "/recaptcha.sidecar.v1.VerificationService/Annotate"
TOKEN = "hostile-input-test-token-0123456789"
PER_KIND = 225  # 4 kinds, 2 methods: 1,800 requests


def undecodable(seed: int) -> list[tuple[str, str, bytes]]:
    """(kind, method, bytes) that this protobuf runtime refuses to decode, for both methods."""
    rng = random.Random(seed)
    valid = pb.AssessRequest(
        token=mint_token(action="login"), expected_action="login", user_agent="ua" * 40
    ).SerializeToString()
    annotation = pb.AnnotateRequest(
        assessment_name="projects/p/assessments/0123456789abcdef", account_id="a" * 60
    ).SerializeToString()
    makers: dict[str, Callable[[bytes], bytes]] = {
        "random": lambda _: rng.randbytes(rng.randint(1, 300)),
        "truncated": lambda message: message[: rng.randint(1, len(message) - 1)],
        "bad_utf8": lambda _: b"\x0a\x04" + bytes([0xFF, 0xFE, rng.randint(0x80, 0xBF), 0xC0]),
        "deep_nesting": lambda _: b"\x1b" * rng.randint(150, 2000),  # nested groups, field 3
    }
    out = []
    for method, message, kind_of in (
        (ASSESS, valid, pb.AssessRequest),
        (ANNOTATE, annotation, pb.AnnotateRequest),
    ):
        for kind, make in makers.items():
            found = 0
            while found < PER_KIND:
                data = make(message)
                try:
                    kind_of.FromString(data)
                except DecodeError:
                    out.append((kind, method, data))
                    found += 1
    return out


@pytest.fixture
def sidecar(tmp_path: Path) -> Iterator[tuple[Process, str, str, str]]:
    """A sidecar process: an open Unix socket, a token-protected loopback listener
    (secure_loopback), a Prometheus endpoint; JSON logs with the access line."""
    emulator, upstream = start_emulator()
    token_file = tmp_path / "token"
    token_file.write_text(TOKEN)
    metrics = f"127.0.0.1:{free_port()}"
    socket = f"unix://{tmp_path}/sidecar.sock"
    process = sidecar_process(
        *("--project", "hostile", "--upstream-endpoint", upstream, "--upstream-plaintext"),
        *("--listen", socket, "--listen", f"127.0.0.1:{free_port()}", "--secure-loopback"),
        *("--auth-token-file", str(token_file), "--metrics-listen", metrics),
        *("--log-format", "json"),
    )
    tcp = next(a for a in process.addresses() if not a.startswith("unix:"))
    try:
        yield process, socket, tcp, metrics
    finally:
        process.terminate()
        emulator.kill()


def raw(channel: grpc.aio.Channel, method: str) -> grpc.aio.UnaryUnaryMultiCallable:
    return channel.unary_unary(
        method, request_serializer=lambda b: b, response_deserializer=lambda b: b
    )


async def codes(
    address: str, requests: list[tuple[str, str, bytes]], metadata: tuple[tuple[str, str], ...]
) -> Counter[grpc.StatusCode]:
    seen: Counter[grpc.StatusCode] = Counter()
    async with grpc.aio.insecure_channel(address) as channel:
        calls = {ASSESS: raw(channel, ASSESS), ANNOTATE: raw(channel, ANNOTATE)}
        gate = asyncio.Semaphore(50)

        async def one(method: str, data: bytes) -> None:
            async with gate:
                try:
                    await calls[method](data, metadata=metadata, timeout=10)
                    seen[grpc.StatusCode.OK] += 1
                except grpc.aio.AioRpcError as error:
                    seen[error.code()] += 1

        await asyncio.gather(*(one(method, data) for _, method, data in requests))
    return seen


def calls_by_code(address: str) -> dict[tuple[str, str], float]:
    """RPC calls counted, by (method, status code number)."""
    return {
        (dict(labels)["rpc_method"], dict(labels)["rpc_grpc_status_code"]): count
        for (name, labels), count in scrape(address).items()
        if name == "rpc_server_call_duration_seconds_count"
    }


async def test_undecodable_requests_are_invalid_argument_counted_and_logged(
    sidecar: tuple[Process, str, str, str],
) -> None:
    process, socket, tcp, metrics = sidecar
    hostile = undecodable(seed=13)
    assert len(hostile) == 8 * PER_KIND == 1800
    open_answers = await codes(socket, hostile, ())
    assert open_answers == {grpc.StatusCode.INVALID_ARGUMENT: len(hostile)}, open_answers
    # A token-protected listener authenticates before it decodes.
    sample = hostile[::9]
    stranger = await codes(tcp, sample, ())
    assert stranger == {grpc.StatusCode.UNAUTHENTICATED: len(sample)}, stranger
    insider = await codes(tcp, sample, (("authorization", f"Bearer {TOKEN}"),))
    assert insider == {grpc.StatusCode.INVALID_ARGUMENT: len(sample)}, insider

    # The sidecar still serves, and counted every one of them as a call.
    async with grpc.aio.insecure_channel(socket) as channel:
        from recaptcha.sidecar.v1 import sidecar_pb2_grpc

        stub = sidecar_pb2_grpc.VerificationServiceStub(channel)
        good = await stub.Assess(
            pb.AssessRequest(token=mint_token(action="login"), expected_action="login"), timeout=10
        )
        assert good.allowed
    counted = await asyncio.to_thread(calls_by_code, metrics)
    invalid = len(hostile) + len(sample)
    assert counted[("Assess", "3")] + counted[("Annotate", "3")] == invalid, counted
    assert counted[("Assess", "16")] + counted[("Annotate", "16")] == len(sample), counted

    process.terminate()
    lines = process.output().splitlines()
    assert not [line for line in lines if "Traceback" in line or '"level":"ERROR"' in line]
    access = Counter(
        entry["code"]
        for entry in (json.loads(line) for line in lines if line.startswith("{"))
        if entry.get("logger") == "sidecar.access"
    )
    assert access["INVALID_ARGUMENT"] == invalid, access
    assert access["UNAUTHENTICATED"] == len(sample), access


def memory_kib(pid: int) -> dict[str, int]:
    """VmRSS (now) and VmHWM (the peak so far) of a process, from /proc."""
    found = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        name, _, value = line.partition(":")
        if name in ("VmRSS", "VmHWM"):
            found[name] = int(value.split()[0])
    return found


CONCURRENT = 300
RSS_GROWTH_BOUND_MIB = 150  # what 300 requests at the limits may add, all of them in flight


async def test_requests_at_the_size_limits_cost_bounded_memory(tmp_path: Path) -> None:
    """300 concurrent Assess with the most headers a request could once carry (64 x 8 KB) are
    refused; 300 concurrent Assess at the largest size accepted, all held in flight by a slow
    upstream, and three Annotates of a million reasons: the peak RSS of the sidecar (VmHWM,
    from /proc) grows by less than the bound. Before the bounds the first wave alone took the
    sidecar to ~1 GB."""
    from recaptcha.sidecar.v1 import sidecar_pb2_grpc

    from sidecar.core.validation import MAX_FIELD_BYTES, MAX_HEADERS, MAX_REQUEST_BYTES
    from tests.support.fleet import control

    emulator, upstream = start_emulator()
    socket = f"unix://{tmp_path}/sidecar.sock"
    process = sidecar_process(
        *("--project", "hostile", "--upstream-endpoint", upstream, "--upstream-plaintext"),
        *("--listen", socket, "--outbox", str(tmp_path / "outbox.db")),
    )
    try:
        options = [("grpc.max_send_message_length", 8 * 1024 * 1024)]
        async with grpc.aio.insecure_channel(socket, options=options) as channel:
            stub = sidecar_pb2_grpc.VerificationServiceStub(channel)
            for _ in range(20):  # warm up: imports, caches, the first upstream channel
                token = mint_token(action="login")
                await stub.Assess(
                    pb.AssessRequest(token=token, expected_action="login"), timeout=10
                )
            baseline = memory_kib(process.popen.pid)["VmRSS"]

            async def assess(message: pb.AssessRequest) -> grpc.StatusCode:
                try:
                    await stub.Assess(message, timeout=60)
                except grpc.aio.AioRpcError as error:
                    return error.code()
                return grpc.StatusCode.OK

            header = "h: " + "v" * (MAX_FIELD_BYTES - 3)
            widest = [
                pb.AssessRequest(token=mint_token(action="login"), headers=[header] * MAX_HEADERS)
                for _ in range(CONCURRENT)
            ]
            first = Counter(await asyncio.gather(*(assess(m) for m in widest)))
            assert set(first) <= {
                grpc.StatusCode.RESOURCE_EXHAUSTED,
                grpc.StatusCode.INVALID_ARGUMENT,
            }, first
            del widest

            async with control(upstream) as emulated:
                await emulated.set_faults("create", latency_ms=2000)
            largest = []
            for _ in range(CONCURRENT):
                token = mint_token(action="login")
                room = MAX_REQUEST_BYTES - len(token) - 200
                headers = ["h: " + "v" * 3997] * (room // 4000)
                largest.append(
                    pb.AssessRequest(token=token, expected_action="login", headers=headers)
                )
            second = Counter(await asyncio.gather(*(assess(m) for m in largest)))
            assert second[grpc.StatusCode.OK] >= 256, second  # max_in_flight at least
            assert set(second) <= {grpc.StatusCode.OK, grpc.StatusCode.RESOURCE_EXHAUSTED}
            del largest

            million = pb.AnnotateRequest(
                assessment_name="projects/p/assessments/0123456789abcdef",
                reasons=[pb.ANNOTATION_REASON_CHARGEBACK] * 1_000_000,
            )
            for _ in range(3):
                with pytest.raises(grpc.aio.AioRpcError) as caught:
                    await stub.Annotate(million, timeout=10)
                assert caught.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
        peak = memory_kib(process.popen.pid)["VmHWM"]
        growth_mib = (peak - baseline) / 1024
        print(
            f"baseline RSS {baseline / 1024:.1f} MiB, peak {peak / 1024:.1f} MiB, "
            f"growth {growth_mib:.1f} MiB for {CONCURRENT} requests at the limits"
        )
        assert growth_mib < RSS_GROWTH_BOUND_MIB
        # Nothing of the refused annotations reached the outbox.
        assert (tmp_path / "outbox.db").stat().st_size < 1024 * 1024
    finally:
        process.terminate()
        emulator.kill()
