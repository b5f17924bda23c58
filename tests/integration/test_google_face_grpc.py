"""The Google-compatible gRPC face: Google's own Python client (google-cloud-recaptcha-enterprise)
against a real sidecar on the emulator, over a real TCP connection; raw gRPC for what the
client cannot send (undecodable bytes, methods it does not have, fields it does not know)."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import os
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import grpc
import pytest
from google.api_core import exceptions as gexc
from google.cloud.recaptchaenterprise_v1 import RecaptchaEnterpriseServiceAsyncClient
from google.cloud.recaptchaenterprise_v1.services.recaptcha_enterprise_service.transports import (
    RecaptchaEnterpriseServiceGrpcAsyncIOTransport,
)
from google.cloud.recaptchaenterprise_v1.types import recaptchaenterprise as types
from google.protobuf import descriptor_pb2
from google.rpc import error_details_pb2, status_pb2
from grpc_reflection.v1alpha import reflection_pb2, reflection_pb2_grpc

from sidecar.accountid.protection import KEY_ENV
from sidecar.emulator.tokens import mint_token
from tests.conftest import EmulatorHandle, SidecarFactory, SidecarHandle
from tests.support.polling import eventually

SERVICE = "google.cloud.recaptchaenterprise.v1.RecaptchaEnterpriseService"
PROJECT = "test-project"
PARENT = f"projects/{PROJECT}"
IDEMPOTENCY = "x-recaptcha-idempotency-key"
Pb = types.Assessment.pb()
CreatePb = types.CreateAssessmentRequest.pb()
DUPE = types.TokenProperties.InvalidReason.DUPE.value
KEY = os.urandom(64)
ACCOUNT = "alice@example.com"


def _pb(request: types.CreateAssessmentRequest) -> Any:
    """The proto-plus request as the plain protobuf message."""
    return CreatePb.FromString(types.CreateAssessmentRequest.serialize(request))


@pytest.fixture
async def google(sidecar: SidecarHandle) -> AsyncIterator[RecaptchaEnterpriseServiceAsyncClient]:
    """Google's client, its only change: a channel to the sidecar, no credentials."""
    async with _client(sidecar) as client:
        yield client


def _request(token: str, action: str = "login", **event: Any) -> types.CreateAssessmentRequest:
    return types.CreateAssessmentRequest(
        parent=PARENT,
        assessment=types.Assessment(
            event=types.Event(token=token, expected_action=action, site_key="k", **event)
        ),
    )


async def _raw_create(
    sidecar: SidecarHandle,
    request: Any,
    metadata: tuple[tuple[str, str], ...] = (),
    method: str = "CreateAssessment",
) -> tuple[bytes, grpc.aio.Metadata]:
    """One call with the plain protobuf message (or bytes), and the initial metadata."""
    async with grpc.aio.insecure_channel(sidecar.tcp) as channel:
        call = channel.unary_unary(f"/{SERVICE}/{method}")(
            request if isinstance(request, bytes) else request.SerializeToString(),
            metadata=metadata,
            timeout=10,
        )
        body = await call
        return body, await call.initial_metadata()


async def test_a_fresh_token_is_googles_whole_answer(
    google: RecaptchaEnterpriseServiceAsyncClient, emulator: EmulatorHandle
) -> None:
    token = mint_token(action="login", score=0.7)
    answer = await google.create_assessment(request=_request(token, user_agent="UA/1"))
    assert answer.token_properties.valid
    assert answer.token_properties.action == "login"
    assert answer.risk_analysis.score == pytest.approx(0.7)
    assert answer.name.startswith("projects/") and "/assessments/" in answer.name
    assert answer.event.token == token and answer.event.user_agent == "UA/1"
    assert await emulator.control.calls_for(token) == 1


async def test_a_repeat_is_dupe_with_no_name_and_no_upstream_call(
    google: RecaptchaEnterpriseServiceAsyncClient, emulator: EmulatorHandle
) -> None:
    token = mint_token(action="login")
    first = await google.create_assessment(request=_request(token))
    again = await google.create_assessment(request=_request(token))
    assert first.token_properties.valid and first.name
    assert not again.token_properties.valid
    assert again.token_properties.invalid_reason == types.TokenProperties.InvalidReason.DUPE
    assert again.name == ""
    assert again.event.token == token
    assert await emulator.control.calls_for(token) == 1


