"""Client types and keys end to end: generated stubs, a real sidecar, and an emulator that
knows the project's typed keys (web, Android, iOS, express) as Google does.

VERDICT_CLIENT_TYPE_MISSING and VERDICT_KEYS_MISSING are answered without an upstream call,
with the token UNCHECKED and released (or settled when an open policy lets it through); a
token minted for another key stays INVALID (KEY_MISMATCH); a key upstream does not know is a
configuration error under on_config_error; both verdicts are counted in verdict_count."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest
from recaptcha.sidecar.v1 import sidecar_pb2 as pb

from sidecar.emulator import Emulator, mint_token
from tests.conftest import SidecarFactory, SidecarHandle
from tests.integration.test_prometheus_metrics import by, scrape
from tests.support.keyed import KEYS, emulator_stats, keyed_emulator, keyed_sidecar


@pytest.fixture
async def keyed() -> AsyncIterator[Emulator]:
    """The emulator with the project's typed keys."""
    async with keyed_emulator() as emulator:
        yield emulator


async def sidecar(make_sidecar: SidecarFactory, keyed: Emulator, **settings: Any) -> SidecarHandle:
    return await keyed_sidecar(make_sidecar, keyed, **settings)


async def create_calls(keyed: Emulator) -> int:
    return int((await emulator_stats(keyed))["create_calls"])


async def assess(handle: SidecarHandle, **fields: Any) -> pb.AssessResponse:
    return await handle.stub.Assess(pb.AssessRequest(**fields), timeout=5)


@pytest.mark.parametrize(
    ("client_type", "claims", "origin"),
    [
        (pb.CLIENT_TYPE_WEB, {}, ("hostname", "localhost")),
        (
            pb.CLIENT_TYPE_ANDROID,
            {"android_package_name": "com.example.shop"},
            ("android_package_name", "com.example.shop"),
        ),
        (
            pb.CLIENT_TYPE_IOS,
            {"ios_bundle_id": "com.example.Shop"},
            ("ios_bundle_id", "com.example.Shop"),
        ),
    ],
)
async def test_the_client_type_chooses_the_key(
    make_sidecar: SidecarFactory,
    keyed: Emulator,
    client_type: int,
    claims: dict[str, str],
    origin: tuple[str, str],
) -> None:
    handle = await sidecar(make_sidecar, keyed)
    answer = await assess(
        handle, token=mint_token(action="login", **claims), client_type=client_type
    )
    assert (answer.allowed, answer.verdict, answer.token_status) == (
        True,
        pb.VERDICT_PASSED,
        pb.TOKEN_STATUS_VALID,
    )
    assert getattr(answer, origin[0]) == origin[1]
    name = pb.ClientType.Name(client_type).removeprefix("CLIENT_TYPE_").lower()
    assert keyed.service.stats()["recent_creates"][-1]["event"]["site_key"] == KEYS[name]


async def test_a_token_of_another_platform_stays_invalid_key_mismatch(
    make_sidecar: SidecarFactory, keyed: Emulator
) -> None:
    handle = await sidecar(make_sidecar, keyed)
    android_token = mint_token(android_package_name="com.example.shop")
    answer = await assess(handle, token=android_token, client_type=pb.CLIENT_TYPE_WEB)
    assert (answer.allowed, answer.verdict, answer.token_status, answer.invalid_reason) == (
        False,
        pb.VERDICT_FAILED_ENFORCE,
        pb.TOKEN_STATUS_INVALID,
        "KEY_MISMATCH",
    )
    # It reached Google (and was consumed there): never "keys missing", never released.
    again = await assess(handle, token=android_token, client_type=pb.CLIENT_TYPE_ANDROID)
    assert again.token_status == pb.TOKEN_STATUS_DUPLICATE


