"""The HTTP glue of two front doors, siteverify and forward-auth: aiohttp request → the door's
wire format (`siteverify`, `forward_auth`) → the core's Verifier → the door's answer.

Neither door ever answers a bad request with a 500: siteverify answers Google's legacy JSON
(HTTP 200, as Google does, so the libraries read the error code; 413 for a body it will not
read), forward-auth answers 200 or 403 only (nginx turns anything else into a 500 for the end
user), with the decision headers for the proxy to pass on. Values of the request (token,
secret, IP) never reach a log line: only the error's kind or the offending field's name.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass

from aiohttp import web

from sidecar.config import Settings
from sidecar.core.errors import InvalidArgument, Overloaded
from sidecar.core.ports import CallContext
from sidecar.core.verify import Verifier
from sidecar.server import forward_auth, siteverify
from sidecar.server.decision_headers import decision_headers, denial_body, denial_headers
from sidecar.server.http import (
    BodyTooLarge,
    HttpListener,
    HttpSecurity,
    Middleware,
    Refusal,
    json_response,
    peer_host,
    read_body,
)
from sidecar.server.listeners import ListenError
from sidecar.server.security import SecurityError, TlsFiles, TokenFile
from sidecar.server.siteverify_secrets import SecretsFileError, SiteverifySecrets

log = logging.getLogger(__name__)

SITEVERIFY_PATHS = ("/recaptcha/api/siteverify", "/siteverify")
FORWARD_AUTH_PATH = "/forward-auth"
# What the decision observer (metrics, span attributes, access fields) is told of each call.
SITEVERIFY_CALL = CallContext("siteverify", "siteverify")
FORWARD_AUTH_CALL = CallContext("forward-auth", "check")


@dataclass(frozen=True)
class HttpDoors:
    """What the two doors need: the core's Assess use case, the secrets mapping (None: every
    secret is unknown) and the forward-auth settings."""

    verifier: Verifier
    secrets: SiteverifySecrets | None
    forward_auth: forward_auth.ForwardAuthSettings

    def routes(self) -> list[web.RouteDef]:
        """Every route of both doors, for `HttpListener.add_routes`."""
        verify = [
            web.route(m, p, self.siteverify) for p in SITEVERIFY_PATHS for m in ("GET", "POST")
        ]
        # Any method: Traefik's `preserveRequestMethod` forwards the end user's (PUT, DELETE,
        # …), and a 405 is no answer a proxy knows what to do with.
        return [*verify, web.route("*", FORWARD_AUTH_PATH, self.check)]

    # ---- siteverify -------------------------------------------------------------------------

    async def siteverify(self, request: web.Request) -> web.Response:
        """`/recaptcha/api/siteverify` and `/siteverify`: Google's legacy answer."""
        try:
            body = (
                await read_body(request, siteverify.MAX_BODY_BYTES)
                if request.can_read_body
                else b""
            )
        except BodyTooLarge:
            return json_response(413, siteverify.failure(siteverify.BAD_REQUEST))
        try:
            params = siteverify.parse_request(
                request.method,
                request.headers.get("Content-Type", ""),
                list(request.query.items()),
                body,
            )
        except siteverify.BadRequest as error:
            log.info("siteverify: bad request: %s", error)
            return json_response(200, siteverify.failure(siteverify.BAD_REQUEST))
        site_key = None
        if params.secret and self.secrets is not None:
            site_key = self.secrets.site_key_for(params.secret)
        codes = siteverify.precheck(params, site_key)
        if codes or site_key is None:
            return json_response(200, siteverify.failure(*codes))
        try:
            decision = await self.verifier.assess(
                siteverify.to_assessment_request(params, site_key), call=SITEVERIFY_CALL
            )
        except InvalidArgument as error:
            code = siteverify.invalid_argument_code(error.field)
            return json_response(200, siteverify.failure(code))
        except Overloaded:
            return json_response(200, siteverify.failure(siteverify.INTERNAL_ERROR))
        except Exception:  # a bug: the library still gets an answer it can read
            log.exception("siteverify failed")
            return json_response(200, siteverify.failure(siteverify.INTERNAL_ERROR))
        return json_response(200, siteverify.answer(decision), decision_headers(decision))

    # ---- forward-auth -----------------------------------------------------------------------

    async def check(self, request: web.Request) -> web.Response:
        """`/forward-auth`, any method: 200 with the decision headers, or 403; never else."""
        try:
            assessment = forward_auth.to_assessment_request(
                peer=peer_host(request),
                headers=list(request.headers.items()),
                query=list(request.query.items()),
                settings=self.forward_auth,
            )
            decision = await self.verifier.assess(assessment, call=FORWARD_AUTH_CALL)
        except (forward_auth.BadForwardAuth, InvalidArgument) as error:
            log.info("forward-auth: refused: %s", error)
            return json_response(403, {"allowed": False, "error": str(error)})
        except Overloaded:
            return json_response(403, {"allowed": False, "error": "overloaded"})
        except Exception:  # a bug: denied, never a 500 the proxy would show
            log.exception("forward-auth failed")
            return json_response(403, {"allowed": False, "error": "internal"})
        if decision.allowed:
            return json_response(200, {"allowed": True}, decision_headers(decision))
        return json_response(403, denial_body(decision), denial_headers(decision))


async def start_http(
    settings: Settings,
    verifier: Verifier,
    middlewares: Sequence[Middleware] = (),
    routes: Sequence[web.AbstractRouteDef] = (),
    refusals: Sequence[tuple[str, Refusal]] = (),
    *,
    reuse_port: bool = False,
) -> HttpListener:
    """The HTTP listener with both doors and the other doors' `routes` (Google's REST API) and
    `refusals` (their answers to requests the listener refuses), bound and serving
    (`ListenError` if it cannot be, naming the setting). Imported by the composition root only
    when `http_listen` is set."""
    try:
        secrets = None
        if settings.siteverify_secrets_file is not None:
            secrets = SiteverifySecrets(settings.siteverify_secrets_file)
        tls = None
        if settings.tls_cert_file is not None and settings.tls_key_file is not None:
            tls = TlsFiles(
                settings.tls_cert_file, settings.tls_key_file, settings.tls_client_ca_file
            )
        token = TokenFile(settings.auth_token_file) if settings.auth_token_file else None
    except SecretsFileError as error:
        raise ListenError(f"siteverify_secrets_file: {error}") from None
    except SecurityError as error:
        raise ListenError(str(error)) from None
    doors = HttpDoors(
        verifier=verifier,
        secrets=secrets,
        forward_auth=forward_auth.ForwardAuthSettings(
            token_header=settings.forward_auth_token_header,
            trusted_proxies=forward_auth.parse_networks(settings.forward_auth_trusted_proxies),
        ),
    )
    listener = HttpListener(
        settings.http_listen,
        security=HttpSecurity(tls=tls, token=token, secure_loopback=settings.secure_loopback),
        socket_mode=settings.socket_mode,
        shutdown_grace=settings.shutdown_grace,
        middlewares=middlewares,
        reuse_port=reuse_port,
    )
    listener.add_routes(doors.routes())
    listener.add_routes(routes)
    for prefix, refusal in refusals:
        listener.add_refusal(prefix, refusal)
    await listener.start()
    log.info("http listening", extra={"addresses": listener.addresses})
    return listener
