"""Telemetry configuration: exporters chosen by the standard OTEL_* variables, nothing at all
when nothing is configured, clear errors at start, bounded action labels, documented metrics."""

from __future__ import annotations

import contextlib
import dataclasses
import io
import logging
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from opentelemetry import trace

from sidecar.cli import main
from sidecar.config import ConfigError, load_settings
from sidecar.telemetry.logs import ACCESS_LOGGER
from sidecar.telemetry.metrics import ActionLabels, reference_table
from sidecar.telemetry.providers import (
    Telemetry,
    TelemetryError,
    exporter_names,
    otlp_protocol,
)
from sidecar.upstream.client import GoogleUpstream
from tests.support.defaults import TELEMETRY
from tests.support.processes import ROOT

TELEMETRY_DOCS = ROOT / "docs" / "telemetry.md"
OTEL_VARIABLES = (
    "OTEL_EXPORTER_OTLP_ENDPOINT",
    "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT",
    "OTEL_EXPORTER_OTLP_METRICS_ENDPOINT",
    "OTEL_TRACES_EXPORTER",
    "OTEL_METRICS_EXPORTER",
    "OTEL_EXPORTER_OTLP_PROTOCOL",
    "OTEL_SDK_DISABLED",
)


@pytest.fixture(autouse=True)
def clean_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in OTEL_VARIABLES:
        monkeypatch.delenv(name, raising=False)


@pytest.fixture
def quiet_access_log() -> Iterator[None]:
    """The access logger as an unconfigured process has it: writing nothing."""
    logger = logging.getLogger(ACCESS_LOGGER)
    level = logger.level
    logger.setLevel(logging.WARNING)
    yield
    logger.setLevel(level)


@pytest.mark.parametrize(
    ("environ", "console", "expected"),
    [
        ({}, False, []),
        ({}, True, ["console"]),
        ({"OTEL_EXPORTER_OTLP_ENDPOINT": "http://collector:4317"}, False, ["otlp"]),
        ({"OTEL_EXPORTER_OTLP_TRACES_ENDPOINT": "http://tempo:4318/v1/traces"}, False, ["otlp"]),
        ({"OTEL_EXPORTER_OTLP_METRICS_ENDPOINT": "http://x:4317"}, False, []),
        ({"OTEL_TRACES_EXPORTER": "console"}, False, ["console"]),
        ({"OTEL_TRACES_EXPORTER": "none", "OTEL_EXPORTER_OTLP_ENDPOINT": "http://x"}, False, []),
        ({"OTEL_TRACES_EXPORTER": "otlp, console"}, True, ["otlp", "console"]),
    ],
)
def test_trace_exporters_follow_the_standard_variables(
    environ: dict[str, str], console: bool, expected: list[str]
) -> None:
    assert exporter_names("traces", environ, console) == expected


def test_unknown_exporter_and_protocol_are_named() -> None:
    with pytest.raises(TelemetryError, match="OTEL_TRACES_EXPORTER: unknown exporter zipkin"):
        exporter_names("traces", {"OTEL_TRACES_EXPORTER": "zipkin"}, False)
    assert otlp_protocol("traces", {}) == "grpc"
    assert otlp_protocol("traces", {"OTEL_EXPORTER_OTLP_PROTOCOL": "http/protobuf"}) == (
        "http/protobuf"
    )
    specific = {
        "OTEL_EXPORTER_OTLP_PROTOCOL": "http/protobuf",
        "OTEL_EXPORTER_OTLP_METRICS_PROTOCOL": "grpc",
    }
    assert otlp_protocol("metrics", specific) == "grpc"
    with pytest.raises(TelemetryError, match="OTEL_EXPORTER_OTLP_TRACES_PROTOCOL"):
        otlp_protocol("traces", {"OTEL_EXPORTER_OTLP_PROTOCOL": "http/json"})


async def test_nothing_configured_means_no_providers_and_an_untouched_hot_path(
    quiet_access_log: None,
) -> None:
    telemetry = Telemetry(TELEMETRY, ActionLabels(lambda: ()))
    assert (telemetry.tracer_provider, telemetry.meter_provider) == (None, None)
    assert isinstance(telemetry.tracer, trace.NoOpTracer)
    assert telemetry.interceptors() == []
    raw = GoogleUpstream(project="p", endpoint="127.0.0.1:1", plaintext=True)
    assert telemetry.instrument_upstream(raw) is raw
    await raw.close()
    await telemetry.aclose()


def test_sdk_disabled_wins_over_an_endpoint(
    monkeypatch: pytest.MonkeyPatch, quiet_access_log: None
) -> None:
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_ENDPOINT", "http://127.0.0.1:4317")
    monkeypatch.setenv("OTEL_SDK_DISABLED", "true")
    telemetry = Telemetry(TELEMETRY, ActionLabels(lambda: ()))
    assert not telemetry.active and telemetry.interceptors() == []


def test_access_log_alone_installs_the_interceptor() -> None:
    logger = logging.getLogger(ACCESS_LOGGER)
    level = logger.level
    logger.setLevel(logging.INFO)
    try:
        telemetry = Telemetry(TELEMETRY, ActionLabels(lambda: ()))
        assert len(telemetry.interceptors()) == 1
    finally:
        logger.setLevel(level)


def test_a_taken_metrics_port_is_a_startup_error() -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        address = f"127.0.0.1:{taken.getsockname()[1]}"
        with pytest.raises(TelemetryError, match=f"metrics_listen: cannot listen on {address}"):
            Telemetry(
                dataclasses.replace(TELEMETRY, metrics_listen=address), ActionLabels(lambda: ())
            )


def test_serve_refuses_a_taken_metrics_port() -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        serve = [sys.executable, "-m", "sidecar", "serve", "--emulator"]
        done = subprocess.run(
            [*serve, "--listen", "127.0.0.1:0", "--metrics-listen", f"127.0.0.1:{port}"],
            cwd=ROOT,
            capture_output=True,
            text=True,
            timeout=60,
        )
    assert done.returncode == 2, done
    assert f"metrics_listen: cannot listen on 127.0.0.1:{port}" in done.stderr
    assert "Traceback" not in done.stderr


def test_metrics_listen_syntax_is_checked_with_the_key_named(tmp_path: Path) -> None:
    every_interface = load_settings(emulator=True, metrics_listen=":9464", metrics_insecure=True)
    assert every_interface.metrics_listen == ":9464"
    assert load_settings(emulator=True, metrics_listen="[::1]:9464").metrics_listen
    with pytest.raises(ConfigError, match="metrics_listen"):
        load_settings(emulator=True, metrics_listen="9464")


def test_action_labels_are_bounded_to_configured_actions() -> None:
    labels = ActionLabels(lambda: {"login": object(), "checkout/pay": object()})
    assert labels("login") == "login"
    assert labels("LOGIN") == "login"
    assert labels("checkout/pay") == "checkout/pay"
    assert labels("") == "none"
    assert labels("alice_smith_1987") == "other"


def test_telemetry_docs_list_every_metric() -> None:
    text = TELEMETRY_DOCS.read_text()
    start = text.index("<!-- metrics-reference:start -->\n") + len(
        "<!-- metrics-reference:start -->\n"
    )
    end = text.index("<!-- metrics-reference:end -->")
    assert text[start:end] == reference_table(), "paste reference_table() into docs/telemetry.md"


def test_config_reference_mentions_the_telemetry_settings() -> None:
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        main(["config"])
    for key in ("metrics_listen", "telemetry_console", "log_format", "access_log"):
        assert f"`{key}`" in out.getvalue()