@pytest.mark.parametrize("mode", ["enforce", "audit"])
async def test_client_type_missing_is_answered_locally_and_released(
    make_sidecar: SidecarFactory, keyed: Emulator, mode: str
) -> None:
    handle = await sidecar(
        make_sidecar,
        keyed,
        policy={"default": {"mode": mode}, "actions": {"login": {}}},
        metrics_listen="127.0.0.1:0",
    )
    token = mint_token(action="login")
    before = await create_calls(keyed)
    answer = await assess(handle, token=token, expected_action="login")
    assert (answer.verdict, answer.token_status, answer.decided_by) == (
        pb.VERDICT_CLIENT_TYPE_MISSING,
        pb.TOKEN_STATUS_UNCHECKED,
        "client_type_missing",
    )
    assert answer.allowed is (mode == "audit")
    assert answer.recommended_action == (
        pb.RECOMMENDED_ACTION_ALLOW if mode == "audit" else pb.RECOMMENDED_ACTION_BLOCK
    )
    assert await create_calls(keyed) == before
    retry = await assess(handle, token=token, expected_action="login", client_type=1)
    if mode == "enforce":  # refused, so released: the user's retry is assessed
        assert (retry.verdict, retry.token_status) == (pb.VERDICT_PASSED, pb.TOKEN_STATUS_VALID)
    else:  # allowed once: settled, so never again
        assert retry.token_status == pb.TOKEN_STATUS_DUPLICATE
    samples = await scrape(handle)
    assert by(samples, "verdict_count_total", "verdict", action="login") == {
        ("CLIENT_TYPE_MISSING",): 1.0,
        ("PASSED" if mode == "enforce" else "FAILED_AUDIT",): 1.0,  # audit counts the repeat
    }
    assert by(samples, "token_count_total", "status", action="login")[("UNCHECKED",)] == 1.0


@pytest.mark.parametrize(
    ("settings", "fields", "detail"),
    [
        ({"site_keys": {"web": "web-key"}}, {"client_type": pb.CLIENT_TYPE_IOS}, "ios"),
        ({"site_keys": {}}, {}, "default"),
        ({"site_keys": {}}, {"client_type": pb.CLIENT_TYPE_ANDROID}, "default"),
    ],
)
async def test_keys_missing_is_answered_locally(
    make_sidecar: SidecarFactory,
    keyed: Emulator,
    settings: dict[str, Any],
    fields: dict[str, Any],
    detail: str,
) -> None:
    handle = await sidecar(make_sidecar, keyed, metrics_listen="127.0.0.1:0", **settings)
    before = await create_calls(keyed)
    answer = await assess(handle, token=mint_token(), **fields)
    assert (answer.allowed, answer.verdict, answer.token_status, answer.decided_by) == (
        False,
        pb.VERDICT_KEYS_MISSING,
        pb.TOKEN_STATUS_UNCHECKED,
        f"keys_missing:{detail}",
    )
    assert await create_calls(keyed) == before
    samples = await scrape(handle)
    assert by(samples, "verdict_count_total", "verdict") == {("KEYS_MISSING",): 1.0}


async def test_on_keys_missing_open_lets_it_through_once(
    make_sidecar: SidecarFactory, keyed: Emulator
) -> None:
    handle = await sidecar(
        make_sidecar,
        keyed,
        site_keys={"web": "web-key"},
        policy={"actions": {"login": {"on_keys_missing": "open"}}},
    )
    token = mint_token(action="login")
    fields = {"token": token, "client_type": pb.CLIENT_TYPE_ANDROID}
    first = await assess(handle, expected_action="login", **fields)
    assert (first.allowed, first.verdict) == (True, pb.VERDICT_KEYS_MISSING)
    repeat = await assess(handle, expected_action="login", **fields)
    assert (repeat.allowed, repeat.token_status) == (False, pb.TOKEN_STATUS_DUPLICATE)
    other = await assess(
        handle, token=mint_token(action="signup"), expected_action="signup", client_type=2
    )
    assert (other.allowed, other.verdict) == (False, pb.VERDICT_KEYS_MISSING)


@pytest.mark.parametrize(("policy", "allowed"), [("closed", False), ("open", True)])
async def test_a_key_upstream_does_not_know_is_a_config_error(
    make_sidecar: SidecarFactory, keyed: Emulator, policy: str, allowed: bool
) -> None:
    handle = await sidecar(make_sidecar, keyed, policy={"default": {"on_config_error": policy}})
    answer = await assess(handle, token=mint_token(), site_key="not-a-key-of-the-project")
    assert (answer.allowed, answer.token_status, answer.decided_by) == (
        allowed,
        pb.TOKEN_STATUS_UNCHECKED,
        "config:invalid_argument",
    )
    assert answer.verdict == (pb.VERDICT_FAILED_AUDIT if allowed else pb.VERDICT_FAILED_ENFORCE)


async def test_an_unknown_client_type_is_invalid_argument(
    make_sidecar: SidecarFactory, keyed: Emulator
) -> None:
    import grpc

    handle = await sidecar(make_sidecar, keyed)
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await assess(handle, token=mint_token(), client_type=42)
    assert caught.value.code() is grpc.StatusCode.INVALID_ARGUMENT
    assert "client_type" in (caught.value.details() or "")
