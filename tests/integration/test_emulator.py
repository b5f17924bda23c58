"""The emulator through the real Google client (GAPIC) over gRPC, as the sidecar will use it."""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
import os
import re
import signal
import socket
import sys
import tempfile
import time
from collections.abc import AsyncIterator, Awaitable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import grpc
import pytest
from google.api_core import exceptions as gexc
from google.cloud.recaptchaenterprise_v1 import (
    AnnotateAssessmentRequest,
    Assessment,
    CreateAssessmentRequest,
    Event,
    TokenProperties,
)
from google.cloud.recaptchaenterprise_v1.services.recaptcha_enterprise_service import (
    RecaptchaEnterpriseServiceAsyncClient,
)
from google.cloud.recaptchaenterprise_v1.services.recaptcha_enterprise_service.transports import (
    grpc_asyncio,
)
from google.rpc import error_details_pb2
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection_pb2, reflection_pb2_grpc

from sidecar.emulator import (
    SERVICE_NAME,
    EmulatorBindError,
    EmulatorControl,
    EmulatorService,
    mint_token,
    run_emulator,
    start_emulator,
)
from tests.support.polling import eventually

REPO_ROOT = Path(__file__).resolve().parents[2]
PARENT = "projects/test-project"
NAME = re.compile(r"projects/123456789/assessments/[0-9a-f]{16}")


@dataclass
class Emulator:
    address: str
    service: EmulatorService
    client: RecaptchaEnterpriseServiceAsyncClient
    control: EmulatorControl
    channel: Any


def _client(channel: Any) -> RecaptchaEnterpriseServiceAsyncClient:
    transport = grpc_asyncio.RecaptchaEnterpriseServiceGrpcAsyncIOTransport(channel=channel)
    return RecaptchaEnterpriseServiceAsyncClient(transport=transport)


@contextlib.asynccontextmanager
async def connected(address: str, service: EmulatorService | None) -> AsyncIterator[Emulator]:
    """A GAPIC client and a control client on one channel to ``address``."""
    channel = grpc.aio.insecure_channel(address)
    try:
        yield Emulator(
            address,
            service or EmulatorService(),
            _client(channel),
            EmulatorControl(channel),
            channel,
        )
    finally:
        await channel.close()


@contextlib.asynccontextmanager
async def serving(
    listen: list[str], **options: Any
) -> AsyncIterator[tuple[EmulatorService, list[int]]]:
    server, service, ports = await start_emulator(listen, **options)
    try:
        yield service, ports
    finally:
        await server.stop(None)


@pytest.fixture
async def emu() -> AsyncIterator[Emulator]:
    async with (
        serving(["127.0.0.1:0"]) as (service, ports),
        connected(f"127.0.0.1:{ports[0]}", service) as emulator,
    ):
        yield emulator


async def assess(
    emu: Emulator, token: str, *, deadline: float = 5.0, parent: str = PARENT, **event: Any
) -> Assessment:
    request = CreateAssessmentRequest(
        parent=parent, assessment=Assessment(event=Event(token=token, **event))
    )
    return await emu.client.create_assessment(request=request, timeout=deadline)


def reason_of(assessment: Assessment) -> str:
    """The InvalidReason name, or VALID."""
    properties = assessment.token_properties
    if properties.valid:
        assert properties.invalid_reason == 0
        return "VALID"
    name: str = TokenProperties.InvalidReason(properties.invalid_reason).name
    return name


# ---- CreateAssessment ---------------------------------------------------------------------


async def test_valid_token_answers_its_claims_and_echoes_the_event(emu: Emulator) -> None:
    issued_at = time.time() - 5
    token = mint_token(
        score=0.3,
        action="login",
        hostname="shop.example",
        site_key="site-1",
        issued_at=issued_at,
        reasons=["AUTOMATION", "UNEXPECTED_ENVIRONMENT"],
        labels=["SUSPICIOUS_LOGIN_ACTIVITY"],
    )
    answer = await assess(
        emu,
        token,
        site_key="site-1",
        user_agent="Mozilla/5.0",
        user_ip_address="192.0.2.7",
        expected_action="login",
        ja3="771,4865-4866",
    )
    assert reason_of(answer) == "VALID"
    assert NAME.fullmatch(answer.name)
    properties = answer.token_properties
    assert (properties.hostname, properties.action) == ("shop.example", "login")
    assert properties.android_package_name == "" and properties.ios_bundle_id == ""
    assert abs(properties.create_time.timestamp() - issued_at) < 0.001
    assert answer.risk_analysis.score == pytest.approx(0.3, abs=1e-6)  # float32 upstream
    assert [r.name for r in answer.risk_analysis.reasons] == [
        "AUTOMATION",
        "UNEXPECTED_ENVIRONMENT",
    ]
    assert [label.name for label in answer.account_defender_assessment.labels] == [
        "SUSPICIOUS_LOGIN_ACTIVITY"
    ]
    assert answer.event.token == token and answer.event.ja3 == "771,4865-4866"
    assert answer.event.user_ip_address == "192.0.2.7"


