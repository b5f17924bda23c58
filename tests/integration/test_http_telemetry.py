"""The HTTP front doors (and Google's faces, gRPC and REST) get the telemetry every door gets:
the decision metrics from the observer, a server span in the caller's trace, one access line
per request with the decision fields, and never the token, the secret or the client's IP
anywhere."""

from __future__ import annotations

import json
import secrets
from pathlib import Path

import aiohttp
import grpc

from sidecar.emulator import mint_token
from sidecar.googleapi.service import SERVICE
from sidecar.server.google_face import CreateAssessmentRequestPb as CreatePb
from tests.conftest import EmulatorHandle, SidecarFactory
from tests.integration.test_prometheus_metrics import by, scrape
from tests.support.processes import sidecar_process

SECRET = "legacy-secret-kept-out-of-logs"


async def test_access_lines_in_the_callers_trace_and_nothing_personal(
    emulator: EmulatorHandle, tmp_path: Path
) -> None:
    secrets_file = tmp_path / "secrets"
    secrets_file.write_text(f"{SECRET} shop-key\n")
    config = tmp_path / "sidecar.yaml"
    config.write_text(f"siteverify_secrets_file: {secrets_file}\n")
    process = sidecar_process(
        "--listen", "127.0.0.1:0", "--http-listen", "127.0.0.1:0", "--config", str(config),
        "--project", "p", "--upstream-endpoint", emulator.address, "--upstream-plaintext",
        "--telemetry-console",  # spans on stdout: tracing on, and checked for secrets too
    )  # fmt: skip
    trace_id = secrets.token_hex(16)
    header = {"traceparent": f"00-{trace_id}-{secrets.token_hex(8)}-01"}
    token, auth_token = mint_token(action="login"), mint_token(action="login")
    ip = "198.51.100.77"
    try:
        line = next(x for x in process.lines if x.startswith("recaptcha-sidecar http on "))
        base = "http://" + line.split(" on ", 1)[1].split()[0]
        async with aiohttp.ClientSession() as client:
            query = {"secret": SECRET, "response": token, "remoteip": ip}
            async with client.get(f"{base}/siteverify", params=query, headers=header) as r:
                assert (await r.json())["success"] is True
            forwarded = {**header, "X-Recaptcha-Token": auth_token, "X-Forwarded-For": ip}
            async with client.get(f"{base}/forward-auth?action=login", headers=forwarded) as r:
                assert r.status == 200
            async with client.get(f"{base}/forward-auth?action=login", headers=forwarded) as r:
                assert r.status == 403
    finally:
        assert process.terminate() == 0
    output = process.output()
    for secret_value in (token, auth_token, SECRET, ip):
        assert secret_value not in output
    access = [
        json.loads(x) for x in output.splitlines() if x.startswith("{") and '"sidecar.access"' in x
    ]
    http_lines = [a for a in access if "http_route" in a]
    assert [(a["http_route"], a["status"], a["token_status"]) for a in http_lines] == [
        ("/siteverify", 200, "VALID"),
        ("/forward-auth", 200, "VALID"),
        ("/forward-auth", 403, "DUPLICATE"),
    ]
    assert {a["trace_id"] for a in http_lines} == {trace_id}
    assert all(a["http_method"] == "GET" and a["duration_ms"] > 0 for a in http_lines)
    assert '"name": "GET /forward-auth"' in output and '"name": "GET /siteverify"' in output


