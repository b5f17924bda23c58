"""The durable annotation outbox: SQLite (WAL, synchronous=FULL) and its batching flusher."""

from sidecar.outbox.flusher import Flusher, FlushSettings, judge
from sidecar.outbox.outbox import Outbox
from sidecar.outbox.sink import OutboxSink
from sidecar.outbox.store import OutboxLocked, OutboxStore

__all__ = [
    "FlushSettings",
    "Flusher",
    "Outbox",
    "OutboxLocked",
    "OutboxSink",
    "OutboxStore",
    "judge",
]
