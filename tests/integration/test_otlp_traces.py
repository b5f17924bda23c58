"""Traces and metrics exported over OTLP to a real receiver: the server span continues the
caller's trace, the upstream attempts are its children (the replay lookup and the decision
are its attributes), the trace context goes on to upstream, and health checks are not
traced."""

from __future__ import annotations

import asyncio
import secrets
from collections.abc import Iterator

import grpc
import pytest
from grpc_health.v1 import health_pb2
from recaptcha.sidecar.v1 import sidecar_pb2 as pb

from sidecar.core.model import AssessmentRequest
from sidecar.core.ports import ATTEMPT, UpstreamError
from sidecar.emulator import mint_token
from sidecar.telemetry.metrics import ActionLabels
from sidecar.telemetry.providers import Telemetry
from sidecar.telemetry.upstream import InstrumentedUpstream
from sidecar.upstream.client import GoogleUpstream
from tests.conftest import EmulatorHandle, SidecarFactory, SidecarHandle
from tests.support.defaults import TELEMETRY
from tests.support.otlp_receiver import (
    OtlpReceiver,
    ReceivedSpan,
    start_grpc_receiver,
    start_http_receiver,
)

SERVICE = "recaptcha.sidecar.v1.VerificationService"
UPSTREAM = "google.cloud.recaptchaenterprise.v1.RecaptchaEnterpriseService"
POLICY = {"actions": {"login": {"threshold": 0.5}, "signup": {"mode": "audit"}}}


@pytest.fixture
def receiver(monkeypatch: pytest.MonkeyPatch) -> Iterator[OtlpReceiver]:
    """A gRPC OTLP receiver, and the standard variables pointing the sidecar at it."""
    receiver = start_grpc_receiver()
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_ENDPOINT", receiver.endpoint)
    monkeypatch.setenv("OTEL_SERVICE_NAME", "sidecar-under-test")
    monkeypatch.setenv("OTEL_BSP_SCHEDULE_DELAY", "50")
    monkeypatch.setenv("OTEL_METRIC_EXPORT_INTERVAL", "100")
    yield receiver
    receiver.close()


def traceparent() -> tuple[str, str, str]:
    trace_id, span_id = secrets.token_hex(16), secrets.token_hex(8)
    return trace_id, span_id, f"00-{trace_id}-{span_id}-01"


async def flush(handle: SidecarHandle) -> None:
    telemetry = handle.sidecar.telemetry
    assert telemetry is not None and telemetry.tracer_provider is not None
    await asyncio.to_thread(telemetry.tracer_provider.force_flush)


def spans_of(receiver: OtlpReceiver, trace_id: str) -> list[ReceivedSpan]:
    return [span for span in receiver.spans() if span.trace_id == trace_id]


