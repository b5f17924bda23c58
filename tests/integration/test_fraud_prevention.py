"""Fraud prevention and the other signals end to end: generated stubs, a real sidecar, the
emulator as upstream.

`transaction_data` goes upstream field for field (its account ids protected as `account_id`
is); upstream's `fraud_prevention_assessment` comes back as `transaction_risk` (absent when not
assessed) and the stolen-instrument, card-testing and behavioral-trust verdicts; the action's
`max_transaction_risk` fails a risky payment in enforce and audit mode; account defender's
takeover verdict, the extended verdict reasons and a challenge's outcome are surfaced;
`transaction_risk_scores` counts the risks by action; bad transaction data is
INVALID_ARGUMENT naming the field, with no upstream call."""

from __future__ import annotations

import base64
import os
from pathlib import Path
from typing import Any

import grpc
import pytest
from recaptcha.sidecar.v1 import sidecar_pb2 as pb

from sidecar.accountid.protection import DeterministicEncryptionProtector
from sidecar.emulator import mint_token
from tests.conftest import EmulatorHandle, SidecarFactory, SidecarHandle
from tests.integration.test_prometheus_metrics import by, scrape

POLICY = {
    "actions": {
        "checkout": {"max_transaction_risk": 0.5},
        "audit_checkout": {"max_transaction_risk": 0.5, "mode": "audit"},
    }
}


def payment(**fields: Any) -> pb.TransactionData:
    data = pb.TransactionData(
        transaction_id="tx-42",
        payment_method="credit-card",
        card_bin="411111",
        card_last_four="1111",
        currency_code="EUR",
        value=99.5,
        shipping_value=4.5,
        user=pb.TransactionData.User(
            account_id="buyer-1", email="buyer@example.org", email_verified=True
        ),
        merchants=[pb.TransactionData.User(account_id="seller-9")],
        items=[
            pb.TransactionData.Item(
                name="lamp", value=95, quantity=1, merchant_account_id="seller-9"
            )
        ],
        billing_address=pb.TransactionData.Address(address=["1 Main St"], region_code="FR"),
        gateway_info=pb.TransactionData.GatewayInfo(name="gw", cvv_response_code="M"),
    )
    for key, value in fields.items():
        setattr(data, key, value)
    return data


async def assess(handle: SidecarHandle, action: str, **fields: Any) -> pb.AssessResponse:
    return await handle.stub.Assess(  # type: ignore[no-any-return]
        pb.AssessRequest(expected_action=action, **fields), timeout=5
    )


async def test_the_transaction_is_assessed_and_its_verdicts_surfaced(
    make_sidecar: SidecarFactory, emulator: EmulatorHandle
) -> None:
    handle = await make_sidecar(policy=POLICY)
    token = mint_token(
        action="checkout",
        transaction_risk=0.25,
        transaction_risk_reasons=["GEOLOCATION_DISCREPANCY"],
        stolen_instrument_risk=0.125,
        card_testing_risk=0.0,
        behavioral_trust=0.75,
    )
    answer = await assess(handle, "checkout", token=token, transaction_data=payment())
    assert answer.verdict == pb.VERDICT_PASSED
    assert answer.HasField("transaction_risk") and answer.transaction_risk == 0.25
    assert list(answer.transaction_risk_reasons) == ["GEOLOCATION_DISCREPANCY"]
    assert (answer.stolen_instrument_risk, answer.behavioral_trust) == (0.125, 0.75)
    assert answer.HasField("card_testing_risk") and answer.card_testing_risk == 0.0
    sent = (await emulator.control.stats())["recent_creates"][-1]["event"]["transaction_data"]
    assert (sent["transaction_id"], sent["card_bin"], sent["value"], sent["currency_code"]) == (
        "tx-42",
        "411111",
        99.5,
        "EUR",
    )
    assert sent["items"][0] == {
        "name": "lamp",
        "value": 95.0,
        "quantity": "1",
        "merchant_account_id": "seller-9",
    }

    plain = await assess(handle, "checkout", token=mint_token(action="checkout"))
    for name in ("transaction_risk", "stolen_instrument_risk", "card_testing_risk"):
        assert not plain.HasField(name), name
    assert not plain.HasField("behavioral_trust") and not plain.transaction_risk_reasons

    await emulator.control.set_faults("create", omit=["fraud_prevention_assessment"])
    disabled = await assess(
        handle, "checkout", token=mint_token(action="checkout"), transaction_data=payment()
    )
    assert disabled.verdict == pb.VERDICT_PASSED and not disabled.HasField("transaction_risk")


