"""One worker's place among `workers` processes, and the settings it serves with.

What the workers share and what each keeps is decided here, once: the listeners are shared
(the supervisor's reserved ports, bound with SO_REUSEPORT), single use, rate limits and the
quota meter are shared through Redis (the settings refuse `memory://`), and the embedded
emulator is the supervisor's one child so that an assessment created through one worker can
be annotated through another. Each worker keeps its own breaker, retry budget and RetryInfo
window (as replicas do), its own SQLite outbox file (a Redis outbox is a stream every worker
and replica already shares), its own Prometheus port, and tags its telemetry with its index.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from sidecar.config import Settings
from sidecar.server.reservation import Reservations

WORKER_ATTRIBUTE = "recaptcha_sidecar.worker"


@dataclass(frozen=True, slots=True)
class WorkerSlot:
    """This process's index among the workers, and the shared emulator (`host:port`) when
    the sidecar runs on one."""

    index: int
    emulator: str | None = None


def outbox_path(path: Path, index: int) -> Path:
    """Worker 0 keeps the configured file (a sidecar going from one worker to several keeps
    delivering what it queued); worker k gets `<stem>-worker<k><suffix>` beside it."""
    if index == 0:
        return path
    return path.with_name(f"{path.stem}-worker{index}{path.suffix}")


def metrics_address(address: str, index: int) -> str:
    """Worker k's Prometheus endpoint: the configured port + k (`:0` stays `:0`)."""
    if not address:
        return address
    host, port = address.rsplit(":", 1)
    return address if int(port) == 0 else f"{host}:{int(port) + index}"


def worker_settings(settings: Settings, slot: WorkerSlot, held: Reservations) -> Settings:
    """The settings worker `slot` serves with: the held ports, its outbox file, its
    Prometheus port."""
    update: dict[str, object] = {
        "listen": held.resolve("listen"),
        "http_listen": held.resolve("http_listen"),
        "metrics_listen": metrics_address(settings.metrics_listen, slot.index),
    }
    if settings.health_listen is not None:
        update["health_listen"] = held.resolve("health_listen")[0]
    if isinstance(settings.outbox, Path):
        update["outbox"] = outbox_path(settings.outbox, slot.index)
    return settings.model_copy(update=update)


def shared_addresses(settings: Settings) -> dict[str, list[str]]:
    """The TCP addresses every worker listens on, per setting (the supervisor holds them)."""
    health = [settings.health_listen] if settings.health_listen else []
    return {"listen": settings.listen, "http_listen": settings.http_listen, "health_listen": health}
