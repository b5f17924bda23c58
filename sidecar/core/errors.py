"""Domain errors. Front doors map them to their own status codes (`sidecar.server.servicer`)."""

from __future__ import annotations


class SidecarError(Exception):
    """Base of every error the core raises on purpose."""


class InvalidArgument(SidecarError):
    """The request cannot be read; names the offending field so the caller can fix it."""

    def __init__(self, field: str, problem: str) -> None:
        super().__init__(f"{field}: {problem}")
        self.field = field
        self.problem = problem


class Overloaded(SidecarError):
    """The sidecar sheds this request rather than queue without bound."""


class UpstreamRejected(SidecarError):
    """A synchronous upstream call failed: upstream's status name, and whether the request
    itself was refused (`request`: the caller can fix it) or the sidecar could not get an
    answer (its credentials, quota, or upstream being down: the caller cannot)."""

    def __init__(self, code: str, message: str, *, request: bool = False, kind: str = "") -> None:
        super().__init__(message)
        self.code = code
        self.request = request
        self.kind = kind
