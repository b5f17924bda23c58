"""Health: the `upstream` entry follows the retry layer's breaker and recent quota or
credential errors."""

from __future__ import annotations

import asyncio
import logging

from grpc_health.v1 import health, health_pb2

from sidecar.upstream.retry import ResilientUpstream

log = logging.getLogger(__name__)

# A health entry of its own: NOT_SERVING while the breaker is open or quota / credential
# errors are recent. The overall entry stays SERVING: Google's outage is the failure
# policy's business, and restarting or unrouting the pod would not cure it.
UPSTREAM_HEALTH = "upstream"
HEALTH_POLL_SECONDS = 0.5


async def watch_upstream(
    health_servicer: health.aio.HealthServicer, upstream: ResilientUpstream
) -> None:
    """Mirror the upstream's state into the `upstream` health entry, logging each change."""
    serving_now = True
    while True:
        await asyncio.sleep(HEALTH_POLL_SECONDS)
        serving, reason = upstream.health()
        if serving == serving_now:
            continue
        serving_now = serving
        status = health_pb2.HealthCheckResponse.SERVING
        if not serving:
            status = health_pb2.HealthCheckResponse.NOT_SERVING
            log.warning("upstream unhealthy", extra={"reason": reason})
        else:
            log.info("upstream healthy again")
        await health_servicer.set(UPSTREAM_HEALTH, status)
