"""One health aggregator, in the manner of envoyproxy/ratelimit's `HealthChecker`.

Components report into one map (`report(component, healthy)`); each health entry is SERVING
only while every component it depends on has reported healthy, and NOT_SERVING until each of
them has reported at all. The entries (grpc.health.v1):

- `""` (liveness) follows the servers alone: restarting the pod cures nothing else;
- each front door's service name (readiness) follows the servers and the replay store: a
  sidecar that cannot reach its store answers every token UNCHECKED, so balancers should send
  the traffic elsewhere;
- `upstream` follows the retry layer: NOT_SERVING while Assess's breaker is open or quota /
  credential errors are recent. The other entries ignore it on purpose: Google's outage is
  the failure policy's business, and unrouting the pod would not cure it.

`shutdown` turns every entry NOT_SERVING for good (the first step of a graceful stop).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Iterable, Mapping

from grpc_health.v1 import health, health_pb2

from sidecar.upstream.retry import ResilientUpstream

log = logging.getLogger(__name__)

UPSTREAM_HEALTH = "upstream"
SERVERS = "servers"
REPLAY_STORE = "replay_store"
UPSTREAM = "upstream"
HEALTH_POLL_SECONDS = 0.5
_SERVING = health_pb2.HealthCheckResponse.SERVING
_NOT_SERVING = health_pb2.HealthCheckResponse.NOT_SERVING


def standard_entries(services: Iterable[str]) -> dict[str, tuple[str, ...]]:
    """Which components each health entry depends on (see the module docstring)."""
    entries: dict[str, tuple[str, ...]] = {"": (SERVERS,), UPSTREAM_HEALTH: (UPSTREAM,)}
    for service in services:
        entries[service] = (SERVERS, REPLAY_STORE)
    return entries


class HealthAggregator:
    """Component reports in, health entries out."""

    def __init__(self, entries: Mapping[str, tuple[str, ...]]) -> None:
        self.servicer = health.aio.HealthServicer()
        self._entries = dict(entries)
        self._reported: dict[str, bool] = {}
        self._published: dict[str, bool] = {}
        self._stopping = False

    def healthy(self, entry: str) -> bool:
        """What the entry says now (False until each of its components has reported)."""
        return all(self._reported.get(part, False) for part in self._entries[entry])

    async def start(self) -> None:
        """Publish every entry, NOT_SERVING until its components report."""
        for entry in self._entries:
            await self.servicer.set(entry, _NOT_SERVING)
            self._published[entry] = False

    async def report(self, component: str, healthy: bool) -> None:
        """A component's state; the entries that depend on it follow."""
        self._reported[component] = healthy
        if self._stopping:
            return
        for entry in self._entries:
            now = self.healthy(entry)
            if self._published.get(entry) is not now:
                self._published[entry] = now
                await self.servicer.set(entry, _SERVING if now else _NOT_SERVING)

    async def shutdown(self) -> None:
        """Every entry NOT_SERVING, for good: probes and balancers stop sending."""
        self._stopping = True
        await self.servicer.enter_graceful_shutdown()


async def watch_upstream(
    aggregator: HealthAggregator, upstream: ResilientUpstream, *, serving_now: bool
) -> None:
    """Report each change of the retry layer's state (from `serving_now`, reported at start)
    as the `upstream` component, logging it."""
    while True:
        await asyncio.sleep(HEALTH_POLL_SECONDS)
        serving, reason = upstream.health()
        if serving == serving_now:
            continue
        serving_now = serving
        if serving:
            log.info("upstream healthy again")
        else:
            log.warning("upstream unhealthy", extra={"reason": reason})
        await aggregator.report(UPSTREAM, serving)
