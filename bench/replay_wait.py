"""What `replay_min_replicas` costs a claim: `python -m bench.replay_wait`.

Starts a primary and one replica (redis-server, loopback, no persistence) and times the Redis
replay store's `claim` with `replay_min_replicas` 0 and 1: one claim at a time (the latency
the WAIT adds, one primary-replica round trip) and 64 at once (what it does to throughput).
On loopback the round trip is tens of microseconds; across zones in one region it is
typically 0.5-2 ms, which the WAIT then adds to every claim. Prints one Markdown table.
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import secrets
import shutil
import socket
import statistics
import subprocess
import tempfile
import time
from pathlib import Path

from sidecar.replay.redis import RedisReplayStore


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


def _start(directory: Path, port: int, *extra: str) -> subprocess.Popen[bytes]:
    directory.mkdir(parents=True, exist_ok=True)
    args = ["redis-server", "--bind", "127.0.0.1", "--port", str(port), "--save", ""]
    args += ["--appendonly", "no", "--dir", str(directory), *extra]
    return subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def _replica_in_sync(port: int, bound: float = 20.0) -> None:
    give_up = time.monotonic() + bound
    while time.monotonic() < give_up:
        done = subprocess.run(
            ["redis-cli", "-p", str(port), "INFO", "replication"], capture_output=True, text=True
        )
        if "master_link_status:up" in done.stdout:
            return
        time.sleep(0.05)
    raise RuntimeError("the replica did not sync")


async def _measure(url: str, min_replicas: int, count: int, concurrency: int) -> dict[str, float]:
    store = RedisReplayStore.from_url(
        url, min_replicas=min_replicas, replication_timeout=1.0, key_prefix="bench-wait:"
    )
    keys = [hashlib.sha256(secrets.token_bytes(16)).hexdigest() for _ in range(count)]
    await store.ping()
    for key in keys[:100]:  # warm the pool
        await store.claim("warm" + key, "", secrets.token_hex(8), 60)
    took: list[float] = []
    pending = iter(keys)

    async def worker() -> None:
        for key in pending:
            start = time.perf_counter()
            assert await store.claim(key, "", secrets.token_hex(8), 60) is None
            took.append(time.perf_counter() - start)

    start = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(concurrency)))
    elapsed = time.perf_counter() - start
    await store.close()
    took.sort()
    return {
        "p50_ms": statistics.median(took) * 1000,
        "p99_ms": took[int(len(took) * 0.99)] * 1000,
        "per_second": count / elapsed,
    }


async def _main(count: int) -> None:
    if shutil.which("redis-server") is None:
        raise SystemExit("redis-server is not installed")
    with tempfile.TemporaryDirectory() as work:
        primary_port, replica_port = _free_port(), _free_port()
        primary = _start(Path(work) / "primary", primary_port)
        replica = _start(
            Path(work) / "replica", replica_port, "--replicaof", "127.0.0.1", str(primary_port)
        )
        try:
            _replica_in_sync(replica_port)
            url = f"redis://127.0.0.1:{primary_port}/0"
            print("| claims | replay_min_replicas | p50 ms | p99 ms | claims/s |")
            print("|---|---|---|---|---|")
            for concurrency in (1, 64):
                for min_replicas in (0, 1):
                    row = await _measure(url, min_replicas, count, concurrency)
                    print(
                        f"| {'one at a time' if concurrency == 1 else '64 at once'} "
                        f"| {min_replicas} | {row['p50_ms']:.3f} | {row['p99_ms']:.3f} "
                        f"| {row['per_second']:,.0f} |"
                    )
        finally:
            for process in (replica, primary):
                process.kill()
                process.wait(10)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--count", type=int, default=5000, help="claims per row")
    asyncio.run(_main(parser.parse_args().count))


if __name__ == "__main__":
    main()
