"""The durable annotation outbox: SQLite (WAL, synchronous=FULL) and its batching flusher."""

from sidecar.outbox.annotator import OutboxAnnotator
from sidecar.outbox.flusher import Flusher, FlushSettings, judge
from sidecar.outbox.outbox import Outbox
from sidecar.outbox.store import OutboxLocked, OutboxStore

__all__ = [
    "FlushSettings",
    "Flusher",
    "Outbox",
    "OutboxAnnotator",
    "OutboxLocked",
    "OutboxStore",
    "judge",
]
