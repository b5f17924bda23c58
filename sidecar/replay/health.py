"""Health follows the replay store: a sidecar that cannot reach its store answers every token
UNCHECKED, so readiness probes and balancers should send the traffic elsewhere."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable

from sidecar.core.ports import ReplayStore, ReplayStoreError

log = logging.getLogger(__name__)


async def store_reachable(store: ReplayStore, timeout: float) -> bool:
    """One bounded ping. `asyncio.timeout`, not `wait_for`: on Python 3.11 `wait_for` can
    swallow a cancellation that arrives as the ping completes, and the watcher must stop."""
    try:
        async with asyncio.timeout(timeout):
            await store.ping()
    except (ReplayStoreError, TimeoutError, OSError):
        return False
    return True


async def watch_store(
    store: ReplayStore,
    report: Callable[[bool], Awaitable[None]],
    *,
    interval: float,
    timeout: float,
) -> None:
    """Ping the store every `interval` seconds until cancelled; `report(reachable)` on the
    first result and on every change."""
    last: bool | None = None
    while True:
        reachable = await store_reachable(store, timeout)
        if reachable is not last:
            if reachable:
                log.info("replay store reachable")
            else:
                log.warning("replay store unreachable: health NOT_SERVING")
            await report(reachable)
            last = reachable
        await asyncio.sleep(interval)