async def test_assess_spans_continue_the_callers_trace(
    receiver: OtlpReceiver, make_sidecar: SidecarFactory, emulator: EmulatorHandle
) -> None:
    handle = await make_sidecar(policy=POLICY)
    trace_id, caller_span, header = traceparent()
    token = mint_token(score=0.9, action="login")

    answer = await handle.stub.Assess(
        pb.AssessRequest(token=token, expected_action="login", user_ip_address="203.0.113.5"),
        metadata=(("traceparent", header),),
        timeout=5,
    )
    assert answer.verdict == pb.VERDICT_PASSED
    await flush(handle)
    assert receiver.wait_for(lambda r: len(spans_of(r, trace_id)) >= 2), receiver.spans()
    spans = spans_of(receiver, trace_id)

    server = [s for s in spans if s.is_server]
    assert len(server) == 1
    root = server[0]
    assert root.name == f"{SERVICE}/Assess"
    assert root.parent_span_id == caller_span, "the server span continues the caller's span"
    assert root.resource["service.name"] == "sidecar-under-test"
    assert {k: root.attributes[k] for k in ("rpc.system", "rpc.service", "rpc.method")} == {
        "rpc.system": "grpc",
        "rpc.service": SERVICE,
        "rpc.method": "Assess",
    }
    assert root.attributes["rpc.grpc.status_code"] == 0
    assert root.attributes["recaptcha.action"] == "login"
    assert root.attributes["recaptcha.verdict"] == "PASSED"
    assert root.attributes["recaptcha.token_status"] == "VALID"
    assert root.attributes["recaptcha.replayed"] is False
    assert root.attributes["recaptcha.threshold"] == pytest.approx(0.5)
    assert root.attributes["recaptcha.decided_by"] == "passed"

    children = {s.name: s for s in spans if s.parent_span_id == root.span_id}
    # The decision is attributes of the server span (above), not a span of its own.
    # So is the replay lookup: one child span per upstream attempt, nothing else.
    assert set(children) == {f"{UPSTREAM}/CreateAssessment"}
    assert root.attributes["recaptcha.replay.result"] == "miss"
    attempt = children[f"{UPSTREAM}/CreateAssessment"]
    assert attempt.is_client
    assert attempt.attributes == {
        "rpc.system": "grpc",
        "rpc.service": UPSTREAM,
        "rpc.method": "CreateAssessment",
        "recaptcha.upstream.attempt": 1,
        "rpc.grpc.status_code": 0,
    }

    # Upstream was called with the attempt span as parent, in the caller's trace.
    stats = await emulator.control.stats()
    sent = dict(stats["recent_creates"][-1]["metadata"])
    assert sent["traceparent"] == f"00-{trace_id}-{attempt.span_id}-01"


async def test_replayed_token_and_missing_token_are_traced_without_upstream(
    receiver: OtlpReceiver, make_sidecar: SidecarFactory
) -> None:
    handle = await make_sidecar(policy=POLICY)
    token = mint_token(action="login")
    await handle.stub.Assess(pb.AssessRequest(token=token, expected_action="login"), timeout=5)
    trace_id, _, header = traceparent()
    await handle.stub.Assess(
        pb.AssessRequest(token=token, expected_action="login"),
        metadata=(("traceparent", header),),
        timeout=5,
    )
    missing_trace, _, missing_header = traceparent()
    await handle.stub.Assess(
        pb.AssessRequest(token="", expected_action="promo"),
        metadata=(("traceparent", missing_header),),
        timeout=5,
    )
    await flush(handle)
    assert receiver.wait_for(lambda r: spans_of(r, missing_trace) and spans_of(r, trace_id))

    duplicate = spans_of(receiver, trace_id)
    root = next(s for s in duplicate if s.is_server)
    assert root.attributes["recaptcha.token_status"] == "DUPLICATE"
    assert root.attributes["recaptcha.replay.result"] == "hit"
    assert not [s for s in duplicate if s.name.startswith(UPSTREAM)]

    (missing,) = spans_of(receiver, missing_trace)
    assert missing.attributes["recaptcha.token_status"] == "MISSING"
    assert missing.attributes["recaptcha.action"] == "other", "unconfigured actions are bounded"


async def test_errors_are_traced_with_their_status_and_health_checks_are_not(
    receiver: OtlpReceiver, make_sidecar: SidecarFactory
) -> None:
    handle = await make_sidecar(policy=POLICY)
    for _ in range(3):
        answer = await handle.health.Check(health_pb2.HealthCheckRequest(service=""), timeout=5)
        assert answer.status == health_pb2.HealthCheckResponse.SERVING
    trace_id, _, header = traceparent()
    with pytest.raises(grpc.aio.AioRpcError) as raised:
        await handle.stub.Assess(
            pb.AssessRequest(token="x", user_ip_address="not-an-ip"),
            metadata=(("traceparent", header),),
            timeout=5,
        )
    assert raised.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    await flush(handle)
    assert receiver.wait_for(lambda r: spans_of(r, trace_id))
    (root,) = spans_of(receiver, trace_id)
    assert root.attributes["rpc.grpc.status_code"] == grpc.StatusCode.INVALID_ARGUMENT.value[0]
    assert root.status_code == 0, "a caller's mistake is not a server error"
    assert not [s for s in receiver.spans() if "Health" in s.name or "health" in s.name]