@pytest.mark.parametrize("field", ["android_package_name", "ios_bundle_id"])
async def test_app_tokens_answer_the_app_id_instead_of_a_hostname(
    emu: Emulator, field: str
) -> None:
    claims: dict[str, Any] = {field: "com.example.app"}
    answer = await assess(emu, mint_token(**claims))
    assert reason_of(answer) == "VALID"
    assert getattr(answer.token_properties, field) == "com.example.app"
    assert answer.token_properties.hostname == ""


async def test_assessment_names_are_unique_and_use_the_project_number() -> None:
    async with (
        serving(["127.0.0.1:0"], project_number="42") as (service, ports),
        connected(f"127.0.0.1:{ports[0]}", service) as emu,
    ):
        names = {(await assess(emu, mint_token())).name for _ in range(5)}
    assert len(names) == 5
    assert all(re.fullmatch(r"projects/42/assessments/[0-9a-f]{16}", n) for n in names)


# Tokens are minted inside the test (claims here), never at collection time: a long suite
# could otherwise run a test after its token expired.
_MISSING = {"token": ""}
_GARBAGE = {"token": "not-an-emulator-token"}
_BAD_BASE64 = {"token": "emu1.!!!"}


def _token(claims: dict[str, Any]) -> str:
    if "token" in claims:
        literal: str = claims["token"]
        return literal
    if "age" in claims:
        claims = {**claims, "issued_at": time.time() - claims["age"]}
        del claims["age"]
    return mint_token(**claims)


@pytest.mark.parametrize(
    ("claims", "site_key", "expected"),
    [
        (_MISSING, "", "MISSING"),
        (_GARBAGE, "", "MALFORMED"),
        (_BAD_BASE64, "", "MALFORMED"),
        ({"age": 121}, "", "EXPIRED"),
        ({"site_key": "site-A"}, "site-B", "KEY_MISMATCH"),
        ({"site_key": "site-A"}, "", "KEY_MISMATCH"),
        ({"invalid_reason": "BROWSER_ERROR"}, "", "BROWSER_ERROR"),
        ({"invalid_reason": "UNEXPECTED_ACTION"}, "", "UNEXPECTED_ACTION"),
        ({"invalid_reason": "DOMAIN_MISMATCH"}, "", "DOMAIN_MISMATCH"),
        ({"invalid_reason": "UNKNOWN_INVALID_REASON"}, "", "UNKNOWN_INVALID_REASON"),
        ({"invalid_reason": "MALFORMED"}, "", "MALFORMED"),
        ({"age": 110, "site_key": "site-A"}, "site-A", "VALID"),
        ({"age": 110}, "any-key", "VALID"),
    ],
)
async def test_invalid_reasons(
    emu: Emulator, claims: dict[str, Any], site_key: str, expected: str
) -> None:
    token = _token(claims)
    answer = await assess(emu, token, site_key=site_key)
    assert reason_of(answer) == expected
    assert NAME.fullmatch(answer.name) and answer.event.token == token
    if expected != "VALID":
        assert answer.risk_analysis.score == 0 and answer.token_properties.action == ""


async def test_expired_takes_the_issue_time_not_the_first_sight(emu: Emulator) -> None:
    assert reason_of(await assess(emu, mint_token(issued_at=time.time() - 110))) == "VALID"
    assert reason_of(await assess(emu, mint_token(issued_at=time.time() - 130))) == "EXPIRED"


async def test_a_token_is_valid_once_then_dupe(emu: Emulator) -> None:
    token = mint_token()
    assert reason_of(await assess(emu, token)) == "VALID"
    assert reason_of(await assess(emu, token)) == "DUPE"
    assert reason_of(await assess(emu, token)) == "DUPE"
    assert await emu.control.calls_for(token) == 3


