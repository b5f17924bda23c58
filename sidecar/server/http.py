"""The HTTP listener (`http_listen`): one aiohttp server in the sidecar's own event loop, for
the front doors that speak HTTP (siteverify, forward-auth, the Google-compatible REST face).

The listener-security rules are the gRPC listeners' (`sidecar.config.addresses`): loopback and
Unix-socket addresses are served as they are; addresses reachable from outside the pod get an
application of their own that requires TLS (mTLS with `tls_client_ca_file`) and/or the bearer
token, unless `insecure_listen` said otherwise at load. Front doors hand in their routes
(`add_routes`) before `start`; each application registers all of them, so a door never
needs to know which listener a request came through.

aiohttp was chosen over an ASGI app on uvicorn (figures in docs/front-doors.md): its runner
lives in the caller's loop without taking the signal handlers, serves TCP and Unix sockets
with an ssl context per site, and brings the router, body limits and form parsing the doors
need. It costs ~9 MB of RSS, so the composition root imports this module only when
`http_listen` is set.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import socket
from collections.abc import Awaitable, Callable, Iterable, Sequence
from dataclasses import dataclass

from aiohttp import http_exceptions, web

from sidecar.config.addresses import host_of, is_exposed, is_unix
from sidecar.server.listeners import ListenError, clear_stale_socket, socket_path
from sidecar.server.security import (
    SecurityError,
    TlsFiles,
    TokenFile,
    apply_socket_mode,
    bearer_token,
)

log = logging.getLogger(__name__)

# The largest body any door reads (issue 16's REST face: one Event); each door bounds its
# own below this with `read_body`.
MAX_BODY_BYTES = 1024 * 1024
# aiohttp's default 8 KiB per request line and header would refuse tokens the core accepts
# (up to 10,000 bytes, in a header or a GET query string).
MAX_LINE_BYTES = 32 * 1024
BACKLOG = 1024
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
Middleware = Callable[[web.Request, Handler], Awaitable[web.StreamResponse]]


class _DropMalformedRequests(logging.Filter):
    """aiohttp logs every request its parser refuses (a duplicate Host or User-Agent, a line
    over the limit) at ERROR with a traceback, before answering 400: anyone could flood the
    log that way. The 400 is the answer; the record is dropped."""

    def filter(self, record: logging.LogRecord) -> bool:
        error = record.exc_info[1] if record.exc_info else None
        return not isinstance(error, http_exceptions.HttpProcessingError)


logging.getLogger("aiohttp.server").addFilter(_DropMalformedRequests())


class BodyTooLarge(Exception):
    """The request body is over the door's limit; it was not read in whole."""


async def read_body(request: web.Request, limit: int) -> bytes:
    """The body, read only up to `limit` bytes: `BodyTooLarge` past it, whether the client
    announced the length or streamed it chunked."""
    if request.content_length is not None and request.content_length > limit:
        raise BodyTooLarge(f"body of {request.content_length} bytes, limit {limit}")
    # `read(n)` returns what has arrived, up to n: a body in several chunks needs several.
    chunks: list[bytes] = []
    size = 0
    while chunk := await request.content.read(limit + 1 - size):
        chunks.append(chunk)
        size += len(chunk)
        if size > limit:
            raise BodyTooLarge(f"body over {limit} bytes")
    return b"".join(chunks)


def json_response(
    status: int, body: object, headers: Sequence[tuple[str, str]] = ()
) -> web.Response:
    """A compact JSON answer with the given headers."""
    response = web.Response(
        status=status, body=json.dumps(body, separators=(",", ":")), content_type="application/json"
    )
    for name, value in headers:
        response.headers[name] = value
    return response


def peer_host(request: web.Request) -> str | None:
    """The direct peer's IP, None on a Unix socket (the peer is inside the pod)."""
    peer = request.transport.get_extra_info("peername") if request.transport else None
    if isinstance(peer, tuple) and peer:
        return str(peer[0])
    return None


@dataclass(frozen=True)
class HttpSecurity:
    """What exposed HTTP addresses require: the same files as the gRPC listeners."""

    tls: TlsFiles | None = None
    token: TokenFile | None = None
    secure_loopback: bool = False


# A door's own answer for a request the listener refuses (no or a wrong bearer token), in the
# door's wire format: called with the HTTP status and the reason.
Refusal = Callable[[int, str], web.Response]
_UNAUTHENTICATED = "missing or invalid bearer token"


def _default_refusal(status: int, reason: str) -> web.Response:
    return json_response(status, {"error": reason})


def _bearer_middleware(token: TokenFile, refusals: Sequence[tuple[str, Refusal]]) -> Middleware:
    @web.middleware
    async def require_token(request: web.Request, handler: Handler) -> web.StreamResponse:
        presented = bearer_token([(k.lower(), v) for k, v in request.headers.items()])
        if presented is None or not token.matches(presented):
            refuse = next(
                (r for prefix, r in refusals if request.path.startswith(prefix)), _default_refusal
            )
            response = refuse(401, _UNAUTHENTICATED)
            response.headers["WWW-Authenticate"] = 'Bearer realm="recaptcha-sidecar"'
            return response
        return await handler(request)

    return require_token


