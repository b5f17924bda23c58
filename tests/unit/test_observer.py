"""The telemetry implementation of the decision observer: metrics, the access line's decision
fields and span attributes come from the decision, once per answer, for any front door."""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator
from typing import Any

import pytest
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from sidecar.core.model import (
    AnnotationRequest,
    AssessmentRequest,
    Decision,
    Delivery,
    RecommendedAction,
    TokenStatus,
    Verdict,
)
from sidecar.core.ports import CallContext
from sidecar.telemetry.metrics import ActionLabels, Instruments
from sidecar.telemetry.observer import CALL_FIELDS, TelemetryObserver

CALL = CallContext("test.FrontDoor", "Check")
PASSED = Decision(
    allowed=True,
    verdict=Verdict.PASSED,
    token_status=TokenStatus.VALID,
    recommended_action=RecommendedAction.ALLOW,
    decided_by="passed",
    score=0.3000000119,
    threshold=0.5,
)


@pytest.fixture
def meter() -> Iterator[tuple[InMemoryMetricReader, MeterProvider]]:
    reader = InMemoryMetricReader()
    provider = MeterProvider(metric_readers=[reader])
    yield reader, provider
    provider.shutdown()


def points(reader: InMemoryMetricReader, name: str) -> list[Any]:
    data = reader.get_metrics_data()
    assert data is not None
    return [
        point
        for resource in data.resource_metrics
        for scope in resource.scope_metrics
        for metric in scope.metrics
        if metric.name == name
        for point in metric.data.data_points
    ]


def observer_for(provider: MeterProvider, tracing: bool = False) -> TelemetryObserver:
    instruments = Instruments(provider.get_meter("t"), ActionLabels(lambda: {"login"}))
    return TelemetryObserver(instruments, tracing=tracing)


def test_an_answer_counts_once_and_fills_the_call_s_access_fields(
    meter: tuple[InMemoryMetricReader, MeterProvider],
) -> None:
    reader, provider = meter
    observer = observer_for(provider)
    fields: dict[str, Any] = {}
    token = CALL_FIELDS.set(fields)
    try:
        observer.assessed(CALL, AssessmentRequest(token="t", expected_action="LOGIN"), PASSED)
    finally:
        CALL_FIELDS.reset(token)
    assert fields == {
        "action": "login",
        "verdict": "PASSED",
        "token_status": "VALID",
        "replayed": False,
        "threshold": 0.5,
        "score": 0.3,
        "decided_by": "passed",
    }
    (verdicts,) = points(reader, "verdict_count")
    assert (verdicts.value, dict(verdicts.attributes)) == (
        1,
        {"verdict": "PASSED", "action": "login"},
    )
    (scores,) = points(reader, "risk_scores")
    assert scores.count == 1 and scores.sum == pytest.approx(0.3)


def test_replays_and_unknown_actions_are_counted_without_a_score(
    meter: tuple[InMemoryMetricReader, MeterProvider],
) -> None:
    reader, provider = meter
    observer = observer_for(provider)
    replayed = dataclasses.replace(PASSED, replayed=True)
    observer.assessed(CALL, AssessmentRequest(token="t", expected_action="transfer"), replayed)
    (tokens,) = points(reader, "token_count")
    assert dict(tokens.attributes) == {"status": "VALID", "action": "other"}
    assert all(point.count == 0 for point in points(reader, "risk_scores"))


def test_span_attributes_and_annotations(
    meter: tuple[InMemoryMetricReader, MeterProvider],
) -> None:
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    observer = observer_for(meter[1], tracing=True)
    with provider.get_tracer("t").start_as_current_span("server"):
        observer.assessed(CALL, AssessmentRequest(token="t"), PASSED)
        observer.annotated(CALL, AnnotationRequest(assessment_name="x"), Delivery.QUEUED)
    observer.assessed(CALL, AssessmentRequest(token="t"), PASSED)  # no span: nothing to add to
    (span,) = exporter.get_finished_spans()
    attributes = dict(span.attributes or {})
    assert attributes["recaptcha.verdict"] == "PASSED"
    assert attributes["recaptcha.action"] == "none"
    assert attributes["recaptcha.delivery"] == "QUEUED"


def test_a_shed_call_is_counted_by_action_and_per_and_said_in_line_and_span(
    meter: tuple[InMemoryMetricReader, MeterProvider],
) -> None:
    from sidecar.policy.rules import decide_rate_limited
    from sidecar.policy.schema import ActionPolicy

    reader, provider = meter
    exporter = InMemorySpanExporter()
    tracer = TracerProvider()
    tracer.add_span_processor(SimpleSpanProcessor(exporter))
    observer = observer_for(provider, tracing=True)
    shed = decide_rate_limited(ActionPolicy(), "ip")
    fields: dict[str, Any] = {}
    token = CALL_FIELDS.set(fields)
    try:
        with tracer.get_tracer("t").start_as_current_span("server"):
            observer.assessed(CALL, AssessmentRequest(token="t", expected_action="login"), shed)
        observer.assessed(CALL, AssessmentRequest(token="t"), PASSED)
    finally:
        CALL_FIELDS.reset(token)
    (counted,) = points(reader, "rate_limited")
    assert (counted.value, dict(counted.attributes)) == (1, {"action": "login", "per": "ip"})
    (span,) = exporter.get_finished_spans()
    attributes = dict(span.attributes or {})
    assert attributes["recaptcha.rate_limited"] == "ip"
    assert attributes["recaptcha.decided_by"] == "rate_limited:ip"
    assert "rate_limited" in fields  # the first call's field; PASSED adds none of its own
