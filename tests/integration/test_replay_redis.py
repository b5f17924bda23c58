"""The Redis store through real sidecars: shared by replicas, surviving restarts, keyed by
digests under a prefix, with passwords and TLS, and reported by health."""

from __future__ import annotations

import asyncio
import hashlib
from pathlib import Path

import grpc
import pytest
from grpc_health.v1 import health_pb2
from recaptcha.sidecar.v1 import sidecar_pb2 as pb

from sidecar.core.verify import token_digest
from sidecar.emulator import mint_token
from sidecar.replay import open_replay_store
from sidecar.server.servicer import SERVICE as SERVICE_NAME
from tests.conftest import EmulatorHandle, SidecarFactory, SidecarHandle
from tests.support.calls import assess
from tests.support.polling import arrives
from tests.support.redis_server import RedisServer, make_tls_files

SERVING = health_pb2.HealthCheckResponse.SERVING
NOT_SERVING = health_pb2.HealthCheckResponse.NOT_SERVING


async def settled(url: str, token: str, bound: float = 5.0, **options: object) -> bool:
    """Wait (bounded) until the token's entry holds its final decision."""
    store = open_replay_store(url, **options)  # type: ignore[arg-type]
    try:

        async def final() -> bool:
            entry = await store.get(token_digest(token))
            return entry is not None and entry.decision is not None

        return await arrives(final, bound)
    finally:
        await store.close()


async def health_of(handle: SidecarHandle, service: str) -> int:
    answer = await handle.health.Check(health_pb2.HealthCheckRequest(service=service), timeout=5)
    status: int = answer.status
    return status


async def wait_health(handle: SidecarHandle, status: int, bound: float = 15.0) -> bool:
    async def reached() -> bool:
        return await health_of(handle, SERVICE_NAME) == status

    return await arrives(reached, bound)


async def test_keys_are_prefixed_digests_and_hold_no_token(
    make_sidecar: SidecarFactory, redis_server: RedisServer
) -> None:
    handle = await make_sidecar(replay_store=redis_server.url, replay_key_prefix="shop:rc:")
    token = mint_token(action="login")
    answer = await assess(handle.stub, token, key="order-4711")
    assert answer.allowed
    assert await settled(redis_server.url, token, key_prefix="shop:rc:")

    keys = redis_server.cli("--scan").split()
    assert keys == ["shop:rc:" + hashlib.sha256(token.encode()).hexdigest()]
    value = redis_server.cli("GET", keys[0])
    assert token not in value and "order-4711" not in value
    assert answer.assessment_name in value  # a later duplicate can report it
    ttl_ms = int(redis_server.cli("PTTL", keys[0]))
    assert 0 < ttl_ms <= 150_000


async def test_replicas_share_single_use_and_the_original_assessment(
    make_sidecar: SidecarFactory, redis_server: RedisServer, emulator: EmulatorHandle
) -> None:
    one = await make_sidecar(replay_store=redis_server.url)
    two = await make_sidecar(replay_store=redis_server.url)
    token = mint_token(action="login")
    first = await assess(one.stub, token)
    assert await settled(redis_server.url, token)
    second = await assess(two.stub, token)
    assert first.allowed and first.token_status == pb.TOKEN_STATUS_VALID
    assert (second.allowed, second.token_status, second.assessment_name) == (
        False,
        pb.TOKEN_STATUS_DUPLICATE,
        first.assessment_name,
    )
    assert await emulator.control.calls_for(token) == 1


async def test_single_use_survives_a_sidecar_restart(
    make_sidecar: SidecarFactory, redis_server: RedisServer, emulator: EmulatorHandle
) -> None:
    before = await make_sidecar(replay_store=redis_server.url)
    token = mint_token(action="login")
    assert (await assess(before.stub, token)).allowed
    assert await settled(redis_server.url, token)
    await before.sidecar.stop(0)

    after = await make_sidecar(replay_store=redis_server.url)
    again = await assess(after.stub, token)
    assert (again.allowed, again.token_status) == (False, pb.TOKEN_STATUS_DUPLICATE)
    assert await emulator.control.calls_for(token) == 1


