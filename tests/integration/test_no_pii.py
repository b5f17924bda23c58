"""Nothing personal leaves the sidecar in telemetry.

A real sidecar process exports everything it can (OTLP spans and metrics to a real receiver,
console spans and metrics, a Prometheus endpoint, DEBUG JSON logs with access lines) while it
serves requests full of known tokens, e-mails, phone numbers, user names, IPs and account ids,
through every path (pass, fail, duplicate, replay, upstream errors, timeouts, bad input,
annotations). Then every byte it exported is searched for them and their obvious encodings.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import json
from collections.abc import Iterator
from pathlib import Path

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc
from recaptcha.sidecar.v1 import sidecar_pb2 as pb
from recaptcha.sidecar.v1 import sidecar_pb2_grpc

from sidecar.emulator import mint_token
from tests.conftest import EmulatorHandle
from tests.integration.test_prometheus_metrics import scrape_text
from tests.support.otlp_receiver import OtlpReceiver, iter_secrets_encodings, start_grpc_receiver
from tests.support.processes import Process, sidecar_process

EMAIL = "alice.pii+probe@example.org"
PHONE = "+14155550123"
USERNAME = "alice_pii_username"
ACCOUNT = "acct-PII-5d1e9b7c"
IPV4 = "203.0.113.77"
IPV6 = "2001:db8:85a3::8a2e:370:7334"
BAD_IP = "198.51.100.256"
IDEMPOTENCY_KEY = "idem-PII-a1b2c3d4"
USER_AGENT = "Mozilla/5.0 PIIAGENT-9f8e7d"
URI = f"https://shop.example/checkout?user={USERNAME}"
CONFIG = "policy:\n  actions:\n    login: {threshold: 0.5}\n    signup: {mode: audit}\n"


@pytest.fixture
def receiver() -> Iterator[OtlpReceiver]:
    receiver = start_grpc_receiver()
    yield receiver
    receiver.close()


def user(**fields: str) -> pb.UserId:
    return pb.UserId(**fields)


async def traffic(address: str, emulator: EmulatorHandle) -> tuple[list[str], int]:
    """Every path a request can take, each carrying personal data; the tokens used and the
    number of RPCs (health checks aside)."""
    tokens: list[str] = []
    calls = 0
    async with grpc.aio.insecure_channel(address) as channel:
        stub = sidecar_pb2_grpc.VerificationServiceStub(channel)
        health = health_pb2_grpc.HealthStub(channel)

        async def assess(token: str, action: str = "login", **extra: object) -> pb.AssessResponse:
            nonlocal calls
            calls += 1
            tokens.append(token)
            request = pb.AssessRequest(
                token=token,
                expected_action=action,
                user_ip_address=str(extra.pop("ip", IPV4)),
                user_agent=USER_AGENT,
                requested_uri=URI,
                account_id=ACCOUNT,
                user_ids=[user(email=EMAIL), user(phone_number=PHONE), user(username=USERNAME)],
                headers=[f"X-Forwarded-For: {IPV4}", f"X-User: {EMAIL}"],
                **extra,
            )
            return await stub.Assess(request, timeout=5)

        passed = await assess(mint_token(score=0.9, action="login", sms_toll_fraud_risk=0.3))
        assert passed.verdict == pb.VERDICT_PASSED
        assert passed.HasField("sms_toll_fraud_risk")  # SMS defense assessed the phone
        await assess(mint_token(score=0.2, action="login"), ip=IPV6)
        await assess(mint_token(score=0.2, action="signup"), action="signup")
        await assess(mint_token(action="promo"), action="promo")
        keyed = mint_token(action="login")
        await assess(keyed, idempotency_key=IDEMPOTENCY_KEY)
        assert (await assess(keyed, idempotency_key=IDEMPOTENCY_KEY)).replayed
        assert (await assess(tokens[0])).token_status == pb.TOKEN_STATUS_DUPLICATE
        await assess("")
        await assess("not-a-token-" + ACCOUNT)
        await assess(mint_token(action="login", invalid_reason="BROWSER_ERROR"))

        await emulator.control.set_faults("create", error_rate=1.0, error_code="UNAVAILABLE")
        assert (await assess(mint_token(action="login"))).token_status == pb.TOKEN_STATUS_UNCHECKED
        await emulator.control.set_faults("create", quota=True)
        await assess(mint_token(action="login"))
        await emulator.control.set_faults("create", hang=True)
        calls += 1
        hung = mint_token(action="login")
        tokens.append(hung)
        with contextlib.suppress(grpc.aio.AioRpcError):
            await stub.Assess(
                pb.AssessRequest(token=hung, expected_action="login", account_id=ACCOUNT),
                timeout=0.5,
            )
        await emulator.control.clear_faults()

        for bad in (
            pb.AssessRequest(token=mint_token(), user_ip_address=BAD_IP, account_id=ACCOUNT),
            pb.AssessRequest(token=mint_token(), expected_action=f"x-{USERNAME}-!"),
            pb.AssessRequest(token=mint_token(), user_ids=[pb.UserId()]),
        ):
            calls += 1
            tokens.append(bad.token)
            with pytest.raises(grpc.aio.AioRpcError):
                await stub.Assess(bad, timeout=5)

        for request in (
            pb.AnnotateRequest(
                assessment_name=passed.assessment_name,
                annotation=pb.ANNOTATION_FRAUDULENT,
                account_id=ACCOUNT,
                transaction_event=pb.TransactionEvent(reason=f"chargeback {EMAIL}"),
            ),
            pb.AnnotateRequest(
                assessment_name=passed.assessment_name,
                reasons=[pb.ANNOTATION_REASON_INITIATED_TWO_FACTOR],
                phone_authentication_event=pb.PhoneAuthenticationEvent(phone_number=PHONE),
            ),
            pb.AnnotateRequest(
                assessment_name=passed.assessment_name.rsplit("/", 1)[0] + "/unknown0000",
                account_id=ACCOUNT,
            ),
        ):
            calls += 1
            with contextlib.suppress(grpc.aio.AioRpcError):
                await stub.Annotate(request, timeout=5)
        for _ in range(3):
            await health.Check(health_pb2.HealthCheckRequest(), timeout=5)
    return tokens, calls


def secrets_of(tokens: list[str]) -> list[str]:
    values = [EMAIL, PHONE, USERNAME, ACCOUNT, IPV4, IPV6, BAD_IP, IDEMPOTENCY_KEY, USER_AGENT]
    values += ["PIIAGENT-9f8e7d", "alice.pii", "4155550123", "5d1e9b7c", "8a2e:370:7334"]
    for token in tokens:
        if not token:
            continue
        values.append(token)
        if token.startswith("emu1."):
            payload = token.removeprefix("emu1.")
            values += [payload, payload[-24:]]
            decoded = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
            values.append(decoded["nonce"])
    return values


def metrics_address(process: Process) -> str:
    for line in process.lines:
        if line.startswith("{") and '"message":"telemetry"' in line:
            return str(json.loads(line)["metrics_listen"])
    raise AssertionError("no telemetry line:\n" + process.output())


async def test_no_personal_data_in_any_exported_byte(
    receiver: OtlpReceiver, emulator: EmulatorHandle, tmp_path: Path
) -> None:
    config = tmp_path / "sidecar.yaml"
    config.write_text(CONFIG)
    process = sidecar_process(
        "--listen",
        "127.0.0.1:0",
        "--config",
        str(config),
        "--project",
        "pii-project",
        "--site-key",
        "pii-site-key",
        "--upstream-endpoint",
        emulator.address,
        "--upstream-plaintext",
        "--metrics-listen",
        "127.0.0.1:0",
        "--telemetry-console",
        "--log-level",
        "DEBUG",
        env={
            "OTEL_EXPORTER_OTLP_ENDPOINT": receiver.endpoint,
            "OTEL_BSP_SCHEDULE_DELAY": "100",
            "OTEL_METRIC_EXPORT_INTERVAL": "300",
        },
    )
    try:
        tokens, calls = await traffic(process.addresses()[0], emulator)
        prometheus = await asyncio.to_thread(scrape_text, metrics_address(process))
        await asyncio.to_thread(
            receiver.wait_for, lambda r: "verdict_count" in r.metric_names() and len(r.spans()) > 20
        )
    finally:
        code = await asyncio.to_thread(process.terminate)
    assert code == 0, process.output()

    output = process.output()
    corpus = {
        "otlp": receiver.exported_bytes(),
        "prometheus": [prometheus.encode()],
        "process output": [output.encode()],
    }
    # The search can only fail if there is something to search: make sure there is.
    access = [json.loads(x) for x in process.lines if x.startswith("{") and '"sidecar.access"' in x]
    assert len(access) == calls, f"one access line per RPC: {len(access)} != {calls}"
    assert all(len(line.get("trace_id", "")) == 32 for line in access)
    assert "verdict_count_total" in prometheus and "risk_scores_bucket" in prometheus
    assert len(receiver.spans()) >= calls
    assert '"name": "recaptcha.sidecar.v1.VerificationService/Assess"' in output, (
        "the console exporter printed spans"
    )

    leaks = []
    for secret in secrets_of(tokens):
        for encoding, needle in iter_secrets_encodings(secret):
            for where, blobs in corpus.items():
                if any(needle in blob for blob in blobs):
                    leaks.append(f"{secret!r} ({encoding}) in {where}")
    assert not leaks, "\n".join(leaks)
