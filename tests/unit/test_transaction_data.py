"""Transaction data: validated with the limits of every field, its account ids protected as
`account_id` is, and sent to Google field for field; and the signals Google answers read back
(absent when not given, never 0.0)."""

from __future__ import annotations

import dataclasses
from typing import Any

import pytest
from google.cloud.recaptchaenterprise_v1.types import recaptchaenterprise as types
from google.protobuf import json_format

from sidecar.accountid.protected import protect_transaction
from sidecar.accountid.protection import HmacSha256Protector
from sidecar.core.errors import InvalidArgument
from sidecar.core.model import (
    AssessmentRequest,
    Signals,
    TransactionAddress,
    TransactionData,
    TransactionGatewayInfo,
    TransactionItem,
    TransactionUser,
)
from sidecar.core.validation import validate_assessment
from sidecar.upstream.client import build_event, to_upstream_assessment

FULL = TransactionData(
    transaction_id="tx-1",
    payment_method="credit-card",
    card_bin="411111",
    card_last_four="1111",
    currency_code="USD",
    value=42.5,
    shipping_value=5.0,
    shipping_address=TransactionAddress(
        recipient="A. Buyer",
        address=("1 Main St", "Apt 2"),
        locality="Springfield",
        administrative_area="IL",
        region_code="US",
        postal_code="62701",
    ),
    billing_address=TransactionAddress(region_code="US"),
    user=TransactionUser(
        account_id="buyer-1",
        creation_ms=1_600_000_000_000,
        email="buyer@example.org",
        email_verified=True,
        phone_number="+15555550100",
        phone_verified=False,
    ),
    merchants=(TransactionUser(account_id="seller-1"),),
    items=(TransactionItem(name="book", value=37.5, quantity=1, merchant_account_id="seller-1"),),
    gateway_info=TransactionGatewayInfo(
        name="stripe", gateway_response_code="00", avs_response_code="Y", cvv_response_code="M"
    ),
)


def request(data: TransactionData) -> AssessmentRequest:
    return AssessmentRequest(token="t" * 30, transaction_data=data)


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"value": -1.0}, "transaction_data.value"),
        ({"value": float("nan")}, "transaction_data.value"),
        ({"shipping_value": float("inf")}, "transaction_data.shipping_value"),
        ({"card_bin": "41111a"}, "transaction_data.card_bin"),
        ({"card_bin": "411111111"}, "transaction_data.card_bin"),
        ({"card_last_four": "11111"}, "transaction_data.card_last_four"),
        ({"currency_code": "US"}, "transaction_data.currency_code"),
        ({"transaction_id": "x" * 8193}, "transaction_data.transaction_id"),
        ({"items": (TransactionItem(),) * 101}, "transaction_data.items"),
        ({"merchants": (TransactionUser(),) * 101}, "transaction_data.merchants"),
        ({"items": (TransactionItem(value=-2.0),)}, "transaction_data.items[0].value"),
        ({"items": (TransactionItem(quantity=-1),)}, "transaction_data.items[0].quantity"),
        (
            {"shipping_address": TransactionAddress(address=("x",) * 11)},
            "transaction_data.shipping_address.address",
        ),
        (
            {"billing_address": TransactionAddress(postal_code="9" * 9000)},
            "transaction_data.billing_address.postal_code",
        ),
        ({"user": TransactionUser(email="e" * 9000)}, "transaction_data.user.email"),
        ({"user": TransactionUser(creation_ms=-5)}, "transaction_data.user.creation_ms"),
        (
            {"merchants": (TransactionUser(account_id="a" * 9000),)},
            "transaction_data.merchants[0].account_id",
        ),
        (
            {"gateway_info": TransactionGatewayInfo(name="g" * 9000)},
            "transaction_data.gateway_info.name",
        ),
    ],
)
def test_bad_transaction_data_is_refused_naming_the_field(
    change: dict[str, Any], field: str
) -> None:
    with pytest.raises(InvalidArgument) as caught:
        validate_assessment(request(dataclasses.replace(FULL, **change)))
    assert caught.value.field == field


