"""siteverify over a real HTTP listener, on the emulator as upstream: the legacy answer, single
use (a replay costs no upstream call), secrets, and bad input (never a 500)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from sidecar.emulator import mint_token
from tests.conftest import (
    SITEVERIFY_SECRET,
    SITEVERIFY_SITE_KEY,
    EmulatorHandle,
    SidecarFactory,
    SidecarHandle,
)
from tests.support.processes import ROOT, sidecar_process

SECRET = SITEVERIFY_SECRET
SITE_KEY = SITEVERIFY_SITE_KEY


def _url(handle: SidecarHandle, path: str = "/recaptcha/api/siteverify") -> str:
    assert handle.sidecar.http is not None
    return f"http://{handle.sidecar.http.addresses[0]}{path}"


async def _post(
    http_client: aiohttp.ClientSession, url: str, **kwargs: Any
) -> tuple[int, dict[str, Any], dict[str, str]]:
    async with http_client.post(url, **kwargs) as response:
        return response.status, json.loads(await response.read()), dict(response.headers)


def _token(**kwargs: Any) -> str:
    kwargs.setdefault("site_key", SITE_KEY)
    return mint_token(score=0.7, action="checkout", hostname="shop.example", **kwargs)


async def test_fresh_token_then_replay_without_an_upstream_call(
    http_sidecar: SidecarHandle, emulator: EmulatorHandle, http_client: aiohttp.ClientSession
) -> None:
    token = _token()
    form = {"secret": SECRET, "response": token, "remoteip": "198.51.100.7", "version": "x"}
    status, body, headers = await _post(http_client, _url(http_sidecar), data=form)
    assert status == 200
    assert body.pop("challenge_ts").endswith("Z")
    assert body == {"success": True, "hostname": "shop.example", "score": 0.7, "action": "checkout"}
    assert headers["x-recaptcha-allowed"] == "true"
    assert headers["x-recaptcha-assessment"].startswith("projects/")
    sent = emulator.service.stats()["recent_creates"][-1]["event"]
    assert sent["site_key"] == SITE_KEY
    assert sent["user_ip_address"] == "198.51.100.7"

    status, body, _ = await _post(http_client, _url(http_sidecar, "/siteverify"), data=form)
    assert (status, body) == (200, {"success": False, "error-codes": ["timeout-or-duplicate"]})
    assert emulator.service.stats(tokens=[token])["create_calls_by_token"][token] == 1


async def test_get_with_query_parameters_as_the_ruby_gem_sends_it(
    http_sidecar: SidecarHandle, http_client: aiohttp.ClientSession
) -> None:
    params = {"secret": SECRET, "response": _token(), "remoteip": "::1"}
    async with http_client.get(_url(http_sidecar), params=params) as response:
        assert response.status == 200
        assert (await response.json())["success"] is True


async def test_json_body_with_an_idempotency_key_replays_the_original_answer(
    http_sidecar: SidecarHandle, emulator: EmulatorHandle, http_client: aiohttp.ClientSession
) -> None:
    token = _token()
    first = {"secret": SECRET, "response": token, "idempotency_key": "retry-1"}
    _, original, _ = await _post(http_client, _url(http_sidecar), json=first)
    _, again, _ = await _post(http_client, _url(http_sidecar), json=first)
    assert original["success"] is True
    assert again == original
    other = {**first, "idempotency_key": "retry-2"}
    _, body, _ = await _post(http_client, _url(http_sidecar), json=other)
    assert body["error-codes"] == ["timeout-or-duplicate"]
    assert emulator.service.stats(tokens=[token])["create_calls_by_token"][token] == 1


async def test_unix_socket(http_sidecar: SidecarHandle, tmp_path: Path) -> None:
    connector = aiohttp.UnixConnector(path=str(tmp_path / "http.sock"))
    async with aiohttp.ClientSession(connector=connector) as client:
        form = {"secret": SECRET, "response": _token()}
        status, body, _ = await _post(client, "http://sidecar/siteverify", data=form)
    assert (status, body["success"]) == (200, True)


@pytest.mark.parametrize(
    ("form", "codes"),
    [
        ({"secret": "not-a-known-secret", "response": "x"}, ["invalid-input-secret"]),
        ({"response": "x"}, ["missing-input-secret"]),
        ({}, ["missing-input-secret", "missing-input-response"]),
        ({"secret": SECRET}, ["missing-input-response"]),
        ({"secret": SECRET, "response": "x" * 10_001}, ["invalid-input-response"]),
        ({"secret": SECRET, "response": "t", "remoteip": "not-an-ip"}, ["bad-request"]),
    ],
    ids=["unknown-secret", "no-secret", "nothing", "no-response", "token-too-long", "bad-ip"],
)
async def test_answered_locally_with_googles_codes(
    http_sidecar: SidecarHandle,
    emulator: EmulatorHandle,
    http_client: aiohttp.ClientSession,
    form: dict[str, str],
    codes: list[str],
) -> None:
    status, body, _ = await _post(http_client, _url(http_sidecar), data=form)
    assert (status, body) == (200, {"success": False, "error-codes": codes})
    assert emulator.service.stats()["create_calls"] == 0


async def test_upstream_verdicts_map_to_legacy_codes(
    http_sidecar: SidecarHandle, http_client: aiohttp.ClientSession
) -> None:
    expired = _token(issued_at=0)
    broken = _token(invalid_reason="MALFORMED")
    for token, code in ((expired, "timeout-or-duplicate"), (broken, "invalid-input-response")):
        _, body, _ = await _post(
            http_client, _url(http_sidecar), data={"secret": SECRET, "response": token}
        )
        assert body == {"success": False, "error-codes": [code]}


async def test_no_answer_from_upstream_is_internal_error(
    http_sidecar: SidecarHandle, emulator: EmulatorHandle, http_client: aiohttp.ClientSession
) -> None:
    emulator.service.set_faults("create", error_rate=1.0, error_code="UNAVAILABLE")
    _, body, headers = await _post(
        http_client, _url(http_sidecar), data={"secret": SECRET, "response": _token()}
    )
    assert body == {"success": False, "error-codes": ["internal-error"]}
    assert headers["x-recaptcha-token-status"] == "UNCHECKED"


@pytest.mark.parametrize(
    ("kwargs", "status"),
    [
        ({"data": f"secret={SECRET}&secret=x&response=t"}, 200),
        ({"data": b"secret=a", "headers": {"Content-Type": "text/plain"}}, 200),
        ({"data": b"{not json", "headers": {"Content-Type": "application/json"}}, 200),
        (
            {"data": b"\xff\xfe", "headers": {"Content-Type": "application/x-www-form-urlencoded"}},
            200,
        ),
        ({"data": b"x" * 70_000}, 413),
        ({"data": b"x" * 2_000_000}, 413),
    ],
    ids=["duplicate", "text-plain", "bad-json", "not-utf8", "over-64k", "over-1m"],
)
async def test_bad_requests_get_a_clear_answer_never_a_500(
    http_sidecar: SidecarHandle,
    emulator: EmulatorHandle,
    http_client: aiohttp.ClientSession,
    kwargs: dict[str, Any],
    status: int,
) -> None:
    got, body, _ = await _post(http_client, _url(http_sidecar), **kwargs)
    assert (got, body) == (status, {"success": False, "error-codes": ["bad-request"]})
    assert emulator.service.stats()["create_calls"] == 0


async def test_other_methods_and_paths(
    http_sidecar: SidecarHandle, http_client: aiohttp.ClientSession
) -> None:
    async with http_client.put(_url(http_sidecar), data="x") as response:
        assert response.status == 405
    async with http_client.get(_url(http_sidecar, "/nope")) as response:
        assert response.status == 404


async def test_without_a_secrets_file_every_secret_is_unknown(
    make_sidecar: SidecarFactory, http_client: aiohttp.ClientSession
) -> None:
    handle = await make_sidecar(http_listen=["127.0.0.1:0"])
    _, body, _ = await _post(http_client, _url(handle), data={"secret": SECRET, "response": "t"})
    assert body == {"success": False, "error-codes": ["invalid-input-secret"]}


async def test_command_line_http_listen_serves_then_stops_cleanly(tmp_path: Path) -> None:
    """`serve --http-listen` on the real command line: the http line, a siteverify answer,
    and after SIGTERM exit 0 with its Unix socket removed."""
    sock = tmp_path / "http.sock"
    process = sidecar_process(
        "--emulator", "--listen", "127.0.0.1:0", "--http-listen", "127.0.0.1:0",
        "--http-listen", f"unix://{sock}",
    )  # fmt: skip
    try:
        line = next(x for x in process.lines if x.startswith("recaptcha-sidecar http on "))
        tcp, unix = line.split(" on ", 1)[1].split()
        assert unix == f"unix://{sock}"
        async with aiohttp.ClientSession() as client:
            url = f"http://{tcp}/siteverify"
            _, body, _ = await _post(client, url, data={"secret": "s", "response": "t"})
        assert body == {"success": False, "error-codes": ["invalid-input-secret"]}
    finally:
        code = process.terminate()
    assert code == 0, process.output()
    assert not sock.exists()


def test_a_broken_secrets_file_stops_the_start_naming_the_line(tmp_path: Path) -> None:
    """One line, exit 2, the line number and never the secret; nothing left listening."""
    secrets_file = tmp_path / "secrets"
    secrets_file.write_text("good-secret key-1\nlonely-secret-zq9\n")
    config = tmp_path / "sidecar.yaml"
    config.write_text(f"siteverify_secrets_file: {secrets_file}\n")
    done = subprocess.run(
        [sys.executable, "-m", "sidecar", "serve", "--emulator", "--listen", "127.0.0.1:0",
         "--http-listen", "127.0.0.1:0", "--config", str(config)],
        cwd=ROOT, capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert done.returncode == 2
    assert "siteverify_secrets_file" in done.stderr and "line 2" in done.stderr
    assert "lonely-secret-zq9" not in done.stderr + done.stdout
