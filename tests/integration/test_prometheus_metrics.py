"""The Prometheus scrape endpoint serves the documented series, with the right counts, after a
known mix of traffic; health checks leave no series; the dashboard asks only for real series."""

from __future__ import annotations

import asyncio
import json
import re
import time
import urllib.request
from collections import defaultdict
from pathlib import Path

import grpc
import pytest
from grpc_health.v1 import health_pb2
from prometheus_client.parser import text_string_to_metric_families
from recaptcha.sidecar.v1 import sidecar_pb2 as pb

from sidecar.emulator import mint_token
from sidecar.telemetry.metrics import CATALOG
from tests.conftest import EmulatorHandle, SidecarFactory, SidecarHandle

ROOT = Path(__file__).resolve().parents[2]
POLICY = {"actions": {"login": {"threshold": 0.5}, "signup": {"mode": "audit"}}}
Samples = dict[str, dict[tuple[tuple[str, str], ...], float]]


def scrape_text(address: str) -> str:
    with urllib.request.urlopen(f"http://{address}/metrics", timeout=10) as answer:
        return str(answer.read().decode())


async def scrape(handle: SidecarHandle) -> Samples:
    """Every sample on the endpoint: name → {sorted labels: value}."""
    telemetry = handle.sidecar.telemetry
    assert telemetry is not None and telemetry.metrics_address
    text = await asyncio.to_thread(scrape_text, telemetry.metrics_address)
    samples: Samples = defaultdict(dict)
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            samples[sample.name][tuple(sorted(sample.labels.items()))] = sample.value
    return samples


def by(samples: Samples, name: str, *keys: str, **where: str) -> dict[tuple[str, ...], float]:
    """The series of `name` matching `where`, keyed by the values of `keys`."""
    out = {}
    for labels, value in samples.get(name, {}).items():
        found = dict(labels)
        if all(found.get(k) == v for k, v in where.items()):
            out[tuple(found[k] for k in keys)] = value
    return out


async def assess(handle: SidecarHandle, **fields: object) -> pb.AssessResponse:
    return await handle.stub.Assess(pb.AssessRequest(**fields), timeout=5)