def test_a_full_transaction_is_sent_field_for_field() -> None:
    validate_assessment(request(FULL))
    event = build_event(request(FULL), "k")
    sent = json_format.MessageToDict(
        event.transaction_data,  # type: ignore[attr-defined]
        preserving_proto_field_name=True,
    )
    assert sent == {
        "transaction_id": "tx-1",
        "payment_method": "credit-card",
        "card_bin": "411111",
        "card_last_four": "1111",
        "currency_code": "USD",
        "value": 42.5,
        "shipping_value": 5.0,
        "shipping_address": {
            "recipient": "A. Buyer",
            "address": ["1 Main St", "Apt 2"],
            "locality": "Springfield",
            "administrative_area": "IL",
            "region_code": "US",
            "postal_code": "62701",
        },
        "billing_address": {"region_code": "US"},
        "user": {
            "account_id": "buyer-1",
            "creation_ms": "1600000000000",
            "email": "buyer@example.org",
            "email_verified": True,
            "phone_number": "+15555550100",
        },
        "merchants": [{"account_id": "seller-1"}],
        "items": [
            {"name": "book", "value": 37.5, "quantity": "1", "merchant_account_id": "seller-1"}
        ],
        "gateway_info": {
            "name": "stripe",
            "gateway_response_code": "00",
            "avs_response_code": "Y",
            "cvv_response_code": "M",
        },
    }
    assert not build_event(AssessmentRequest(token="t"), "k").HasField("transaction_data")  # type: ignore[attr-defined]


def test_the_account_ids_of_a_transaction_are_protected_consistently() -> None:
    protector = HmacSha256Protector(b"0123456789abcdef")
    protected = protect_transaction(FULL, protector)
    assert protected.user is not None and protected.user.account_id == protector.protect("buyer-1")
    seller = protector.protect("seller-1")
    assert protected.merchants[0].account_id == seller
    assert protected.items[0].merchant_account_id == seller  # matches its merchant
    assert protected.user.email == "buyer@example.org"  # read by Google as an e-mail: as given
    assert protect_transaction(TransactionData(), protector) == TransactionData()


def assessment(**fields: Any) -> Any:
    message = types.Assessment.pb()()
    json_format.ParseDict(fields, message)
    return message


def test_the_signals_google_answers_are_read_back() -> None:
    answered = to_upstream_assessment(
        assessment(
            name="projects/1/assessments/a",
            riskAnalysis={
                "score": 0.7,
                "extendedVerdictReasons": ["a.b"],
                "challenge": "PASSED",
            },
            fraudPreventionAssessment={
                "transactionRisk": 0.25,
                "riskReasons": [{"reason": "GEOLOCATION_DISCREPANCY"}],
                "stolenInstrumentVerdict": {"risk": 0.5},
                "behavioralTrustVerdict": {"trust": 0.75},
            },
            accountDefenderAssessment={
                "accountTakeoverVerdict": {
                    "risk": 0.125,
                    "riskReasons": [{"reason": "DISPOSABLE_EMAIL_DOMAIN"}],
                    "trustReasons": [{"reason": "IDENTITY_HISTORY_REPUTABLE"}],
                }
            },
        )
    )
    assert answered.signals == Signals(
        transaction_risk=0.25,
        transaction_risk_reasons=("GEOLOCATION_DISCREPANCY",),
        stolen_instrument_risk=0.5,
        card_testing_risk=None,  # not given: absent, not 0.0
        behavioral_trust=0.75,
        account_takeover_risk=0.125,
        account_takeover_risk_reasons=("DISPOSABLE_EMAIL_DOMAIN",),
        account_takeover_trust_reasons=("IDENTITY_HISTORY_REPUTABLE",),
        extended_verdict_reasons=("a.b",),
        challenge="PASSED",
    )


def test_no_signals_is_none() -> None:
    plain = to_upstream_assessment(assessment(name="n", riskAnalysis={"score": 0.7}))
    assert plain.signals is None
    labels_only = to_upstream_assessment(
        assessment(name="n", accountDefenderAssessment={"labels": ["PROFILE_MATCH"]})
    )
    assert labels_only.signals is None
    zero = to_upstream_assessment(assessment(name="n", fraudPreventionAssessment={}))
    assert zero.signals is not None and zero.signals.transaction_risk == 0.0
