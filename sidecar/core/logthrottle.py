"""Warnings that a failing dependency would repeat on every call, at most once per interval.

A Redis outage used to write two warnings per Assess; at a few thousand calls per second that
is a log flood that hides everything else and costs CPU. A `ThrottledLog` writes the first
warning of each kind at once, then at most one per `interval` seconds, and that line says how
many were held back in between (`suppressed`), so the count is never lost.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

DEFAULT_INTERVAL = 10.0


@dataclass(slots=True)
class _Kind:
    next_at: float
    suppressed: int = 0


class ThrottledLog:
    """One logger's warnings, throttled per kind (a fixed string the code names, never input,
    so the table stays small)."""

    def __init__(
        self,
        logger: logging.Logger,
        interval: float = DEFAULT_INTERVAL,
        *,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._logger = logger
        self._interval = interval
        self._clock = clock
        self._kinds: dict[str, _Kind] = {}

    def warning(
        self, kind: str, message: str, *args: object, extra: Mapping[str, Any] | None = None
    ) -> bool:
        """Log `message` unless a line of this kind was written less than `interval` seconds
        ago; True when it was written."""
        now = self._clock()
        state = self._kinds.get(kind)
        if state is not None and now < state.next_at:
            state.suppressed += 1
            return False
        fields = dict(extra or {})
        if state is not None and state.suppressed:
            fields["suppressed"] = state.suppressed
        self._kinds[kind] = _Kind(now + self._interval)
        self._logger.warning(message, *args, extra=fields or None)
        return True
