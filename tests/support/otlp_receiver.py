"""A real OTLP receiver for tests: opentelemetry-proto's TraceService and MetricsService on a
gRPC server, and the same two over HTTP (`/v1/traces`, `/v1/metrics`, protobuf bodies).

It keeps every export request, raw bytes included, so a test can look at the spans and data
points the sidecar sent and search every byte it exported.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from concurrent import futures
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import grpc
from opentelemetry.proto.collector.metrics.v1 import metrics_service_pb2, metrics_service_pb2_grpc
from opentelemetry.proto.collector.trace.v1 import trace_service_pb2, trace_service_pb2_grpc
from opentelemetry.proto.common.v1 import common_pb2
from opentelemetry.proto.trace.v1 import trace_pb2

from tests.support.polling import wait_until


def attributes(values: Any) -> dict[str, Any]:
    """OTLP KeyValue list → a plain dict."""
    out: dict[str, Any] = {}
    for item in values:
        value: common_pb2.AnyValue = item.value
        kind = value.WhichOneof("value")
        out[item.key] = getattr(value, kind) if kind else None
    return out


@dataclass(frozen=True)
class ReceivedSpan:
    """One exported span, flattened for assertions."""

    name: str
    kind: int
    trace_id: str
    span_id: str
    parent_span_id: str
    attributes: dict[str, Any]
    status_code: int
    resource: dict[str, Any]

    @property
    def is_server(self) -> bool:
        return self.kind == trace_pb2.Span.SPAN_KIND_SERVER

    @property
    def is_client(self) -> bool:
        return self.kind == trace_pb2.Span.SPAN_KIND_CLIENT


class _Store:
    """What arrived, guarded by a lock (the servers answer on their own threads)."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.traces: list[trace_service_pb2.ExportTraceServiceRequest] = []
        self.metrics: list[metrics_service_pb2.ExportMetricsServiceRequest] = []
        self.raw: list[bytes] = []
        self.metadata: list[tuple[tuple[str, str], ...]] = []

    def add_traces(self, request: Any, raw: bytes, metadata: Any = ()) -> None:
        with self.lock:
            self.traces.append(request)
            self.raw.append(raw)
            self.metadata.append(tuple(metadata))

    def add_metrics(self, request: Any, raw: bytes, metadata: Any = ()) -> None:
        with self.lock:
            self.metrics.append(request)
            self.raw.append(raw)
            self.metadata.append(tuple(metadata))


class OtlpReceiver:
    """Collected OTLP exports, with helpers to read them and wait for them."""

    def __init__(self, store: _Store, endpoint: str, stop: Callable[[], None]) -> None:
        self._store = store
        self.endpoint = endpoint
        self._stop = stop

    def spans(self) -> list[ReceivedSpan]:
        with self._store.lock:
            requests = list(self._store.traces)
        found = []
        for request in requests:
            for resource_spans in request.resource_spans:
                resource = attributes(resource_spans.resource.attributes)
                for scope_spans in resource_spans.scope_spans:
                    for span in scope_spans.spans:
                        found.append(
                            ReceivedSpan(
                                name=span.name,
                                kind=span.kind,
                                trace_id=span.trace_id.hex(),
                                span_id=span.span_id.hex(),
                                parent_span_id=span.parent_span_id.hex(),
                                attributes=attributes(span.attributes),
                                status_code=span.status.code,
                                resource=resource,
                            )
                        )
        return found

    def metric_points(self, name: str) -> list[tuple[dict[str, Any], Any]]:
        """(attributes, data point) of the newest export that has metric `name`."""
        with self._store.lock:
            requests = list(self._store.metrics)
        for request in reversed(requests):
            for resource_metrics in request.resource_metrics:
                for scope_metrics in resource_metrics.scope_metrics:
                    for metric in scope_metrics.metrics:
                        if metric.name != name:
                            continue
                        data = getattr(metric, metric.WhichOneof("data"))
                        return [(attributes(p.attributes), p) for p in data.data_points]
        return []

    def metric_names(self) -> set[str]:
        with self._store.lock:
            requests = list(self._store.metrics)
        return {
            metric.name
            for request in requests
            for resource_metrics in request.resource_metrics
            for scope_metrics in resource_metrics.scope_metrics
            for metric in scope_metrics.metrics
        }

    def exported_bytes(self) -> list[bytes]:
        """Every request body as it arrived, and each as protobuf text (decoded strings)."""
        with self._store.lock:
            raw = list(self._store.raw)
            texts = [str(r).encode() for r in (*self._store.traces, *self._store.metrics)]
        return raw + texts

    def wait_for(self, predicate: Callable[[OtlpReceiver], bool], timeout: float = 20.0) -> bool:
        """Poll until `predicate(self)` holds; False after `timeout` seconds."""
        return wait_until(lambda: predicate(self), timeout)

    def close(self) -> None:
        self._stop()


