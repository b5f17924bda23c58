"""forward-auth over a real HTTP listener, on the emulator: 200 or 403 only, the decision
headers, single use, and who may say what (trusted proxies, the action only from the URL)."""

from __future__ import annotations

from typing import Any

import aiohttp
import pytest

from sidecar.emulator import mint_token
from tests.conftest import EmulatorHandle, SidecarFactory, SidecarHandle


def _url(handle: SidecarHandle, query: str = "?action=login") -> str:
    assert handle.sidecar.http is not None
    return f"http://{handle.sidecar.http.addresses[0]}/forward-auth{query}"


async def _ask(
    http_client: aiohttp.ClientSession, url: str, headers: dict[str, str], method: str = "GET"
) -> tuple[int, dict[str, str], Any]:
    async with http_client.request(method, url, headers=headers) as response:
        return response.status, dict(response.headers), await response.json()


PROXY = {
    "User-Agent": "Mozilla/5.0 (test)",
    "X-Forwarded-For": "198.51.100.7",
    "X-Forwarded-Proto": "https",
    "X-Forwarded-Host": "shop.example",
    "X-Forwarded-Uri": "/login",
    "X-Ja3-Fingerprint": "771,4865-4866,0-23,29-23,0",
}


def _last_event(emulator: EmulatorHandle) -> dict[str, Any]:
    return emulator.service.stats()["recent_creates"][-1]["event"]  # type: ignore[no-any-return]


async def test_allowed_then_replay_denied_without_an_upstream_call(
    make_sidecar: SidecarFactory, emulator: EmulatorHandle, http_client: aiohttp.ClientSession
) -> None:
    handle = await make_sidecar(http_listen=["127.0.0.1:0"])
    token = mint_token(score=0.9, action="login")
    headers = {**PROXY, "X-Recaptcha-Token": token}
    status, got, body = await _ask(http_client, _url(handle), headers)
    assert (status, body) == (200, {"allowed": True})
    assert got["x-recaptcha-allowed"] == "true"
    assert got["x-recaptcha-verdict"] == "PASSED"
    assert got["x-recaptcha-token-status"] == "VALID"
    assert got["x-recaptcha-score"] == "0.9"
    assert got["x-recaptcha-assessment"].startswith("projects/")
    event = _last_event(emulator)
    assert event["expected_action"] == "login"
    assert event["user_ip_address"] == "198.51.100.7"
    assert event["user_agent"] == "Mozilla/5.0 (test)"
    assert event["requested_uri"] == "https://shop.example/login"
    assert event["ja3"] == PROXY["X-Ja3-Fingerprint"]

    status, got, body = await _ask(http_client, _url(handle), headers, method="POST")
    assert status == 403
    assert body == {"allowed": False, "verdict": "FAILED_ENFORCE", "token_status": "DUPLICATE"}
    assert got["x-recaptcha-token-status"] == "DUPLICATE"
    assert "x-recaptcha-score" not in got, "a denial tells the end user no score"
    assert emulator.service.stats(tokens=[token])["create_calls_by_token"][token] == 1


@pytest.mark.parametrize("method", ["PUT", "DELETE", "PATCH", "HEAD"])
async def test_any_method_gets_an_answer(
    make_sidecar: SidecarFactory, http_client: aiohttp.ClientSession, method: str
) -> None:
    """Traefik's preserveRequestMethod asks with the end user's method: never a 405."""
    handle = await make_sidecar(http_listen=["127.0.0.1:0"])
    headers = {"X-Recaptcha-Token": mint_token(action="login")}
    async with http_client.request(method, _url(handle), headers=headers) as response:
        assert response.status == 200
        assert response.headers["x-recaptcha-allowed"] == "true"


async def test_missing_token_is_403_without_an_upstream_call(
    make_sidecar: SidecarFactory, emulator: EmulatorHandle, http_client: aiohttp.ClientSession
) -> None:
    handle = await make_sidecar(http_listen=["127.0.0.1:0"])
    status, _, body = await _ask(http_client, _url(handle), PROXY)
    assert status == 403
    assert body["token_status"] == "MISSING"
    assert emulator.service.stats()["create_calls"] == 0


