"""The emulator token format: what mint_token writes, parse_token reads, and the README shows."""

from __future__ import annotations

import base64
import json
import re
import shutil
import subprocess
import time
from pathlib import Path
from typing import Any

import pytest

from sidecar.emulator.tokens import (
    ACCOUNT_DEFENDER_LABELS,
    CLASSIFICATION_REASONS,
    INVALID_REASONS,
    MAX_TOKEN_CHARS,
    TOKEN_LIFETIME_SECONDS,
    TOKEN_PREFIX,
    TokenClaims,
    encode_claims,
    mint_token,
    parse_token,
)

README = Path(__file__).resolve().parents[2] / "sidecar" / "emulator" / "README.md"


def _payload(token: str) -> dict[str, Any]:
    body = token.removeprefix(TOKEN_PREFIX)
    decoded: dict[str, Any] = json.loads(base64.urlsafe_b64decode(body + "=" * (-len(body) % 4)))
    return decoded


def test_round_trip_keeps_every_claim() -> None:
    token = mint_token(
        score=0.25,
        action="login",
        hostname="shop.example",
        site_key="key-1",
        issued_at=1_700_000_000.5,
        invalid_reason="BROWSER_ERROR",
        reasons=["AUTOMATION", "TOO_MUCH_TRAFFIC"],
        labels=["SUSPICIOUS_LOGIN_ACTIVITY"],
        android_package_name="com.example.app",
    )
    claims = parse_token(token)
    assert claims == TokenClaims(
        score=0.25,
        action="login",
        hostname="shop.example",
        site_key="key-1",
        issued_at=1_700_000_000.5,
        nonce=claims.nonce if claims else "",
        invalid_reason="BROWSER_ERROR",
        reasons=("AUTOMATION", "TOO_MUCH_TRAFFIC"),
        labels=("SUSPICIOUS_LOGIN_ACTIVITY",),
        android_package_name="com.example.app",
    )
    assert claims is not None and re.fullmatch(r"[0-9a-f]{16}", claims.nonce)


def test_defaults_and_wire_shape() -> None:
    before = time.time()
    token = mint_token()
    assert token.startswith("emu1.")
    assert "=" not in token and re.fullmatch(r"emu1\.[A-Za-z0-9_-]+", token)
    payload = _payload(token)
    assert set(payload) == {"score", "action", "hostname", "iat", "nonce"}
    claims = parse_token(token)
    assert claims is not None
    assert (claims.score, claims.action, claims.hostname) == (0.9, "", "localhost")
    assert claims.site_key is None and claims.invalid_reason is None
    assert claims.reasons == () and claims.labels == ()
    assert before <= claims.issued_at <= time.time()
    assert not claims.expired(time.time())


def test_ios_bundle_id_round_trips() -> None:
    claims = parse_token(mint_token(ios_bundle_id="com.example.ios"))
    assert claims is not None and claims.ios_bundle_id == "com.example.ios"
    assert claims.android_package_name is None


def test_minted_tokens_are_unique() -> None:
    tokens = {mint_token(issued_at=1_700_000_000.0) for _ in range(2000)}
    assert len(tokens) == 2000


def test_expiry_boundary() -> None:
    claims = parse_token(mint_token(issued_at=1000.0))
    assert claims is not None
    assert not claims.expired(1000.0 + TOKEN_LIFETIME_SECONDS)
    assert claims.expired(1000.0 + TOKEN_LIFETIME_SECONDS + 0.001)


def test_hand_written_claims_parse_leniently() -> None:
    """Only iat is required; unknown keys from newer minters are ignored."""
    claims = parse_token(encode_claims({"iat": 5, "future_key": {"x": 1}, "score": 1}))
    assert claims is not None
    assert (claims.score, claims.issued_at, claims.nonce) == (1.0, 5.0, "")
    assert parse_token(encode_claims({"iat": 5, "site_key": None})) is not None


@pytest.mark.parametrize(
    "kwargs",
    [
        {"score": 1.01},
        {"score": -0.1},
        {"score": float("nan")},
        {"invalid_reason": "BROWSER_EROR"},
        {"invalid_reason": "INVALID_REASON_UNSPECIFIED"},
        {"reasons": ["AUTOMATON"]},
        {"labels": ["SUSPICIOUS"]},
        {"android_package_name": "a", "ios_bundle_id": "b"},
        {"issued_at": float("inf")},
        {"issued_at": -1.0},
    ],
)
def test_mint_rejects_what_the_emulator_would_not_accept(kwargs: dict[str, Any]) -> None:
    with pytest.raises(ValueError):
        mint_token(**kwargs)


