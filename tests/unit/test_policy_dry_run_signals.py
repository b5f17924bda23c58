"""`policy dry-run` reads the new outputs from recorded assessments (issue 18 item 8): SMS
defense's and fraud prevention's risks (the sidecar's records and Google's Assessment JSON
alike), applies `max_sms_toll_fraud_risk` / `max_transaction_risk` as Assess does, and shows
how many assessed risks each maximum would let through, so an operator chooses them from
real traffic; express records skip the token rules."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from sidecar.policy.dryrun import RecordError, parse_record
from tests.unit.test_policy_tools import cli

POLICY = """
project: p
policy:
  actions:
    verify_phone: {max_sms_toll_fraud_risk: 0.5}
    checkout: {max_transaction_risk: 0.3, mode: audit}
    express_signup: {threshold: 0.6}
"""


def record(**fields: Any) -> str:
    return json.dumps(fields)


def run(tmp_path: Path, lines: list[str], *json_flag: str) -> tuple[int, str]:
    config = tmp_path / "sidecar.yaml"
    config.write_text(POLICY)
    source = tmp_path / "assessments.jsonl"
    source.write_text("\n".join(lines) + "\n")
    code, out, _ = cli(
        "policy", "dry-run", "--config", str(config), "--input", str(source), *json_flag
    )
    return code, out


def google(expected: str, **parts: Any) -> str:
    return json.dumps(
        {
            "name": "projects/1/assessments/x",
            "event": {"expectedAction": expected},
            "riskAnalysis": {"score": 0.9},
            "tokenProperties": {"valid": True, "action": expected},
            **parts,
        }
    )


def test_the_risks_are_decided_and_tallied(tmp_path: Path) -> None:
    lines = [
        record(
            expected_action="verify_phone",
            action="verify_phone",
            score=0.9,
            sms_toll_fraud_risk=0.2,
        ),
        record(
            expected_action="verify_phone",
            action="verify_phone",
            score=0.9,
            sms_toll_fraud_risk=0.5,
        ),
        record(
            expected_action="verify_phone",
            action="verify_phone",
            score=0.9,
            sms_toll_fraud_risk=0.8,
            sms_toll_fraud_reasons=["INVALID_PHONE_NUMBER"],
        ),
        record(expected_action="verify_phone", action="verify_phone", score=0.9),  # no phone
        google("verify_phone", phoneFraudAssessment={"smsTollFraudVerdict": {"risk": 0.9}}),
        record(expected_action="checkout", action="checkout", score=0.9, transaction_risk=0.1),
        record(expected_action="checkout", action="checkout", score=0.9, transaction_risk=0.7),
        google("checkout", fraudPreventionAssessment={"transactionRisk": 0.5}),
    ]
    code, out = run(tmp_path, lines, "--json")
    assert code == 0
    result = json.loads(out)
    phone = result["actions"]["verify_phone"]
    assert (phone["PASSED"], phone["FAILED_ENFORCE"]) == (3, 2)
    assert phone["decided_by"] == {"sms_toll_fraud_risk_above_max": 2}
    assert phone["sms_toll_fraud_risks_assessed"] == 4
    assert phone["sms_toll_fraud_risks_at_or_below"] == {
        "0.1": 0,
        "0.3": 1,
        "0.5": 2,
        "0.7": 2,
        "0.9": 4,
    }
    checkout = result["actions"]["checkout"]
    assert (checkout["PASSED"], checkout["FAILED_AUDIT"]) == (1, 2)
    assert checkout["decided_by"] == {"transaction_risk_above_max": 2}
    assert checkout["transaction_risks_assessed"] == 3
    assert checkout["transaction_risks_at_or_below"]["0.5"] == 2

    code, text = run(tmp_path, lines)
    assert code == 0
    assert (
        "assessed sms_toll_fraud_risk at or below a maximum (to choose max_sms_toll_fraud_risk)"
        in text
    )
    assert "to choose max_transaction_risk" in text


def test_express_records_skip_the_token_rules(tmp_path: Path) -> None:
    lines = [
        record(expected_action="express_signup", express=True, score=0.7),
        record(expected_action="express_signup", express=True, score=0.5),
        json.dumps(
            {
                "name": "projects/1/assessments/e",
                "event": {"expectedAction": "express_signup", "express": True},
                "riskAnalysis": {"score": 0.9},
            }
        ),
    ]
    code, out = run(tmp_path, lines, "--json")
    assert code == 0
    express = json.loads(out)["actions"]["express_signup"]
    assert (express["PASSED"], express["FAILED_ENFORCE"]) == (2, 1)
    assert express["decided_by"] == {"score_below_threshold": 1}
    assert express["valid_scores_at_or_above"]["0.5"] == 3


@pytest.mark.parametrize(
    ("line", "why"),
    [
        ('{"sms_toll_fraud_risk": 1.5}', "sms_toll_fraud_risk"),
        ('{"transaction_risk": "high"}', "transaction_risk"),
        ('{"express": "yes"}', "express"),
        ('{"sms_toll_fraud_reasons": "X"}', "sms_toll_fraud_reasons"),
    ],
)
def test_bad_risk_records_say_why(line: str, why: str) -> None:
    with pytest.raises(RecordError, match=why):
        parse_record(line)
