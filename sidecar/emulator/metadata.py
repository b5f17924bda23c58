"""A fake GCE metadata server: Application Default Credentials for workloads "on Google Cloud".

google-auth finds it through two variables: ``GCE_METADATA_IP`` (the host:port its detection
pings at ``/``) and ``GCE_METADATA_HOST`` (the host:port of ``/computeMetadata/v1/``). Both
must point here; google-auth reads them when it is first imported. It answers what
google-auth's ``compute_engine`` module asks for, with the ``Metadata-Flavor: Google`` header
on every answer and refusing requests without it, as the real server does:

- ``GET /`` (the ping), ``project/project-id``, ``project/numeric-project-id``,
  ``universe/universe-domain``,
- ``instance/service-accounts/default/?recursive=true`` (email, aliases, scopes),
- ``instance/service-accounts/{default|email}/token[?scopes=a,b]`` → ``access_token``,
  ``expires_in``, ``token_type``; the token is one the emulator's gRPC service then accepts.

Knobs (`set_faults("metadata", ...)`) act on the token endpoint: ``status`` answers that HTTP
status instead (403 as GKE answers for a broken Workload Identity binding, 500/503 for its
transient hiccups), ``hang`` holds the request until the client gives up, ``latency_ms``
delays it, ``times`` limits the fault to the next N token requests, ``token_lifetime_s`` sets
`expires_in`. It serves plain HTTP in its own threads, as the real one does on the link-local
address; keep it on loopback.
"""

from __future__ import annotations

import json
import threading
import time
import urllib.parse
from dataclasses import dataclass, fields, replace
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from sidecar.emulator.project import (
    ACCESS_TOKEN_LIFETIME_SECONDS,
    CLOUD_PLATFORM_SCOPE,
    Project,
    TokenIssuer,
)

FLAVOR_HEADER = "Metadata-Flavor"
FLAVOR = "Google"
ROOT = "/computeMetadata/v1/"
HANG_LIMIT_SECONDS = 60.0  # a hung request is released after this even if nobody gives up
# GKE's metadata server, when the Kubernetes service account may not act as the Google one.
WORKLOAD_IDENTITY_REFUSAL = (
    "Unable to generate access token; IAM returned 403 Forbidden: Permission "
    "'iam.serviceAccounts.getAccessToken' denied on resource (or it may not exist).\n"
    "This error could be caused by a missing IAM policy binding on the target IAM service "
    "account.\n"
)


@dataclass(frozen=True, slots=True)
class MetadataFaults:
    """Misbehaviour of the token endpoint; the defaults are a healthy metadata server."""

    status: int | None = None
    hang: bool = False
    latency_ms: float = 0.0
    times: int | None = None
    token_lifetime_s: int = ACCESS_TOKEN_LIFETIME_SECONDS

    @classmethod
    def from_knobs(cls, knobs: dict[str, object]) -> MetadataFaults:
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(knobs) - known)
        if unknown:
            raise ValueError(f"unknown metadata knob(s) {unknown}; known: {sorted(known)}")
        status = knobs.get("status")
        if status is not None and (
            not isinstance(status, int) or isinstance(status, bool) or not 400 <= status <= 599
        ):
            raise ValueError("status must be an HTTP error status (400-599)")
        hang = knobs.get("hang", False)
        if not isinstance(hang, bool):
            raise ValueError("hang must be true or false")
        latency = knobs.get("latency_ms", 0.0)
        if not isinstance(latency, int | float) or isinstance(latency, bool) or not latency >= 0:
            raise ValueError("latency_ms must be a number >= 0")
        times = knobs.get("times")
        if times is not None and (
            not isinstance(times, int) or isinstance(times, bool) or times < 1
        ):
            raise ValueError("times must be an integer >= 1")
        lifetime = knobs.get("token_lifetime_s", ACCESS_TOKEN_LIFETIME_SECONDS)
        if not isinstance(lifetime, int) or isinstance(lifetime, bool) or lifetime < 1:
            raise ValueError("token_lifetime_s must be an integer >= 1")
        return cls(status, hang, float(latency), times, lifetime)

    @property
    def failing(self) -> bool:
        return self.status is not None or self.hang

    def to_json(self) -> dict[str, Any]:
        return {f.name: getattr(self, f.name) for f in fields(self)}


