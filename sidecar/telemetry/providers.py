"""Tracer and meter providers built from the standard `OTEL_*` environment and two settings.

What is exported is chosen the way every OpenTelemetry SDK chooses it, so the sidecar is
pointed at Jaeger, Tempo, Grafana Alloy or an OpenTelemetry Collector with the usual variables
(`OTEL_EXPORTER_OTLP_ENDPOINT`, `OTEL_EXPORTER_OTLP_PROTOCOL`, `OTEL_SERVICE_NAME`,
`OTEL_TRACES_SAMPLER`, …). One difference, on purpose: with no exporter named and no OTLP
endpoint set, nothing is exported and the API's no-op tracer and meter are used, so a sidecar
that nobody observes pays (almost) nothing. The Prometheus scrape endpoint is a setting
(`metrics_listen`), not a variable, because it opens a port.

Providers are per sidecar, not process globals: tests run several sidecars in one process.
"""

from __future__ import annotations

import asyncio
import contextlib
import importlib.metadata
import logging
import os
import threading
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import grpc
from opentelemetry import metrics, trace
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import (
    ConsoleMetricExporter,
    MetricReader,
    PeriodicExportingMetricReader,
)
from opentelemetry.sdk.resources import SERVICE_NAME, SERVICE_VERSION, Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor, ConsoleSpanExporter, SpanExporter

from sidecar.core.ports import DecisionObserver, NullObserver, ReplayStore, Upstream
from sidecar.telemetry.interceptor import TelemetryInterceptor
from sidecar.telemetry.logs import ACCESS_LOGGER
from sidecar.telemetry.metrics import ActionLabels, Instruments
from sidecar.telemetry.observer import TelemetryObserver
from sidecar.telemetry.replay import InstrumentedReplayStore
from sidecar.telemetry.upstream import InstrumentedUpstream, RawUpstream

log = logging.getLogger(__name__)

DEFAULT_SERVICE_NAME = "recaptcha-sidecar"
SHUTDOWN_TIMEOUT = 5.0  # seconds the last flush may take at exit
SCOPE = "recaptcha-sidecar"
_OTLP_ENDPOINTS = {
    "traces": ("OTEL_EXPORTER_OTLP_ENDPOINT", "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT"),
    "metrics": ("OTEL_EXPORTER_OTLP_ENDPOINT", "OTEL_EXPORTER_OTLP_METRICS_ENDPOINT"),
}
_EXPORTER_VARIABLE = {"traces": "OTEL_TRACES_EXPORTER", "metrics": "OTEL_METRICS_EXPORTER"}
_KNOWN_EXPORTERS = {
    "traces": {"otlp", "console", "none"},
    "metrics": {"otlp", "console", "prometheus", "none"},
}


class TelemetryError(Exception):
    """Telemetry cannot be set up as configured (a bad OTEL_* value, a taken metrics port)."""


@dataclass(frozen=True)
class TelemetryOptions:
    """The sidecar's own telemetry settings; everything else comes from `OTEL_*`."""

    metrics_listen: str  # host:port of the Prometheus scrape endpoint; empty: none
    console: bool  # also print spans and metrics on stdout (debugging)
    # The endpoint serves HTTPS with these PEM files (certificate, key, and the CA client
    # certificates must chain to, if any); None: plain HTTP. Read once, at start.
    metrics_tls: tuple[Path, Path, Path | None] | None = None


def exporter_names(signal: str, environ: Mapping[str, str], console: bool) -> list[str]:
    """The exporters for one signal: `OTEL_<SIGNAL>_EXPORTER` if set, else `otlp` when an
    OTLP endpoint variable is set, else none; plus `console` when asked for."""
    variable = _EXPORTER_VARIABLE[signal]
    raw = environ.get(variable, "").strip()
    if raw:
        names = [name.strip().lower() for name in raw.split(",") if name.strip()]
    elif any(environ.get(name) for name in _OTLP_ENDPOINTS[signal]):
        names = ["otlp"]
    else:
        names = []
    unknown = sorted(set(names) - _KNOWN_EXPORTERS[signal])
    if unknown:
        raise TelemetryError(
            f"{variable}: unknown exporter {', '.join(unknown)} "
            f"(expected {', '.join(sorted(_KNOWN_EXPORTERS[signal]))})"
        )
    if console and "console" not in names:
        names.append("console")
    return [name for name in names if name != "none"]


def otlp_protocol(signal: str, environ: Mapping[str, str]) -> str:
    """`OTEL_EXPORTER_OTLP_<SIGNAL>_PROTOCOL`, else `OTEL_EXPORTER_OTLP_PROTOCOL`, else `grpc`
    (the Python SDK's default)."""
    specific = f"OTEL_EXPORTER_OTLP_{signal.upper()}_PROTOCOL"
    value = environ.get(specific) or environ.get("OTEL_EXPORTER_OTLP_PROTOCOL") or "grpc"
    value = value.strip()
    if value not in ("grpc", "http/protobuf"):
        raise TelemetryError(
            f"{specific}: unsupported OTLP protocol {value!r} (expected grpc or http/protobuf)"
        )
    return value


