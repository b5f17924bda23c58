"""SMS defense end to end: generated stubs, a real sidecar, the emulator as upstream.

A phone number in `user_ids` makes upstream answer `phone_fraud_assessment.
sms_toll_fraud_verdict`; the sidecar answers `sms_toll_fraud_risk` (absent when not assessed,
never 0.0) and its reasons, fails a risk above the action's `max_sms_toll_fraud_risk` in
enforce and audit mode, records `sms_tf_risk_scores` by action, and passes Annotate's
`phone_authentication_event` upstream (directly and through the outbox)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from recaptcha.sidecar.v1 import sidecar_pb2 as pb

from sidecar.emulator import mint_token
from tests.conftest import EmulatorHandle, SidecarFactory, SidecarHandle
from tests.integration.test_prometheus_metrics import by, scrape
from tests.support.polling import eventually

PHONE = "+15555550123"
POLICY = {
    "actions": {
        "verify_phone": {"max_sms_toll_fraud_risk": 0.5},
        "audit_phone": {"max_sms_toll_fraud_risk": 0.5, "mode": "audit"},
        "login": {},
    }
}


async def assess(handle: SidecarHandle, action: str, **fields: Any) -> pb.AssessResponse:
    return await handle.stub.Assess(  # type: ignore[no-any-return]
        pb.AssessRequest(expected_action=action, **fields), timeout=5
    )


def phone_ids() -> list[pb.UserId]:
    return [pb.UserId(email="a@example.org"), pb.UserId(phone_number=PHONE)]


async def test_the_risk_is_answered_for_a_phone_number_and_absent_otherwise(
    make_sidecar: SidecarFactory, emulator: EmulatorHandle
) -> None:
    handle = await make_sidecar(policy=POLICY)
    token = mint_token(
        action="login", sms_toll_fraud_risk=0.3, sms_toll_fraud_reasons=["INVALID_PHONE_NUMBER"]
    )
    answer = await assess(handle, "login", token=token, user_ids=phone_ids())
    assert answer.HasField("sms_toll_fraud_risk")
    assert answer.sms_toll_fraud_risk == pytest.approx(0.3, abs=1e-6)
    assert list(answer.sms_toll_fraud_reasons) == ["INVALID_PHONE_NUMBER"]
    sent = (await emulator.control.stats())["recent_creates"][-1]["event"]
    assert sent["user_info"]["user_ids"][1] == {"phone_number": PHONE}

    no_phone = await assess(
        handle, "login", token=mint_token(action="login", sms_toll_fraud_risk=0.3)
    )
    assert no_phone.verdict == pb.VERDICT_PASSED
    assert not no_phone.HasField("sms_toll_fraud_risk") and not no_phone.sms_toll_fraud_reasons

    # SMS defense not enabled on the project: no phone_fraud_assessment, so no risk either
    await emulator.control.set_faults("create", omit=["phone_fraud_assessment"])
    disabled = await assess(handle, "login", token=mint_token(action="login"), user_ids=phone_ids())
    assert disabled.verdict == pb.VERDICT_PASSED
    assert not disabled.HasField("sms_toll_fraud_risk")


async def test_a_zero_risk_is_present_and_zero(
    make_sidecar: SidecarFactory, emulator: EmulatorHandle
) -> None:
    handle = await make_sidecar()
    token = mint_token(sms_toll_fraud_risk=0.0)
    answer = await assess(handle, "", token=token, user_ids=phone_ids())
    assert answer.HasField("sms_toll_fraud_risk") and answer.sms_toll_fraud_risk == 0.0


@pytest.mark.parametrize(
    ("action", "allowed", "verdict", "recommended"),
    [
        ("verify_phone", False, pb.VERDICT_FAILED_ENFORCE, pb.RECOMMENDED_ACTION_BLOCK),
        ("audit_phone", True, pb.VERDICT_FAILED_AUDIT, pb.RECOMMENDED_ACTION_ALLOW),
    ],
)
async def test_max_sms_toll_fraud_risk_fails_like_a_low_score(
    make_sidecar: SidecarFactory,
    emulator: EmulatorHandle,
    action: str,
    allowed: bool,
    verdict: int,
    recommended: int,
) -> None:
    handle = await make_sidecar(policy=POLICY)
    risky = mint_token(action=action, sms_toll_fraud_risk=0.9)
    answer = await assess(handle, action, token=risky, user_ids=phone_ids())
    assert (answer.allowed, answer.verdict, answer.recommended_action, answer.decided_by) == (
        allowed,
        verdict,
        recommended,
        "sms_toll_fraud_risk_above_max",
    )
    fine = mint_token(action=action, sms_toll_fraud_risk=0.5)
    assert (await assess(handle, action, token=fine, user_ids=phone_ids())).verdict == (
        pb.VERDICT_PASSED
    )
    unassessed = await assess(handle, action, token=mint_token(action=action))
    assert unassessed.verdict == pb.VERDICT_PASSED  # no phone number, no SMS check


async def test_sms_tf_risk_scores_by_action(
    make_sidecar: SidecarFactory, emulator: EmulatorHandle
) -> None:
    handle = await make_sidecar(policy=POLICY, metrics_listen="127.0.0.1:0")
    for risk in (0.05, 0.3, 0.3, 0.95):
        token = mint_token(action="login", sms_toll_fraud_risk=risk)
        await assess(handle, "login", token=token, user_ids=phone_ids())
    repeat = mint_token(action="login", sms_toll_fraud_risk=0.6)
    for _ in range(2):  # the repeat is DUPLICATE: not counted again
        await assess(handle, "login", token=repeat, user_ids=phone_ids())
    await assess(handle, "login", token=mint_token(action="login"))  # no phone: not counted
    samples = await scrape(handle)
    assert by(samples, "sms_tf_risk_scores_count", action="login") == {(): 5.0}
    buckets = by(samples, "sms_tf_risk_scores_bucket", "le", action="login")
    assert (buckets[("0.1",)], buckets[("0.3",)], buckets[("0.6",)], buckets[("0.9",)]) == (
        1.0,
        3.0,
        4.0,
        4.0,
    )
    assert buckets[("+Inf",)] == 5.0
    assert by(samples, "risk_scores_count", action="login") == {(): 6.0}


@pytest.mark.parametrize("outbox", [False, True])
async def test_phone_authentication_event_reaches_upstream(
    make_sidecar: SidecarFactory, emulator: EmulatorHandle, tmp_path: Path, outbox: bool
) -> None:
    settings: dict[str, Any] = {"outbox": tmp_path / "outbox.db"} if outbox else {}
    handle = await make_sidecar(**settings)
    assessed = await assess(handle, "", token=mint_token(), user_ids=phone_ids())
    request = pb.AnnotateRequest(
        assessment_name=assessed.assessment_name,
        reasons=[pb.ANNOTATION_REASON_INITIATED_TWO_FACTOR],
        phone_authentication_event=pb.PhoneAuthenticationEvent(phone_number=PHONE),
    )
    request.phone_authentication_event.event_time.FromSeconds(1_700_000_000)
    ack = await handle.stub.Annotate(request, timeout=5)
    expected = pb.ANNOTATION_DELIVERY_QUEUED if outbox else pb.ANNOTATION_DELIVERY_DELIVERED
    assert ack.delivery == expected

    async def delivered() -> bool:
        return bool((await emulator.control.stats())["annotations"])

    await eventually(delivered, timeout=10)
    (annotation,) = (await emulator.control.stats())["annotations"]
    assert annotation["phone_authentication_event"] == {
        "phone_number": PHONE,
        "event_time": "2023-11-14T22:13:20Z",
    }


async def test_a_phone_event_without_a_number_is_invalid_argument(
    make_sidecar: SidecarFactory, emulator: EmulatorHandle
) -> None:
    import grpc

    handle = await make_sidecar()
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await handle.stub.Annotate(
            pb.AnnotateRequest(
                assessment_name="projects/1/assessments/a",
                phone_authentication_event=pb.PhoneAuthenticationEvent(),
            ),
            timeout=5,
        )
    assert caught.value.code() is grpc.StatusCode.INVALID_ARGUMENT
    assert "phone_authentication_event.phone_number" in (caught.value.details() or "")
