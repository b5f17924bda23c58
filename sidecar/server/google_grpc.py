"""`google.cloud.recaptchaenterprise.v1.RecaptchaEnterpriseService` on the sidecar's gRPC
listeners, so Google's own client libraries work by changing only their endpoint.

google-cloud-recaptcha-enterprise ships proto-plus messages and no service descriptor, and
compiling googleapis' `.proto` beside it fails on duplicate symbols. So the methods are
generic handlers on the plain protobuf classes (`Type.pb()`), requests decoded here (a body
that does not decode is Google's INVALID_ARGUMENT, not gRPC's UNKNOWN) and Google's answer
sent back as the bytes it came in; and a small service descriptor, built on the package's
registered file (`sidecar.googleapi.service`, shared with the emulator), is added to the
default pool so that reflection lists the service.

Only CreateAssessment and AnnotateAssessment are served; every other method of Google's
service answers UNIMPLEMENTED naming the two (names outside Google's list get gRPC's own
UNIMPLEMENTED, so no caller can grow the per-method metric labels).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable

import grpc

from sidecar.googleapi import errors
from sidecar.googleapi.service import SERVED, SERVICE, register_service_descriptor
from sidecar.server.google_face import (
    IDEMPOTENCY_HEADER,
    AnnotateAssessmentRequestPb,
    CreateAssessmentRequestPb,
    FaceAnswer,
    GoogleFace,
    unserved,
)

# The rest of Google's v1 service (google-cloud-recaptcha-enterprise 1.34's transport).
UNSERVED = (
    "AddIpOverride",
    "CreateFirewallPolicy",
    "CreateKey",
    "DeleteFirewallPolicy",
    "DeleteKey",
    "GetFirewallPolicy",
    "GetKey",
    "GetMetrics",
    "GetPolicy",
    "ListFirewallPolicies",
    "ListIpOverrides",
    "ListKeys",
    "ListRelatedAccountGroupMemberships",
    "ListRelatedAccountGroups",
    "MigrateKey",
    "RemoveIpOverride",
    "ReorderFirewallPolicies",
    "RetrieveLegacySecretKey",
    "SearchRelatedAccountGroupMemberships",
    "UpdateFirewallPolicy",
    "UpdateKey",
    "UpdatePolicy",
)


def _metadata(context: grpc.aio.ServicerContext, key: str) -> str:
    for name, value in context.invocation_metadata() or ():
        if name == key and isinstance(value, str):
            return value
    return ""


async def _answer(context: grpc.aio.ServicerContext, answer: FaceAnswer) -> bytes:
    """The decision headers go out as initial metadata (so a client reads them whether the
    call succeeds or fails), then the answer, or Google's error with its details."""
    if answer.headers:
        await context.send_initial_metadata(answer.headers)
    if answer.error is not None:
        await errors.abort(context, answer.error)
    return answer.body


Behavior = Callable[[bytes, grpc.aio.ServicerContext], Awaitable[bytes]]


class GoogleServiceHandler(grpc.GenericRpcHandler):  # type: ignore[misc]
    """Routes the service's methods: two served, the rest UNIMPLEMENTED."""

    def __init__(self, face: GoogleFace) -> None:
        self._face = face
        prefix = f"/{SERVICE}/"
        self._handlers: dict[str, grpc.RpcMethodHandler] = {
            prefix + "CreateAssessment": self._unary(self._create),
            prefix + "AnnotateAssessment": self._unary(self._annotate),
        }
        for name in UNSERVED:
            self._handlers[prefix + name] = self._unary(_refusal(name))

    @staticmethod
    def _unary(behavior: Behavior) -> grpc.RpcMethodHandler:
        # No (de)serializers: requests are decoded by the behavior, answers are bytes.
        return grpc.unary_unary_rpc_method_handler(behavior)

    def service(
        self, handler_call_details: grpc.HandlerCallDetails
    ) -> grpc.RpcMethodHandler | None:
        return self._handlers.get(handler_call_details.method)

    async def _create(self, data: bytes, context: grpc.aio.ServicerContext) -> bytes:
        try:
            request = CreateAssessmentRequestPb.FromString(data)
        except Exception:  # DecodeError and kin: the caller's bytes
            await errors.abort(context, _undecodable("CreateAssessmentRequest"))
        answer = await self._face.create_assessment(
            request,
            idempotency_key=_metadata(context, IDEMPOTENCY_HEADER),
            timeout=context.time_remaining(),
        )
        return await _answer(context, answer)

    async def _annotate(self, data: bytes, context: grpc.aio.ServicerContext) -> bytes:
        try:
            request = AnnotateAssessmentRequestPb.FromString(data)
        except Exception:
            await errors.abort(context, _undecodable("AnnotateAssessmentRequest"))
        answer = await self._face.annotate_assessment(request, timeout=context.time_remaining())
        return await _answer(context, answer)


def _refusal(method: str) -> Behavior:
    error = unserved(method, SERVED)

    async def refuse(data: bytes, context: grpc.aio.ServicerContext) -> bytes:
        await errors.abort(context, error)
        raise AssertionError("unreachable")  # abort raises

    return refuse


def _undecodable(message: str) -> errors.GoogleError:
    return errors.bad_request([("", f"The body is not a {message}.")], "Invalid request body.")


class GoogleFrontDoor:
    """Google's reCAPTCHA Enterprise service as a gRPC front door of the composition root."""

    services = (SERVICE,)

    def __init__(self, face: GoogleFace) -> None:
        register_service_descriptor()
        self._handler = GoogleServiceHandler(face)

    def add_to(self, server: grpc.aio.Server) -> None:
        server.add_generic_rpc_handlers((self._handler,))
