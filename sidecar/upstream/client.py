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
from typing import Any

import grpc
from google.cloud.recaptchaenterprise_v1.types import recaptchaenterprise as types

from sidecar.core.errors import InvalidArgument
from sidecar.core.model import (
    AnnotationRequest,
    AssessmentRequest,
    RelatedAccount,
    RelatedAccountsPage,
    RelatedAccountsQuery,
    Signals,
    TransactionAddress,
    TransactionData,
    TransactionUser,
    UpstreamAssessment,
    UserIdKind,
)
from sidecar.core.ports import UpstreamError
from sidecar.upstream.classify import RPC_ANNOTATE, RPC_CREATE, RPC_SEARCH, classify
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
_pb_SmsTollFraudVerdict = types.SmsTollFraudVerdict.pb()
_pb_FraudPrevention = types.FraudPreventionAssessment.pb()
_pb_SearchRequest = types.SearchRelatedAccountGroupMembershipsRequest.pb()
_pb_SearchResponse = types.SearchRelatedAccountGroupMembershipsResponse.pb()
_pb_Challenge = _pb_RiskAnalysis.Challenge


def _enum_name(enum_type: object, value: int, unknown: str) -> str:
    """Lenient enum naming: Google adds values over time and a new one must not break us."""
    try:
        return str(enum_type.Name(value))  # type: ignore[attr-defined]
    except ValueError:
        return f"{unknown}_{value}"


def to_upstream_assessment(message: object, passthrough: bytes = b"") -> UpstreamAssessment:
    """Plain protobuf `Assessment` → the fields the policy reads (and, for a passthrough
    request, the answer's own bytes)."""
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
    sms_risk: float | None = None
    sms_reasons: tuple[str, ...] = ()
    if message.HasField("phone_fraud_assessment"):  # type: ignore[attr-defined]
        phone = message.phone_fraud_assessment  # type: ignore[attr-defined]
        if phone.HasField("sms_toll_fraud_verdict"):
            verdict = phone.sms_toll_fraud_verdict
            sms_risk = verdict.risk
            sms_reasons = tuple(
                _enum_name(_pb_SmsTollFraudVerdict.SmsTollFraudReason, r, "SMS_TOLL_FRAUD_REASON")
                for r in verdict.reasons
            )
    return UpstreamAssessment(
        signals=_signals(message),
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
        express=message.event.express,  # type: ignore[attr-defined]
        sms_toll_fraud_risk=sms_risk,
        sms_toll_fraud_reasons=sms_reasons,
        passthrough=passthrough,
    )


def to_related_accounts_page(message: Any) -> RelatedAccountsPage:
    """Google's memberships → related accounts. A membership's name is
    `projects/P/relatedaccountgroups/G/memberships/M`: its group is the first four parts. A
    membership recorded by `hashed_account_id` alone (the older API) shows it as hex."""
    accounts = []
    for membership in message.related_account_group_memberships:
        group = "/".join(membership.name.split("/")[:4])
        account_id = membership.account_id or membership.hashed_account_id.hex()
        accounts.append(RelatedAccount(account_id=account_id, group=group))
    return RelatedAccountsPage(tuple(accounts), message.next_page_token)


def _signals(message: Any) -> Signals | None:
    """The outputs beside the score an app may act on; None when upstream gave none of them
    (the common case: one check, no allocation)."""
    ra = message.risk_analysis
    has_fraud = message.HasField("fraud_prevention_assessment")
    takeover = None
    if message.HasField("account_defender_assessment"):
        defender = message.account_defender_assessment
        if defender.HasField("account_takeover_verdict"):
            takeover = defender.account_takeover_verdict
    if not (has_fraud or takeover is not None or ra.extended_verdict_reasons or ra.challenge):
        return None
    found: dict[str, Any] = {
        "extended_verdict_reasons": tuple(ra.extended_verdict_reasons),
        "challenge": _enum_name(_pb_Challenge, ra.challenge, "CHALLENGE") if ra.challenge else "",
    }
    if has_fraud:
        fraud = message.fraud_prevention_assessment
        found["transaction_risk"] = fraud.transaction_risk
        found["transaction_risk_reasons"] = tuple(
            _enum_name(_pb_FraudPrevention.RiskReason.Reason, r.reason, "REASON")
            for r in fraud.risk_reasons
        )
        if fraud.HasField("stolen_instrument_verdict"):
            found["stolen_instrument_risk"] = fraud.stolen_instrument_verdict.risk
        if fraud.HasField("card_testing_verdict"):
            found["card_testing_risk"] = fraud.card_testing_verdict.risk
        if fraud.HasField("behavioral_trust_verdict"):
            found["behavioral_trust"] = fraud.behavioral_trust_verdict.trust
    if takeover is not None:
        found["account_takeover_risk"] = takeover.risk
        found["account_takeover_risk_reasons"] = tuple(
            _enum_name(_pb_AccountDefender.AccountRiskReason.RiskReason, r.reason, "RISK_REASON")
            for r in takeover.risk_reasons
        )
        found["account_takeover_trust_reasons"] = tuple(
            _enum_name(_pb_AccountDefender.AccountTrustReason.TrustReason, r.reason, "TRUST_REASON")
            for r in takeover.trust_reasons
        )
    return Signals(**found)


def _address(target: Any, address: TransactionAddress) -> None:
    target.recipient = address.recipient
    target.address.extend(address.address)
    target.locality = address.locality
    target.administrative_area = address.administrative_area
    target.region_code = address.region_code
    target.postal_code = address.postal_code


def _user(target: Any, user: TransactionUser) -> None:
    target.account_id = user.account_id
    target.creation_ms = user.creation_ms
    target.email = user.email
    target.email_verified = user.email_verified
    target.phone_number = user.phone_number
    target.phone_verified = user.phone_verified


