"""The reCAPTCHA Enterprise v1 gRPC client.

One TLS channel (the system's roots, or `upstream_ca_file`); the credentials are not in the
channel but attached per call (`credentials.py`): an API key, or an access token the sidecar
obtains and refreshes itself with google-auth, so that a credential that cannot be had is a
typed failure instead of gRPC's "Getting metadata from plugin failed". gRPC reads the proxy
variables itself (`grpc_proxy`, `https_proxy`, `no_grpc_proxy` / `no_proxy`). Calls go through
plain protobuf stubs rather than the proto-plus GAPIC wrappers: the wrapping and the GAPIC
logging interceptor cost more than the rest of the hot path.
"""

from __future__ import annotations

import time
import urllib.parse
from collections.abc import Sequence

import grpc
from google.cloud.recaptchaenterprise_v1.types import recaptchaenterprise as types

from sidecar.core.errors import InvalidArgument
from sidecar.core.model import AnnotationRequest, AssessmentRequest, UpstreamAssessment, UserIdKind
from sidecar.core.ports import UpstreamError
from sidecar.upstream.classify import RPC_ANNOTATE, RPC_CREATE, classify
from sidecar.upstream.credentials import ApiKey, CallCredentials
from sidecar.upstream.diagnosis import EndpointProbe

_SERVICE = "/google.cloud.recaptchaenterprise.v1.RecaptchaEnterpriseService/"
_pb_CreateAssessmentRequest = types.CreateAssessmentRequest.pb()
_pb_Assessment = types.Assessment.pb()
_pb_Event = types.Event.pb()
_pb_UserInfo = types.UserInfo.pb()
_pb_UserId = types.UserId.pb()
_pb_AnnotateRequest = types.AnnotateAssessmentRequest.pb()
_pb_AnnotateResponse = types.AnnotateAssessmentResponse.pb()
_pb_TransactionEvent = types.TransactionEvent.pb()
_pb_TokenProperties = types.TokenProperties.pb()
_pb_RiskAnalysis = types.RiskAnalysis.pb()
_pb_AccountDefender = types.AccountDefenderAssessment.pb()


def _enum_name(enum_type: object, value: int, unknown: str) -> str:
    """Lenient enum naming: Google adds values over time and a new one must not break us."""
    try:
        return str(enum_type.Name(value))  # type: ignore[attr-defined]
    except ValueError:
        return f"{unknown}_{value}"


def to_upstream_assessment(message: object) -> UpstreamAssessment:
    """Plain protobuf `Assessment` → the fields the policy reads."""
    tp = message.token_properties  # type: ignore[attr-defined]
    ra = message.risk_analysis  # type: ignore[attr-defined]
    ad = message.account_defender_assessment  # type: ignore[attr-defined]
    invalid = ""
    if not tp.valid:
        invalid = _enum_name(_pb_TokenProperties.InvalidReason, tp.invalid_reason, "INVALID_REASON")
        if invalid == "INVALID_REASON_UNSPECIFIED":
            invalid = "UNKNOWN_INVALID_REASON"
    create_time = None
    if tp.HasField("create_time"):
        create_time = tp.create_time.seconds + tp.create_time.nanos / 1e9
    return UpstreamAssessment(
        name=message.name,  # type: ignore[attr-defined]
        valid=tp.valid,
        invalid_reason=invalid,
        score=ra.score,
        reasons=tuple(
            _enum_name(_pb_RiskAnalysis.ClassificationReason, r, "REASON") for r in ra.reasons
        ),
        action=tp.action,
        hostname=tp.hostname,
        android_package_name=tp.android_package_name,
        ios_bundle_id=tp.ios_bundle_id,
        create_time=create_time,
        account_defender_labels=tuple(
            _enum_name(_pb_AccountDefender.AccountDefenderLabel, label, "LABEL")
            for label in ad.labels
        ),
    )


def build_event(request: AssessmentRequest, site_key: str) -> object:
    """Every field of the request that reCAPTCHA accepts goes upstream."""
    event = _pb_Event(
        token=request.token,
        site_key=site_key,
        user_agent=request.user_agent,
        user_ip_address=request.user_ip_address,
        expected_action=request.expected_action,
        requested_uri=request.requested_uri,
        ja3=request.ja3,
        ja4=request.ja4,
        headers=request.headers,
    )
    if request.account_id or request.user_ids:
        info = event.user_info
        info.account_id = request.account_id
        for user_id in request.user_ids:
            entry = info.user_ids.add()
            if user_id.kind is UserIdKind.EMAIL:
                entry.email = user_id.value
            elif user_id.kind is UserIdKind.PHONE_NUMBER:
                entry.phone_number = user_id.value
            else:
                entry.username = user_id.value
    return event


def build_annotate_request(request: AnnotationRequest) -> object:
    """Domain annotation → plain protobuf `AnnotateAssessmentRequest` (enum values by name)."""
    message = _pb_AnnotateRequest(name=request.assessment_name, account_id=request.account_id)
    if request.annotation:
        message.annotation = _pb_AnnotateRequest.Annotation.Value(request.annotation)
    message.reasons.extend(_pb_AnnotateRequest.Reason.Value(r) for r in request.reasons)
    event = request.transaction_event
    if event is not None:
        te = message.transaction_event
        if event.event_type:
            te.event_type = _pb_TransactionEvent.TransactionEventType.Value(event.event_type)
        te.reason = event.reason
        te.value = event.value
        if event.event_time is not None:
            te.event_time.FromNanoseconds(int(event.event_time * 1e9))
    return message


