"""The replay store fails under load: Redis stopped, frozen (SIGSTOP) or restarted empty.

Assess must keep answering within each caller's deadline, UNCHECKED and not allowed (closed by
default), never let a replay through, and recover by itself when Redis is back.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from pathlib import Path

import grpc
import pytest
from recaptcha.sidecar.v1 import sidecar_pb2 as pb
from recaptcha.sidecar.v1 import sidecar_pb2_grpc

from sidecar.emulator import mint_token
from tests.conftest import EmulatorHandle, SidecarFactory
from tests.support.polling import arrives
from tests.support.redis_server import RedisServer

DEADLINE = 2.0  # each call's deadline: the sidecar must answer inside it


@dataclass
class Tally:
    """What a stream of fresh tokens got, by phase."""

    answers: dict[str, list[pb.AssessResponse]] = field(default_factory=dict)
    errors: list[grpc.StatusCode] = field(default_factory=list)
    allowed_tokens: list[str] = field(default_factory=list)


async def stream(
    stub: sidecar_pb2_grpc.VerificationServiceStub,
    phase: list[str],
    stop: asyncio.Event,
    tally: Tally,
    concurrency: int = 8,
) -> None:
    """Fresh tokens from `concurrency` workers until `stop`. An answer is filed under the
    phase that was current for the whole call, or under "transition" when the phase changed
    while it ran (a call that started while Redis was down may claim once it is back)."""

    async def worker() -> None:
        while not stop.is_set():
            token, current = mint_token(action="login"), phase[0]
            try:
                answer = await stub.Assess(
                    pb.AssessRequest(token=token, expected_action="login"), timeout=DEADLINE
                )
            except grpc.aio.AioRpcError as error:
                tally.errors.append(error.code())
                continue
            if phase[0] != current:
                current = "transition"
            tally.answers.setdefault(current, []).append(answer)
            if answer.allowed:
                tally.allowed_tokens.append(token)

    await asyncio.gather(*(worker() for _ in range(concurrency)))


async def test_redis_stopped_mid_run_answers_unchecked_in_time_then_recovers(
    make_sidecar: SidecarFactory, redis_server: RedisServer, emulator: EmulatorHandle
) -> None:
    handle = await make_sidecar(replay_store=redis_server.url)
    phase, stop, tally = ["up"], asyncio.Event(), Tally()
    load = asyncio.create_task(stream(handle.stub, phase, stop, tally))
    try:
        assert await arrives(lambda: len(tally.answers.get("up", [])) >= 50)
        accepted_before = list(tally.allowed_tokens)
        phase[0] = "stopping"
        await asyncio.to_thread(redis_server.stop)
        phase[0] = "down"
        assert await arrives(lambda: len(tally.answers.get("down", [])) >= 50)
        phase[0] = "restarting"
        await asyncio.to_thread(redis_server.start)  # same port, empty
        phase[0] = "back"
        assert await arrives(
            lambda: sum(a.allowed for a in tally.answers.get("back", [])) >= 20, timeout=30
        )
    finally:
        stop.set()
        await load

    assert tally.errors == []  # every call was answered inside its deadline
    assert all(a.allowed and a.token_status == pb.TOKEN_STATUS_VALID for a in tally.answers["up"])
    down = tally.answers["down"]
    assert all(
        (a.allowed, a.token_status, a.verdict, a.decided_by)
        == (False, pb.TOKEN_STATUS_UNCHECKED, pb.VERDICT_FAILED_ENFORCE, "replay_store:unavailable")
        for a in down
    )
    between = ("stopping", "restarting", "transition")
    for answer in (a for name in between for a in tally.answers.get(name, [])):
        assert answer.token_status in (pb.TOKEN_STATUS_VALID, pb.TOKEN_STATUS_UNCHECKED)
    assert len(tally.allowed_tokens) == len(set(tally.allowed_tokens))

    # Redis came back empty: tokens accepted before are unknown to it, yet their replays are
    # still refused (upstream says DUPE), at the cost of one upstream call each.
    replays = await asyncio.gather(
        *(
            handle.stub.Assess(pb.AssessRequest(token=t, expected_action="login"), timeout=5)
            for t in accepted_before[:20]
        )
    )
    assert all(not r.allowed and r.token_status == pb.TOKEN_STATUS_DUPLICATE for r in replays), [
        (r.token_status, r.decided_by) for r in replays
    ]
    calls = (await emulator.control.stats(tokens=tally.allowed_tokens))["create_calls_by_token"]
    replayed = set(accepted_before[:20])
    assert all(n == (2 if t in replayed else 1) for t, n in calls.items())


async def test_frozen_redis_answers_unchecked_within_the_deadline(
    make_sidecar: SidecarFactory, redis_server: RedisServer
) -> None:
    handle = await make_sidecar(replay_store=redis_server.url, replay_timeout=0.3)
    token = mint_token(action="login")
    assert (await handle.stub.Assess(pb.AssessRequest(token=token), timeout=5)).allowed
    redis_server.freeze()  # accepts connections, answers nothing
    try:
        answers = await asyncio.gather(
            *(
                handle.stub.Assess(pb.AssessRequest(token=t), timeout=DEADLINE)
                for t in [token] + [mint_token() for _ in range(20)]
            )
        )
    finally:
        redis_server.thaw()
    # The replay may still meet its first call's flight in this process (settling): DUPLICATE.
    assert not answers[0].allowed
    assert answers[0].token_status in (pb.TOKEN_STATUS_UNCHECKED, pb.TOKEN_STATUS_DUPLICATE)
    for answer in answers[1:]:
        assert (answer.allowed, answer.token_status) == (False, pb.TOKEN_STATUS_UNCHECKED)
    replay = await handle.stub.Assess(pb.AssessRequest(token=token), timeout=5)
    assert (replay.allowed, replay.token_status) == (False, pb.TOKEN_STATUS_DUPLICATE)
    assert (await handle.stub.Assess(pb.AssessRequest(token=mint_token()), timeout=5)).allowed


async def test_fail_open_is_a_choice_and_still_counted(
    make_sidecar: SidecarFactory, redis_server: RedisServer, tmp_path: Path
) -> None:
    config = tmp_path / "open.yaml"
    config.write_text("policy:\n  default: {on_replay_store_failure: open}\n")
    handle = await make_sidecar(config, replay_store=redis_server.url)
    redis_server.stop()
    answer = await handle.stub.Assess(pb.AssessRequest(token=mint_token()), timeout=DEADLINE)
    assert (answer.allowed, answer.token_status, answer.verdict) == (
        True,
        pb.TOKEN_STATUS_UNCHECKED,
        pb.VERDICT_FAILED_AUDIT,
    )


async def test_a_redis_outage_logs_a_few_lines_not_two_per_call(
    make_sidecar: SidecarFactory, redis_server: RedisServer, caplog: pytest.LogCaptureFixture
) -> None:
    """Issue 13 item 14: every Assess during the outage fails the same way (claim, then
    release); each kind of failure is logged once per interval, with a count of the rest."""
    import logging

    handle = await make_sidecar(replay_store=redis_server.url)
    await asyncio.to_thread(redis_server.stop)
    with caplog.at_level(logging.WARNING, logger="sidecar.core.verify"):
        for _ in range(100):
            answer = await handle.stub.Assess(
                pb.AssessRequest(token=mint_token(action="login"), expected_action="login"),
                timeout=DEADLINE,
            )
            assert answer.decided_by == "replay_store:unavailable"
    lines = [r for r in caplog.records if r.name == "sidecar.core.verify"]
    assert 1 <= len(lines) <= 4, [r.getMessage() for r in lines]  # claim and release, once each
    assert {r.getMessage().split(":")[0] for r in lines} <= {
        "replay store claim failed",
        "replay store release failed",
    }
