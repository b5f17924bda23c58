"""What telemetry costs per RPC, roughly: `python scripts/telemetry_overhead.py`.

1. The interceptor alone, around a handler that does nothing, with a stand-in servicer context
   (µs per call): no-op providers, metrics (Prometheus reader), metrics + tracing (SDK, batch
   processor, spans dropped by the exporter), and all that plus the JSON access line.
2. End to end: Assess over loopback against the in-process emulator, a sidecar with nothing
   configured against one exporting OTLP traces and metrics and serving Prometheus, batches
   alternated so that a busy machine hurts both alike (median µs per call).

A rough guide for docs/telemetry.md, not a benchmark (that is bench/'s job).
"""

from __future__ import annotations

import asyncio
import io
import logging
import os
import statistics
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import grpc  # noqa: E402
from opentelemetry.sdk.trace.export import SpanExporter, SpanExportResult  # noqa: E402
from recaptcha.sidecar.v1 import sidecar_pb2 as pb  # noqa: E402

from sidecar.telemetry.logs import ACCESS_LOGGER, JsonFormatter  # noqa: E402
from sidecar.telemetry.metrics import ActionLabels  # noqa: E402
from sidecar.telemetry.providers import Telemetry, TelemetryOptions  # noqa: E402

CALLS = 20_000
HEADER = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"


class Dropping(SpanExporter):
    """Spans are made, processed and batched, then dropped: the cost without a network."""

    def export(self, spans: Sequence[Any]) -> SpanExportResult:
        return SpanExportResult.SUCCESS


class Context:
    """The two methods the interceptor reads from a ServicerContext."""

    def invocation_metadata(self) -> tuple[tuple[str, str], ...]:
        return (("traceparent", HEADER), ("user-agent", "grpc-python"))

    def code(self) -> None:
        return None


async def handler(request: Any, context: Any) -> pb.AssessResponse:
    return pb.AssessResponse(verdict=pb.VERDICT_PASSED, token_status=pb.TOKEN_STATUS_VALID)


async def per_call(behavior: Any, calls: int = CALLS) -> float:
    request, context = pb.AssessRequest(expected_action="login"), Context()
    start = time.perf_counter()
    for _ in range(calls):
        await behavior(request, context)
    return (time.perf_counter() - start) / calls * 1e6


def wrapped(telemetry: Telemetry) -> Any:
    from sidecar.telemetry.interceptor import TelemetryInterceptor

    interceptor = TelemetryInterceptor(
        tracer=telemetry.tracer, instruments=telemetry.instruments, tracing_on=telemetry.tracing
    )
    return interceptor._observe("/recaptcha.sidecar.v1.VerificationService/Assess", handler)


async def interceptor_costs() -> None:
    access = logging.getLogger(ACCESS_LOGGER)
    access.propagate = False
    access.setLevel(logging.WARNING)
    labels = ActionLabels(lambda: {"login"})
    base = await per_call(handler)
    rows = [("handler alone", base)]
    for name in ("OTEL_EXPORTER_OTLP_ENDPOINT", "OTEL_TRACES_EXPORTER", "OTEL_METRICS_EXPORTER"):
        os.environ.pop(name, None)
    noop = Telemetry(TelemetryOptions(metrics_listen="", console=False), labels)
    rows.append(("interceptor, no-op providers", await per_call(wrapped(noop))))
    metrics = Telemetry(TelemetryOptions(metrics_listen="127.0.0.1:0", console=False), labels)
    rows.append(("+ metrics (Prometheus reader)", await per_call(wrapped(metrics))))
    os.environ["OTEL_TRACES_EXPORTER"] = "console"  # replaced below by a dropping exporter
    full = Telemetry(TelemetryOptions(metrics_listen="127.0.0.1:0", console=False), labels)
    os.environ.pop("OTEL_TRACES_EXPORTER")
    assert full.tracer_provider is not None
    from opentelemetry.sdk.trace.export import BatchSpanProcessor

    full.tracer_provider._active_span_processor._span_processors = (BatchSpanProcessor(Dropping()),)
    rows.append(("+ tracing (SDK, batch, dropped)", await per_call(wrapped(full))))
    handler_ = logging.StreamHandler(io.StringIO())
    handler_.setFormatter(JsonFormatter())
    access.addHandler(handler_)
    access.setLevel(logging.INFO)
    rows.append(("+ JSON access line", await per_call(wrapped(full))))
    for telemetry in (noop, metrics, full):
        telemetry.shutdown()
    print(f"interceptor, {CALLS} calls each (µs per call, the handler alone subtracted):")
    for name, value in rows:
        extra = "" if name == "handler alone" else f"  (+{value - base:.1f})"
        print(f"  {name:36s} {value:7.1f}{extra}")


async def end_to_end(batches: int = 8, batch: int = 300) -> None:
    """Real sidecar processes (each with its embedded emulator), one client, batches taken in
    turn; the OTLP receiver lives in this process, not in the sidecar's."""
    from recaptcha.sidecar.v1 import sidecar_pb2_grpc

    from sidecar.emulator import mint_token
    from tests.support.otlp_receiver import start_grpc_receiver
    from tests.support.processes import sidecar_process

    receiver = start_grpc_receiver()
    serve = ("--emulator", "--listen", "127.0.0.1:0")
    configs = {
        "nothing (WARNING: no access line)": (("--log-level", "WARNING"), {}),
        "default (JSON access line)": ((), {}),
        "+ Prometheus": (("--metrics-listen", "127.0.0.1:0"), {}),
        "+ OTLP traces and metrics": (
            ("--metrics-listen", "127.0.0.1:0"),
            {"OTEL_EXPORTER_OTLP_ENDPOINT": receiver.endpoint},
        ),
    }
    processes = {
        name: sidecar_process(*serve, *args, env={"OTEL_TRACES_EXPORTER": "", **env})
        for name, (args, env) in configs.items()
    }
    results: dict[str, list[float]] = {name: [] for name in configs}
    try:
        channels = {
            name: grpc.aio.insecure_channel(process.addresses()[0])
            for name, process in processes.items()
        }
        for round_ in range(batches + 1):
            for name, channel in channels.items():
                stub = sidecar_pb2_grpc.VerificationServiceStub(channel)
                tokens = [mint_token(action="login") for _ in range(batch)]
                start = time.perf_counter()
                for token in tokens:
                    await stub.Assess(
                        pb.AssessRequest(token=token, expected_action="login"),
                        metadata=(("traceparent", HEADER),),
                    )
                if round_:  # the first round warms up
                    results[name].append((time.perf_counter() - start) / batch * 1e6)
        for channel in channels.values():
            await channel.close()
    finally:
        for process in processes.values():
            process.terminate()
        receiver.close()
    print(f"end to end, Assess over loopback, {batches}x{batch} calls (median µs per call):")
    base = statistics.median(results["nothing (WARNING: no access line)"])
    for name, values in results.items():
        value = statistics.median(values)
        print(f"  {name:36s} {value:7.0f}  (+{value - base:.0f})")
    print(f"  spans received: {len(receiver.spans())}")


async def main() -> None:
    await interceptor_costs()
    await end_to_end()


if __name__ == "__main__":
    asyncio.run(main())
