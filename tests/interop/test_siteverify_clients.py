"""The siteverify libraries apps already use, pointed at the sidecar by changing only the
verify URL: google/recaptcha for PHP (Debian's php-google-recaptcha) and the Ruby recaptcha
gem (Debian's ruby-recaptcha), run by their own interpreters."""

from __future__ import annotations

from pathlib import Path

import pytest

from sidecar.emulator import mint_token
from tests.conftest import SITEVERIFY_SECRET as SECRET
from tests.conftest import SITEVERIFY_SITE_KEY as SITE_KEY
from tests.conftest import EmulatorHandle, SidecarHandle, http_address
from tests.interop.conftest import run_json

pytestmark = pytest.mark.interop

HERE = Path(__file__).resolve().parent
PHP = str(HERE / "siteverify_client.php")
RUBY = str(HERE / "siteverify_client.rb")


def _token() -> str:
    return mint_token(score=0.7, action="checkout", hostname="shop.example", site_key=SITE_KEY)


async def test_google_recaptcha_php(http_sidecar: SidecarHandle, emulator: EmulatorHandle) -> None:
    url = f"http://{http_address(http_sidecar)}/recaptcha/api/siteverify"
    token = _token()
    # the library checks action, score and age itself, from our answer
    fresh = await run_json("php", PHP, url, SECRET, token, "checkout", "0.5")
    assert fresh["success"] is True, fresh
    assert (fresh["score"], fresh["action"], fresh["hostname"]) == (0.7, "checkout", "shop.example")
    assert fresh["challenge_ts"].endswith("Z")
    again = await run_json("php", PHP, url, SECRET, token)
    assert (again["success"], again["error_codes"]) == (False, ["timeout-or-duplicate"])
    assert emulator.service.stats(tokens=[token])["create_calls_by_token"][token] == 1
    wrong = await run_json("php", PHP, url, "not-the-secret", _token())
    assert (wrong["success"], wrong["error_codes"]) == (False, ["invalid-input-secret"])
    # the library's own check fails on our answer when the action is not the expected one
    other = await run_json("php", PHP, url, SECRET, _token(), "login", "0.5")
    assert other["success"] is False
    assert "action-mismatch" in other["error_codes"]


async def test_ruby_recaptcha_gem(http_sidecar: SidecarHandle, emulator: EmulatorHandle) -> None:
    url = f"http://{http_address(http_sidecar)}/recaptcha/api/siteverify"
    token = _token()
    assert await run_json("ruby", RUBY, url, SECRET, token) == {"verified": True}
    assert await run_json("ruby", RUBY, url, SECRET, token) == {"verified": False}
    assert emulator.service.stats(tokens=[token])["create_calls_by_token"][token] == 1
    assert await run_json("ruby", RUBY, url, "not-the-secret", _token()) == {"verified": False}
    # What the gem's GET got back (the gem keeps it to itself): score, action, error codes.
    fresh = await run_json("ruby", RUBY, url, SECRET, (second := _token()), "reply")
    assert (fresh["success"], fresh["score"], fresh["action"]) == (True, 0.7, "checkout")
    again = await run_json("ruby", RUBY, url, SECRET, second, "reply")
    assert again == {"success": False, "error-codes": ["timeout-or-duplicate"]}
    wrong = await run_json("ruby", RUBY, url, "not-the-secret", _token(), "reply")
    assert wrong == {"success": False, "error-codes": ["invalid-input-secret"]}
