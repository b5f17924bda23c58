"""The Envoy ext_authz v3 front door's wire format: `CheckRequest` in, `CheckResponse` out
(`envoy.service.auth.v3.Authorization/Check`, for Envoy's and Istio's CUSTOM authorization).

Inputs: the token from the `forward_auth_token_header` header, the client IP from
`attributes.source.address` (Envoy's own view of the downstream peer, after its XFF rules), the
user agent, the requested URI (scheme, host, path), JA3/JA4 from `x-ja3-fingerprint` /
`x-ja4-fingerprint` (which the Envoy configuration overwrites from `%TLS_JA3_FINGERPRINT%`),
and the expected action **only** from `context_extensions["recaptcha_action"]`, which only
Envoy's route configuration can set.

A denial is data, never a gRPC error: an error status would let Envoy's `failure_mode_allow`
turn it into a pass. Allowed: OK, with the decision headers set on the request that goes on
(overwriting any the end user sent; names without a value removed). Denied: PERMISSION_DENIED
with a 403, a small JSON body and the denial headers (`decision_headers.denial_headers`).
"""

from __future__ import annotations

import json
from collections.abc import Sequence

import grpc
from google.rpc import code_pb2, status_pb2

from sidecar.core.errors import InvalidArgument, Overloaded
from sidecar.core.model import AssessmentRequest, Decision
from sidecar.core.ports import CallContext
from sidecar.core.verify import Verifier
from sidecar.server.decision_headers import decision_headers, denial_body, denial_headers
from sidecar.third_party.envoy.config.core.v3 import base_pb2
from sidecar.third_party.envoy.service.auth.v3 import external_auth_pb2, external_auth_pb2_grpc
from sidecar.third_party.envoy.type.v3 import http_status_pb2

ACTION_EXTENSION = "recaptcha_action"
_OVERWRITE = base_pb2.HeaderValueOption.OVERWRITE_IF_EXISTS_OR_ADD


def to_assessment_request(
    check: external_auth_pb2.CheckRequest, token_header: str
) -> AssessmentRequest:
    """The core's request for one Check. Envoy lower-cases header names in the map."""
    attributes = check.attributes
    http = attributes.request.http
    headers = http.headers
    uri = ""
    if http.path:
        uri = f"{http.scheme or 'http'}://{http.host}{http.path}" if http.host else http.path
    return AssessmentRequest(
        token=headers.get(token_header.lower(), "").strip(),
        expected_action=attributes.context_extensions.get(ACTION_EXTENSION, ""),
        user_ip_address=attributes.source.address.socket_address.address,
        user_agent=headers.get("user-agent", ""),
        ja3=headers.get("x-ja3-fingerprint", ""),
        ja4=headers.get("x-ja4-fingerprint", ""),
        requested_uri=uri,
    )


def _options(headers: Sequence[tuple[str, str]]) -> list[base_pb2.HeaderValueOption]:
    return [
        base_pb2.HeaderValueOption(
            header=base_pb2.HeaderValue(key=name, value=value), append_action=_OVERWRITE
        )
        for name, value in headers
    ]


def allowed(decision: Decision) -> external_auth_pb2.CheckResponse:
    """OK: the request goes on with the decision headers (and without stale ones)."""
    headers = decision_headers(decision)
    return external_auth_pb2.CheckResponse(
        status=status_pb2.Status(code=code_pb2.OK),
        ok_response=external_auth_pb2.OkHttpResponse(
            headers=_options([(n, v) for n, v in headers if v]),
            headers_to_remove=[n for n, v in headers if not v],
        ),
    )


def denied(
    body: dict[str, object], headers: Sequence[tuple[str, str]] = ()
) -> external_auth_pb2.CheckResponse:
    """PERMISSION_DENIED: Envoy answers the end user 403 with this JSON body and headers."""
    return external_auth_pb2.CheckResponse(
        status=status_pb2.Status(code=code_pb2.PERMISSION_DENIED, message="recaptcha"),
        denied_response=external_auth_pb2.DeniedHttpResponse(
            status=http_status_pb2.HttpStatus(code=http_status_pb2.Forbidden),
            headers=_options([("content-type", "application/json"), *headers]),
            body=json.dumps(body, separators=(",", ":")),
        ),
    )


def answer(decision: Decision) -> external_auth_pb2.CheckResponse:
    """The Check answer for a decision of the core."""
    if decision.allowed:
        return allowed(decision)
    return denied(denial_body(decision), denial_headers(decision))


def refused(reason: str) -> external_auth_pb2.CheckResponse:
    """A Check the core could not take (unreadable input, overload): denied, saying why."""
    return denied({"allowed": False, "error": reason})


SERVICE_NAME = external_auth_pb2.DESCRIPTOR.services_by_name["Authorization"].full_name
CHECK_CALL = CallContext(SERVICE_NAME, "Check")


class AuthorizationServicer(external_auth_pb2_grpc.AuthorizationServicer):
    """`envoy.service.auth.v3.Authorization` over the core: every Check is one Assess (the
    same single use, policy, retries and telemetry), answered as data."""

    def __init__(self, verifier: Verifier, token_header: str) -> None:
        self._verifier = verifier
        self._token_header = token_header

    async def Check(
        self, request: external_auth_pb2.CheckRequest, context: grpc.aio.ServicerContext
    ) -> external_auth_pb2.CheckResponse:
        try:
            assessment = to_assessment_request(request, self._token_header)
            decision = await self._verifier.assess(
                assessment, context.time_remaining(), call=CHECK_CALL
            )
        except InvalidArgument as error:
            return refused(str(error))
        except Overloaded:
            return refused("overloaded")
        return answer(decision)


class AuthorizationFrontDoor:
    """The ext_authz front door as the composition root plugs it in: its service names (for
    reflection, the drain gate, health) and how to add it to each gRPC server."""

    services = (SERVICE_NAME,)

    def __init__(self, verifier: Verifier, token_header: str) -> None:
        self._servicer = AuthorizationServicer(verifier, token_header)

    def add_to(self, server: grpc.aio.Server) -> None:
        external_auth_pb2_grpc.add_AuthorizationServicer_to_server(self._servicer, server)