class HttpListener:
    """Serves the front doors' routes on `http_listen`: `add_routes`, `start`, `stop`."""

    def __init__(
        self,
        addresses: Sequence[str],
        *,
        security: HttpSecurity,
        socket_mode: str | None = None,
        shutdown_grace: float = 10.0,
        middlewares: Sequence[Middleware] = (),
        reuse_port: bool = False,
    ) -> None:
        self._addresses = list(addresses)
        self._reuse_port = reuse_port  # a worker's: the supervisor holds the ports
        # Outermost (telemetry): requests refused for a missing token are still observed.
        self._middlewares = list(middlewares)
        self._security = security
        self._socket_mode = socket_mode
        self._grace = shutdown_grace
        self._routes: list[web.AbstractRouteDef] = []
        self._refusals: list[tuple[str, Refusal]] = []
        self._runners: list[web.AppRunner] = []
        self._socket_files: list[str] = []  # ours to remove: bound by this listener
        self.addresses: list[str] = []

    def add_routes(self, routes: Iterable[web.AbstractRouteDef]) -> None:
        """A front door's routes; every listener serves them. Call before `start`."""
        if self._runners:
            raise RuntimeError("routes must be added before the listener starts")
        self._routes.extend(routes)

    def add_refusal(self, prefix: str, refusal: Refusal) -> None:
        """How a door answers, under its path `prefix`, a request the listener refuses (so
        Google's REST clients read Google's error shape). Call before `start`."""
        if self._runners:
            raise RuntimeError("refusals must be added before the listener starts")
        self._refusals.append((prefix, refusal))

    def _application(self, exposed: bool) -> web.Application:
        middlewares: list[Middleware] = list(self._middlewares)
        if exposed and self._security.token is not None:
            middlewares.append(_bearer_middleware(self._security.token, tuple(self._refusals)))
        app = web.Application(client_max_size=MAX_BODY_BYTES, middlewares=middlewares)  # type: ignore[arg-type]
        app.add_routes(self._routes)
        return app

    async def start(self) -> list[str]:
        """Bind every address (or raise `ListenError`, with nothing left open) and serve."""
        try:
            ssl_context = self._security.tls.ssl_context() if self._security.tls else None
        except SecurityError as error:
            raise ListenError(str(error)) from None
        runners: dict[bool, web.AppRunner] = {}
        bound: list[str] = []
        try:
            for address in self._addresses:
                exposed = is_exposed(address, secure_loopback=self._security.secure_loopback)
                runner = runners.get(exposed)
                if runner is None:
                    runner = web.AppRunner(
                        self._application(exposed),
                        access_log=None,
                        handle_signals=False,
                        shutdown_timeout=self._grace,
                        max_line_size=MAX_LINE_BYTES,
                        max_field_size=MAX_LINE_BYTES,
                    )
                    await runner.setup()
                    runners[exposed] = runner
                    self._runners.append(runner)
                sock, shown = self._bind(address)
                site = web.SockSite(runner, sock, ssl_context=ssl_context if exposed else None)
                await site.start()
                bound.append(shown)
        except BaseException:
            await self.stop()
            raise
        self.addresses = bound
        return bound

    def _bind(self, address: str) -> tuple[socket.socket, str]:
        if is_unix(address):
            clear_stale_socket(address)
            path = socket_path(address)
            sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            try:
                sock.bind(path)
            except OSError as error:
                sock.close()
                raise ListenError(f"cannot listen on {address}: {error.strerror}") from None
            self._socket_files.append(path)
            if self._socket_mode is not None:
                apply_socket_mode(address, self._socket_mode)
            sock.listen(BACKLOG)
            return sock, address
        host, port = host_of(address), int(address.rsplit(":", 1)[1])
        family = socket.AF_INET6 if ":" in host else socket.AF_INET
        try:
            # SO_REUSEADDR (TIME_WAIT) but SO_REUSEPORT only for workers: a second sidecar
            # on a taken port must fail, not share it.
            sock = socket.create_server(
                (host, port), family=family, backlog=BACKLOG, reuse_port=self._reuse_port
            )
        except OSError as error:
            raise ListenError(
                f"cannot listen on {address}: {error.strerror or 'address not available'}"
            ) from None
        real = sock.getsockname()[1]
        shown_host = f"[{host}]" if family == socket.AF_INET6 else host
        return sock, f"{shown_host}:{real}"

    async def stop(self) -> None:
        """Stop accepting, let running requests finish (up to `shutdown_grace`), close; the
        Unix socket files this listener bound are removed. Stopping twice is harmless."""
        runners, self._runners = self._runners, []
        for runner in runners:
            await runner.cleanup()
        files, self._socket_files = self._socket_files, []
        for path in files:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(path)