async def test_concurrent_calls_across_two_replicas_allow_exactly_one(
    make_sidecar: SidecarFactory, redis_server: RedisServer, emulator: EmulatorHandle
) -> None:
    one = await make_sidecar(replay_store=redis_server.url)
    two = await make_sidecar(replay_store=redis_server.url)
    await emulator.control.set_faults("create", latency_ms=50)
    for _ in range(5):
        token = mint_token(action="login")
        answers = await asyncio.gather(
            *(assess(stub, token) for _ in range(50) for stub in (one.stub, two.stub))
        )
        assert sum(a.allowed for a in answers) == 1
        assert await emulator.control.calls_for(token) == 1


async def test_keyed_retry_at_another_replica_waits_for_the_original_answer(
    make_sidecar: SidecarFactory, redis_server: RedisServer, emulator: EmulatorHandle
) -> None:
    one = await make_sidecar(replay_store=redis_server.url)
    two = await make_sidecar(replay_store=redis_server.url)
    token = mint_token(action="login")
    await emulator.control.set_faults("create", latency_ms=1500)
    try:
        first = await assess(one.stub, token, key="pay-1", timeout=0.3)
    except grpc.aio.AioRpcError as error:
        assert error.code() == grpc.StatusCode.DEADLINE_EXCEEDED
    else:
        assert first.token_status == pb.TOKEN_STATUS_UNCHECKED and not first.allowed
    retry = await assess(two.stub, token, key="pay-1")  # the claim at `one` is still pending
    assert (retry.allowed, retry.token_status, retry.replayed) == (
        True,
        pb.TOKEN_STATUS_VALID,
        True,
    )
    other = await assess(two.stub, token, key="pay-2")
    assert (other.allowed, other.token_status) == (False, pb.TOKEN_STATUS_DUPLICATE)
    assert await emulator.control.calls_for(token) == 1


async def test_password_from_the_setting_or_the_url(
    make_sidecar: SidecarFactory, tmp_path: Path
) -> None:
    server = RedisServer(tmp_path / "auth", password="s3cret/pw").start()
    try:
        wrong = await make_sidecar(replay_store=server.url, replay_health_interval=0.1)
        refused = await assess(wrong.stub, mint_token(action="login"))
        assert (refused.allowed, refused.token_status) == (False, pb.TOKEN_STATUS_UNCHECKED)
        assert refused.decided_by == "replay_store:unavailable"
        assert await wait_health(wrong, NOT_SERVING)

        right = await make_sidecar(replay_store=server.url, replay_redis_password="s3cret/pw")
        assert (await assess(right.stub, mint_token(action="login"))).allowed
        in_url = server.url.replace("redis://", "redis://:s3cret%2Fpw@")
        also = await make_sidecar(replay_store=in_url)
        assert (await assess(also.stub, mint_token(action="login"))).allowed
    finally:
        server.close()


async def test_tls_with_a_private_ca(make_sidecar: SidecarFactory, tmp_path: Path) -> None:
    tls = make_tls_files(tmp_path / "tls")
    server = RedisServer(tmp_path / "tls-redis", tls=tls, password="pw").start()
    try:
        handle = await make_sidecar(replay_store=server.url, replay_redis_password="pw")
        token = mint_token(action="login")
        assert (await assess(handle.stub, token)).allowed
        assert (await assess(handle.stub, token)).token_status == pb.TOKEN_STATUS_DUPLICATE
        assert int(server.cli("DBSIZE")) == 1

        plain = await make_sidecar(replay_store=server.url.split("?")[0].replace("rediss", "redis"))
        refused = await assess(plain.stub, mint_token(action="login"))
        assert (refused.allowed, refused.token_status) == (False, pb.TOKEN_STATUS_UNCHECKED)
    finally:
        server.close()


async def test_readiness_follows_the_store_and_liveness_does_not(
    make_sidecar: SidecarFactory, redis_server: RedisServer
) -> None:
    handle = await make_sidecar(replay_store=redis_server.url, replay_health_interval=0.1)
    assert await wait_health(handle, SERVING)
    redis_server.stop()
    assert await wait_health(handle, NOT_SERVING)
    assert await health_of(handle, "") == SERVING
    redis_server.start()
    assert await wait_health(handle, SERVING)
    assert (await assess(handle.stub, mint_token(action="login"))).allowed


@pytest.mark.parametrize("url", ["redis://", "redis://host:port"])
def test_bad_store_urls_fail_at_start_naming_the_key(url: str) -> None:
    from sidecar.config import ConfigError, load_settings

    with pytest.raises(ConfigError, match="replay_store"):
        load_settings(emulator=True, replay_store=url)