@pytest.mark.parametrize(
    "claims", [{"invalid_reason": "BROWSER_ERROR"}, {"age": 600}, {"site_key": "other"}]
)
async def test_any_first_outcome_consumes_the_token(emu: Emulator, claims: dict[str, Any]) -> None:
    token = _token(claims)
    assert reason_of(await assess(emu, token)) != "VALID"
    assert reason_of(await assess(emu, token)) == "DUPE"


async def test_malformed_tokens_are_not_remembered(emu: Emulator) -> None:
    for _ in range(2):
        assert reason_of(await assess(emu, "garbage")) == "MALFORMED"


async def test_concurrent_calls_for_one_token_get_one_valid(emu: Emulator) -> None:
    token = mint_token()
    answers = await asyncio.gather(*(assess(emu, token) for _ in range(20)))
    reasons = sorted(reason_of(a) for a in answers)
    assert reasons == ["DUPE"] * 19 + ["VALID"]


@pytest.mark.parametrize("parent", ["", "projects/", "project/p", "projects/p/extra", "p"])
async def test_bad_parent_is_invalid_argument_and_consumes_nothing(
    emu: Emulator, parent: str
) -> None:
    token = mint_token()
    with pytest.raises(gexc.InvalidArgument):
        await assess(emu, token, parent=parent)
    assert reason_of(await assess(emu, token)) == "VALID"


async def test_other_methods_are_unimplemented(emu: Emulator) -> None:
    with pytest.raises(gexc.MethodNotImplemented):
        await emu.client.list_keys(parent=PARENT, timeout=5)


# ---- AnnotateAssessment -------------------------------------------------------------------


async def test_annotate_records_the_annotation(emu: Emulator) -> None:
    answer = await assess(emu, mint_token(action="login"))
    request = AnnotateAssessmentRequest(
        name=answer.name,
        annotation=AnnotateAssessmentRequest.Annotation.LEGITIMATE,
        reasons=[AnnotateAssessmentRequest.Reason.PASSED_TWO_FACTOR],
        account_id="acct-7",
        hashed_account_id=b"\x01\x02",
    )
    await emu.client.annotate_assessment(request=request, timeout=5)
    await emu.client.annotate_assessment(request=request, timeout=5)
    stats = await emu.control.stats()
    assert stats["annotate_calls"] == 2 and stats["annotations_total"] == 2
    assert stats["annotated_names"] == [answer.name]
    assert stats["annotations"][0] == {
        "name": answer.name,
        "annotation": "LEGITIMATE",
        "reasons": ["PASSED_TWO_FACTOR"],
        "account_id": "acct-7",
        "hashed_account_id": "AQI=",
        "transaction_event": None,
        "phone_authentication_event": None,
    }


async def test_annotate_an_unknown_assessment_is_not_found(emu: Emulator) -> None:
    unknown = "projects/123456789/assessments/0000000000000000"
    with pytest.raises(gexc.NotFound) as caught:
        await emu.client.annotate_assessment(
            request=AnnotateAssessmentRequest(name=unknown), timeout=5
        )
    (info,) = caught.value.details
    assert (info.resource_type, info.resource_name) == (
        "recaptchaenterprise.googleapis.com/Assessment",
        unknown,
    )
    stats = await emu.control.stats()
    assert stats["annotate_calls"] == 1 and stats["annotations_total"] == 0
    assert stats["rejected_calls"] == {"NOT_FOUND": 1}


@pytest.mark.parametrize("name", ["", "projects/p", "assessments/1", "projects/p/assessments/"])
async def test_annotate_a_malformed_name_is_invalid_argument_naming_the_field(
    emu: Emulator, name: str
) -> None:
    with pytest.raises(gexc.InvalidArgument) as caught:
        await emu.client.annotate_assessment(
            request=AnnotateAssessmentRequest(name=name), timeout=5
        )
    (violation,) = caught.value.details[0].field_violations
    assert violation.field == "name"


# ---- what reached upstream ----------------------------------------------------------------


