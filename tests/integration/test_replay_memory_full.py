"""Junk never locks out real users (issue 13 item 9): a full memory store evicts settled
not-allowed entries first, allowed ones only when nothing else is left (counted, logged as a
capacity alarm), never a pending claim; evictions are a metric by kind. Through a real
sidecar with a small store."""

from __future__ import annotations

import asyncio
import logging
import secrets

import pytest
from recaptcha.sidecar.v1 import sidecar_pb2 as pb

from sidecar.emulator import mint_token
from tests.conftest import SidecarFactory, SidecarHandle
from tests.support.prometheus import series

CAP = 2_000


def evictions(handle: SidecarHandle) -> dict[str, float]:
    telemetry = handle.sidecar.telemetry
    assert telemetry is not None and telemetry.metrics_address
    return series(telemetry.metrics_address, "replay_evictions_total", "kind")


async def assess_all(handle: SidecarHandle, tokens: list[str]) -> list[pb.AssessResponse]:
    gate = asyncio.Semaphore(64)

    async def one(token: str) -> pb.AssessResponse:
        async with gate:
            message = pb.AssessRequest(token=token, expected_action="login")
            return await handle.stub.Assess(message, timeout=10)  # type: ignore[no-any-return]

    return list(await asyncio.gather(*(one(t) for t in tokens)))


async def test_a_junk_flood_never_locks_out_real_users(make_sidecar: SidecarFactory) -> None:
    """2,500 junk tokens (shaped like Google's, so they pass the shape filter and reach
    upstream, which says MALFORMED) into a store for 2,000: fresh real tokens are still
    assessed, the junk makes room, and readiness never had reason to change."""
    handle = await make_sidecar(replay_max_entries=CAP, metrics_listen="127.0.0.1:0")
    junk = ["03A" + secrets.token_urlsafe(60) for _ in range(2_500)]
    answers = await assess_all(handle, junk)
    assert {a.token_status for a in answers} == {pb.TOKEN_STATUS_INVALID}
    real = [mint_token(action="login") for _ in range(200)]
    served = await assess_all(handle, real)
    assert all(a.allowed and a.token_status == pb.TOKEN_STATUS_VALID for a in served), {
        a.decided_by for a in served if not a.allowed
    }
    assert evictions(handle) == {"not_allowed": 700, "allowed": 0}
    # The real tokens are remembered: their repeats are DUPLICATE.
    again = await assess_all(handle, real[:20])
    assert {a.token_status for a in again} == {pb.TOKEN_STATUS_DUPLICATE}


async def test_allowed_entries_go_only_when_nothing_else_is_left_with_an_alarm(
    make_sidecar: SidecarFactory, caplog: pytest.LogCaptureFixture
) -> None:
    handle = await make_sidecar(replay_max_entries=CAP, metrics_listen="127.0.0.1:0")
    first = [mint_token(action="login") for _ in range(CAP)]
    assert all(a.allowed for a in await assess_all(handle, first))
    junk = ["03A" + secrets.token_urlsafe(60) for _ in range(50)]
    with caplog.at_level(logging.WARNING, logger="sidecar.replay.memory"):
        await assess_all(handle, junk)  # room made from allowed entries: nothing else is left
        more = await assess_all(handle, [mint_token(action="login") for _ in range(50)])
    assert all(a.allowed for a in more)
    # The junk took room from allowed entries (nothing else was there); the real tokens
    # after it took the junk's room.
    assert evictions(handle) == {"allowed": 50, "not_allowed": 50}
    assert [r for r in caplog.records if "replay_max_entries" in r.getMessage()]
    # The newest allowed tokens are still remembered.
    repeat = await assess_all(handle, first[-10:])
    assert {a.token_status for a in repeat} == {pb.TOKEN_STATUS_DUPLICATE}