def _span_exporter(name: str, environ: Mapping[str, str]) -> SpanExporter:
    if name == "console":
        return ConsoleSpanExporter(service_name=None)
    if otlp_protocol("traces", environ) == "grpc":
        from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter

        return OTLPSpanExporter()
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import (
        OTLPSpanExporter as HttpSpanExporter,
    )

    return HttpSpanExporter()


def _metric_reader(name: str, environ: Mapping[str, str]) -> MetricReader:
    """A push reader; its interval is `OTEL_METRIC_EXPORT_INTERVAL` (default 60 s)."""
    if name == "console":
        return PeriodicExportingMetricReader(ConsoleMetricExporter())
    if otlp_protocol("metrics", environ) == "grpc":
        from opentelemetry.exporter.otlp.proto.grpc.metric_exporter import OTLPMetricExporter

        return PeriodicExportingMetricReader(OTLPMetricExporter())
    from opentelemetry.exporter.otlp.proto.http.metric_exporter import (
        OTLPMetricExporter as HttpMetricExporter,
    )

    return PeriodicExportingMetricReader(HttpMetricExporter())


def build_resource() -> Resource:
    """`OTEL_RESOURCE_ATTRIBUTES` and `OTEL_SERVICE_NAME` as usual; our name and version
    where they name none."""
    resource = Resource.create()
    ours: dict[str, Any] = {}
    if str(resource.attributes.get(SERVICE_NAME, "")).startswith("unknown_service"):
        ours[SERVICE_NAME] = DEFAULT_SERVICE_NAME
    if SERVICE_VERSION not in resource.attributes:
        with contextlib.suppress(importlib.metadata.PackageNotFoundError):
            ours[SERVICE_VERSION] = importlib.metadata.version("recaptcha-sidecar")
    return resource.merge(Resource(ours)) if ours else resource


def split_host_port(address: str) -> tuple[str, int]:
    """`127.0.0.1:9464`, `[::1]:9464`, `:9464` (every interface) → (host, port)."""
    host, sep, port = address.rpartition(":")
    if not sep or not port.isdigit():
        raise TelemetryError(f"metrics_listen: expected host:port, got {address!r}")
    return host.strip("[]") or "0.0.0.0", int(port)  # noqa: S104 - ":port" asks for all