@pytest.mark.parametrize(
    ("action", "allowed", "verdict", "recommended"),
    [
        ("checkout", False, pb.VERDICT_FAILED_ENFORCE, pb.RECOMMENDED_ACTION_BLOCK),
        ("audit_checkout", True, pb.VERDICT_FAILED_AUDIT, pb.RECOMMENDED_ACTION_ALLOW),
    ],
)
async def test_max_transaction_risk_fails_a_risky_payment(
    make_sidecar: SidecarFactory,
    emulator: EmulatorHandle,
    action: str,
    allowed: bool,
    verdict: int,
    recommended: int,
) -> None:
    handle = await make_sidecar(policy=POLICY)
    risky = mint_token(action=action, transaction_risk=0.8)
    answer = await assess(handle, action, token=risky, transaction_data=payment())
    assert (answer.allowed, answer.verdict, answer.recommended_action, answer.decided_by) == (
        allowed,
        verdict,
        recommended,
        "transaction_risk_above_max",
    )
    fine = mint_token(action=action, transaction_risk=0.5)
    answer = await assess(handle, action, token=fine, transaction_data=payment())
    assert answer.verdict == pb.VERDICT_PASSED
    no_payment = await assess(handle, action, token=mint_token(action=action))
    assert no_payment.verdict == pb.VERDICT_PASSED  # not assessed, no transaction rule


async def test_takeover_extended_reasons_and_challenge_are_surfaced(
    make_sidecar: SidecarFactory, emulator: EmulatorHandle
) -> None:
    handle = await make_sidecar()
    token = mint_token(
        action="login",
        account_takeover_risk=0.875,
        account_takeover_risk_reasons=["CLIENT_ACCESSED_MANY_ACCOUNTS"],
        account_takeover_trust_reasons=["PROFILE_MATCH"],
        extended_verdict_reasons=["emulated.reason"],
        challenge="NOCAPTCHA",
    )
    answer = await assess(handle, "login", token=token, account_id="user-1")
    assert answer.HasField("account_takeover_risk") and answer.account_takeover_risk == 0.875
    assert list(answer.account_takeover_risk_reasons) == ["CLIENT_ACCESSED_MANY_ACCOUNTS"]
    assert list(answer.account_takeover_trust_reasons) == ["PROFILE_MATCH"]
    assert list(answer.extended_verdict_reasons) == ["emulated.reason"]
    assert answer.challenge == "NOCAPTCHA"
    plain = await assess(handle, "login", token=mint_token(action="login"), account_id="user-1")
    assert not plain.HasField("account_takeover_risk")
    assert (plain.challenge, list(plain.extended_verdict_reasons)) == ("", [])


async def test_the_account_ids_of_a_payment_are_protected(
    make_sidecar: SidecarFactory, emulator: EmulatorHandle, tmp_path: Path
) -> None:
    key = os.urandom(64)
    key_file = tmp_path / "account-id-key"
    key_file.write_text(base64.b64encode(key).decode())
    handle = await make_sidecar(
        account_id_protection="deterministic-encryption", account_id_key_file=key_file
    )
    await assess(handle, "", token=mint_token(), account_id="buyer-1", transaction_data=payment())
    event = (await emulator.control.stats())["recent_creates"][-1]["event"]
    revealer = DeterministicEncryptionProtector(key)
    sent = event["transaction_data"]
    assert revealer.reveal(sent["user"]["account_id"]) == "buyer-1"
    assert sent["user"]["account_id"] == event["user_info"]["account_id"]  # linked
    seller = sent["merchants"][0]["account_id"]
    assert revealer.reveal(seller) == "seller-9"
    assert sent["items"][0]["merchant_account_id"] == seller
    assert sent["user"]["email"] == "buyer@example.org"  # Google reads it as an e-mail


async def test_transaction_risk_scores_by_action(
    make_sidecar: SidecarFactory, emulator: EmulatorHandle
) -> None:
    handle = await make_sidecar(policy=POLICY, metrics_listen="127.0.0.1:0")
    for risk in (0.1, 0.45, 0.45):
        token = mint_token(action="checkout", transaction_risk=risk)
        await assess(handle, "checkout", token=token, transaction_data=payment())
    await assess(handle, "checkout", token=mint_token(action="checkout"))
    samples = await scrape(handle)
    assert by(samples, "transaction_risk_scores_count", action="checkout") == {(): 3.0}
    buckets = by(samples, "transaction_risk_scores_bucket", "le", action="checkout")
    assert (buckets[("0.1",)], buckets[("0.4",)], buckets[("0.5",)]) == (1.0, 1.0, 3.0)


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"value": -1.0}, "transaction_data.value"),
        ({"card_bin": "4111-11"}, "transaction_data.card_bin"),
        ({"currency_code": "EURO"}, "transaction_data.currency_code"),
    ],
)
async def test_bad_transaction_data_is_invalid_argument_without_an_upstream_call(
    make_sidecar: SidecarFactory, emulator: EmulatorHandle, change: dict[str, Any], field: str
) -> None:
    handle = await make_sidecar()
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await assess(handle, "", token=mint_token(), transaction_data=payment(**change))
    assert caught.value.code() is grpc.StatusCode.INVALID_ARGUMENT
    assert field in (caught.value.details() or "")
    too_many = payment()
    too_many.items.extend([pb.TransactionData.Item(name="x")] * 100)
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await assess(handle, "", token=mint_token(), transaction_data=too_many)
    assert "transaction_data.items" in (caught.value.details() or "")
    assert (await emulator.control.stats())["create_calls"] == 0