async def test_upstream_failure_marks_the_attempt_span(
    receiver: OtlpReceiver, make_sidecar: SidecarFactory, emulator: EmulatorHandle
) -> None:
    handle = await make_sidecar(policy=POLICY)
    await emulator.control.set_faults("create", error_rate=1.0, error_code="UNAVAILABLE")
    trace_id, _, header = traceparent()
    answer = await handle.stub.Assess(
        pb.AssessRequest(token=mint_token(action="login"), expected_action="login"),
        metadata=(("traceparent", header),),
        timeout=5,
    )
    assert answer.token_status == pb.TOKEN_STATUS_UNCHECKED
    await flush(handle)
    assert receiver.wait_for(lambda r: any(s.is_client for s in spans_of(r, trace_id)))
    attempts = [s for s in spans_of(receiver, trace_id) if s.is_client]
    assert attempts, "at least one attempt"
    for attempt in attempts:
        assert attempt.attributes["error.type"] == "UNAVAILABLE"
        assert attempt.attributes["rpc.grpc.status_code"] == grpc.StatusCode.UNAVAILABLE.value[0]
        assert attempt.status_code == 2  # STATUS_CODE_ERROR
    root = next(s for s in spans_of(receiver, trace_id) if s.is_server)
    assert root.attributes["recaptcha.token_status"] == "UNCHECKED"
    assert root.attributes["rpc.grpc.status_code"] == 0, "an unchecked token is still an answer"


async def test_retried_attempts_are_sibling_children_with_numbers_and_reasons(
    receiver: OtlpReceiver, emulator: EmulatorHandle
) -> None:
    """The attempt decorator under a retry loop (the contract the retry layer follows: set
    ATTEMPT, await attempts one after another): attempts 1 and 2 are children of the span that
    retried, the first marked with its failure, the second with the reason it exists."""
    telemetry = Telemetry(TELEMETRY, ActionLabels(lambda: ()))
    raw = GoogleUpstream(project="p", endpoint=emulator.address, plaintext=True)
    upstream = InstrumentedUpstream(raw, tracer=telemetry.tracer, instruments=telemetry.instruments)
    await emulator.control.set_faults("create", error_rate=1.0, error_code="UNAVAILABLE")
    request = AssessmentRequest(token=mint_token(action="login"), expected_action="login")
    with telemetry.tracer.start_as_current_span("retrying call") as parent:
        for attempt in (1, 2, 3):
            ATTEMPT.set(attempt)
            try:
                await upstream.create_assessment(request, site_key="", timeout=5)
                break
            except UpstreamError:
                await emulator.control.clear_faults()
    await raw.close()
    trace_id = format(parent.get_span_context().trace_id, "032x")
    parent_id = format(parent.get_span_context().span_id, "016x")
    await asyncio.to_thread(telemetry.shutdown)

    assert receiver.wait_for(lambda r: len([s for s in spans_of(r, trace_id) if s.is_client]) == 2)
    first, second = sorted(
        (s for s in spans_of(receiver, trace_id) if s.is_client),
        key=lambda s: s.attributes["recaptcha.upstream.attempt"],
    )
    assert first.parent_span_id == second.parent_span_id == parent_id
    assert first.attributes["recaptcha.upstream.attempt"] == 1
    assert first.attributes["error.type"] == "UNAVAILABLE"
    assert first.attributes["recaptcha.upstream.retryable"] is True
    assert "recaptcha.upstream.retry_reason" not in first.attributes
    assert second.attributes["recaptcha.upstream.attempt"] == 2
    assert second.attributes["recaptcha.upstream.retry_reason"] == "UNAVAILABLE"
    assert second.attributes["rpc.grpc.status_code"] == 0

    points = {
        (attrs["code"], attrs["retry"]): point.as_int
        for attrs, point in receiver.metric_points("upstream.attempts")
    }
    assert points == {("UNAVAILABLE", "false"): 1, ("OK", "true"): 1}
    errors = {a["code"]: p.as_int for a, p in receiver.metric_points("upstream.errors")}
    assert errors == {"UNAVAILABLE": 1}


