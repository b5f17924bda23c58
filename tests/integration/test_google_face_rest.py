"""The Google-compatible REST face on the HTTP listener: Google's JSON mapping, the same
semantics as the gRPC face, Google's JSON error shape for every bad input (never a 500)."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import aiohttp
import pytest

from sidecar.emulator.tokens import mint_token
from tests.conftest import EmulatorHandle, SidecarFactory, SidecarHandle, http_address

PROJECT = "test-project"
ASSESSMENTS = f"/v1/projects/{PROJECT}/assessments"
JSON = {"Content-Type": "application/json; charset=utf-8"}


def _url(handle: SidecarHandle, path: str = ASSESSMENTS) -> str:
    return f"http://{http_address(handle)}{path}"


async def _post(
    client: aiohttp.ClientSession, url: str, body: Any = None, **kwargs: Any
) -> tuple[int, dict[str, Any], dict[str, str]]:
    headers = {**JSON, **kwargs.pop("headers", {})}
    data = body if isinstance(body, bytes | str) else json.dumps(body)
    async with client.post(url, data=data, headers=headers, **kwargs) as response:
        assert response.content_type == "application/json"
        return response.status, json.loads(await response.read()), dict(response.headers)


def _event(token: str, **extra: Any) -> dict[str, Any]:
    return {"event": {"token": token, "siteKey": "k", "expectedAction": "login", **extra}}


async def test_a_fresh_token_is_googles_answer_in_googles_json(
    http_sidecar: SidecarHandle, emulator: EmulatorHandle, http_client: aiohttp.ClientSession
) -> None:
    token = mint_token(action="login", score=0.9, reasons=["AUTOMATION"])
    status, body, headers = await _post(
        http_client,
        _url(http_sidecar) + "?key=AIzaSyIgnored",
        _event(token, userAgent="UA", userIpAddress="203.0.113.9", unknownField={"x": 1}),
        headers={"x-goog-api-key": "also-ignored"},
    )
    assert status == 200, body
    assert body["tokenProperties"]["valid"] is True
    assert body["tokenProperties"]["action"] == "login"
    assert body["tokenProperties"]["invalidReason"] == "INVALID_REASON_UNSPECIFIED"
    assert body["riskAnalysis"]["score"] == pytest.approx(0.9)
    assert body["riskAnalysis"]["reasons"] == ["AUTOMATION"]
    assert body["event"]["userIpAddress"] == "203.0.113.9"
    assert body["event"]["express"] is False  # every field, as Google's front end prints them
    assert body["name"].startswith("projects/")
    assert headers["x-recaptcha-allowed"] == "true"
    assert headers["x-recaptcha-token-status"] == "VALID"
    assert headers["x-recaptcha-assessment"] == body["name"]
    stats = await emulator.control.stats()
    assert stats["recent_creates"][-1]["parent"] == f"projects/{PROJECT}"
    # The sidecar's credentials (none here), never the app's key or token.
    assert {"x-goog-api-key", "authorization"}.isdisjoint(stats["metadata_keys"])
    assert stats["calls_by_credential"] == {"none": 1}
    assert await emulator.control.calls_for(token) == 1


async def test_googles_system_parameters_shape_the_json(
    http_sidecar: SidecarHandle, http_client: aiohttp.ClientSession
) -> None:
    """`$alt=json;enum-encoding=int` (what Google's HTTP transports send) answers enums as
    numbers; `prettyPrint=false` compact JSON, indented otherwise (Google's default); an
    `alt` the sidecar cannot answer is a Google-shaped 400."""
    token = mint_token(action="login", reasons=["AUTOMATION"])
    url = _url(http_sidecar) + "?$alt=json%3Benum-encoding=int&$prettyPrint=0"
    async with http_client.post(url, data=json.dumps(_event(token)), headers=JSON) as response:
        text = await response.text()
    assert response.status == 200 and "\n" not in text
    body = json.loads(text)
    assert body["riskAnalysis"]["reasons"] == [1]  # AUTOMATION
    assert body["tokenProperties"]["invalidReason"] == 0
    async with http_client.post(_url(http_sidecar), data=b"{", headers=JSON) as response:
        assert (await response.text()).startswith('{\n  "error": {\n')
    status, error, _ = await _post(http_client, _url(http_sidecar) + "?alt=proto", _event("t"))
    assert (status, error["error"]["status"]) == (400, "INVALID_ARGUMENT")


async def test_a_repeat_is_dupe_with_no_name_and_no_upstream_call(
    http_sidecar: SidecarHandle, emulator: EmulatorHandle, http_client: aiohttp.ClientSession
) -> None:
    token = mint_token(action="login")
    await _post(http_client, _url(http_sidecar), _event(token))
    status, body, headers = await _post(http_client, _url(http_sidecar), _event(token))
    assert status == 200
    assert body["tokenProperties"] == {
        "valid": False,
        "invalidReason": "DUPE",
        "hostname": "",
        "androidPackageName": "",
        "iosBundleId": "",
        "action": "",
    }
    assert body["name"] == ""
    assert headers["x-recaptcha-token-status"] == "DUPLICATE"
    assert await emulator.control.calls_for(token) == 1


async def test_an_idempotency_key_header_replays_the_original(
    http_sidecar: SidecarHandle, emulator: EmulatorHandle, http_client: aiohttp.ClientSession
) -> None:
    token = mint_token(action="login", score=0.6)
    key = {"x-recaptcha-idempotency-key": "order-9"}
    _, first, _ = await _post(http_client, _url(http_sidecar), _event(token), headers=key)
    _, again, _ = await _post(http_client, _url(http_sidecar), _event(token), headers=key)
    assert again["name"] == first["name"] != ""
    assert again["tokenProperties"]["valid"] is True
    assert again["riskAnalysis"]["score"] == pytest.approx(0.6)
    assert await emulator.control.calls_for(token) == 1


async def test_annotate(
    http_sidecar: SidecarHandle, emulator: EmulatorHandle, http_client: aiohttp.ClientSession
) -> None:
    """`POST /v1/{name}:annotate` with the name the answer gave (Google's REST clients build
    the path from it); a reason newer than the pinned library is accepted and dropped."""
    _, created, _ = await _post(http_client, _url(http_sidecar), _event(mint_token()))
    name = created["name"]
    status, body, _ = await _post(
        http_client,
        _url(http_sidecar, f"/v1/{name}:annotate"),
        {"annotation": "FRAUDULENT", "reasons": ["INCORRECT_PASSWORD", "NOT_A_REASON_YET"]},
    )
    assert (status, body) == (200, {})
    sent = (await emulator.control.stats())["annotations"][-1]
    assert sent["name"] == name
    assert (sent["annotation"], sent["reasons"]) == ("FRAUDULENT", ["INCORRECT_PASSWORD"])


# The seeds' two `curl` commands (000: the API-key variant; 004: the gcloud variant, whose
# `$(gcloud auth print-access-token)` stands here as a literal token) and their request bodies,
# placeholders replaced as the documents say; only the host changes.
SEED_000 = {
    "event": {
        "token": "TOKEN",
        "siteKey": "KEY_ID",
        "userAgent": "Mozilla/5.0 (X11; Linux x86_64)",
        "userIpAddress": "198.51.100.23",
        "ja3": "771,4865-4866-4867,0-23-65281,29-23-24,0",
        "expectedAction": "homepage",
    }
}
SEED_004 = {
    "event": {
        "token": "TOKEN",
        "siteKey": "KEY_ID",
        "userInfo": {
            "accountId": "account-1234",
            "userIds": [
                {"email": "user@example.com"},
                {"phoneNumber": "+15555550100"},
                {"username": "alice"},
            ],
        },
    }
}


@pytest.mark.parametrize(
    ("body", "query", "auth"),
    [
        (SEED_000, "?key=API_KEY", []),
        (SEED_004, "", ["-H", "Authorization: Bearer ya29.gcloud-access-token"]),
    ],
    ids=["000-api-key", "004-gcloud"],
)
async def test_the_seed_documents_curl_runs_verbatim(
    http_sidecar: SidecarHandle,
    emulator: EmulatorHandle,
    tmp_path: Any,
    body: dict[str, Any],
    query: str,
    auth: list[str],
) -> None:
    action = body["event"].get("expectedAction", "login")
    token = mint_token(action=action, score=0.6, site_key="KEY_ID")
    request = json.loads(json.dumps(body).replace('"TOKEN"', json.dumps(token)))
    (tmp_path / "request.json").write_text(json.dumps(request, indent=2))
    url = f"http://{http_address(http_sidecar)}/v1/projects/{PROJECT}/assessments{query}"
    argv = ["curl", "-X", "POST", *auth]
    argv += ["-H", "Content-Type: application/json; charset=utf-8", "-d", "@request.json", url]
    process = await asyncio.create_subprocess_exec(
        *argv, cwd=tmp_path, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE
    )
    out, err = await process.communicate()
    assert process.returncode == 0, err
    answer = json.loads(out)
    assert answer["tokenProperties"]["valid"] is True, answer
    assert answer["tokenProperties"]["action"] == action
    assert answer["riskAnalysis"]["score"] == pytest.approx(0.6)
    assert answer["name"].startswith("projects/") and "/assessments/" in answer["name"]
    assert answer["event"]["siteKey"] == "KEY_ID"
    for field in ("ja3", "userAgent", "userIpAddress"):
        assert answer["event"].get(field, "") == request["event"].get(field, "")
    if "userInfo" in request["event"]:  # echoed with the app's own account id
        assert answer["event"]["userInfo"] == request["event"]["userInfo"]
    stats = await emulator.control.stats()
    sent = stats["recent_creates"][-1]["event"]
    assert sent["site_key"] == "KEY_ID" and sent.get("ja3", "") == request["event"].get("ja3", "")
    assert {"x-goog-api-key", "authorization"}.isdisjoint(stats["metadata_keys"])


@pytest.mark.parametrize(
    ("path", "body", "headers", "status", "code"),
    [
        (ASSESSMENTS, b"{not json", {}, 400, "INVALID_ARGUMENT"),
        (ASSESSMENTS, b'{"event": {"token": 7}}', {}, 400, "INVALID_ARGUMENT"),
        (ASSESSMENTS, b"\xff\xfe", {}, 400, "INVALID_ARGUMENT"),
        (ASSESSMENTS, b"[" * 100_000, {}, 400, "INVALID_ARGUMENT"),
        (ASSESSMENTS, b"token=abc", {"Content-Type": "text/plain"}, 400, "INVALID_ARGUMENT"),
        (
            ASSESSMENTS,
            b"a=1",
            {"Content-Type": "application/x-www-form-urlencoded"},
            400,
            "INVALID_ARGUMENT",
        ),
        (ASSESSMENTS, b"{}", {}, 400, "INVALID_ARGUMENT"),
        (ASSESSMENTS, b"", {}, 400, "INVALID_ARGUMENT"),
        (
            "/v1/projects/another-project/assessments",
            b'{"event": {}}',
            {},
            403,
            "PERMISSION_DENIED",
        ),
        (ASSESSMENTS, b'{"event": {"userIpAddress": "not an ip"}}', {}, 400, "INVALID_ARGUMENT"),
        (
            ASSESSMENTS,
            b'{"event": {"token": "' + b"a" * 300_000 + b'"}}',
            {},
            400,
            "INVALID_ARGUMENT",
        ),
        ("/v1/projects/test-project/keys", b"{}", {}, 501, "UNIMPLEMENTED"),
        ("/v1/projects/test-project/assessments/x:frobnicate", b"{}", {}, 501, "UNIMPLEMENTED"),
        (f"{ASSESSMENTS}/bad/name:annotate", b"{}", {}, 501, "UNIMPLEMENTED"),
        ("/v1/projects/other/assessments/abc:annotate", b"{}", {}, 403, "PERMISSION_DENIED"),
    ],
)
async def test_bad_input_is_a_google_shaped_error(
    http_sidecar: SidecarHandle,
    emulator: EmulatorHandle,
    http_client: aiohttp.ClientSession,
    path: str,
    body: bytes,
    headers: dict[str, str],
    status: int,
    code: str,
) -> None:
    got, answer, _ = await _post(http_client, _url(http_sidecar, path), body, headers=headers)
    assert got == status, answer
    assert set(answer) == {"error"}
    error = answer["error"]
    assert error["code"] == status and error["status"] == code
    assert error["message"] and isinstance(error["details"], list)
    assert (await emulator.control.stats())["create_calls"] == 0


async def test_an_unknown_method_on_a_served_path(
    http_sidecar: SidecarHandle, http_client: aiohttp.ClientSession
) -> None:
    async with http_client.get(_url(http_sidecar)) as response:
        assert response.status == 501
        error = (await response.json())["error"]
    assert error["status"] == "UNIMPLEMENTED"
    assert "CreateAssessment" in error["message"] and "AnnotateAssessment" in error["message"]


async def test_no_answer_is_503_with_retry_info_and_the_decision_headers(
    make_sidecar: SidecarFactory,
    emulator: EmulatorHandle,
    http_client: aiohttp.ClientSession,
    tmp_path: Any,
) -> None:
    sidecar = await make_sidecar(http_listen=["127.0.0.1:0"], retry_max_attempts=1)
    await emulator.control.set_faults("create", error_rate=1.0, error_code="UNAVAILABLE")
    status, body, headers = await _post(http_client, _url(sidecar), _event(mint_token()))
    assert status == 503
    error = body["error"]
    assert error["status"] == "UNAVAILABLE" and error["code"] == 503
    types = [d["@type"] for d in error["details"]]
    assert "type.googleapis.com/google.rpc.RetryInfo" in types
    assert headers["x-recaptcha-token-status"] == "UNCHECKED"
    assert headers["x-recaptcha-allowed"] == "false"


async def test_the_server_timeout_header_is_the_callers_deadline(
    http_sidecar: SidecarHandle, emulator: EmulatorHandle, http_client: aiohttp.ClientSession
) -> None:
    await emulator.control.set_faults("create", latency_ms=2_000)
    status, body, headers = await _post(
        http_client,
        _url(http_sidecar),
        _event(mint_token()),
        headers={"X-Server-Timeout": "0.3"},
    )
    assert status == 504, body
    assert body["error"]["status"] == "DEADLINE_EXCEEDED"
    assert headers["x-recaptcha-decided-by"].startswith("transient:deadline")


async def test_an_exposed_listener_refuses_without_its_token_in_googles_shape(
    make_sidecar: SidecarFactory,
    emulator: EmulatorHandle,
    http_client: aiohttp.ClientSession,
    tmp_path: Any,
) -> None:
    """The listener-security rules come first; Google's clients read the refusal as Google's
    UNAUTHENTICATED, and the listener's token never goes upstream."""
    secret = "listener-token-of-32-characters!"
    (tmp_path / "token").write_text(secret + "\n")
    sidecar = await make_sidecar(
        http_listen=["127.0.0.1:0"], secure_loopback=True, auth_token_file=tmp_path / "token"
    )
    status, body, headers = await _post(http_client, _url(sidecar), _event(mint_token()))
    assert status == 401 and headers["WWW-Authenticate"].startswith("Bearer")
    assert body["error"]["status"] == "UNAUTHENTICATED" and body["error"]["code"] == 401
    assert (await emulator.control.stats())["create_calls"] == 0
    status, body, _ = await _post(
        http_client,
        _url(sidecar),
        _event(mint_token()),
        headers={"Authorization": f"Bearer {secret}"},
    )
    assert status == 200 and body["tokenProperties"]["valid"] is True
    assert "authorization" not in (await emulator.control.stats())["metadata_keys"]