async def test_concurrent_presentations_share_one_call(
    google: RecaptchaEnterpriseServiceAsyncClient, emulator: EmulatorHandle
) -> None:
    await emulator.control.set_faults("create", latency_ms=200)
    token = mint_token(action="login")
    answers = await asyncio.gather(
        *(google.create_assessment(request=_request(token)) for _ in range(5))
    )
    valid = [a for a in answers if a.token_properties.valid]
    assert len(valid) == 1
    dupes = [a for a in answers if not a.token_properties.valid]
    assert all(a.token_properties.invalid_reason.name == "DUPE" and not a.name for a in dupes)
    assert await emulator.control.calls_for(token) == 1


async def test_an_idempotency_key_gets_the_original_answer_for_the_same_request(
    sidecar: SidecarHandle, emulator: EmulatorHandle
) -> None:
    token = mint_token(action="login", score=0.8, reasons=["AUTOMATION"])
    request = _request(token)
    key = ((IDEMPOTENCY, "order-17"),)
    first, _ = await _raw_create(sidecar, _pb(request), key)
    again, headers = await _raw_create(sidecar, _pb(request), key)
    original, replay = Pb.FromString(first), Pb.FromString(again)
    assert replay.name == original.name != ""
    assert replay.token_properties.valid and replay.token_properties.action == "login"
    assert replay.risk_analysis.score == pytest.approx(0.8)
    assert list(replay.risk_analysis.reasons) == list(original.risk_analysis.reasons)
    assert replay.event.token == token
    assert dict(headers)["x-recaptcha-token-status"] == "VALID"
    other, _ = await _raw_create(sidecar, _pb(request), ((IDEMPOTENCY, "x"),))
    assert Pb.FromString(other).token_properties.invalid_reason == DUPE
    assert await emulator.control.calls_for(token) == 1


async def test_the_decision_travels_in_the_response_metadata(sidecar: SidecarHandle) -> None:
    token = mint_token(action="login", score=0.9)
    request = _pb(_request(token))
    body, headers = await _raw_create(sidecar, request)
    seen = dict(headers)
    assert seen["x-recaptcha-allowed"] == "true"
    assert seen["x-recaptcha-verdict"] == "PASSED"
    assert seen["x-recaptcha-token-status"] == "VALID"
    assert seen["x-recaptcha-decided-by"] == "passed"
    assert seen["x-recaptcha-score"] == "0.9"
    assert seen["x-recaptcha-assessment"] == Pb.FromString(body).name
    _, again = await _raw_create(sidecar, request)
    seen = dict(again)
    assert seen["x-recaptcha-allowed"] == "false"
    assert seen["x-recaptcha-token-status"] == "DUPLICATE"
    assert "x-recaptcha-assessment" not in seen or seen["x-recaptcha-assessment"] == ""


async def test_unknown_fields_go_up_and_come_back(
    sidecar: SidecarHandle, emulator: EmulatorHandle
) -> None:
    """Binary protobuf keeps what the pinned library does not know, both ways."""
    token = mint_token(action="login")
    request = CreatePb(parent=PARENT)
    request.assessment.event.token = token
    request.assessment.event.expected_action = "login"
    request.assessment.event.express = False
    request.assessment.event.waf_token_assessment = True
    request.assessment.event.transaction_data.transaction_id = "tx-1"
    request.assessment.event.transaction_data.value = 12.5
    # Field 999 of Event: a field from a Google release newer than ours (varint 7).
    event_extra = b"\xb8\x3e\x07"
    data = bytearray(request.SerializeToString())
    raw = CreatePb.FromString(bytes(data))
    raw.assessment.event.MergeFromString(event_extra)
    body, _ = await _raw_create(sidecar, raw)
    upstream_event = emulator.service.recent_events()[-1]
    assert upstream_event.transaction_data.transaction_id == "tx-1"
    assert upstream_event.waf_token_assessment
    assert event_extra in upstream_event.SerializeToString()
    answer = Pb.FromString(body)
    assert answer.event.transaction_data.value == pytest.approx(12.5)
    assert event_extra in answer.event.SerializeToString()


async def test_another_project_is_permission_denied(
    google: RecaptchaEnterpriseServiceAsyncClient, emulator: EmulatorHandle
) -> None:
    token = mint_token(action="login")
    request = _request(token)
    request.parent = "projects/someone-else"
    with pytest.raises(gexc.PermissionDenied) as raised:
        await google.create_assessment(request=request)
    assert "someone-else" in raised.value.message
    assert raised.value.reason == "IAM_PERMISSION_DENIED"
    assert await emulator.control.calls_for(token) == 0