async def test_decision_metrics_count_every_door(
    make_sidecar: SidecarFactory, emulator: EmulatorHandle
) -> None:
    handle = await make_sidecar(
        http_listen=["127.0.0.1:0"],
        metrics_listen="127.0.0.1:0",
        policy={"actions": {"login": {"threshold": 0.5}}},  # its own action label
    )
    assert handle.sidecar.http is not None
    url = f"http://{handle.sidecar.http.addresses[0]}/forward-auth?action=login"
    token = mint_token(action="login")
    async with aiohttp.ClientSession() as client:
        for _ in range(2):
            async with client.get(url, headers={"X-Recaptcha-Token": token}) as r:
                await r.read()
        # Google's faces: one fresh token over REST, one over gRPC.
        rest = f"http://{handle.sidecar.http.addresses[0]}/v1/projects/test-project/assessments"
        event = {"token": mint_token(action="login"), "expectedAction": "login"}
        async with client.post(rest, json={"event": event}) as r:
            assert r.status == 200
    request = CreatePb(parent="projects/test-project")
    request.assessment.event.token = mint_token(action="login")
    request.assessment.event.expected_action = "login"
    async with grpc.aio.insecure_channel(handle.tcp) as channel:
        create = channel.unary_unary(f"/{SERVICE}/CreateAssessment")
        await create(request.SerializeToString(), timeout=10)
    samples = await scrape(handle)
    assert by(samples, "token_count_total", "status", action="login") == {
        ("VALID",): 3.0,
        ("DUPLICATE",): 1.0,
    }
    assert by(samples, "verdict_count_total", "verdict", action="login") == {
        ("PASSED",): 3.0,
        ("FAILED_ENFORCE",): 1.0,  # the repeat
    }
    calls = by(samples, "rpc_server_call_duration_seconds_count", "rpc_method", rpc_service=SERVICE)
    assert calls == {("CreateAssessment",): 1.0}
    rest_route = "/v1/projects/{project}/assessments"
    assert by(
        samples, "http_server_request_duration_seconds_count", "http_route", http_route=rest_route
    ) == {(rest_route,): 1.0}
    durations = by(
        samples,
        "http_server_request_duration_seconds_count",
        "http_response_status_code",
        http_route="/forward-auth",
    )
    assert durations == {("200",): 1.0, ("403",): 1.0}


async def test_googles_faces_get_the_telemetry_of_assess(emulator: EmulatorHandle) -> None:
    """CreateAssessment over gRPC and over REST: one access line per call with the decision fields,
    in the caller's trace, and never the token, the IP, the account id or the app's API key."""
    process = sidecar_process(
        "--listen", "127.0.0.1:0", "--http-listen", "127.0.0.1:0", "--project", "p",
        "--upstream-endpoint", emulator.address, "--upstream-plaintext", "--telemetry-console",
    )  # fmt: skip
    trace_id = secrets.token_hex(16)
    header = {"traceparent": f"00-{trace_id}-{secrets.token_hex(8)}-01"}
    grpc_token, rest_token = mint_token(action="login"), mint_token(action="login")
    ip, account, api_key = "198.51.100.78", "carol@example.com", "AIzaSy-app-key-kept-out"
    try:
        served = next(x for x in process.lines if x.startswith("recaptcha-sidecar serving on "))
        target = served.split(" on ", 1)[1].split()[0]
        line = next(x for x in process.lines if x.startswith("recaptcha-sidecar http on "))
        base = "http://" + line.split(" on ", 1)[1].split()[0]
        request = CreatePb(parent="projects/p")
        request.assessment.event.token = grpc_token
        request.assessment.event.user_ip_address = ip
        request.assessment.event.user_info.account_id = account
        async with grpc.aio.insecure_channel(target) as channel:
            create = channel.unary_unary(f"/{SERVICE}/CreateAssessment")
            await create(request.SerializeToString(), metadata=tuple(header.items()), timeout=10)
        event = {"token": rest_token, "userIpAddress": ip, "userInfo": {"accountId": account}}
        async with aiohttp.ClientSession() as client:
            url = f"{base}/v1/projects/p/assessments?key={api_key}"
            for _ in range(2):
                async with client.post(url, json={"event": event}, headers=header) as r:
                    assert r.status == 200
    finally:
        assert process.terminate() == 0
    output = process.output()
    for secret_value in (grpc_token, rest_token, ip, account, api_key):
        assert secret_value not in output
    access = [
        json.loads(x) for x in output.splitlines() if x.startswith("{") and '"sidecar.access"' in x
    ]
    faces = [a for a in access if a.get("rpc_method") == "CreateAssessment" or "http_route" in a]
    assert [(a.get("rpc_method", a.get("http_route")), a["token_status"]) for a in faces] == [
        ("CreateAssessment", "VALID"),
        ("/v1/projects/{project}/assessments", "VALID"),
        ("/v1/projects/{project}/assessments", "DUPLICATE"),
    ]
    assert all(a["verdict"] == "PASSED" for a in faces[:2])
    assert {a["trace_id"] for a in faces} == {trace_id}
    assert '"name": "POST /v1/projects/{project}/assessments"' in output