class GoogleUpstream:
    """reCAPTCHA Enterprise over one long-lived gRPC channel, created once."""

    def __init__(
        self,
        *,
        project: str,
        endpoint: str,
        plaintext: bool = False,
        api_key: str | None = None,
        credentials: CallCredentials | None = None,
        root_certificates: bytes | None = None,
        channel_options: Sequence[tuple[str, object]] = (),
    ) -> None:
        """`plaintext`: no TLS and no credentials (local emulators only). Otherwise TLS,
        trusting `root_certificates` (PEM) or the default roots, and `credentials` (or an
        `api_key`) on every call."""
        options = [
            ("grpc.keepalive_time_ms", 30_000),
            ("grpc.max_receive_message_length", 4 * 1024 * 1024),
            *channel_options,
        ]
        self._credentials = credentials
        self._probe: EndpointProbe | None = None
        if plaintext:
            self._channel = grpc.aio.insecure_channel(endpoint, options=options)
        else:
            self._probe = EndpointProbe(endpoint, root_certificates)
            if self._credentials is None and api_key:
                self._credentials = ApiKey(api_key)
            tls = grpc.ssl_channel_credentials(root_certificates=root_certificates)
            self._channel = grpc.aio.secure_channel(endpoint, tls, options=options)
        self._parent = f"projects/{project}"
        routing = ("x-goog-request-params", "parent=" + urllib.parse.quote(self._parent, safe=""))
        client = ("x-goog-api-client", "recaptcha-sidecar/0.1 gl-python grpc")
        self._metadata: tuple[tuple[str, str], ...] = (routing, client)
        self._annotate_base_metadata = tuple(m for m in self._metadata if m is not routing)
        self._create = self._channel.unary_unary(
            _SERVICE + "CreateAssessment",
            request_serializer=_pb_CreateAssessmentRequest.SerializeToString,
            response_deserializer=_pb_Assessment.FromString,
        )
        self._annotate = self._channel.unary_unary(
            _SERVICE + "AnnotateAssessment",
            request_serializer=_pb_AnnotateRequest.SerializeToString,
            response_deserializer=_pb_AnnotateResponse.FromString,
        )

    async def create_assessment(
        self,
        request: AssessmentRequest,
        *,
        site_key: str,
        timeout: float,
        metadata: Sequence[tuple[str, str]] = (),
    ) -> UpstreamAssessment:
        """One CreateAssessment attempt, bounded by `timeout` seconds."""
        message = _pb_CreateAssessmentRequest(
            parent=self._parent, assessment={"event": build_event(request, site_key)}
        )
        deadline = time.monotonic() + timeout
        auth, timeout = await self._authenticate(timeout)
        try:
            answer = await self._create(
                message, timeout=timeout, metadata=(*self._metadata, *auth, *metadata)
            )
        except grpc.aio.AioRpcError as error:
            raise await self._failure(classify(error, RPC_CREATE), deadline) from None
        return to_upstream_assessment(answer)

    async def annotate(
        self,
        request: AnnotationRequest,
        *,
        timeout: float,
        metadata: Sequence[tuple[str, str]] = (),
    ) -> None:
        """One AnnotateAssessment attempt, bounded by `timeout` seconds. `InvalidArgument`
        when no upstream request can be built from it (a name this version does not know,
        a time out of range): nothing was sent, and sending again cannot help."""
        try:
            message = build_annotate_request(request)
        except (ValueError, OverflowError, TypeError) as error:
            raise InvalidArgument(
                "annotation", f"cannot be sent upstream ({type(error).__name__})"
            ) from None
        routing = (
            "x-goog-request-params",
            "name=" + urllib.parse.quote(request.assessment_name, safe=""),
        )
        deadline = time.monotonic() + timeout
        auth, timeout = await self._authenticate(timeout)
        try:
            await self._annotate(
                message,
                timeout=timeout,
                metadata=(routing, *self._annotate_base_metadata, *auth, *metadata),
            )
        except grpc.aio.AioRpcError as error:
            raise await self._failure(classify(error, RPC_ANNOTATE), deadline) from None

    async def _authenticate(self, timeout: float) -> tuple[tuple[tuple[str, str], ...], float]:
        """The credential metadata for one call, and the time left for the call itself."""
        if self._credentials is None:
            return (), timeout
        started = time.monotonic()
        auth = await self._credentials.metadata(timeout)
        return auth, max(0.001, timeout - (time.monotonic() - started))

    async def _failure(self, error: UpstreamError, deadline: float) -> UpstreamError:
        """The failure to report: Google refusing our access token (expired, revoked) makes
        the next call get a new one; an UNAVAILABLE is explained by the endpoint probe when it
        has typed evidence (an unresolvable name, an untrusted certificate)."""
        if error.code == "UNAUTHENTICATED" and self._credentials is not None:
            self._credentials.invalidate()
        if error.code == "UNAVAILABLE" and self._probe is not None:
            found = await self._probe.diagnose(deadline - time.monotonic())
            if found is not None:
                return UpstreamError(found)
        return error

    async def close(self) -> None:
        """Close the channel; in-flight calls are cancelled."""
        await self._channel.close()
