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
    """A synchronous upstream call failed; carries a gRPC-style status name for the caller."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