async def test_the_project_number_is_learned_from_upstreams_names(
    google: RecaptchaEnterpriseServiceAsyncClient,
) -> None:
    first = await google.create_assessment(request=_request(mint_token(action="login")))
    number = first.name.split("/")[1]
    by_number = _request(mint_token(action="login"))
    by_number.parent = f"projects/{number}"
    assert (await google.create_assessment(request=by_number)).token_properties.valid
    other = _request(mint_token(action="login"))
    other.parent = f"projects/{int(number) + 1}"
    with pytest.raises(gexc.PermissionDenied):
        await google.create_assessment(request=other)


async def test_annotate_goes_upstream(
    google: RecaptchaEnterpriseServiceAsyncClient, emulator: EmulatorHandle
) -> None:
    answer = await google.create_assessment(request=_request(mint_token(action="login")))
    await google.annotate_assessment(
        request=types.AnnotateAssessmentRequest(
            name=answer.name,
            annotation=types.AnnotateAssessmentRequest.Annotation.LEGITIMATE,
            reasons=[types.AnnotateAssessmentRequest.Reason.CORRECT_PASSWORD],
        )
    )
    sent = (await emulator.control.stats())["annotations"][-1]
    assert sent["name"] == answer.name
    assert sent["annotation"] == "LEGITIMATE"
    assert sent["reasons"] == ["CORRECT_PASSWORD"]


async def test_other_methods_are_unimplemented_naming_the_two_served(
    google: RecaptchaEnterpriseServiceAsyncClient,
) -> None:
    with pytest.raises(gexc.MethodNotImplemented) as raised:
        await google.list_keys(parent=PARENT)
    message = raised.value.message
    assert "ListKeys" in message
    assert "CreateAssessment" in message and "AnnotateAssessment" in message


async def test_undecodable_bytes_are_invalid_argument(sidecar: SidecarHandle) -> None:
    with pytest.raises(grpc.aio.AioRpcError) as raised:
        await _raw_create(sidecar, b"\xff\xff\xff\xff")
    assert raised.value.code() is grpc.StatusCode.INVALID_ARGUMENT
    status = _status(raised.value)
    assert status.details[0].Is(error_details_pb2.BadRequest.DESCRIPTOR)


async def test_a_missing_event_is_invalid_argument(sidecar: SidecarHandle) -> None:
    with pytest.raises(grpc.aio.AioRpcError) as raised:
        await _raw_create(sidecar, CreatePb(parent=PARENT))
    assert raised.value.code() is grpc.StatusCode.INVALID_ARGUMENT
    bad = error_details_pb2.BadRequest()
    _status(raised.value).details[0].Unpack(bad)
    assert bad.field_violations[0].field == "assessment.event"


async def test_no_answer_is_unavailable_with_retry_info_and_the_decision(
    make_sidecar: SidecarFactory, emulator: EmulatorHandle
) -> None:
    sidecar = await make_sidecar(retry_max_attempts=1)
    await emulator.control.set_faults("create", error_rate=1.0, error_code="UNAVAILABLE")
    token = mint_token(action="login")
    request = _pb(_request(token))
    async with grpc.aio.insecure_channel(sidecar.tcp) as channel:
        call = channel.unary_unary(f"/{SERVICE}/CreateAssessment")(
            request.SerializeToString(), timeout=10
        )
        with pytest.raises(grpc.aio.AioRpcError) as raised:
            await call
        headers = dict(await call.initial_metadata())
    assert raised.value.code() is grpc.StatusCode.UNAVAILABLE
    kinds = {d.TypeName() for d in _status(raised.value).details}
    assert "google.rpc.RetryInfo" in kinds
    assert headers["x-recaptcha-token-status"] == "UNCHECKED"
    assert headers["x-recaptcha-allowed"] == "false"


async def test_reflection_lists_and_describes_the_service(sidecar: SidecarHandle) -> None:
    async with grpc.aio.insecure_channel(sidecar.tcp) as channel:
        stub = reflection_pb2_grpc.ServerReflectionStub(channel)

        async def ask(**kwargs: str) -> reflection_pb2.ServerReflectionResponse:
            call = stub.ServerReflectionInfo(
                iter([reflection_pb2.ServerReflectionRequest(**kwargs)])
            )
            async for response in call:
                return response
            raise AssertionError("no answer")

        listed = await ask(list_services="")
        names = [s.name for s in listed.list_services_response.service]
        assert SERVICE in names
        found = await ask(file_containing_symbol=SERVICE)
        files = [
            descriptor_pb2.FileDescriptorProto.FromString(raw)
            for raw in found.file_descriptor_response.file_descriptor_proto
        ]
        methods = {m.name for f in files for s in f.service for m in s.method}
        # Google's service declares more; the face serves these two (the rest UNIMPLEMENTED).
        assert {"CreateAssessment", "AnnotateAssessment"} <= methods
        assert any(m.name == "Assessment" for f in files for m in f.message_type)