class _TraceService(trace_service_pb2_grpc.TraceServiceServicer):  # type: ignore[misc]
    def __init__(self, store: _Store) -> None:
        self._store = store

    def Export(self, request: Any, context: grpc.ServicerContext) -> Any:
        self._store.add_traces(request, request.SerializeToString(), context.invocation_metadata())
        return trace_service_pb2.ExportTraceServiceResponse()


class _MetricsService(metrics_service_pb2_grpc.MetricsServiceServicer):  # type: ignore[misc]
    def __init__(self, store: _Store) -> None:
        self._store = store

    def Export(self, request: Any, context: grpc.ServicerContext) -> Any:
        self._store.add_metrics(request, request.SerializeToString(), context.invocation_metadata())
        return metrics_service_pb2.ExportMetricsServiceResponse()


def start_grpc_receiver() -> OtlpReceiver:
    """OTLP/gRPC on 127.0.0.1:0; `endpoint` is `http://127.0.0.1:PORT` (plaintext)."""
    store = _Store()
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=4))
    trace_service_pb2_grpc.add_TraceServiceServicer_to_server(_TraceService(store), server)
    metrics_service_pb2_grpc.add_MetricsServiceServicer_to_server(_MetricsService(store), server)
    port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    return OtlpReceiver(store, f"http://127.0.0.1:{port}", lambda: server.stop(0).wait())


def start_http_receiver() -> OtlpReceiver:
    """OTLP/HTTP (protobuf) on 127.0.0.1:0; `endpoint` is the base URL (`/v1/...` appended
    by the exporters)."""
    store = _Store()

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
            if self.path == "/v1/traces":
                store.add_traces(trace_service_pb2.ExportTraceServiceRequest.FromString(body), body)
                answer = trace_service_pb2.ExportTraceServiceResponse()
            elif self.path == "/v1/metrics":
                store.add_metrics(
                    metrics_service_pb2.ExportMetricsServiceRequest.FromString(body), body
                )
                answer = metrics_service_pb2.ExportMetricsServiceResponse()
            else:
                self.send_error(404)
                return
            payload = answer.SerializeToString()
            self.send_response(200)
            self.send_header("Content-Type", "application/x-protobuf")
            self.send_header("Content-Length", str(len(payload)))
            self.end_headers()
            self.wfile.write(payload)

        def log_message(self, format: str, *args: Any) -> None:  # quiet
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()

    def stop() -> None:
        server.shutdown()
        server.server_close()

    return OtlpReceiver(store, f"http://127.0.0.1:{server.server_address[1]}", stop)


def iter_secrets_encodings(secret: str) -> Iterator[tuple[str, bytes]]:
    """A value and its obvious encodings, as bytes to search for: raw, JSON-escaped,
    URL-quoted, hex, base64 (standard and URL-safe, at every alignment), SHA-256 hex."""
    import base64
    import hashlib
    import json
    import urllib.parse

    raw = secret.encode()
    yield "raw", raw
    yield "lower", secret.lower().encode()
    yield "json", json.dumps(secret)[1:-1].encode()
    yield "url", urllib.parse.quote(secret, safe="").encode()
    yield "url+", urllib.parse.quote_plus(secret).encode()
    yield "hex", raw.hex().encode()
    yield "HEX", raw.hex().upper().encode()
    yield "sha256", hashlib.sha256(raw).hexdigest().encode()
    for encode, label in (
        (base64.b64encode, "base64"),
        (base64.urlsafe_b64encode, "base64url"),
    ):
        for shift in range(3):
            encoded = encode(b"\0" * shift + raw).rstrip(b"=")
            # Drop the characters that depend on what precedes and follows the value.
            core = encoded[(shift * 4 + 2) // 3 : len(encoded) - 3]
            if len(core) >= 8:
                yield f"{label}@{shift}", core