async def test_stats_show_events_and_metadata_that_arrived(emu: Emulator) -> None:
    token = mint_token()
    request = CreateAssessmentRequest(
        parent=PARENT,
        assessment=Assessment(
            event=Event(
                token=token,
                user_agent="UA/1",
                ja3="ja3-fingerprint",
                user_info={"account_id": "acct-1", "user_ids": [{"email": "a@example.com"}]},
            )
        ),
    )
    metadata = [
        ("x-goog-api-key", "test-key"),
        ("traceparent", "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"),
    ]
    await emu.client.create_assessment(request=request, metadata=metadata, timeout=5)
    await assess(emu, "")
    stats = await emu.control.stats(tokens=[token, "never-sent"])
    assert stats["create_calls"] == 2
    assert stats["create_calls_by_token"] == {token: 1, "never-sent": 0}
    assert stats["outcomes"] == {"VALID": 1, "MISSING": 1}
    assert stats["distinct_tokens"] == 1 and stats["repeated_tokens"] == 0
    first = stats["recent_creates"][0]
    assert first["parent"] == PARENT
    assert first["event"]["user_agent"] == "UA/1" and first["event"]["ja3"] == "ja3-fingerprint"
    assert first["event"]["user_info"] == {
        "account_id": "acct-1",
        "user_ids": [{"email": "a@example.com"}],
    }
    digest = hashlib.sha256(b"test-key").hexdigest()[:12]
    assert first["metadata"]["x-goog-api-key"] == f"sha256:{digest}", "never the key in clear"
    assert "test-key" not in json.dumps(stats)
    assert {"x-goog-api-key", "traceparent"} <= set(stats["metadata_keys"])
    assert "x-goog-api-key" not in stats["recent_creates"][1]["metadata"]
    assert stats["calls_by_credential"] == {"api_key": 1, "none": 1}


async def test_stats_by_digest_and_repeated_tokens(emu: Emulator) -> None:
    token = mint_token()
    for _ in range(3):
        await assess(emu, token)
    digest = hashlib.sha256(token.encode()).hexdigest()
    stats = await emu.control.stats(digests=[digest, "zz"])
    assert stats["create_calls_by_digest"] == {digest: 3, "zz": 0}
    assert stats["repeated_tokens"] == 1


async def test_recent_creates_are_bounded(emu: Emulator) -> None:
    await asyncio.gather(*(assess(emu, "") for _ in range(105)))
    stats = await emu.control.stats()
    assert stats["create_calls"] == 105 and len(stats["recent_creates"]) == 100


async def test_reset_forgets_tokens_counters_and_faults(emu: Emulator) -> None:
    token = mint_token()
    answer = await assess(emu, token)
    await emu.control.set_faults("annotate", latency_ms=1)
    await emu.control.reset()
    stats = await emu.control.stats()
    assert stats["create_calls"] == 0 and stats["assessments"] == 0
    assert stats["faults"]["annotate"]["latency_ms"] == 0
    assert reason_of(await assess(emu, token)) == "VALID"
    with pytest.raises(gexc.NotFound):
        await emu.client.annotate_assessment(name=answer.name, timeout=5)


# ---- fault knobs --------------------------------------------------------------------------


async def test_latency_delays_the_answer(emu: Emulator) -> None:
    await emu.control.set_faults("create", latency_ms=300)
    with pytest.raises(gexc.DeadlineExceeded):
        await assess(emu, mint_token(), deadline=0.05)
    started = time.monotonic()
    assert reason_of(await assess(emu, mint_token())) == "VALID"
    assert time.monotonic() - started >= 0.25
    await emu.control.clear_faults()
    await assess(emu, mint_token(), deadline=0.25)


async def test_error_rate_fails_before_the_token_is_consumed(emu: Emulator) -> None:
    token = mint_token()
    faults = await emu.control.set_faults("create", error_rate=1.0, error_code="INTERNAL")
    assert faults["create"]["error_code"] == "INTERNAL" and faults["create"]["error_rate"] == 1
    with pytest.raises(gexc.InternalServerError):
        await assess(emu, token)
    await emu.control.set_faults("create", error_rate=1.0)  # default code
    with pytest.raises(gexc.ServiceUnavailable):
        await assess(emu, token)
    assert (await emu.control.stats())["injected_failures"]["create"] == 2
    await emu.control.clear_faults()
    assert reason_of(await assess(emu, token)) == "VALID"


async def test_error_rate_is_reproducible_with_a_seed(emu: Emulator) -> None:
    async def run() -> list[bool]:
        await emu.control.set_faults("create", error_rate=0.5, seed=1234)
        outcomes = []
        for _ in range(24):
            try:
                await assess(emu, "")
                outcomes.append(True)
            except gexc.ServiceUnavailable:
                outcomes.append(False)
        return outcomes

    first = await run()
    assert first == await run()
    assert 0 < sum(first) < len(first)


