"""Every repeated field has a count limit, every value a range, every request a byte bound
(issue 13 item 6), through the generated stubs on a real sidecar."""

from __future__ import annotations

import math
from pathlib import Path

import grpc
import pytest
from google.protobuf import timestamp_pb2
from recaptcha.sidecar.v1 import sidecar_pb2 as pb

from sidecar.core.validation import (
    MAX_ANNOTATION_REASONS,
    MAX_FIELD_BYTES,
    MAX_HEADERS,
    MAX_REQUEST_BYTES,
    MAX_USER_IDS,
)
from sidecar.emulator import mint_token
from tests.conftest import SidecarFactory, SidecarHandle

NAME = "projects/test-project/assessments/0123456789abcdef"


async def refused(call: object, message: object) -> grpc.aio.AioRpcError:
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await call(message, timeout=10)  # type: ignore[operator]
    return caught.value


@pytest.fixture
async def queued(make_sidecar: SidecarFactory, tmp_path: Path) -> SidecarHandle:
    return await make_sidecar(outbox=tmp_path / "outbox.db")


async def test_annotation_reasons_are_bounded(queued: SidecarHandle) -> None:
    many = pb.AnnotateRequest(
        assessment_name=NAME,
        reasons=[pb.ANNOTATION_REASON_CHARGEBACK] * (MAX_ANNOTATION_REASONS + 1),
    )
    error = await refused(queued.stub.Annotate, many)
    assert error.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "reasons" in (error.details() or "")
    # A million reasons (1 MB on the wire) never reaches Python at all.
    million = pb.AnnotateRequest(
        assessment_name=NAME, reasons=[pb.ANNOTATION_REASON_CHARGEBACK] * 1_000_000
    )
    assert (await refused(queued.stub.Annotate, million)).code() == (
        grpc.StatusCode.RESOURCE_EXHAUSTED
    )
    fine = pb.AnnotateRequest(
        assessment_name=NAME, reasons=[pb.ANNOTATION_REASON_CHARGEBACK] * MAX_ANNOTATION_REASONS
    )
    answer = await queued.stub.Annotate(fine, timeout=10)
    assert answer.delivery in (pb.ANNOTATION_DELIVERY_QUEUED, pb.ANNOTATION_DELIVERY_DELIVERED)


@pytest.mark.parametrize("value", [math.nan, math.inf, -math.inf, -0.01])
async def test_transaction_values_must_be_finite_amounts(
    queued: SidecarHandle, value: float
) -> None:
    message = pb.AnnotateRequest(
        assessment_name=NAME, transaction_event=pb.TransactionEvent(value=value)
    )
    error = await refused(queued.stub.Annotate, message)
    assert error.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "transaction_event.value" in (error.details() or "")


@pytest.mark.parametrize(
    "stamp",
    [
        timestamp_pb2.Timestamp(seconds=253_402_300_800),  # year 10000
        timestamp_pb2.Timestamp(seconds=2**62),
        timestamp_pb2.Timestamp(seconds=-1),  # before 1970
        timestamp_pb2.Timestamp(seconds=-62_135_596_800),
    ],
)
async def test_event_times_must_lie_between_1970_and_year_9999(
    queued: SidecarHandle, stamp: timestamp_pb2.Timestamp
) -> None:
    message = pb.AnnotateRequest(
        assessment_name=NAME, transaction_event=pb.TransactionEvent(event_time=stamp)
    )
    error = await refused(queued.stub.Annotate, message)
    assert error.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "event_time" in (error.details() or "")
    edge = pb.AnnotateRequest(
        assessment_name=NAME,
        transaction_event=pb.TransactionEvent(
            event_time=timestamp_pb2.Timestamp(seconds=253_402_300_799), value=0.0
        ),
    )
    assert (await queued.stub.Annotate(edge, timeout=10)).delivery


async def test_user_ids_are_bounded(sidecar: SidecarHandle) -> None:
    message = pb.AssessRequest(
        token=mint_token(action="login"),
        user_ids=[pb.UserId(username=f"user-{i}") for i in range(MAX_USER_IDS + 1)],
    )
    error = await refused(sidecar.stub.Assess, message)
    assert error.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "user_ids" in (error.details() or "")


async def test_a_request_is_bounded_as_a_whole(sidecar: SidecarHandle) -> None:
    """64 headers of 8 KB each (512 KB) used to be accepted: each field was in bounds."""
    biggest = pb.AssessRequest(
        token=mint_token(action="login"),
        headers=["h: " + "v" * (MAX_FIELD_BYTES - 3)] * MAX_HEADERS,
    )
    assert (await refused(sidecar.stub.Assess, biggest)).code() == (
        grpc.StatusCode.RESOURCE_EXHAUSTED
    )
    # Just above the request bound but within the wire bound: a clear INVALID_ARGUMENT.
    over = pb.AssessRequest(
        token=mint_token(action="login"),
        headers=["h: " + "v" * 4000] * (MAX_REQUEST_BYTES // 4000 + 1),
    )
    error = await refused(sidecar.stub.Assess, over)
    assert error.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert f"more than {MAX_REQUEST_BYTES} bytes" in (error.details() or "")
    token = mint_token(action="login")
    room = MAX_REQUEST_BYTES - len(token) - 100
    headers = ["h: " + "v" * 3997] * (room // 4000)
    within = pb.AssessRequest(token=token, expected_action="login", headers=headers)
    assert within.ByteSize() > MAX_REQUEST_BYTES * 0.9
    assert (await sidecar.stub.Assess(within, timeout=10)).allowed
