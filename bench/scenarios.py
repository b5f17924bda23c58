"""The benchmark's scenarios, one row each: what runs, with which arguments and environment.

A row names the features it needs; a feature that this build of the sidecar lacks (a flag that
`serve --help` does not list, a module that is absent, a binary not installed) makes the row
"not available in this build" instead of a failure, so the same table measures main as the
other issues land. Placeholders in `args` and `env` (`{redis}`, `{otlp}`, `{outbox}`, `{uds}`)
are filled in by the runner with the addresses of what it started for the row.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

Hop = Literal["direct", "passthrough", "sidecar"]
Workload = Literal["create", "assess-miss", "assess-replay", "annotate", "shield", "rest-create"]


@dataclass(frozen=True)
class Scenario:
    name: str
    hop: Hop
    workload: Workload
    what: str  # one line for the README table
    args: tuple[str, ...] = ()  # extra `recaptcha-sidecar serve` arguments
    env: dict[str, str] = field(default_factory=dict)  # extra environment for the sidecar
    uds: bool = False  # the load generator calls the sidecar's Unix socket
    needs: tuple[str, ...] = ()  # features (bench/features.py)
    # Emulator fault knobs (create) while this row is measured, e.g. a realistic latency.
    upstream: dict[str, float] = field(default_factory=dict)
    # The fixed-rate phase at min(1,000/s, half this row's own saturation) rather than the
    # rate every other row shares (a slow upstream saturates at concurrency / latency).
    own_rate: bool = False
    # gRPC connections the load generator opens (ghz's default is one; SO_REUSEPORT spreads
    # connections, not calls, so the workers rows need several).
    connections: int = 1


_TRACING = {
    "OTEL_TRACES_EXPORTER": "otlp",
    "OTEL_METRICS_EXPORTER": "otlp",
    "OTEL_LOGS_EXPORTER": "none",
    "OTEL_EXPORTER_OTLP_PROTOCOL": "grpc",
    "OTEL_EXPORTER_OTLP_ENDPOINT": "http://{otlp}",
    "OTEL_EXPORTER_OTLP_INSECURE": "true",
    "OTEL_SERVICE_NAME": "recaptcha-sidecar-bench",
    "OTEL_TRACES_SAMPLER": "always_on",
    "OTEL_METRIC_EXPORT_INTERVAL": "5000",
}
_REDIS = ("--replay-store", "redis://{redis}/0")
# The quota shield's policy: one call a minute per client IP (the shield workload sends every
# limited call from one IP, so all but the first are shed before upstream). Braces doubled:
# env values are format strings ({redis}).
_SHIELD = {
    "RECAPTCHA_SIDECAR_POLICY": (
        '{{"default": {{"rate_limits": [{{"per": "ip", "limit": "1/minute"}}]}}}}'
    )
}
# Google over the internet: 50-150 ms per CreateAssessment.
_REALISTIC = {"latency_ms": 50.0, "latency_jitter_ms": 100.0}

SCENARIOS: tuple[Scenario, ...] = (
    Scenario(
        "direct",
        "direct",
        "create",
        "baseline: the load generator calls the emulator's CreateAssessment itself",
    ),
    Scenario(
        "passthrough",
        "passthrough",
        "create",
        "baseline: a grpc.aio proxy relaying raw bytes to the emulator (the Python-hop floor)",
    ),
    Scenario(
        "assess-miss",
        "sidecar",
        "assess-miss",
        "Assess, fresh token every call (replay store miss → upstream → policy), memory store, TCP",
    ),
    Scenario(
        "assess-replay",
        "sidecar",
        "assess-replay",
        "Assess, already-seen tokens: DUPLICATE from the memory store, no upstream call",
    ),
    Scenario(
        "assess-miss-no-access-log",
        "sidecar",
        "assess-miss",
        "as assess-miss, access log off (with no exporter configured: no telemetry interceptor)",
        env={"RECAPTCHA_SIDECAR_ACCESS_LOG": "false"},
        needs=("access-log",),
    ),
    Scenario(
        "assess-miss-uds",
        "sidecar",
        "assess-miss",
        "as assess-miss, over the Unix socket",
        uds=True,
    ),
    Scenario(
        "assess-miss-tracing",
        "sidecar",
        "assess-miss",
        "as assess-miss, with OTLP traces and metrics exported (every call sampled)",
        env=_TRACING,
        needs=("tracing",),
    ),
    Scenario(
        "assess-miss-redis",
        "sidecar",
        "assess-miss",
        "as assess-miss, replay store in Redis (a local redis-server)",
        args=_REDIS,
        needs=("redis",),
    ),
    Scenario(
        "assess-replay-redis",
        "sidecar",
        "assess-replay",
        "as assess-replay, replay store in Redis",
        args=_REDIS,
        needs=("redis",),
    ),
    Scenario(
        "shield",
        "sidecar",
        "shield",
        "attack traffic answered locally: blank tokens, junk-shaped tokens (the shape filter) "
        "and distinct junk from one IP over its rate limit (claim, limit, release), in thirds",
        env=_SHIELD,
        needs=("rate-limits",),
    ),
    Scenario(
        "annotate-direct",
        "sidecar",
        "annotate",
        "Annotate sent upstream before answering (no outbox)",
    ),
    Scenario(
        "annotate-outbox",
        "sidecar",
        "annotate",
        "Annotate into the durable outbox (answered QUEUED, flushed in the background)",
        args=("--outbox", "{outbox}"),
        needs=("outbox",),
    ),
    Scenario(
        "assess-miss-redis-tracing",
        "sidecar",
        "assess-miss",
        "as assess-miss-redis, with OTLP traces and metrics exported (every call sampled)",
        args=_REDIS,
        env=_TRACING,
        needs=("redis", "tracing"),
    ),
    Scenario(
        "assess-miss-redis-8-connections",
        "sidecar",
        "assess-miss",
        "baseline of the workers row: as assess-miss-redis, the load over 8 connections",
        args=_REDIS,
        needs=("redis",),
        connections=8,
    ),
    Scenario(
        "assess-miss-redis-workers",
        "sidecar",
        "assess-miss",
        "as assess-miss-redis-8-connections, served by `--workers 2` (SO_REUSEPORT spreads the "
        "8 connections)",
        args=(*_REDIS, "--workers", "2"),
        needs=("redis", "workers"),
        connections=8,
    ),
    Scenario(
        "google-face-miss",
        "sidecar",
        "create",
        "Google's own CreateAssessment on the sidecar (the Google-compatible gRPC face), "
        "fresh token every call, memory store",
        needs=("google-face",),
    ),
    Scenario(
        "google-rest-miss",
        "sidecar",
        "rest-create",
        "POST /v1/projects/bench/assessments on the sidecar's HTTP listener (the REST face), "
        "fresh token every call, memory store; load from wrk",
        args=("--http-listen", "127.0.0.1:0"),
        needs=("google-face-rest", "wrk"),
    ),
    Scenario(
        "direct-realistic",
        "direct",
        "create",
        "baseline: the load generator calls the emulator, which answers in 50-150 ms (Google "
        "over the internet), at min(1,000/s, half its saturation)",
        upstream=_REALISTIC,
        own_rate=True,
    ),
    Scenario(
        "assess-miss-realistic",
        "sidecar",
        "assess-miss",
        "as assess-miss, upstream answering in 50-150 ms, at min(1,000/s, half its saturation)",
        upstream=_REALISTIC,
        own_rate=True,
    ),
)
