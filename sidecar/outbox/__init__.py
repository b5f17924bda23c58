"""The durable annotation outbox: SQLite (WAL, synchronous=FULL) for one pod, or a Redis
stream every replica shares (`streams`), and the batching flusher both feed."""

from sidecar.outbox.flusher import Flusher, FlushSettings, judge
from sidecar.outbox.outbox import Outbox
from sidecar.outbox.queue import OutboxQueue
from sidecar.outbox.sink import OutboxSink
from sidecar.outbox.store import OutboxLocked, OutboxStore

__all__ = [
    "FlushSettings",
    "Flusher",
    "Outbox",
    "OutboxLocked",
    "OutboxQueue",
    "OutboxSink",
    "OutboxStore",
    "judge",
]
