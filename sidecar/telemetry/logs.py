"""Log lines: one JSON object per line on stderr, with the trace and span ids of the call.

A log backend joins them to traces by `trace_id`. Records carry only what the code put in
them: messages and `extra` fields are written by us, and no call site logs a token, address,
e-mail, phone or account (the access line is built from enum names and numbers only).
"""

from __future__ import annotations

import asyncio
import json
import logging
import sys
import time
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
    """The one line per RPC, the costliest thing the sidecar does per call after the gRPC
    hop itself (0.1 ms of CPU through `Logger.handle` at saturation), so it is built cheaply.

    When the line would reach only the stderr handler `configure_logging` installs (JSON
    format, no filters), it is written directly: a constant prefix, the time from a
    per-second cache, the trace ids passed in, `json.dumps` of the fields; the lines of one
    event-loop iteration go out in one `write` at its end (`loop.call_soon`), so a burst of
    calls costs one system call, not one each (every `write` also releases the GIL, which
    grpc's poller thread then takes). Anything else (text format, another or a second
    handler, a filter, a caller outside a running loop) takes the logging module's path, so
    handlers, filters, levels and formats still work as configured."""

    __slots__ = ("_logger", "_pending", "_second", "_stamp")

    _PREFIX = f'"level":"INFO","logger":"{ACCESS_LOGGER}","message":"rpc"'

    def __init__(self) -> None:
        self._logger = logging.getLogger(ACCESS_LOGGER)
        self._pending: list[str] = []
        self._second = -1
        self._stamp = ""

    def enabled(self) -> bool:
        return self._logger.isEnabledFor(logging.INFO)

    def write(
        self, fields: dict[str, Any], trace_ids: tuple[int, int] | tuple[()] | None = None
    ) -> None:
        """One access line. `trace_ids`: the server span's (trace id, span id), `()` when
        the call is not traced, None to look the current span up."""
        handler = self._direct_handler()
        if handler is None:
            logger = self._logger
            record = logger.makeRecord(logger.name, logging.INFO, __file__, 0, "rpc", (), None)
            record.__dict__.update(fields)
            logger.handle(record)
            return
        if trace_ids is None:
            context = trace.get_current_span().get_span_context()
            if context.is_valid:
                trace_ids = (context.trace_id, context.span_id)
        now = time.time()
        second = int(now)
        if second != self._second:
            self._second = second
            self._stamp = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(second))
        head = f'{{"time":"{self._stamp}.{int((now - second) * 1000):03d}Z",{self._PREFIX}'
        if trace_ids:
            head += f',"trace_id":"{trace_ids[0]:032x}","span_id":"{trace_ids[1]:016x}"'
        body = json.dumps(fields, ensure_ascii=False, separators=(",", ":"), default=str)
        line = f"{head},{body[1:]}\n" if len(body) > 2 else head + "}\n"
        pending = self._pending
        pending.append(line)
        if len(pending) == 1:
            try:
                asyncio.get_running_loop().call_soon(self._flush, handler)
            except RuntimeError:  # no loop here: write at once
                self._flush(handler)

    def _direct_handler(self) -> logging.StreamHandler[Any] | None:
        """The handler the line can be written to directly, if the logging configuration is
        the one `configure_logging` makes (checked per call: tests and operators change it)."""
        logger = self._logger
        if logger.filters or logger.handlers or not logger.propagate:
            return None
        parent = logger.parent
        while parent is not None and parent.parent is not None:  # up to the root
            if parent.filters or parent.handlers or not parent.propagate:
                return None
            parent = parent.parent
        if parent is None or parent.filters or len(parent.handlers) != 1:
            return None
        handler = parent.handlers[0]
        if (
            type(handler) is not logging.StreamHandler
            or type(handler.formatter) is not JsonFormatter
            or handler.filters
            or handler.level > logging.INFO
        ):
            return None
        return handler

    def _flush(self, handler: logging.StreamHandler[Any]) -> None:
        lines, self._pending = self._pending, []
        if not lines:
            return
        handler.acquire()
        try:
            handler.stream.write("".join(lines))
            handler.stream.flush()
        except Exception:  # as logging does: a broken stderr stops no call
            handler.handleError(
                logging.LogRecord(ACCESS_LOGGER, logging.INFO, __file__, 0, "rpc", (), None)
            )
        finally:
            handler.release()


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
