"""Auto-pipelining on a real redis-server: the runs issued in one event-loop iteration share
one pipeline (one pooled connection), each with its own replies and errors; a run with a WAIT
keeps its own."""

from __future__ import annotations

import asyncio

import pytest
from redis.exceptions import ResponseError

from sidecar.redisconn.keyspace import Command, Script, open_keyspace
from tests.support.redis_server import RedisServer

CALLS = 40


def connections(server: RedisServer) -> int:
    """Client connections the server has open, the redis-cli asking not counted."""
    info = server.cli("INFO", "clients")
    line = next(x for x in info.splitlines() if x.startswith("connected_clients:"))
    return int(line.split(":")[1]) - 1


async def test_one_iterations_runs_share_one_pipeline(redis_server: RedisServer) -> None:
    keys = open_keyspace(redis_server.url, pool_size=CALLS)
    try:
        replies = await asyncio.gather(
            *(
                keys.run(f"k{i}", Command.of("SET", f"k{i}", i, "NX", "GET", get=True))
                for i in range(CALLS)
            )
        )
        assert [r.values for r in replies] == [[None]] * CALLS
        assert connections(redis_server) == 1, "the iteration's runs went out on one connection"
        again = await asyncio.gather(
            *(keys.run(f"k{i}", Command.of("GET", f"k{i}")) for i in range(CALLS))
        )
        assert [r.values[0] for r in again] == [str(i).encode() for i in range(CALLS)]
    finally:
        await keys.close()


async def test_an_error_fails_only_its_own_run(redis_server: RedisServer) -> None:
    keys = open_keyspace(redis_server.url)
    try:
        await keys.run("text", Command.of("SET", "text", "abc"))
        results = await asyncio.gather(
            keys.run("n", Command.of("INCR", "n")),
            keys.run("text", Command.of("INCR", "text")),
            keys.run("n", Command.of("INCR", "n")),
            return_exceptions=True,
        )
        assert isinstance(results[1], ResponseError), results
        assert sorted(r.values[0] for r in results if not isinstance(r, BaseException)) == [1, 2]
    finally:
        await keys.close()


async def test_an_uncached_script_is_sent_again_by_its_text(redis_server: RedisServer) -> None:
    script = Script("return redis.call('INCRBY', KEYS[1], ARGV[1])")
    keys = open_keyspace(redis_server.url)
    try:
        redis_server.cli("SCRIPT", "FLUSH")
        replies = await asyncio.gather(*(keys.run("s", script.call(["s"], [2])) for _ in range(5)))
        assert sorted(r.values[0] for r in replies) == [2, 4, 6, 8, 10]
    finally:
        await keys.close()


async def test_a_run_with_a_wait_keeps_its_own_pipeline(redis_server: RedisServer) -> None:
    keys = open_keyspace(redis_server.url, pool_size=CALLS)
    try:
        replies = await asyncio.gather(
            *(
                keys.run(f"w{i}", Command.of("SET", f"w{i}", 1), wait=1, wait_timeout=0.01)
                for i in range(4)
            )
        )
        assert all(r.acked == 0 for r in replies), "WAIT answered on each run's own connection"
        assert connections(redis_server) == 4
    finally:
        await keys.close()


async def test_a_caller_that_gives_up_leaves_the_others_their_answers(
    redis_server: RedisServer,
) -> None:
    keys = open_keyspace(redis_server.url)
    try:
        impatient = asyncio.ensure_future(keys.run("a", Command.of("SET", "a", 1)))
        patient = asyncio.ensure_future(keys.run("b", Command.of("SET", "b", 2)))
        await asyncio.sleep(0)
        impatient.cancel()
        assert (await patient).values == [True]
        with pytest.raises(asyncio.CancelledError):
            await impatient
        assert (await keys.run("a", Command.of("GET", "a"))).values == [b"1"], "still sent"
    finally:
        await keys.close()


async def test_runs_wait_for_a_pipeline_on_its_way_rather_than_open_more(
    redis_server: RedisServer,
) -> None:
    """Two pipelines on their way (the server frozen), then runs issued one per iteration:
    they go out together once one comes back, on a third connection at most."""
    keys = open_keyspace(redis_server.url, pool_size=CALLS, timeout=5.0)
    try:
        await keys.run("warm", Command.of("PING"))
        redis_server.freeze()
        runs = []
        for i in range(8):
            runs.append(asyncio.ensure_future(keys.run(f"f{i}", Command.of("SET", f"f{i}", i))))
            await asyncio.sleep(0.01)  # one per iteration, as calls arrive
        redis_server.thaw()
        assert [r.values for r in await asyncio.gather(*runs)] == [[True]] * 8
        assert connections(redis_server) <= 3, "the six later runs shared a pipeline"
    finally:
        redis_server.thaw()
        await keys.close()
