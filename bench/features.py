"""Which optional features this build of the sidecar has, found out at run time.

Scenarios name the features they need; a missing one makes the row "not available in this
build" with the reason, so the benchmark runs unchanged before and after the features land.
"""

from __future__ import annotations

import asyncio
import importlib.util
import shutil
import subprocess
import sys
from functools import cache

from bench import httpload
from bench.procs import ROOT

SIDECAR = [sys.executable, "-m", "sidecar"]


@cache
def _config_reference() -> str:
    done = subprocess.run(
        [*SIDECAR, "config"], cwd=ROOT, capture_output=True, text=True, check=False
    )
    return done.stdout


def _setting(env: str) -> str | None:
    return None if env in _config_reference() else f"no {env} setting"


@cache
def _serve_help() -> str:
    done = subprocess.run(
        [*SIDECAR, "serve", "--help"], cwd=ROOT, capture_output=True, text=True, check=False
    )
    return done.stdout


def _module(name: str) -> bool:
    try:
        return importlib.util.find_spec(name) is not None
    except ModuleNotFoundError:
        return False


def _redis() -> str | None:
    if shutil.which("redis-server") is None:
        return "redis-server is not installed"
    from sidecar.replay import open_replay_store

    async def probe() -> None:
        store = open_replay_store("redis://127.0.0.1:1/0")
        close = getattr(store, "close", None)
        if close is not None:
            await close()

    try:
        asyncio.run(probe())
    except (ValueError, TypeError, ImportError) as error:
        return f"no Redis replay store ({error})"
    except Exception:
        return None
    return None


def _flag(flag: str) -> str | None:
    return None if flag in _serve_help() else f"`serve` has no {flag} option"


def _tracing() -> str | None:
    for module in ("sidecar.telemetry", "opentelemetry.sdk", "opentelemetry.exporter.otlp"):
        if not _module(module):
            return f"module {module} is absent"
    return None


PROBES = {
    "redis": _redis,
    "outbox": lambda: _flag("--outbox"),
    "workers": lambda: _flag("--workers"),
    "tracing": _tracing,
    "access-log": lambda: _setting("RECAPTCHA_SIDECAR_ACCESS_LOG"),
    "rate-limits": lambda: _flag("--upstream-rate-limit"),
    "google-face": lambda: None if _module("sidecar.server.google_face") else "no Google face",
    "google-face-rest": lambda: (
        None if _module("sidecar.server.google_rest") else "no Google REST face"
    ),
    "wrk": lambda: httpload.available(),
}


@cache
def missing(feature: str) -> str | None:
    """None when the feature is there, else why not."""
    return PROBES[feature]()