async def test_otlp_metrics_count_decisions(
    receiver: OtlpReceiver, make_sidecar: SidecarFactory
) -> None:
    handle = await make_sidecar(policy=POLICY)
    for score in (0.9, 0.9, 0.1):
        await handle.stub.Assess(
            pb.AssessRequest(
                token=mint_token(score=score, action="login"), expected_action="login"
            ),
            timeout=5,
        )
    await handle.stub.Assess(
        pb.AssessRequest(token=mint_token(score=0.1, action="signup"), expected_action="signup"),
        timeout=5,
    )

    def verdicts(r: OtlpReceiver) -> dict[tuple[str, str], int]:
        return {(a["verdict"], a["action"]): p.as_int for a, p in r.metric_points("verdict_count")}

    expected = {
        ("PASSED", "login"): 2,
        ("FAILED_ENFORCE", "login"): 1,
        ("FAILED_AUDIT", "signup"): 1,
    }
    assert receiver.wait_for(lambda r: verdicts(r) == expected), verdicts(receiver)
    scores = {a["action"]: p for a, p in receiver.metric_points("risk_scores")}
    assert scores["login"].count == 3
    assert list(scores["login"].explicit_bounds) == pytest.approx([i / 10 for i in range(11)])


@pytest.fixture
def http_receiver(monkeypatch: pytest.MonkeyPatch) -> Iterator[OtlpReceiver]:
    """An OTLP/HTTP receiver and the variables that select the HTTP protocol."""
    receiver = start_http_receiver()
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_ENDPOINT", receiver.endpoint)
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_PROTOCOL", "http/protobuf")
    monkeypatch.setenv("OTEL_BSP_SCHEDULE_DELAY", "50")
    monkeypatch.setenv("OTEL_METRIC_EXPORT_INTERVAL", "100")
    yield receiver
    receiver.close()


async def test_otlp_over_http(http_receiver: OtlpReceiver, make_sidecar: SidecarFactory) -> None:
    handle = await make_sidecar(policy=POLICY)
    trace_id, caller, header = traceparent()
    await handle.stub.Assess(
        pb.AssessRequest(token=mint_token(action="login"), expected_action="login"),
        metadata=(("traceparent", header),),
        timeout=5,
    )
    await flush(handle)
    assert http_receiver.wait_for(lambda r: any(s.is_server for s in spans_of(r, trace_id)))
    root = next(s for s in spans_of(http_receiver, trace_id) if s.is_server)
    assert root.parent_span_id == caller
    assert http_receiver.wait_for(lambda r: "verdict_count" in r.metric_names())


async def test_callers_baggage_never_goes_upstream(
    receiver: OtlpReceiver, make_sidecar: SidecarFactory, emulator: EmulatorHandle
) -> None:
    """Issue 13 item 12: apps put user data in W3C baggage; only `traceparent` and
    `tracestate` go on to Google, and no span carries the baggage."""
    handle = await make_sidecar(policy=POLICY)
    trace_id, _, header = traceparent()
    secret = "user.email=victim%40example.org,session=s3cr3t-session-id"
    answer = await handle.stub.Assess(
        pb.AssessRequest(token=mint_token(score=0.9, action="login"), expected_action="login"),
        metadata=(("traceparent", header), ("tracestate", "vendor=opaque"), ("baggage", secret)),
        timeout=5,
    )
    assert answer.verdict == pb.VERDICT_PASSED
    stats = await emulator.control.stats()
    sent = dict(stats["recent_creates"][-1]["metadata"])
    assert sent["traceparent"].split("-")[1] == trace_id, "the trace context still goes upstream"
    assert sent["tracestate"] == "vendor=opaque"
    assert "baggage" not in sent, sent
    assert not any("victim" in value or "s3cr3t" in value for value in sent.values()), sent
    await flush(handle)
    assert receiver.wait_for(lambda r: len(spans_of(r, trace_id)) >= 2)  # server, attempt
    for span in spans_of(receiver, trace_id):
        assert not any("victim" in str(v) or "s3cr3t" in str(v) for v in span.attributes.values())