async def test_hang_holds_the_call_until_the_client_cancels(emu: Emulator) -> None:
    await emu.control.set_faults("create", hang=True)

    async def hanging() -> int:
        stats = await emu.control.stats()
        count: int = stats["hanging_calls"]
        return count

    with pytest.raises(gexc.DeadlineExceeded):
        await assess(emu, mint_token(), deadline=0.1)
    call = asyncio.create_task(assess(emu, mint_token(), deadline=30))
    await eventually(lambda: _equals(hanging(), 1))
    await asyncio.sleep(0.05)
    assert not call.done()
    call.cancel()
    await eventually(lambda: _equals(hanging(), 0))
    with pytest.raises(asyncio.CancelledError):
        await call


async def _equals(value: Awaitable[int], expected: int) -> bool:
    return await value == expected


async def test_fail_after_consume_loses_the_answer_and_a_retry_is_dupe(emu: Emulator) -> None:
    token = mint_token()
    await emu.control.set_faults("create", fail_after_consume_rate=1.0)
    with pytest.raises(gexc.ServiceUnavailable):
        await assess(emu, token)
    await emu.control.clear_faults()
    assert reason_of(await assess(emu, token)) == "DUPE"


async def test_quota_is_resource_exhausted_with_retry_info_and_no_pushback_header(
    emu: Emulator,
) -> None:
    token = mint_token()
    await emu.control.set_faults("create", quota=True, retry_delay_ms=2500)
    with pytest.raises(gexc.ResourceExhausted) as caught:
        await assess(emu, token)
    assert caught.value.reason == "RATE_LIMIT_EXCEEDED"
    retry = [d for d in caught.value.details if isinstance(d, error_details_pb2.RetryInfo)]
    assert [r.retry_delay.ToTimedelta().total_seconds() for r in retry] == [2.5]
    trailing = dict(caught.value.response.trailing_metadata())
    assert "grpc-retry-pushback-ms" not in trailing, "Google never sends it"
    await emu.control.set_faults("create", quota=True)
    with pytest.raises(gexc.ResourceExhausted) as caught:
        await assess(emu, token)
    assert not [d for d in caught.value.details if isinstance(d, error_details_pb2.RetryInfo)]
    await emu.control.clear_faults()
    assert reason_of(await assess(emu, token)) == "VALID"


async def test_retry_info_is_sent_with_every_injected_failure(emu: Emulator) -> None:
    await emu.control.set_faults("create", fail_after_consume_rate=1.0, retry_delay_ms=0)
    with pytest.raises(gexc.ServiceUnavailable) as caught:
        await assess(emu, mint_token())
    (retry,) = caught.value.details
    assert isinstance(retry, error_details_pb2.RetryInfo)
    assert retry.retry_delay.ToTimedelta().total_seconds() == 0


async def test_annotate_faults_are_separate_from_create(emu: Emulator) -> None:
    name = (await assess(emu, mint_token())).name
    await emu.control.set_faults("annotate", error_rate=1.0, error_code=8)
    assert reason_of(await assess(emu, mint_token())) == "VALID"
    with pytest.raises(gexc.ResourceExhausted):
        await emu.client.annotate_assessment(name=name, timeout=5)
    assert (await emu.control.stats())["annotations_total"] == 0
    await emu.control.set_faults("annotate", fail_after_consume_rate=1.0)
    with pytest.raises(gexc.ServiceUnavailable):
        await emu.client.annotate_assessment(name=name, timeout=5)
    stats = await emu.control.stats()
    assert stats["annotations_total"] == 1 and stats["annotated_names"] == [name]


@pytest.mark.parametrize(
    ("rpc", "knobs"),
    [
        ("create", {"latncy_ms": 5}),
        ("create", {"error_rate": 1.5}),
        ("create", {"error_code": "OK"}),
        ("create", {"error_code": "NOT_A_CODE"}),
        ("create", {"hang": "yes"}),
        ("create", {"retry_delay_ms": -1}),
        ("create", {"retry_pushback_ms": 5}),
        ("create", {"error_reason": "NO_SUCH_REASON"}),
        ("create", {"error_reason": "API_KEY_INVALID", "error_code": "UNAVAILABLE"}),
        ("create", {"error_reason": "API_KEY_INVALID", "error_field": "parent"}),
        ("metadata", {"status": 200}),
        ("metadata", {"times": 0}),
        ("metadata", {"hang": 1}),
        ("delete", {}),
    ],
)
async def test_bad_fault_settings_are_invalid_argument(
    emu: Emulator, rpc: str, knobs: dict[str, Any]
) -> None:
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await emu.control.set_faults(rpc, **knobs)
    assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert (await emu.control.stats())["faults"]["create"]["error_rate"] == 0