async def test_documented_series_with_the_right_counts(
    make_sidecar: SidecarFactory, emulator: EmulatorHandle
) -> None:
    handle = await make_sidecar(policy=POLICY, metrics_listen="127.0.0.1:0")
    first = mint_token(score=0.9, action="login")
    for token in (first, mint_token(score=0.9, action="login"), mint_token(action="login")):
        assert (await assess(handle, token=token, expected_action="login")).verdict == 1
    for _ in range(2):
        low = await assess(
            handle, token=mint_token(score=0.3, action="login"), expected_action="login"
        )
        assert low.verdict == pb.VERDICT_FAILED_ENFORCE
    duplicate = await assess(handle, token=first, expected_action="login")
    assert duplicate.token_status == pb.TOKEN_STATUS_DUPLICATE
    keyed = mint_token(score=0.9, action="login")
    await assess(handle, token=keyed, expected_action="login", idempotency_key="k1")
    again = await assess(handle, token=keyed, expected_action="login", idempotency_key="k1")
    assert again.replayed
    for _ in range(2):
        audit = await assess(
            handle, token=mint_token(score=0.2, action="signup"), expected_action="signup"
        )
        assert audit.verdict == pb.VERDICT_FAILED_AUDIT
    await assess(handle, token=mint_token(action="promo"), expected_action="promo")
    await assess(handle, token=mint_token(action=""), expected_action="")
    assert (
        await assess(handle, token="", expected_action="login")
    ).token_status == pb.TOKEN_STATUS_MISSING
    assert (
        await assess(handle, token="garbage", expected_action="login")
    ).token_status == pb.TOKEN_STATUS_INVALID
    expired = mint_token(action="login", issued_at=time.time() - 300)
    assert (
        await assess(handle, token=expired, expected_action="login")
    ).token_status == pb.TOKEN_STATUS_EXPIRED
    await emulator.control.set_faults("create", quota=True)
    unchecked = await assess(handle, token=mint_token(action="login"), expected_action="login")
    assert unchecked.token_status == pb.TOKEN_STATUS_UNCHECKED
    await emulator.control.clear_faults()
    with pytest.raises(grpc.aio.AioRpcError):
        await assess(handle, token="x", user_ip_address="not-an-ip")
    await handle.stub.Annotate(
        pb.AnnotateRequest(
            assessment_name=duplicate.assessment_name, annotation=pb.ANNOTATION_LEGITIMATE
        ),
        timeout=5,
    )
    for _ in range(5):
        await handle.health.Check(health_pb2.HealthCheckRequest(), timeout=5)

    samples = await scrape(handle)

    assert by(samples, "verdict_count_total", "verdict", "action") == {
        ("PASSED", "login"): 5,
        ("FAILED_ENFORCE", "login"): 7,
        ("FAILED_AUDIT", "signup"): 2,
        ("PASSED", "other"): 1,
        ("PASSED", "none"): 1,
    }
    assert by(samples, "token_count_total", "status", "action") == {
        ("VALID", "login"): 7,
        ("DUPLICATE", "login"): 1,
        ("MISSING", "login"): 1,
        ("INVALID", "login"): 1,
        ("EXPIRED", "login"): 1,
        ("UNCHECKED", "login"): 1,
        ("VALID", "signup"): 2,
        ("VALID", "other"): 1,
        ("VALID", "none"): 1,
    }
    # Fresh VALID scores only: the idempotent replay is not counted twice.
    assert by(samples, "risk_scores_count", "action") == {
        ("login",): 6,
        ("signup",): 2,
        ("other",): 1,
        ("none",): 1,
    }
    login = by(samples, "risk_scores_bucket", "le", action="login")
    assert [login[(le,)] for le in ("0.2", "0.3", "0.8", "0.9", "1.0", "+Inf")] == [
        0,
        2,
        2,
        6,
        6,
        6,
    ]
    signup = by(samples, "risk_scores_bucket", "le", action="signup")
    assert (signup[("0.1",)], signup[("0.2",)]) == (0, 2)

    # "garbage" cannot be a token: the shape filter answers it, upstream never sees it.
    assert by(samples, "upstream_attempts_total", "method", "code", "retry") == {
        ("CreateAssessment", "OK", "false"): 11,
        ("CreateAssessment", "RESOURCE_EXHAUSTED", "false"): 1,
        ("AnnotateAssessment", "OK", "false"): 1,
    }
    assert by(samples, "upstream_errors_total", "method", "code") == {
        ("CreateAssessment", "RESOURCE_EXHAUSTED"): 1
    }
    assert by(samples, "upstream_duration_seconds_count", "method", "code") == {
        ("CreateAssessment", "OK"): 11,
        ("CreateAssessment", "RESOURCE_EXHAUSTED"): 1,
        ("AnnotateAssessment", "OK"): 1,
    }
    assert by(samples, "replay_lookups_total", "result") == {("miss",): 12, ("hit",): 2}
    claims = by(samples, "replay_duration_seconds_count", "operation", "outcome")
    assert claims[("claim", "ok")] == 14
    assert claims[("release", "ok")] == 1, "the quota-refused token was released"

    assert by(
        samples, "rpc_server_call_duration_seconds_count", "rpc_method", "rpc_grpc_status_code"
    ) == {("Assess", "0"): 16, ("Assess", "3"): 1, ("Annotate", "0"): 1}
    assert by(samples, "rpc_server_active_requests", "rpc_method") == {
        ("Assess",): 0,
        ("Annotate",): 0,
    }
    everything = json.dumps({name: list(series) for name, series in samples.items()})
    assert "grpc.health" not in everything and "Health" not in everything


class Breaker:
    """Stands in for the retry layer's breaker: the plain method it exposes."""

    def __init__(self) -> None:
        self.state = "closed"

    def breaker_state(self) -> str:
        return self.state


class Budget:
    def retry_budget_level(self) -> float:
        return 0.25


class Outbox:
    def outbox_depth(self) -> int:
        return 7

    def outbox_oldest_age(self) -> float:
        return 12.5

    def outbox_dead_letters(self) -> int:
        return 2

    def outbox_paused(self) -> bool:
        return True


