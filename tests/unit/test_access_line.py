"""The access line's direct path writes what the logging module's path would have written,
batched per event-loop iteration, and steps aside for any other logging configuration."""

from __future__ import annotations

import asyncio
import io
import json
import logging
from collections.abc import Iterator

import pytest

from sidecar.telemetry.logs import (
    ACCESS_LOGGER,
    AccessLog,
    JsonFormatter,
    LogFormat,
    configure_logging,
)

FIELDS = {"rpc_method": "Assess", "code": "OK", "duration_ms": 1.25, "replayed": False}


@pytest.fixture
def stderr() -> Iterator[io.StringIO]:
    root = logging.getLogger()
    saved = root.handlers[:], root.level
    yield io.StringIO()
    root.handlers[:] = saved[0]
    root.setLevel(saved[1])


def configure(fmt: LogFormat, stream: io.StringIO) -> None:
    """configure_logging's handler, on `stream`; pytest's capture handlers (added to the root
    for the test's call phase) dropped."""
    configure_logging("INFO", fmt)
    root = logging.getLogger()
    root.handlers[:] = [h for h in root.handlers if type(h) is logging.StreamHandler]
    root.handlers[0].setStream(stream)  # type: ignore[attr-defined]


def lines(stream: io.StringIO) -> list[dict[str, object]]:
    return [json.loads(line) for line in stream.getvalue().splitlines()]


async def test_direct_lines_match_the_logging_path_and_go_out_once_per_iteration(
    stderr: io.StringIO,
) -> None:
    configure("json", stderr)
    access = AccessLog()
    access.write(FIELDS, (0xABC, 0x12))
    access.write({**FIELDS, "code": "CANCELLED"}, ())
    assert stderr.getvalue() == "", "written at the end of the loop iteration, not at once"
    await asyncio.sleep(0)
    direct = lines(stderr)
    assert [line["code"] for line in direct] == ["OK", "CANCELLED"]
    assert direct[0]["trace_id"] == f"{0xABC:032x}" and direct[0]["span_id"] == f"{0x12:016x}"
    assert "trace_id" not in direct[1]

    # The same line through the logging module (a filter makes the direct path step aside).
    logger = logging.getLogger(ACCESS_LOGGER)
    logger.addFilter(lambda record: True)
    try:
        stderr.truncate(0)
        stderr.seek(0)
        access.write(FIELDS)
        (slow,) = lines(stderr)  # written at once: the logging path does not batch
    finally:
        logger.filters.clear()
    assert list(direct[1]) == list(slow)
    for key in ("level", "logger", "message", *FIELDS):
        assert direct[0][key] == slow[key], key
    assert str(direct[0]["time"])[:16] == str(slow["time"])[:16]
    assert str(direct[0]["time"]).endswith("Z") and len(str(direct[0]["time"])) == 24


async def test_other_configurations_take_the_logging_path(stderr: io.StringIO) -> None:
    configure("json", stderr)
    access = AccessLog()
    root = logging.getLogger()
    extra = logging.StreamHandler(io.StringIO())
    extra.setFormatter(JsonFormatter())
    root.addHandler(extra)
    try:
        access.write(FIELDS)
        assert len(lines(stderr)) == 1, "two handlers: written by logging, at once"
    finally:
        root.removeHandler(extra)
    configure("text", stderr)
    access.write(FIELDS)
    assert "sidecar.access rpc" in stderr.getvalue()
    assert "rpc_method=Assess" in stderr.getvalue()


def test_without_a_running_loop_the_line_is_written_at_once(stderr: io.StringIO) -> None:
    configure("json", stderr)
    AccessLog().write(FIELDS, ())
    assert lines(stderr)[0]["rpc_method"] == "Assess"
