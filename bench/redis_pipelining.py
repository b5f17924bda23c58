"""What auto-pipelining saves the Redis replay store: `python -m bench.redis_pipelining`.

A real redis-server on a free port, then rounds of N concurrent callers each making claim and
release pairs with short random pauses (calls arrive spread over loop iterations, as gRPC
hands them over), once through the keyspace's coalescer and once with one pipeline per run
(the coalescer switched off on that keyspace): CPU microseconds of this process per pair and
pairs per second. In process, so the machine's other load hurts both alike.
"""

from __future__ import annotations

import argparse
import asyncio
import random
import secrets
import shutil
import socket
import subprocess
import time

from sidecar.replay.redis import RedisReplayStore


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


async def _round(url: str, *, coalesce: bool, pairs: int, callers: int) -> tuple[float, float]:
    store = RedisReplayStore.from_url(url)
    if not coalesce:
        store._keys._coalescer = None  # one pipeline per run, as before
    each = pairs // callers

    async def caller() -> None:
        for _ in range(each):
            await asyncio.sleep(random.random() * 0.001)  # spreads arrivals
            key, claim = secrets.token_hex(16), secrets.token_hex(8)
            if await store.claim(key, "", claim, 60) is not None:
                raise RuntimeError("a fresh key was already claimed")
            await asyncio.sleep(random.random() * 0.002)  # the upstream call
            await store.release(key, claim)

    cpu, wall = time.process_time(), time.perf_counter()
    await asyncio.gather(*(caller() for _ in range(callers)))
    cpu, wall = time.process_time() - cpu, time.perf_counter() - wall
    await store.close()
    done = each * callers
    return cpu / done * 1e6, done / wall


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pairs", type=int, default=20_000)
    parser.add_argument("--callers", type=int, default=50)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    if shutil.which("redis-server") is None:
        print("redis-server is not installed")
        return 1
    port = _free_port()
    server = subprocess.Popen(
        ["redis-server", "--port", str(port), "--bind", "127.0.0.1", "--save", "",
         "--appendonly", "no"],
        stdout=subprocess.DEVNULL,
    )  # fmt: skip
    try:
        time.sleep(0.5)
        url = f"redis://127.0.0.1:{port}/0"
        for number in range(args.rounds):
            for coalesce in (True, False):
                cpu, rate = asyncio.run(
                    _round(url, coalesce=coalesce, pairs=args.pairs, callers=args.callers)
                )
                label = "auto-pipelined" if coalesce else "one pipeline per run"
                print(
                    f"round {number + 1} {label:22} {cpu:6.0f} µs CPU per claim+release, "
                    f"{rate:7.0f} pairs/s"
                )
    finally:
        server.kill()
        server.wait()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