async def test_the_action_comes_only_from_the_auth_url(
    make_sidecar: SidecarFactory, emulator: EmulatorHandle, http_client: aiohttp.ClientSession
) -> None:
    handle = await make_sidecar(http_listen=["127.0.0.1:0"])
    headers = {"X-Recaptcha-Token": mint_token(action="login"), "X-Recaptcha-Action": "weak"}
    await _ask(http_client, _url(handle, ""), headers)
    assert _last_event(emulator).get("expected_action", "") == ""
    status, _, body = await _ask(http_client, _url(handle, "?action=login&action=weak"), headers)
    assert status == 403
    assert "action" in body["error"]


async def test_forged_forwarded_headers_from_an_untrusted_peer_are_ignored(
    make_sidecar: SidecarFactory, emulator: EmulatorHandle, http_client: aiohttp.ClientSession
) -> None:
    handle = await make_sidecar(
        http_listen=["127.0.0.1:0"], forward_auth_trusted_proxies=["192.0.2.1"]
    )
    token = mint_token(action="login")
    headers = {**PROXY, "X-Real-IP": "203.0.113.66", "X-Recaptcha-Token": token}
    status, _, _ = await _ask(http_client, _url(handle), headers)
    assert status == 200
    event = _last_event(emulator)
    assert event["user_ip_address"] == "127.0.0.1"  # the peer itself
    assert "ja3" not in event and "requested_uri" not in event


async def test_custom_token_header(
    make_sidecar: SidecarFactory, http_client: aiohttp.ClientSession
) -> None:
    handle = await make_sidecar(http_listen=["127.0.0.1:0"], forward_auth_token_header="X-Captcha")
    status, _, _ = await _ask(http_client, _url(handle), {"X-Captcha": mint_token(action="login")})
    assert status == 200
    status, _, body = await _ask(http_client, _url(handle), {"X-Recaptcha-Token": mint_token()})
    assert (status, body["token_status"]) == (403, "MISSING")


@pytest.mark.parametrize(
    "headers",
    [
        [("X-Recaptcha-Token", "a"), ("X-Recaptcha-Token", "b")],
        [("X-Recaptcha-Token", "x" * 10_001)],
        [("X-Recaptcha-Token", "t"), ("X-Forwarded-For", "not-an-ip, either")],
    ],
    ids=["token-twice", "token-too-long", "garbage-xff"],
)
async def test_bad_input_is_a_403_never_anything_else(
    make_sidecar: SidecarFactory,
    emulator: EmulatorHandle,
    http_client: aiohttp.ClientSession,
    headers: list[tuple[str, str]],
) -> None:
    handle = await make_sidecar(http_listen=["127.0.0.1:0"])
    async with http_client.get(_url(handle), headers=headers) as response:
        assert response.status == 403
        assert (await response.json())["allowed"] is False


async def test_a_token_as_long_as_the_core_allows_fits_in_a_header(
    make_sidecar: SidecarFactory, http_client: aiohttp.ClientSession
) -> None:
    """aiohttp's own limit (8 KiB) is raised: a 9,000-character token reaches the core."""
    handle = await make_sidecar(http_listen=["127.0.0.1:0"])
    headers = {"X-Recaptcha-Token": "A" * 9_000}
    status, got, _ = await _ask(http_client, _url(handle), headers)
    assert (status, got["x-recaptcha-token-status"]) == (403, "INVALID")


async def test_what_the_http_parser_refuses_is_a_400_and_logs_nothing(
    make_sidecar: SidecarFactory,
    http_client: aiohttp.ClientSession,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """A duplicate User-Agent or Host is request smuggling's raw material: aiohttp answers 400
    before any door sees it (nginx, Caddy and Traefik never send one)."""
    handle = await make_sidecar(http_listen=["127.0.0.1:0"])
    headers = [("X-Recaptcha-Token", "t"), ("User-Agent", "a"), ("User-Agent", "b")]
    async with http_client.get(_url(handle), headers=headers) as response:
        assert response.status == 400
    assert "Duplicate" not in caplog.text


async def test_an_upstream_outage_is_403_with_a_closed_policy(
    make_sidecar: SidecarFactory, emulator: EmulatorHandle, http_client: aiohttp.ClientSession
) -> None:
    handle = await make_sidecar(http_listen=["127.0.0.1:0"])
    emulator.service.set_faults("create", error_rate=1.0, error_code="UNAVAILABLE")
    status, _, body = await _ask(http_client, _url(handle), {"X-Recaptcha-Token": mint_token()})
    assert status == 403
    assert body["token_status"] == "UNCHECKED"
