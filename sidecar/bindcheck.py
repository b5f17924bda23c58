"""Is a TCP address already taken? Asked before gRPC binds, by the sidecar's listeners and the
emulator alike: gRPC's C core prints its own `add_port.cc` error line first and says less than
the OS does. (Another process may still take the port in between; then gRPC's failure is
reported as before.)"""

from __future__ import annotations

import errno
import socket


def port_taken(address: str) -> str | None:
    """The OS's reason when `host:port` is already listened on, else None (also for port 0,
    Unix sockets and names that do not resolve: gRPC reports those itself)."""
    host, _, port = address.rpartition(":")
    if not port.isdigit() or int(port) == 0 or address.startswith("unix:"):
        return None
    try:
        resolved = socket.getaddrinfo(host.strip("[]"), int(port), type=socket.SOCK_STREAM)
    except OSError:
        return None
    for family, kind, proto, _, sockaddr in resolved:
        with socket.socket(family, kind, proto) as probe:
            # As gRPC binds: SO_REUSEADDR, so only a listening socket counts as taken.
            probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            try:
                probe.bind(sockaddr)
            except OSError as error:
                if error.errno == errno.EADDRINUSE:
                    return error.strerror or "address in use"
    return None
