"""Memory figures: bytes per remembered token in the memory replay store.

Run in its own interpreter (`python -m bench.memprobe`) so nothing else is allocated meanwhile.
Each token is claimed and settled as Assess does, with a decision shaped like a real one:
its own assessment name and create time, strings freshly built as protobuf parsing builds them.
Two measures: tracemalloc (Python allocations) and the growth of the process's RSS.

Tokens arrive on a simulated clock at a stated rate (`--rate`, default 2,000/s: 200,000 live
tokens within the 150 s TTL need at least 1,334/s). The store groups arrivals into ten-second
generations, so on the real clock the figure followed how fast this machine filled it
(182-212 bytes per token between runs of the same build); at a stated rate it is one number.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import hashlib
import json
import os
import secrets
import struct
import time
import tracemalloc

from sidecar.core.model import Decision, RecommendedAction, TokenStatus, Verdict
from sidecar.core.ports import ReplayEntry
from sidecar.replay.memory import MemoryReplayStore


def _rss_bytes() -> int:
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    return 0


def _decision(index: int) -> Decision:
    score = struct.unpack("f", struct.pack("f", 0.9))[0]  # float32 on the wire
    return Decision(
        allowed=True,
        verdict=Verdict.PASSED,
        token_status=TokenStatus.VALID,
        recommended_action=RecommendedAction.ALLOW,
        decided_by="".join(["pass", "ed"]),
        score=score,
        threshold=0.5,
        action="".join(["log", "in"]),
        hostname="".join(["local", "host"]),
        create_time=time.time() - index * 1e-3,
        assessment_name="projects/123456789/assessments/" + secrets.token_hex(8),
    )


class _Arrivals:
    """The store's clock: token `i` arrives at i / rate seconds."""

    def __init__(self, rate: float) -> None:
        self.rate = rate
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


async def _fill(store: MemoryReplayStore, arrivals: _Arrivals, entries: int, ttl: float) -> None:
    """Claim and settle as Assess does; the key is the hex digest Verifier passes."""
    for index in range(entries):
        arrivals.now = index / arrivals.rate
        key = hashlib.sha256(os.urandom(24)).hexdigest()
        await store.claim(key, "", "c", ttl)
        await store.settle(key, "c", ReplayEntry("", _decision(index)), ttl)


def _filled(entries: int, rate: float) -> MemoryReplayStore:
    arrivals = _Arrivals(rate)
    store = MemoryReplayStore(max_entries=entries * 2, clock=arrivals)
    asyncio.run(_fill(store, arrivals, entries, 150.0))
    assert len(store) == entries
    gc.collect()
    return store


def measure(entries: int, rate: float = 2_000.0) -> dict[str, float]:
    """RSS growth first (tracemalloc's own bookkeeping would inflate it), then tracemalloc on
    a second store filled the same way."""
    gc.collect()
    rss_before = _rss_bytes()
    store = _filled(entries, rate)
    rss_growth = _rss_bytes() - rss_before
    asyncio.run(store.close())
    del store
    gc.collect()
    tracemalloc.start()
    store = _filled(entries, rate)
    traced, _ = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    return {
        "entries": len(store),
        "arrivals_per_second": rate,
        "bytes_per_token_tracemalloc": round(traced / entries, 1),
        "bytes_per_token_rss": round(rss_growth / entries, 1),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--entries", type=int, default=200_000)
    parser.add_argument("--rate", type=float, default=2_000.0, help="arrivals per second")
    args = parser.parse_args()
    print(json.dumps(measure(args.entries, args.rate)))


if __name__ == "__main__":
    main()