def _status(error: grpc.aio.AioRpcError) -> status_pb2.Status:
    for key, value in error.trailing_metadata() or ():
        if key == "grpc-status-details-bin":
            return status_pb2.Status.FromString(value)
    raise AssertionError("no status details")


async def test_account_ids_are_protected_and_the_app_gets_its_own_back(
    make_sidecar: SidecarFactory,
    emulator: EmulatorHandle,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """event.userInfo.accountId and Annotate's accountId leave the pod protected (HMAC here),
    through the outbox too (never at rest in clear); the echoed event has the app's own id."""
    monkeypatch.setenv(KEY_ENV, base64.b64encode(KEY).decode())
    sidecar = await make_sidecar(
        account_id_protection="hmac-sha256",
        outbox=tmp_path / "outbox.sqlite3",
        outbox_flush_interval=0.05,
    )
    expected = hmac.new(KEY, ACCOUNT.encode(), hashlib.sha256).hexdigest()
    async with _client(sidecar) as google:
        request = _request(mint_token(action="login"))
        request.assessment.event.user_info = types.UserInfo(
            account_id=ACCOUNT, user_ids=[types.UserId(email=ACCOUNT)]
        )
        answer = await google.create_assessment(request=request)
        assert answer.event.user_info.account_id == ACCOUNT
        assert answer.event.user_info.user_ids[0].email == ACCOUNT
        await emulator.control.set_faults("annotate", error_rate=1.0)  # keep it queued
        await google.annotate_assessment(
            request=types.AnnotateAssessmentRequest(
                name=answer.name,
                annotation=types.AnnotateAssessmentRequest.Annotation.LEGITIMATE,
                account_id=ACCOUNT,
            )
        )
    stats = await emulator.control.stats()
    assert stats["recent_creates"][-1]["event"]["user_info"]["account_id"] == expected
    assert ACCOUNT.encode() not in _outbox_bytes(tmp_path)
    await emulator.control.clear_faults()

    async def delivered() -> bool:
        annotations = (await emulator.control.stats())["annotations"]
        return any(a["name"] == answer.name for a in annotations)

    await eventually(delivered)
    sent = next(
        a for a in (await emulator.control.stats())["annotations"] if a["name"] == answer.name
    )
    assert sent["account_id"] == expected
    assert sent["annotation"] == "LEGITIMATE"


def _outbox_bytes(folder: Path) -> bytes:
    """The outbox database and its WAL, as written to disk."""
    return b"".join(p.read_bytes() for p in sorted(folder.glob("outbox.sqlite3*")))


@asynccontextmanager
async def _client(sidecar: SidecarHandle) -> AsyncIterator[RecaptchaEnterpriseServiceAsyncClient]:
    async with grpc.aio.insecure_channel(sidecar.tcp) as channel:
        yield RecaptchaEnterpriseServiceAsyncClient(
            transport=RecaptchaEnterpriseServiceGrpcAsyncIOTransport(channel=channel)
        )


async def test_an_idempotency_key_replays_only_the_same_whole_request(
    sidecar: SidecarHandle, emulator: EmulatorHandle
) -> None:
    """The whole Assessment is bound into the key's digest: a repeat that differs only in a
    field the sidecar does not read (transaction data here) is another request, so DUPE."""
    token = mint_token(action="login")
    request = _pb(_request(token))
    request.assessment.event.transaction_data.value = 10.0
    key = ((IDEMPOTENCY, "checkout-3"),)
    first, _ = await _raw_create(sidecar, request, key)
    assert Pb.FromString(first).token_properties.valid
    request.assessment.event.transaction_data.value = 9999.0
    changed, headers = await _raw_create(sidecar, request, key)
    assert Pb.FromString(changed).token_properties.invalid_reason == DUPE
    assert dict(headers)["x-recaptcha-token-status"] == "DUPLICATE"
    assert await emulator.control.calls_for(token) == 1
