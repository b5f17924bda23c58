"""Open connections and file descriptors, read from /proc, and a warning before the limit.

gRPC core accepts and holds connections before any Python runs, so at the file-descriptor
limit new callers simply time out (DEADLINE_EXCEEDED) and nothing is logged. The listeners'
bounds (`max_connections`, idle close, maximum age: `listeners.server_options`) keep that
far away; this makes how far visible: the number of open descriptors against the process's
limit, and the established connections of each listener, refreshed every few seconds into
gauges (the exporter reads cached numbers), with a rate-limited warning from 80% of a limit.
"""

from __future__ import annotations

import asyncio
import logging
import os
import resource
from collections.abc import Mapping
from dataclasses import dataclass, field

from sidecar.core.logthrottle import ThrottledLog

log = logging.getLogger(__name__)

POLL_SECONDS = 5.0
WARN_RATIO = 0.8
_TCP_ESTABLISHED = "01"
_UNIX_CONNECTED = "03"
_ACCEPTING = 0x10000  # __SO_ACCEPTCON: a listening Unix socket, not a connection


@dataclass(slots=True)
class Counts:
    open_fds: int = 0
    max_fds: int = 0
    connections: dict[str, int] = field(default_factory=dict)


def _socket_inodes() -> tuple[int, set[int]]:
    """(open descriptors, inodes of the sockets among them) of this process."""
    inodes = set()
    names = os.listdir("/proc/self/fd")
    for name in names:
        try:
            target = os.readlink(f"/proc/self/fd/{name}")
        except OSError:  # closed meanwhile
            continue
        if target.startswith("socket:["):
            inodes.add(int(target[8:-1]))
    return len(names), inodes


def _lines(path: str) -> list[list[str]]:
    try:
        with open(path) as table:
            return [line.split() for line in table.readlines()[1:]]
    except OSError:
        return []


def read_counts(tcp_ports: Mapping[int, str], unix_paths: Mapping[str, str]) -> Counts:
    """Descriptors and, per listener (by port or socket path → its address), the established
    connections of this process."""
    open_fds, inodes = _socket_inodes()
    counts = Counts(open_fds, resource.getrlimit(resource.RLIMIT_NOFILE)[0])
    counts.connections = dict.fromkeys([*tcp_ports.values(), *unix_paths.values()], 0)
    for table in ("/proc/self/net/tcp", "/proc/self/net/tcp6"):
        for fields in _lines(table):
            if len(fields) < 10 or fields[3] != _TCP_ESTABLISHED or int(fields[9]) not in inodes:
                continue
            listener = tcp_ports.get(int(fields[1].rsplit(":", 1)[1], 16))
            if listener is not None:
                counts.connections[listener] += 1
    for fields in _lines("/proc/self/net/unix"):
        # Num RefCount Protocol Flags Type St Inode [Path]; accepted sockets carry the path.
        if len(fields) < 8 or fields[5] != _UNIX_CONNECTED or int(fields[3], 16) & _ACCEPTING:
            continue
        listener = unix_paths.get(fields[7])
        if listener is not None and int(fields[6]) in inodes:
            counts.connections[listener] += 1
    return counts


class ConnectionWatch:
    """The latest counts, for the gauges, and the warnings near a limit."""

    def __init__(self, addresses: list[str], max_connections: int) -> None:
        self._tcp: dict[int, str] = {}
        self._unix: dict[str, str] = {}
        for address in addresses:
            if address.startswith("unix:"):
                self._unix[address.removeprefix("unix://").removeprefix("unix:")] = address
            else:
                self._tcp[int(address.rsplit(":", 1)[1])] = address
        self._max_connections = max_connections
        self._log = ThrottledLog(log, 60.0)
        self.latest = Counts()

    # gauges (no I/O: the cached numbers)
    def open_fds(self) -> int:
        return self.latest.open_fds

    def max_fds(self) -> int:
        return self.latest.max_fds

    def connections(self) -> Mapping[str, int]:
        return dict(self.latest.connections)

    def refresh(self) -> Counts:
        counts = read_counts(self._tcp, self._unix)
        self.latest = counts
        if counts.max_fds and counts.open_fds >= WARN_RATIO * counts.max_fds:
            self._log.warning(
                "fds",
                "file descriptors near the limit: new connections will soon wait or fail",
                extra={"open_fds": counts.open_fds, "max_fds": counts.max_fds},
            )
        for listener, count in counts.connections.items():
            if count >= WARN_RATIO * self._max_connections:
                self._log.warning(
                    "connections",
                    "connections near max_connections on a listener",
                    extra={
                        "listener": listener,
                        "connections": count,
                        "max_connections": self._max_connections,
                    },
                )
        return counts

    async def run(self, interval: float = POLL_SECONDS) -> None:
        while True:
            try:
                await asyncio.to_thread(self.refresh)
            except Exception as error:  # /proc is always there on Linux; never stop the loop
                self._log.warning("read", "cannot read /proc: %s", type(error).__name__)
            await asyncio.sleep(interval)
