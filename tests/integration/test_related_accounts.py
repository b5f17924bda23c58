"""SearchRelatedAccounts end to end: generated stubs, a real sidecar, the emulator as upstream
(accounts assessed with one `device` claim form a related-account group there).

The account id goes up protected as Assess protects it; under deterministic encryption the ids
that come back are decrypted for the app, under HMAC they come back as the hashes; pages
follow `next_page_token`; upstream failures are statuses; RPC and upstream metrics count it."""

from __future__ import annotations

import base64
import os
import secrets
from pathlib import Path
from typing import Any

import grpc
import pytest
from recaptcha.sidecar.v1 import sidecar_pb2 as pb

from sidecar.accountid.protection import DeterministicEncryptionProtector, HmacSha256Protector
from sidecar.emulator import mint_token
from tests.conftest import EmulatorHandle, SidecarFactory, SidecarHandle
from tests.integration.test_prometheus_metrics import by, scrape


async def assess_on_device(handle: SidecarHandle, account: str, device: str) -> None:
    answer = await handle.stub.Assess(
        pb.AssessRequest(token=mint_token(device=device), account_id=account), timeout=5
    )
    assert answer.verdict == pb.VERDICT_PASSED


async def search(handle: SidecarHandle, account: str, **fields: Any) -> Any:
    request = pb.SearchRelatedAccountsRequest(account_id=account, **fields)
    return await handle.stub.SearchRelatedAccounts(request, timeout=5)


def key_file(tmp_path: Path, key: bytes) -> Path:
    path = tmp_path / "account-id-key"
    path.write_text(base64.b64encode(key).decode())
    return path


async def test_related_accounts_come_back_decrypted_under_deterministic_encryption(
    make_sidecar: SidecarFactory, emulator: EmulatorHandle, tmp_path: Path
) -> None:
    key = os.urandom(64)
    handle = await make_sidecar(
        account_id_protection="deterministic-encryption",
        account_id_key_file=key_file(tmp_path, key),
        metrics_listen="127.0.0.1:0",
    )
    shared, other = secrets.token_hex(4), secrets.token_hex(4)
    for account, device in (("alice", shared), ("bob", shared), ("carol", other)):
        await assess_on_device(handle, account, device)

    page = await search(handle, "alice")
    found = {(a.account_id, a.decrypted) for a in page.related_accounts}
    assert found == {("alice", True), ("bob", True)}  # carol used another device
    (group,) = {a.group for a in page.related_accounts}
    assert group.startswith("projects/123456789/relatedaccountgroups/")
    assert page.next_page_token == ""

    protector = DeterministicEncryptionProtector(key)
    stats = await emulator.control.stats()
    assert stats["recent_searches"] == [protector.protect("alice")]  # never the clear id
    assert "alice" not in str(stats["recent_creates"])

    samples = await scrape(handle)
    calls = by(
        samples,
        "rpc_server_call_duration_seconds_count",
        "rpc_grpc_status_code",
        rpc_method="SearchRelatedAccounts",
    )
    assert calls == {("0",): 1.0}
    attempts = by(
        samples, "upstream_attempts_total", "code", method="SearchRelatedAccountGroupMemberships"
    )
    assert attempts == {("OK",): 1.0}


async def test_under_hmac_the_app_gets_the_hashes(
    make_sidecar: SidecarFactory, emulator: EmulatorHandle, tmp_path: Path
) -> None:
    salt = os.urandom(32)
    handle = await make_sidecar(
        account_id_protection="hmac-sha256", account_id_key_file=key_file(tmp_path, salt)
    )
    device = secrets.token_hex(4)
    await assess_on_device(handle, "alice", device)
    await assess_on_device(handle, "bob", device)
    page = await search(handle, "alice")
    hmac = HmacSha256Protector(salt)
    assert {(a.account_id, a.decrypted) for a in page.related_accounts} == {
        (hmac.protect("alice"), False),
        (hmac.protect("bob"), False),
    }


async def test_pages_follow_the_next_page_token(
    make_sidecar: SidecarFactory, emulator: EmulatorHandle
) -> None:
    handle = await make_sidecar()
    device = secrets.token_hex(4)
    for account in ("a1", "a2", "a3"):
        await assess_on_device(handle, account, device)
    seen: list[str] = []
    token = ""
    for _ in range(5):
        page = await search(handle, "a1", page_size=2, page_token=token)
        assert len(page.related_accounts) <= 2
        seen += [a.account_id for a in page.related_accounts]
        token = page.next_page_token
        if not token:
            break
    assert sorted(seen) == ["a1", "a2", "a3"]
    unknown = await search(handle, "nobody")
    assert (list(unknown.related_accounts), unknown.next_page_token) == ([], "")


async def test_bad_requests_and_upstream_failures_are_statuses(
    make_sidecar: SidecarFactory, emulator: EmulatorHandle
) -> None:
    handle = await make_sidecar(retry_max_attempts=1)
    for fields, code in (
        ({"account_id": ""}, grpc.StatusCode.INVALID_ARGUMENT),
        ({"account_id": "a", "page_size": -1}, grpc.StatusCode.INVALID_ARGUMENT),
        ({"account_id": "a", "page_token": "not-a-token"}, grpc.StatusCode.INVALID_ARGUMENT),
    ):
        with pytest.raises(grpc.aio.AioRpcError) as caught:
            await handle.stub.SearchRelatedAccounts(
                pb.SearchRelatedAccountsRequest(**fields), timeout=5
            )
        assert caught.value.code() is code, fields
    await emulator.control.set_faults("related", error_rate=1.0, error_code="PERMISSION_DENIED")
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await search(handle, "alice")
    # Upstream refused the sidecar (its credentials), not the request: the app must not read
    # it as its own permission problem (docs/failures.md).
    assert caught.value.code() is grpc.StatusCode.FAILED_PRECONDITION
    assert "upstream refused the sidecar" in (caught.value.details() or "")
    await emulator.control.set_faults("related", error_rate=1.0, error_code="UNAVAILABLE")
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await search(handle, "alice")
    assert caught.value.code() is grpc.StatusCode.UNAVAILABLE


async def test_a_transient_failure_is_retried(
    make_sidecar: SidecarFactory, emulator: EmulatorHandle
) -> None:
    handle = await make_sidecar(retry_max_attempts=3)
    device = secrets.token_hex(4)
    await assess_on_device(handle, "alice", device)
    await emulator.control.set_faults("related", error_rate=0.5, error_code="UNAVAILABLE", seed=3)
    for _ in range(4):
        page = await search(handle, "alice")
        assert [a.account_id for a in page.related_accounts] == ["alice"]
    stats = await emulator.control.stats()
    assert stats["injected_failures"]["related"] >= 1  # failures happened, none reached the app