async def test_control_plane_rejects_malformed_json(emu: Emulator) -> None:
    call = emu.channel.unary_unary("/recaptcha.sidecar.emulator.v1.Control/GetStats")
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await call(b"{not json", timeout=5)
    assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert b'"create_calls":0' in await call(b"", timeout=5)


# ---- server -------------------------------------------------------------------------------


async def test_unix_socket_listener() -> None:
    with tempfile.TemporaryDirectory(prefix="emu", dir="/tmp") as directory:
        path = Path(directory) / "emu.sock"
        async with (
            serving([f"unix://{path}", "127.0.0.1:0"]) as (service, ports),
            connected(f"unix://{path}", service) as emu,
        ):
            assert ports[0] == 0 and ports[1] > 0
            token = mint_token()
            assert reason_of(await assess(emu, token)) == "VALID"
            assert await emu.control.calls_for(token) == 1
            health = health_pb2_grpc.HealthStub(emu.channel)
            reply = await health.Check(health_pb2.HealthCheckRequest(), timeout=5)
            assert reply.status == health_pb2.HealthCheckResponse.SERVING
            # the TCP listener serves the same state
            async with connected(f"127.0.0.1:{ports[1]}", service) as tcp:
                assert reason_of(await assess(tcp, token)) == "DUPE"


async def test_an_address_in_use_is_a_clear_error() -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        with pytest.raises(EmulatorBindError, match=re.escape(f"127.0.0.1:{port}")):
            await start_emulator(["127.0.0.1:0", f"127.0.0.1:{port}"])


async def test_an_unusable_unix_path_is_a_clear_error() -> None:
    with pytest.raises(EmulatorBindError, match=re.escape("/nonexistent-dir/emu.sock")):
        await start_emulator(["unix:///nonexistent-dir/emu.sock"])


async def test_health_and_reflection(emu: Emulator) -> None:
    health = health_pb2_grpc.HealthStub(emu.channel)
    for service in ["", SERVICE_NAME]:
        reply = await health.Check(health_pb2.HealthCheckRequest(service=service), timeout=5)
        assert reply.status == health_pb2.HealthCheckResponse.SERVING
    stub = reflection_pb2_grpc.ServerReflectionStub(emu.channel)
    requests = [
        reflection_pb2.ServerReflectionRequest(list_services=""),
        reflection_pb2.ServerReflectionRequest(file_containing_symbol=SERVICE_NAME),
    ]
    replies = [r async for r in stub.ServerReflectionInfo(iter(requests), timeout=5)]
    listed = {s.name for s in replies[0].list_services_response.service}
    assert SERVICE_NAME in listed and "grpc.health.v1.Health" in listed
    assert replies[1].HasField("file_descriptor_response"), replies[1]


async def test_run_emulator_prints_its_addresses_and_stops_on_cancel(
    capsys: pytest.CaptureFixture[str],
) -> None:
    task = asyncio.create_task(run_emulator(["127.0.0.1:0"]))
    output = ""

    async def printed() -> bool:
        nonlocal output
        output += capsys.readouterr().out
        return "\n" in output

    await eventually(printed)
    match = re.fullmatch(r"recaptcha-emulator listening on 127\.0\.0\.1:(\d+)\n", output)
    assert match and int(match.group(1)) > 0
    async with connected(f"127.0.0.1:{match.group(1)}", None) as emu:
        assert reason_of(await assess(emu, mint_token())) == "VALID"
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert task.cancelled()


async def test_run_emulator_stops_cleanly_on_sigterm() -> None:
    """The CLI's path: a separate process, its ready line, then SIGTERM and exit 0."""
    root = REPO_ROOT
    code = (
        "import asyncio; from sidecar.emulator import run_emulator; "
        "asyncio.run(run_emulator(['127.0.0.1:0']))"
    )
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-c",
        code,
        cwd=root,
        env={**os.environ, "PYTHONPATH": str(root)},
        stdout=asyncio.subprocess.PIPE,
    )
    try:
        assert process.stdout is not None
        line = (await asyncio.wait_for(process.stdout.readline(), 30)).decode()
        match = re.fullmatch(r"recaptcha-emulator listening on (127\.0\.0\.1:\d+)\n", line)
        assert match, line
        async with connected(match.group(1), None) as emu:
            assert reason_of(await assess(emu, mint_token())) == "VALID"
        process.send_signal(signal.SIGTERM)
        assert await asyncio.wait_for(process.wait(), 10) == 0
    finally:
        if process.returncode is None:
            process.kill()
            await process.wait()
