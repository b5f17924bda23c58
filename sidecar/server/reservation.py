"""Ports held by the worker supervisor, so that N workers can listen on one TCP port.

Each worker binds its listeners with SO_REUSEPORT and the kernel spreads new connections
among them. The supervisor settles each port first: it checks that nobody holds it (a plain
bind, which fails on any socket already there, a sidecar's or not), learns the real port when
the address says `:0`, then holds it with a bound, never listening, SO_REUSEPORT socket for as
long as it runs, so the port stays ours while workers come and go (a restarted worker binds
the same port; a socket that never listens is never given a connection).
"""

from __future__ import annotations

import socket
from dataclasses import dataclass, field

from sidecar.config.addresses import host_of


class ReservationError(Exception):
    """An address cannot be held: taken, or not an address of this host."""


@dataclass
class Reservations:
    """The held sockets, and each setting's addresses as the workers must bind them."""

    addresses: dict[str, list[str]] = field(default_factory=dict)  # setting → real ports
    sockets: list[socket.socket] = field(default_factory=list)

    def resolve(self, setting: str) -> list[str]:
        return self.addresses[setting]

    def close(self) -> None:
        for held in self.sockets:
            held.close()
        self.sockets.clear()


def reserve(settings: dict[str, list[str]]) -> Reservations:
    """Hold every TCP address of each setting (`ReservationError` naming the first that
    cannot be held, with nothing left open). Each `:0` gets a port of its own; the same
    address twice is held once."""
    held = Reservations()
    real: dict[str, str] = {}
    try:
        for setting, addresses in settings.items():
            resolved = []
            for address in addresses:
                if address not in real or address.endswith(":0"):
                    real[address] = _hold(address, held.sockets)
                resolved.append(real[address])
            held.addresses[setting] = resolved
    except BaseException:
        held.close()
        raise
    return held


def _hold(address: str, sockets: list[socket.socket]) -> str:
    host, port = host_of(address), int(address.rsplit(":", 1)[1])
    try:
        family, _, _, _, where = socket.getaddrinfo(
            host or None, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE
        )[0]
    except (OSError, UnicodeError) as error:
        raise ReservationError(f"cannot listen on {address}: {error}") from None
    try:
        # Free? A plain bind fails on any socket already on the port, SO_REUSEPORT or not.
        with socket.socket(family, socket.SOCK_STREAM) as probe:
            probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            probe.bind(where)
            real = probe.getsockname()[1]
        holder = socket.socket(family, socket.SOCK_STREAM)
        try:
            holder.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            holder.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
            holder.bind((where[0], real, *where[2:]))
        except BaseException:
            holder.close()
            raise
    except OSError as error:
        reason = error.strerror or "address not available"
        raise ReservationError(f"cannot listen on {address}: {reason}") from None
    sockets.append(holder)
    return f"{address.rsplit(':', 1)[0]}:{real}"
