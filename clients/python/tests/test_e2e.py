"""Calls a running sidecar through the generated Python stubs, over TCP and over a Unix socket.

tests/clients/test_clients.py starts the sidecar (on its embedded emulator) and runs this with
RECAPTCHA_SIDECAR_TARGET (host:port) and RECAPTCHA_SIDECAR_UDS (unix:///path) set; without them
the test is skipped. Needs grpcio-health-checking besides this package.
"""

from __future__ import annotations

import base64
import json
import os
import secrets
import time

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc
from recaptcha.sidecar.v1 import sidecar_pb2, sidecar_pb2_grpc

DEADLINE_S = 5.0


def mint_token(action: str, **extra: object) -> str:
    """A fresh token in the emulator's format: "emu1." and unpadded base64url of compact JSON."""
    claims = {
        "score": 0.9,
        "action": action,
        "hostname": "localhost",
        "iat": time.time(),
        "nonce": secrets.token_hex(16),
        **extra,
    }
    payload = json.dumps(claims, separators=(",", ":")).encode()
    return "emu1." + base64.urlsafe_b64encode(payload).rstrip(b"=").decode()


@pytest.mark.parametrize("variable", ["RECAPTCHA_SIDECAR_TARGET", "RECAPTCHA_SIDECAR_UDS"])
def test_assess_repeat_annotate_and_health(variable: str) -> None:
    target = os.environ.get(variable)
    if not target:
        pytest.skip(f"{variable} is not set")

    with grpc.insecure_channel(target) as channel:
        health = health_pb2_grpc.HealthStub(channel).Check(
            health_pb2.HealthCheckRequest(), timeout=DEADLINE_S, wait_for_ready=True
        )
        assert health.status == health_pb2.HealthCheckResponse.SERVING

        sidecar = sidecar_pb2_grpc.VerificationServiceStub(channel)
        request = sidecar_pb2.AssessRequest(token=mint_token("login"), expected_action="login")

        first = sidecar.Assess(request, timeout=DEADLINE_S)
        assert first.allowed, first
        assert first.verdict == sidecar_pb2.VERDICT_PASSED
        assert first.token_status == sidecar_pb2.TOKEN_STATUS_VALID
        assert first.assessment_name

        second = sidecar.Assess(request, timeout=DEADLINE_S)
        assert not second.allowed, second
        assert second.token_status == sidecar_pb2.TOKEN_STATUS_DUPLICATE

        ack = sidecar.Annotate(
            sidecar_pb2.AnnotateRequest(
                assessment_name=first.assessment_name,
                annotation=sidecar_pb2.ANNOTATION_LEGITIMATE,
                reasons=[sidecar_pb2.ANNOTATION_REASON_PASSED_TWO_FACTOR],
            ),
            timeout=DEADLINE_S,
        )
        # SMS defense: a phone number in user_ids makes upstream assess toll-fraud risk (the
        # emulator answers the token's sms_toll_fraud_risk claim); without one it is absent.
        phone = sidecar.Assess(
            sidecar_pb2.AssessRequest(
                token=mint_token("login", sms_toll_fraud_risk=0.7),
                expected_action="login",
                user_ids=[sidecar_pb2.UserId(phone_number="+15555550100")],
            ),
            timeout=DEADLINE_S,
        )
        assert phone.HasField("sms_toll_fraud_risk"), phone
        assert abs(phone.sms_toll_fraud_risk - 0.7) < 1e-6
        no_phone = sidecar.Assess(
            sidecar_pb2.AssessRequest(token=mint_token("login"), expected_action="login"),
            timeout=DEADLINE_S,
        )
        assert not no_phone.HasField("sms_toll_fraud_risk"), no_phone
    delivery = sidecar_pb2.AnnotationDelivery.Name(ack.delivery)
    print(f"e2e ok: {variable} ({target}, assessment {first.assessment_name}, delivery {delivery})")