def _b64(raw: bytes) -> str:
    return TOKEN_PREFIX + base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


@pytest.mark.parametrize(
    "token",
    [
        "",
        "emu1.",
        "emu1",
        "03AFcWeA5-real-looking-google-token",
        "emu2." + mint_token().removeprefix("emu1."),
        mint_token() + "=",  # padding is not part of the format
        mint_token() + "!",
        mint_token()[:-1] + "+",  # standard, not url-safe, alphabet
        "emu1.a",  # impossible base64 length
        _b64(b"\xff\xfe not utf-8"),
        _b64(b"not json"),
        _b64(b"[1, 2]"),
        _b64(b'"a string"'),
        _b64(b"{}"),  # no iat
        _b64(b'{"iat": "yesterday"}'),
        _b64(b'{"iat": true}'),
        _b64(b'{"iat": 1e999}'),
        _b64(b'{"iat": ' + b"9" * 400 + b"}"),
        _b64(b'{"iat": 1, "score": NaN}'),
        _b64(b'{"iat": 1, "score": "0.9"}'),
        _b64(b'{"iat": 1, "score": true}'),
        _b64(b'{"iat": 1, "score": 2}'),
        _b64(b'{"iat": 1, "action": 7}'),
        _b64(b'{"iat": 1, "hostname": null}'),
        _b64(b'{"iat": 1, "site_key": 3}'),
        _b64(b'{"iat": 1, "reasons": "AUTOMATION"}'),
        _b64(b'{"iat": 1, "reasons": ["NOPE"]}'),
        _b64(b'{"iat": 1, "labels": [1]}'),
        _b64(b'{"iat": 1, "invalid_reason": "NOPE"}'),
        _b64(b'{"iat": 1, "android_package_name": "a", "ios_bundle_id": "b"}'),
        _b64(b"[" * 100_000),
        TOKEN_PREFIX + "A" * MAX_TOKEN_CHARS,
    ],
)
def test_malformed_tokens_parse_to_none(token: str) -> None:
    assert parse_token(token) is None


def test_name_sets_match_the_upstream_enums() -> None:
    """The stdlib-only name sets must not drift from the proto enums."""
    from google.cloud.recaptchaenterprise_v1.types import (
        AccountDefenderAssessment,
        RiskAnalysis,
        TokenProperties,
    )

    def names(enum: Any) -> set[str]:
        return {n for n in enum.DESCRIPTOR.values_by_name if not n.endswith("_UNSPECIFIED")}

    assert names(TokenProperties.pb().InvalidReason) == INVALID_REASONS
    assert names(RiskAnalysis.pb().ClassificationReason) == CLASSIFICATION_REASONS
    labels = AccountDefenderAssessment.pb().AccountDefenderLabel
    assert names(labels) == ACCOUNT_DEFENDER_LABELS


def _readme_block(language: str) -> str:
    blocks = re.findall(rf"```{language}\n(.*?)```", README.read_text(), flags=re.DOTALL)
    hand_written: list[str] = [b for b in blocks if "emu1." in b and "mint_token" not in b]
    assert hand_written, f"no hand-minting {language} example in the README"
    return hand_written[0]


def test_readme_python_example_mints_a_valid_token() -> None:
    namespace: dict[str, Any] = {}
    exec(_readme_block("python"), namespace)  # our own documentation
    claims = parse_token(namespace["token"])
    assert claims is not None and claims.action == "login"
    assert not claims.expired(time.time())


@pytest.mark.skipif(shutil.which("bash") is None, reason="needs bash")
def test_readme_shell_example_mints_a_valid_token() -> None:
    result = subprocess.run(
        ["bash", "-euo", "pipefail", "-c", _readme_block("sh")],
        capture_output=True,
        text=True,
        timeout=10,
        check=True,
    )
    token = result.stdout.strip()
    claims = parse_token(token)
    assert claims is not None, (token, result.stderr)
    assert claims.action == "login" and re.fullmatch(r"[0-9a-f]{16}", claims.nonce)
    assert not claims.expired(time.time())
