"""Log lines: one JSON object per line on stderr, with the trace and span ids of the call.

A log backend joins them to traces by `trace_id`. Records carry only what the code put in
them: messages and `extra` fields are written by us, and no call site logs a token, address,
e-mail, phone or account (the access line is built from enum names and numbers only).
"""

from __future__ import annotations

import json
import logging
import sys
from datetime import UTC, datetime
from typing import Any, Literal

from opentelemetry import trace

ACCESS_LOGGER = "sidecar.access"
LogFormat = Literal["json", "text"]

# Attributes every LogRecord has; anything else on a record came from `extra=`.
_STANDARD = set(vars(logging.LogRecord("", 0, "", 0, "", (), None))) | {"message", "asctime"}


_PLAIN = frozenset((str, int, float, bool, type(None)))


def _jsonable(value: Any) -> Any:
    if type(value) in _PLAIN or isinstance(value, str | int | float | bool):
        return value
    if isinstance(value, list | tuple):
        return [_jsonable(v) for v in value]
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    return str(value)


class JsonFormatter(logging.Formatter):
    """`{"time", "level", "logger", "message", "trace_id", "span_id", …extra}` on one line."""

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "time": datetime.fromtimestamp(record.created, UTC)
            .isoformat(timespec="milliseconds")
            .replace("+00:00", "Z"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        context = trace.get_current_span().get_span_context()
        if context.is_valid:
            entry["trace_id"] = format(context.trace_id, "032x")
            entry["span_id"] = format(context.span_id, "016x")
        for key, value in vars(record).items():
            if key not in _STANDARD and not key.startswith("_"):
                entry[key] = _jsonable(value)
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        if record.stack_info:
            entry["stack"] = self.formatStack(record.stack_info)
        return json.dumps(entry, ensure_ascii=False, separators=(",", ":"))


class TextFormatter(logging.Formatter):
    """For people at a terminal: the usual line, then the `extra` fields as key=value."""

    def __init__(self) -> None:
        super().__init__("%(asctime)s %(levelname)s %(name)s %(message)s")

    def format(self, record: logging.LogRecord) -> str:
        line = super().format(record)
        extras = [
            f"{key}={_jsonable(value)}"
            for key, value in vars(record).items()
            if key not in _STANDARD and not key.startswith("_")
        ]
        return " ".join([line, *extras]) if extras else line


class AccessLog:
    """The one line per RPC. It is written on every call, so it skips what `Logger.info`
    does that the line does not need: the stack walk that finds the caller (the line always
    comes from the interceptor) and the keyword plumbing. Handlers, filters, levels and the
    format are still the logging module's."""

    __slots__ = ("_logger",)

    def __init__(self) -> None:
        self._logger = logging.getLogger(ACCESS_LOGGER)

    def enabled(self) -> bool:
        return self._logger.isEnabledFor(logging.INFO)

    def write(self, fields: dict[str, Any]) -> None:
        logger = self._logger
        record = logger.makeRecord(logger.name, logging.INFO, __file__, 0, "rpc", (), None)
        record.__dict__.update(fields)
        logger.handle(record)


OWN_LOGGER = "sidecar"  # every logger of ours is below it


def configure_logging(
    level: str,
    fmt: LogFormat = "json",
    *,
    access_log: bool = True,
    library_level: str = "WARNING",
) -> None:
    """Route every logger to stderr in the chosen format: ours at `level` and above, other
    libraries' (grpc's `Loaded running loop`, asyncio, redis, OpenTelemetry) at `library_level`
    and above, so that DEBUG shows the sidecar's own lines unless their noise is asked for too.
    The access logger writes at INFO: `access_log=False` (or a level above INFO) turns it off."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter() if fmt == "json" else TextFormatter())
    logging.basicConfig(level=library_level, handlers=[handler], force=True)
    logging.getLogger(OWN_LOGGER).setLevel(level)
    logging.getLogger(ACCESS_LOGGER).disabled = not access_log
