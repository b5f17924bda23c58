"""Upstream failures, classified once so the core and the retry layer need not know gRPC."""

from __future__ import annotations

from sidecar.core.policy import FailureKind


class UpstreamError(Exception):
    """An upstream call gave no answer.

    `reached` says whether the request may have reached Google: False when it provably did not
    (connection refused, refused locally, rejected before processing), so the token was not
    consumed and may be tried again; None when that is unknown.
    """

    def __init__(
        self,
        kind: FailureKind,
        code: str,
        message: str,
        *,
        reached: bool | None,
        retryable: bool = False,
        pushback: float | None = None,
    ) -> None:
        super().__init__(f"{code}: {message}")
        self.kind = kind
        self.code = code
        self.reached = reached
        self.retryable = retryable
        self.pushback = pushback
