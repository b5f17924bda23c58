"""Annotate through generated stubs: it reaches the emulator, bad input is INVALID_ARGUMENT."""

from __future__ import annotations

import grpc
import pytest
from recaptcha.sidecar.v1 import sidecar_pb2 as pb

from sidecar.emulator import mint_token
from tests.conftest import EmulatorHandle, SidecarHandle


async def _assessment_name(sidecar: SidecarHandle) -> str:
    answer = await sidecar.stub.Assess(pb.AssessRequest(token=mint_token()), timeout=5)
    return answer.assessment_name


async def test_annotation_reaches_upstream(
    sidecar: SidecarHandle, emulator: EmulatorHandle
) -> None:
    name = await _assessment_name(sidecar)
    answer = await sidecar.stub.Annotate(
        pb.AnnotateRequest(
            assessment_name=name,
            annotation=pb.ANNOTATION_FRAUDULENT,
            reasons=[pb.ANNOTATION_REASON_INCORRECT_PASSWORD, pb.ANNOTATION_REASON_REFUND_FRAUD],
            account_id="acct-1",
            transaction_event=pb.TransactionEvent(
                event_type=pb.TRANSACTION_EVENT_TYPE_CHARGEBACK, reason="4837", value=12.5
            ),
            wait_for_upstream=True,
        ),
        timeout=5,
    )
    assert answer.delivery == pb.ANNOTATION_DELIVERY_DELIVERED
    stats = await emulator.control.stats()
    recorded = [a for a in stats["annotations"] if a["name"] == name]
    assert len(recorded) == 1
    assert recorded[0]["annotation"] == "FRAUDULENT"
    assert recorded[0]["reasons"] == ["INCORRECT_PASSWORD", "REFUND_FRAUD"]
    assert recorded[0]["transaction_event"]["event_type"] == "CHARGEBACK"


@pytest.mark.parametrize(
    ("fields", "field"),
    [
        ({}, "assessment_name"),
        ({"assessment_name": "assessments/1"}, "assessment_name"),
        ({"assessment_name": "projects/p/assessments/1", "annotation": 7}, "annotation"),
        ({"assessment_name": "projects/p/assessments/1", "reasons": [1, 99]}, "reasons[1]"),
        (
            {
                "assessment_name": "projects/p/assessments/1",
                "transaction_event": pb.TransactionEvent(event_type=77),
            },
            "transaction_event.event_type",
        ),
    ],
)
async def test_annotate_input_checks(sidecar: SidecarHandle, fields: dict, field: str) -> None:
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await sidecar.stub.Annotate(pb.AnnotateRequest(**fields), timeout=5)
    assert caught.value.code() is grpc.StatusCode.INVALID_ARGUMENT
    assert caught.value.details().startswith(field + ":")


async def test_unknown_assessment_is_reported_when_waiting(sidecar: SidecarHandle) -> None:
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await sidecar.stub.Annotate(
            pb.AnnotateRequest(
                assessment_name="projects/1/assessments/nope", wait_for_upstream=True
            ),
            timeout=5,
        )
    assert caught.value.code() is grpc.StatusCode.NOT_FOUND
