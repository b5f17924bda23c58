"""The HTTP front doors get the telemetry every door gets: the decision metrics from the
observer, a server span in the caller's trace, one access line per request with the decision
fields, and never the token, the secret or the client's IP anywhere."""

from __future__ import annotations

import json
import secrets
from pathlib import Path

import aiohttp

from sidecar.emulator import mint_token
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
    samples = await scrape(handle)
    assert by(samples, "token_count_total", "status", action="login") == {
        ("VALID",): 1.0,
        ("DUPLICATE",): 1.0,
    }
    durations = by(
        samples,
        "http_server_request_duration_seconds_count",
        "http_response_status_code",
        http_route="/forward-auth",
    )
    assert durations == {("200",): 1.0, ("403",): 1.0}
