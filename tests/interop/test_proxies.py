"""nginx (`auth_request`) and Caddy (`forward_auth`) in front of a tiny backend, with the
configurations shipped in deploy/examples/ (only addresses replaced), asking the sidecar's
forward-auth: a fresh token reaches the backend with the verdict headers, a replay and a
missing token get 403, and what the end user forges never reaches the sidecar or the app."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import AbstractContextManager
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from sidecar.emulator import mint_token
from tests.conftest import EmulatorHandle, SidecarHandle, http_address
from tests.support.network import free_port
from tests.support.proxies import Backend, ProxyProcess, backend, caddy, nginx, render

pytestmark = pytest.mark.interop


def _nginx(directory: Path, sidecar: str, app: str) -> AbstractContextManager[ProxyProcess]:
    port = free_port()
    site = render(
        "nginx/recaptcha.conf",
        {
            "127.0.0.1:8080": sidecar,
            "127.0.0.1:3000": app,
            "listen 80;": f"listen 127.0.0.1:{port};",
        },
    )
    return nginx(directory, site, port)


def _caddy(directory: Path, sidecar: str, app: str) -> AbstractContextManager[ProxyProcess]:
    port = free_port()
    caddyfile = render(
        "caddy/Caddyfile",
        {"127.0.0.1:8080": sidecar, "127.0.0.1:3000": app, ":80 {": f"http://127.0.0.1:{port} {{"},
    )
    return caddy(directory, caddyfile, port)


PROXIES = {"nginx": _nginx, "caddy": _caddy}


@pytest.fixture
def app() -> Iterator[Backend]:
    with backend() as state:
        yield state


@pytest.fixture(params=sorted(PROXIES))
def proxy(
    request: pytest.FixtureRequest, http_sidecar: SidecarHandle, app: Backend, tmp_path: Path
) -> Iterator[ProxyProcess]:
    with PROXIES[request.param](
        tmp_path / request.param, http_address(http_sidecar), app.address
    ) as running:
        yield running


async def _post(url: str, headers: dict[str, str], method: str = "POST") -> tuple[int, Any]:
    async with (
        aiohttp.ClientSession() as session,
        session.request(method, url, headers=headers, data=b"") as r,
    ):
        return r.status, await r.read()


def _seen(app: Backend) -> dict[str, str]:
    """The headers of the last request the backend got, by lower-case name."""
    return {name.lower(): value for name, value in app.requests[-1]["headers"]}  # type: ignore[union-attr]


FORGED = {
    "X-Forwarded-For": "6.6.6.6",
    "X-Real-IP": "6.6.6.6",
    "X-Ja3-Fingerprint": "forged-ja3",
    "X-Recaptcha-Allowed": "true",
    "X-Recaptcha-Score": "1.0",
    "X-Recaptcha-Assessment": "projects/1/assessments/forged",
    "User-Agent": "Mozilla/5.0 (interop)",
}


async def test_fresh_token_reaches_the_app_with_the_verdict(
    proxy: ProxyProcess, app: Backend, emulator: EmulatorHandle
) -> None:
    token = mint_token(score=0.8, action="login")
    status, _ = await _post(f"{proxy.url}/login", {**FORGED, "X-Recaptcha-Token": token})
    assert status == 200, proxy.output()
    seen = _seen(app)
    assert app.requests[-1]["path"] == "/login"
    assert seen["x-recaptcha-allowed"] == "true"
    assert seen["x-recaptcha-verdict"] == "PASSED"
    assert seen["x-recaptcha-token-status"] == "VALID"
    assert seen["x-recaptcha-score"] == "0.8"
    assert seen["x-recaptcha-assessment"].startswith("projects/123456789/assessments/")
    assert seen["x-recaptcha-assessment"] != FORGED["X-Recaptcha-Assessment"]
    # what the sidecar sent upstream: the proxy's view, not the forged headers
    event = emulator.service.stats()["recent_creates"][-1]["event"]
    assert event["expected_action"] == "login"
    assert event["user_ip_address"] == "127.0.0.1"
    assert event["user_agent"] == "Mozilla/5.0 (interop)"
    assert "ja3" not in event
    assert event["requested_uri"].endswith("/login")


@pytest.mark.parametrize("method", ["PUT", "DELETE"])
async def test_any_method_is_asked_about(proxy: ProxyProcess, app: Backend, method: str) -> None:
    """Whatever the end user's method, the proxy asks and the sidecar answers."""
    token = mint_token(action="login")
    status, _ = await _post(f"{proxy.url}/login", {"X-Recaptcha-Token": token}, method)
    assert status == 200, proxy.output()
    assert app.requests[-1]["method"] == method
    assert (await _post(f"{proxy.url}/login", {"X-Recaptcha-Token": token}, method))[0] == 403


async def test_replay_and_missing_token_get_403_and_never_reach_the_app(
    proxy: ProxyProcess, app: Backend, emulator: EmulatorHandle
) -> None:
    token = mint_token(action="login")
    assert (await _post(f"{proxy.url}/login", {"X-Recaptcha-Token": token}))[0] == 200
    reached = len(app.requests)
    status, _ = await _post(f"{proxy.url}/login", {"X-Recaptcha-Token": token})
    assert status == 403
    status, _ = await _post(f"{proxy.url}/login", FORGED)
    assert status == 403
    assert len(app.requests) == reached
    assert emulator.service.stats(tokens=[token])["create_calls_by_token"][token] == 1


async def test_a_value_the_sidecar_leaves_empty_is_never_the_forged_one(
    proxy: ProxyProcess, app: Backend, emulator: EmulatorHandle
) -> None:
    """Upstream down and `login` in audit mode: the request goes through UNCHECKED, with no
    score and no assessment. The app must see none, not the 1.0 and the name the end user
    sent under the same names (the examples overwrite, or drop, every decision header)."""
    emulator.service.set_faults("create", error_rate=1.0, error_code="UNAVAILABLE")
    status, _ = await _post(f"{proxy.url}/login", {**FORGED, "X-Recaptcha-Token": mint_token()})
    assert status == 200, proxy.output()
    seen = _seen(app)
    assert seen["x-recaptcha-token-status"] == "UNCHECKED"
    assert seen["x-recaptcha-verdict"] == "FAILED_AUDIT"
    assert seen.get("x-recaptcha-score", "") == ""
    assert seen.get("x-recaptcha-assessment", "") == ""