def _transaction(target: Any, data: TransactionData) -> None:
    """Domain transaction data → Google's TransactionData, field for field."""
    if data.transaction_id:
        target.transaction_id = data.transaction_id
    target.payment_method = data.payment_method
    target.card_bin = data.card_bin
    target.card_last_four = data.card_last_four
    target.currency_code = data.currency_code
    target.value = data.value
    target.shipping_value = data.shipping_value
    if data.shipping_address is not None:
        _address(target.shipping_address, data.shipping_address)
    if data.billing_address is not None:
        _address(target.billing_address, data.billing_address)
    if data.user is not None:
        _user(target.user, data.user)
    for merchant in data.merchants:
        _user(target.merchants.add(), merchant)
    for item in data.items:
        line = target.items.add()
        line.name = item.name
        line.value = item.value
        line.quantity = item.quantity
        line.merchant_account_id = item.merchant_account_id
    if data.gateway_info is not None:
        gateway = target.gateway_info
        gateway.name = data.gateway_info.name
        gateway.gateway_response_code = data.gateway_info.gateway_response_code
        gateway.avs_response_code = data.gateway_info.avs_response_code
        gateway.cvv_response_code = data.gateway_info.cvv_response_code


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
        express=request.express,
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
    if request.transaction_data is not None:
        _transaction(event.transaction_data, request.transaction_data)
    return event


def build_passthrough_request(request: AssessmentRequest, parent: str, site_key: str) -> object:
    """The app's own `Assessment` (`AssessmentRequest.passthrough`) in our project's
    `CreateAssessmentRequest`, the key as applied and the account id as protected merged
    over its event. Parsing keeps the fields this library does not know; serializing sends
    them on."""
    message = _pb_CreateAssessmentRequest(parent=parent)
    message.assessment.MergeFromString(request.passthrough)
    event = message.assessment.event
    event.site_key = site_key
    if request.account_id:
        event.user_info.account_id = request.account_id
    return message


def build_annotate_request(request: AnnotationRequest) -> object:
    """Domain annotation → plain protobuf `AnnotateAssessmentRequest` (enum values by name);
    the app's own request, account id as protected, when it came as a passthrough."""
    if request.passthrough:
        message = _pb_AnnotateRequest.FromString(request.passthrough)
        message.account_id = request.account_id
        return message
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
    phone = request.phone_authentication_event
    if phone is not None:
        pe = message.phone_authentication_event
        pe.phone_number = phone.phone_number
        if phone.event_time is not None:
            pe.event_time.FromNanoseconds(int(phone.event_time * 1e9))
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
        # The Google-compatible face's calls: the answer's bytes are kept to be handed back.
        self._create_passthrough = self._channel.unary_unary(
            _SERVICE + "CreateAssessment",
            request_serializer=_pb_CreateAssessmentRequest.SerializeToString,
        )
        self._annotate = self._channel.unary_unary(
            _SERVICE + "AnnotateAssessment",
            request_serializer=_pb_AnnotateRequest.SerializeToString,
            response_deserializer=_pb_AnnotateResponse.FromString,
        )
        self._search = self._channel.unary_unary(
            _SERVICE + "SearchRelatedAccountGroupMemberships",
            request_serializer=_pb_SearchRequest.SerializeToString,
            response_deserializer=_pb_SearchResponse.FromString,
        )
        # The search is routed by `project`, not `parent`.
        by_project = (
            "x-goog-request-params",
            "project=" + urllib.parse.quote(self._parent, safe=""),
        )
        self._search_metadata = (by_project, *self._annotate_base_metadata)

    async def create_assessment(
        self,
        request: AssessmentRequest,
        *,
        site_key: str,
        timeout: float,
        metadata: Sequence[tuple[str, str]] = (),
    ) -> UpstreamAssessment:
        """One CreateAssessment attempt, bounded by `timeout` seconds."""
        if request.passthrough:
            return await self._create_whole(request, site_key, timeout, metadata)
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

    async def _create_whole(
        self,
        request: AssessmentRequest,
        site_key: str,
        timeout: float,
        metadata: Sequence[tuple[str, str]],
    ) -> UpstreamAssessment:
        """A passthrough: the app's whole Assessment up, Google's whole answer back."""
        message = build_passthrough_request(request, self._parent, site_key)
        deadline = time.monotonic() + timeout
        auth, timeout = await self._authenticate(timeout)
        try:
            raw: bytes = await self._create_passthrough(
                message, timeout=timeout, metadata=(*self._metadata, *auth, *metadata)
            )
        except grpc.aio.AioRpcError as error:
            raise await self._failure(classify(error, RPC_CREATE), deadline) from None
        return to_upstream_assessment(_pb_Assessment.FromString(raw), passthrough=raw)

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

    async def search_related_accounts(
        self,
        query: RelatedAccountsQuery,
        *,
        timeout: float,
        metadata: Sequence[tuple[str, str]] = (),
    ) -> RelatedAccountsPage:
        """One SearchRelatedAccountGroupMemberships attempt, bounded by `timeout` seconds."""
        message = _pb_SearchRequest(
            project=self._parent,
            account_id=query.account_id,
            page_size=query.page_size,
            page_token=query.page_token,
        )
        deadline = time.monotonic() + timeout
        auth, timeout = await self._authenticate(timeout)
        try:
            answer = await self._search(
                message, timeout=timeout, metadata=(*self._search_metadata, *auth, *metadata)
            )
        except grpc.aio.AioRpcError as error:
            raise await self._failure(classify(error, RPC_SEARCH), deadline) from None
        return to_related_accounts_page(answer)

    async def close(self) -> None:
        """Close the channel; in-flight calls are cancelled."""
        await self._channel.close()