async def test_gauges_read_registered_providers(make_sidecar: SidecarFactory) -> None:
    handle = await make_sidecar(metrics_listen="127.0.0.1:0")
    telemetry = handle.sidecar.telemetry
    assert telemetry is not None
    before = await scrape(handle)
    assert "outbox_depth" not in before, "no outbox configured, no outbox series"

    breaker = Breaker()
    telemetry.instruments.register_breaker(breaker, "fake")
    telemetry.instruments.register_retry_budget(Budget(), "fake")
    telemetry.instruments.register_outbox(Outbox())
    samples = await scrape(handle)
    assert by(samples, "upstream_breaker_state", "breaker")[("fake",)] == 0
    assert by(samples, "upstream_retry_budget", "budget")[("fake",)] == 0.25
    assert by(samples, "outbox_depth") == {(): 7}
    assert by(samples, "outbox_oldest_age_seconds") == {(): 12.5}
    assert by(samples, "outbox_dead_letters") == {(): 2}
    assert by(samples, "outbox_paused") == {(): 1}
    breaker.state = "open"
    assert by(await scrape(handle), "upstream_breaker_state", "breaker")[("fake",)] == 2


async def test_gauges_follow_the_real_breaker_budget_and_outbox(
    make_sidecar: SidecarFactory, emulator: EmulatorHandle, tmp_path: Path
) -> None:
    handle = await make_sidecar(
        metrics_listen="127.0.0.1:0",
        outbox=tmp_path / "outbox.sqlite3",
        breaker_min_calls=3,
        breaker_cooldown=60,
        retry_max_attempts=1,
    )
    samples = await scrape(handle)
    assert by(samples, "upstream_breaker_state", "breaker") == {("assess",): 0, ("annotate",): 0}
    assert by(samples, "upstream_retry_budget", "budget") == {("assess",): 1.0, ("annotate",): 1.0}
    assert by(samples, "outbox_depth") == {(): 0}

    await emulator.control.set_faults("create", error_rate=1.0)
    for _ in range(5):
        answer = await handle.stub.Assess(pb.AssessRequest(token=mint_token()), timeout=5)
        assert answer.token_status == pb.TOKEN_STATUS_UNCHECKED
    samples = await scrape(handle)
    assert by(samples, "upstream_breaker_state", "breaker") == {("assess",): 2, ("annotate",): 0}


def test_catalog_names_are_what_prometheus_serves() -> None:
    """Each documented Prometheus name is the exporter's translation of the instrument name."""
    from opentelemetry.exporter.prometheus._mapping import map_unit, sanitize_full_name

    units = {"rpc.server.call.duration": "s", "upstream.duration": "s", "replay.duration": "s"}
    units["http.server.request.duration"] = "s"
    units["outbox.oldest_age"] = "s"
    for spec in CATALOG:
        name = sanitize_full_name(spec.name)
        unit = map_unit(units.get(spec.name, ""))
        if unit and not name.endswith(unit):
            name = f"{name}_{unit}"
        if spec.kind == "counter":
            name += "_total"
        assert spec.prometheus == name, spec


def test_dashboard_queries_only_documented_series() -> None:
    dashboard = json.loads((ROOT / "deploy/grafana/recaptcha-sidecar.json").read_text())
    exprs = [
        target["expr"]
        for panel in dashboard["panels"]
        for target in panel.get("targets", [])
        if "expr" in target
    ]
    assert exprs, "the dashboard has queries"
    served = set()
    for spec in CATALOG:
        served.add(spec.prometheus)
        if spec.kind == "histogram":
            served |= {f"{spec.prometheus}_{s}" for s in ("bucket", "sum", "count")}
    functions = {
        "sum",
        "rate",
        "increase",
        "histogram_quantile",
        "by",
        "max",
        "min",
        "avg",
        "clamp_min",
        "on",
        "without",
        "or",
        "and",
        "unless",
        "label_replace",
        "irate",
        "delta",
        "topk",
        "le",
        "group_left",
        "ignoring",
        "count",
        "vector",
        "abs",
    }
    for expr in exprs:
        stripped = re.sub(r"\{[^}]*\}|\[[^\]]*\]|\"[^\"]*\"", "", expr)
        stripped = re.sub(r"\b(by|without|on|ignoring|group_left)\s*\([^)]*\)", "", stripped)
        for word in re.findall(r"[a-zA-Z_][a-zA-Z0-9_]*", stripped):
            if word in functions or word.startswith("__"):
                continue
            assert word in served, f"{word!r} in {expr!r} is not a documented series"