class Telemetry:
    """One sidecar's providers, instruments and scrape endpoint; `shutdown` flushes them."""

    def __init__(self, options: TelemetryOptions, actions: ActionLabels) -> None:
        environ = os.environ
        disabled = environ.get("OTEL_SDK_DISABLED", "").strip().lower() == "true"
        trace_names = [] if disabled else exporter_names("traces", environ, options.console)
        metric_names = [] if disabled else exporter_names("metrics", environ, options.console)
        metrics_listen = options.metrics_listen
        self._metrics_tls = options.metrics_tls
        if not metrics_listen and "prometheus" in metric_names:
            host = environ.get("OTEL_EXPORTER_PROMETHEUS_HOST", "localhost")
            metrics_listen = f"{host}:{environ.get('OTEL_EXPORTER_PROMETHEUS_PORT', '9464')}"
        metric_names = [name for name in metric_names if name != "prometheus"]
        for signal, names in (("traces", trace_names), ("metrics", metric_names)):
            if "otlp" in names:
                otlp_protocol(signal, environ)  # a bad value fails now, before anything starts

        self.tracer_provider: TracerProvider | None = None
        self.meter_provider: MeterProvider | None = None
        self.metrics_address: str | None = None
        self._http: Any = None
        self.tracer: trace.Tracer = trace.NoOpTracer()
        meter: metrics.Meter = metrics.NoOpMeter(SCOPE)
        # The scrape endpoint first: it is the part that can still fail (a taken port).
        readers = [self._start_prometheus(metrics_listen)] if metrics_listen else []
        readers += [_metric_reader(name, environ) for name in metric_names]
        resource = build_resource() if trace_names or readers else None
        if readers:
            self.meter_provider = MeterProvider(
                resource=resource, metric_readers=readers, shutdown_on_exit=False
            )
            meter = self.meter_provider.get_meter(SCOPE)
        if trace_names:
            # Our own `shutdown` flushes, bounded; an atexit flush would wait unbounded.
            self.tracer_provider = TracerProvider(resource=resource, shutdown_on_exit=False)
            for name in trace_names:
                self.tracer_provider.add_span_processor(
                    BatchSpanProcessor(_span_exporter(name, environ))
                )
            self.tracer = self.tracer_provider.get_tracer(SCOPE)

        self.tracing = self.tracer_provider is not None
        self.metrics = self.meter_provider is not None
        self.exporters = {"traces": trace_names, "metrics": metric_names}
        self.instruments = Instruments(meter, actions)

    def _start_prometheus(self, address: str) -> MetricReader:
        from opentelemetry.exporter.prometheus import PrometheusMetricReader
        from prometheus_client import CollectorRegistry, start_http_server

        host, port = split_host_port(address)
        registry = CollectorRegistry(auto_describe=True)
        reader = PrometheusMetricReader(scope_info_enabled=False, registry=registry)
        tls: dict[str, Any] = {}
        if self._metrics_tls is not None:
            cert, key, client_ca = self._metrics_tls
            tls = {"certfile": str(cert), "keyfile": str(key)}
            if client_ca is not None:
                tls |= {"client_cafile": str(client_ca), "client_auth_required": True}
        try:
            self._http, _ = start_http_server(port, addr=host, registry=registry, **tls)
        except OSError as error:
            reader.shutdown()
            raise TelemetryError(
                f"metrics_listen: cannot listen on {address}: {error.strerror}"
            ) from None
        bound_host, bound_port = self._http.server_address[:2]
        shown = f"[{bound_host}]" if ":" in bound_host else bound_host
        self.metrics_address = f"{shown}:{bound_port}"
        return reader

    @property
    def active(self) -> bool:
        """Whether anything is observed at all (else the hot path is left untouched)."""
        return self.tracing or self.metrics

    def _recording(self) -> bool:
        """Anything to record at all: an exporter, or an access logger that writes."""
        return self.active or logging.getLogger(ACCESS_LOGGER).isEnabledFor(logging.INFO)

    def observer(self) -> DecisionObserver:
        """What the use cases report each decision to: the decision metrics, span attributes
        and access-line fields, or nothing when nothing would be recorded."""
        if not self._recording():
            return NullObserver()
        return TelemetryObserver(self.instruments, tracing=self.tracing)

    def interceptors(self) -> list[grpc.aio.ServerInterceptor]:
        """The server interceptor, or none when there is nothing to record: no exporter and
        an access logger that writes nothing."""
        if not self._recording():
            return []
        return [
            TelemetryInterceptor(
                tracer=self.tracer, instruments=self.instruments, tracing_on=self.tracing
            )
        ]

    def http_middlewares(self) -> list[Any]:
        """The HTTP listener's counterpart of `interceptors` (aiohttp middlewares; aiohttp is
        imported only when the listener is built), or none when nothing would be recorded."""
        if not self._recording():
            return []
        from sidecar.telemetry.http import http_middleware

        return [
            http_middleware(
                tracer=self.tracer, instruments=self.instruments, tracing_on=self.tracing
            )
        ]

    def instrument_upstream(self, raw: RawUpstream) -> Upstream:
        """Wrap the innermost upstream so each attempt is a span and a measurement."""
        if not self.active:
            return raw
        return InstrumentedUpstream(
            raw, tracer=self.tracer, instruments=self.instruments, propagate=self.tracing
        )

    def instrument_replay(self, store: ReplayStore) -> ReplayStore:
        """Wrap the replay store so each operation is a span and a measurement."""
        if not self.active:
            return store
        return InstrumentedReplayStore(store, tracer=self.tracer, instruments=self.instruments)

    def shutdown(self) -> None:
        """Flush what is buffered (spans, a last metrics export), then stop the scrape
        endpoint. Blocking: exporters may wait on their collector up to their timeout."""
        if self.tracer_provider is not None:
            self.tracer_provider.shutdown()
        if self.meter_provider is not None:
            self.meter_provider.shutdown()
        if self._http is not None:
            self._http.shutdown()
            self._http.server_close()
            self._http = None

    async def aclose(self, timeout: float = SHUTDOWN_TIMEOUT) -> None:
        """`shutdown` off the event loop, waited for at most `timeout` seconds: a collector
        that is down must not hold up the sidecar's exit (its exporter would retry for ~10 s
        per signal). The flush goes on in a daemon thread, which dies with the process."""
        loop = asyncio.get_running_loop()
        done = asyncio.Event()

        def work() -> None:
            try:
                self.shutdown()
            finally:
                with contextlib.suppress(RuntimeError):  # the loop may be gone by now
                    loop.call_soon_threadsafe(done.set)

        threading.Thread(target=work, name="telemetry-shutdown", daemon=True).start()
        try:
            await asyncio.wait_for(done.wait(), timeout)
        except TimeoutError:
            log.warning("telemetry flush unfinished", extra={"timeout_seconds": timeout})


def start_telemetry(options: TelemetryOptions, actions: ActionLabels) -> Telemetry:
    """Build the providers; raises TelemetryError for a configuration that cannot work."""
    telemetry = Telemetry(options, actions)
    if telemetry.active:
        log.info(
            "telemetry",
            extra={
                "traces": telemetry.exporters["traces"],
                "metrics": telemetry.exporters["metrics"],
                "metrics_listen": telemetry.metrics_address or "",
            },
        )
    return telemetry