class MetadataState:
    """Knobs and counters, shared by the control plane (event loop) and the HTTP threads."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.faults = MetadataFaults()
        self.requests: dict[str, int] = {}
        self.injected = 0
        self.released = threading.Event()  # set when the server stops: hung requests end

    def set(self, faults: MetadataFaults) -> None:
        with self._lock:
            self.faults = faults

    def count(self, path: str) -> None:
        with self._lock:
            self.requests[path] = self.requests.get(path, 0) + 1

    def take_fault(self) -> MetadataFaults | None:
        """The fault for this token request, if any, spending one of `times`."""
        with self._lock:
            faults = self.faults
            if not faults.failing:
                return None
            if faults.times is not None:
                left = faults.times - 1
                self.faults = (
                    MetadataFaults(token_lifetime_s=faults.token_lifetime_s)
                    if left == 0
                    else replace(faults, times=left)
                )
            self.injected += 1
            return faults

    def stats(self) -> dict[str, Any]:
        with self._lock:
            return {"requests": dict(self.requests), "injected_failures": self.injected}

    def reset_counters(self) -> None:
        with self._lock:
            self.requests.clear()
            self.injected = 0


class MetadataServer:
    """The HTTP server on its own threads; `close()` stops it and releases hung requests."""

    def __init__(
        self, host: str, port: int, project: Project, issuer: TokenIssuer, state: MetadataState
    ) -> None:
        handler = type(
            "Handler", (_Handler,), {"project": project, "issuer": issuer, "state": state}
        )
        self._state = state
        self._httpd = ThreadingHTTPServer((host, port), handler)
        self._httpd.daemon_threads = True
        self._thread = threading.Thread(
            target=self._httpd.serve_forever, args=(0.05,), name="gce-metadata", daemon=True
        )
        self._thread.start()

    @property
    def address(self) -> str:
        """``host:port``, the value for both ``GCE_METADATA_HOST`` and ``GCE_METADATA_IP``."""
        host, port = self._httpd.server_address[:2]
        return f"{host!s}:{port}"

    def environment(self) -> dict[str, str]:
        """What a process needs to find this server through google-auth."""
        return {"GCE_METADATA_HOST": self.address, "GCE_METADATA_IP": self.address}

    def close(self) -> None:
        self._state.released.set()
        self._httpd.shutdown()
        self._httpd.server_close()
        self._thread.join(5)


def start_metadata_server(
    listen: str, project: Project, issuer: TokenIssuer, state: MetadataState
) -> MetadataServer:
    """Serve on ``host:port`` (port 0 picks one); OSError when it cannot bind."""
    host, _, port = listen.rpartition(":")
    if not host or not port.isdigit():
        raise ValueError(f"metadata server address must be host:port, not {listen!r}")
    return MetadataServer(host.strip("[]"), int(port), project, issuer, state)


class _Handler(BaseHTTPRequestHandler):
    project: Project
    issuer: TokenIssuer
    state: MetadataState
    protocol_version = "HTTP/1.1"
    server_version = "Metadata Server for VM"  # what the real one calls itself
    sys_version = ""

    def log_message(self, format: str, *args: Any) -> None:
        """Quiet: the request log would carry the service account email."""

    def do_GET(self) -> None:
        url = urllib.parse.urlsplit(self.path)
        self.state.count(url.path)
        if url.path == "/":
            self._send(200, "computeMetadata/\n", "application/text")
            return
        if self.headers.get(FLAVOR_HEADER) != FLAVOR:
            self._send(403, "Missing Metadata-Flavor:Google header.\n", "text/html")
            return
        if not url.path.startswith(ROOT):
            self._send(404, "Not Found\n", "text/html")
            return
        path = url.path[len(ROOT) :]
        query = urllib.parse.parse_qs(url.query)
        accounts = ("default", self.project.email)
        if path == "project/project-id":
            self._send(200, self.project.id or "emulator", "application/text")
        elif path == "project/numeric-project-id":
            self._send(200, self.project.number, "application/text")
        elif path == "universe/universe-domain":
            self._send(200, "googleapis.com", "application/text")
        elif path in {f"instance/service-accounts/{a}/" for a in accounts}:
            body = {
                "aliases": ["default"],
                "email": self.project.email,
                "scopes": [CLOUD_PLATFORM_SCOPE],
            }
            self._send(200, json.dumps(body), "application/json")
        elif path in {f"instance/service-accounts/{a}/email" for a in accounts}:
            self._send(200, self.project.email, "application/text")
        elif path in {f"instance/service-accounts/{a}/token" for a in accounts}:
            self._token(query)
        else:
            self._send(404, "Not Found\n", "text/html")

    def _token(self, query: dict[str, list[str]]) -> None:
        fault = self.state.take_fault()
        faults = fault or self.state.faults
        if faults.latency_ms:
            time.sleep(faults.latency_ms / 1000.0)
        if fault is not None and fault.hang:
            self.state.released.wait(HANG_LIMIT_SECONDS)
            self.close_connection = True
            return
        if fault is not None and fault.status is not None:
            refusal = WORKLOAD_IDENTITY_REFUSAL if fault.status == 403 else "Internal error\n"
            self._send(fault.status, refusal, "text/plain")
            return
        scopes = [s for value in query.get("scopes", []) for s in value.split(",") if s]
        token, expires_in = self.issuer.issue(
            scopes or [CLOUD_PLATFORM_SCOPE], faults.token_lifetime_s
        )
        body = {"access_token": token, "expires_in": expires_in, "token_type": "Bearer"}
        self._send(200, json.dumps(body), "application/json")

    def _send(self, status: int, body: str, content_type: str) -> None:
        data = body.encode()
        self.send_response(status)
        self.send_header(FLAVOR_HEADER, FLAVOR)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)
