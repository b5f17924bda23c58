"""Memory figures: bytes per remembered token in the memory replay store.

Run in its own interpreter (`python -m bench.memprobe`) so nothing else is allocated meanwhile.
Each token is claimed and settled as Assess does, with a decision shaped like a real one:
its own assessment name and create time, strings freshly built as protobuf parsing builds them.
Two measures: tracemalloc (Python allocations) and the growth of the process's RSS.
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


async def _fill(store: MemoryReplayStore, entries: int, ttl: float) -> None:
    """Claim and settle as Assess does; the key is the hex digest Verifier passes."""
    for index in range(entries):
        key = hashlib.sha256(os.urandom(24)).hexdigest()
        await store.claim(key, "", "c", ttl)
        await store.settle(key, "c", ReplayEntry("", _decision(index)), ttl)


def _filled(entries: int) -> MemoryReplayStore:
    store = MemoryReplayStore(max_entries=entries * 2)
    asyncio.run(_fill(store, entries, 150.0))
    assert len(store) == entries
    gc.collect()
    return store


def measure(entries: int) -> dict[str, float]:
    """RSS growth first (tracemalloc's own bookkeeping would inflate it), then tracemalloc on
    a second store filled the same way."""
    gc.collect()
    rss_before = _rss_bytes()
    store = _filled(entries)
    rss_growth = _rss_bytes() - rss_before
    asyncio.run(store.close())
    del store
    gc.collect()
    tracemalloc.start()
    store = _filled(entries)
    traced, _ = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    return {
        "entries": len(store),
        "bytes_per_token_tracemalloc": round(traced / entries, 1),
        "bytes_per_token_rss": round(rss_growth / entries, 1),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--entries", type=int, default=200_000)
    print(json.dumps(measure(parser.parse_args().entries)))


if __name__ == "__main__":
    main()
