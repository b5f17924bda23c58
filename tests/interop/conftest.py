"""Helpers of the interop layer: third-party clients run without blocking the loop that the
in-process sidecar (tests/conftest.py's `http_sidecar`) serves on."""

from __future__ import annotations

import asyncio
import json
from typing import Any

from tests.support.proxies import binary


async def run_json(program: str, *args: str, timeout: float = 30.0) -> Any:
    """Run a third-party client (php, ruby) without blocking the loop the sidecar serves on;
    its stdout is one JSON document."""
    process = await asyncio.create_subprocess_exec(
        binary(program),
        *args,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await asyncio.wait_for(process.communicate(), timeout)
    assert process.returncode == 0, f"{program} {args[0]} exited {process.returncode}: {err!r}"
    return json.loads(out)
