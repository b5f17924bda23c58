"""The gRPC front door: proto messages ⇄ domain objects, and domain errors ⇄ status codes.

Nothing else lives here: decisions are data in an OK response, never gRPC errors.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from functools import wraps
from typing import Any, TypeVar

import grpc
from google.protobuf import timestamp_pb2
from recaptcha.sidecar.v1 import sidecar_pb2, sidecar_pb2_grpc

from sidecar.core.annotate import Annotator
from sidecar.core.errors import InvalidArgument, Overloaded, UpstreamRejected
from sidecar.core.model import (
    AnnotationRequest,
    AssessmentRequest,
    ClientType,
    Decision,
    Delivery,
    PhoneAuthenticationEvent,
    RelatedAccountsQuery,
    Signals,
    TokenStatus,
    TransactionAddress,
    TransactionData,
    TransactionEvent,
    TransactionGatewayInfo,
    TransactionItem,
    TransactionUser,
    UserId,
    UserIdKind,
)
from sidecar.core.ports import CallContext
from sidecar.core.related import RelatedAccounts
from sidecar.core.verify import Verifier

SERVICE = sidecar_pb2.DESCRIPTOR.services_by_name["VerificationService"].full_name
# Who is calling, as the use cases (and their observer) see it: one constant per method.
ASSESS_CALL = CallContext(SERVICE, "Assess")
ANNOTATE_CALL = CallContext(SERVICE, "Annotate")
SEARCH_CALL = CallContext(SERVICE, "SearchRelatedAccounts")

_VERDICT = {
    v.name.removeprefix("VERDICT_"): v.number for v in sidecar_pb2.Verdict.DESCRIPTOR.values
}
_TOKEN_STATUS = {
    v.name.removeprefix("TOKEN_STATUS_"): v.number
    for v in sidecar_pb2.TokenStatus.DESCRIPTOR.values
}
# An express assessment has no token: TOKEN_STATUS_UNSPECIFIED on the wire.
_TOKEN_STATUS[TokenStatus.EXPRESS.value] = sidecar_pb2.TOKEN_STATUS_UNSPECIFIED
_RECOMMENDED = {
    v.name.removeprefix("RECOMMENDED_ACTION_"): v.number
    for v in sidecar_pb2.RecommendedAction.DESCRIPTOR.values
}
_ANNOTATION = {
    v.number: v.name.removeprefix("ANNOTATION_")
    for v in sidecar_pb2.Annotation.DESCRIPTOR.values
    if v.number
}
_ANNOTATION_REASON = {
    v.number: v.name.removeprefix("ANNOTATION_REASON_")
    for v in sidecar_pb2.AnnotationReason.DESCRIPTOR.values
    if v.number
}
_TRANSACTION_EVENT_TYPE = {
    v.number: v.name.removeprefix("TRANSACTION_EVENT_TYPE_")
    for v in sidecar_pb2.TransactionEventType.DESCRIPTOR.values
    if v.number
}
_DELIVERY = {
    Delivery.QUEUED: sidecar_pb2.ANNOTATION_DELIVERY_QUEUED,
    Delivery.DELIVERED: sidecar_pb2.ANNOTATION_DELIVERY_DELIVERED,
}
_USER_ID_KIND = {
    "email": UserIdKind.EMAIL,
    "phone_number": UserIdKind.PHONE_NUMBER,
    "username": UserIdKind.USERNAME,
}
_CLIENT_TYPE = {
    v.number: ClientType(v.name.removeprefix("CLIENT_TYPE_").lower())
    for v in sidecar_pb2.ClientType.DESCRIPTOR.values
    if v.number
}
_UPSTREAM_CODE = {code.name: code for code in grpc.StatusCode}

# What a synchronous call tells the app when the sidecar could not get an answer: upstream's
# UNAUTHENTICATED or RESOURCE_EXHAUSTED must not read as the sidecar's own (listener auth, load
# shedding). The sidecar's configuration is wrong: FAILED_PRECONDITION; quota or upstream
# down: UNAVAILABLE (try again later). Only a refusal of the request itself keeps its code.
_SIDECAR_SIDE = {"config": grpc.StatusCode.FAILED_PRECONDITION}


def upstream_status(error: UpstreamRejected) -> tuple[grpc.StatusCode, str]:
    """The status and message an app gets for a failed synchronous upstream call."""
    if error.request:
        return _UPSTREAM_CODE.get(
            error.code, grpc.StatusCode.INVALID_ARGUMENT
        ), f"upstream: {error}"
    code = _SIDECAR_SIDE.get(error.kind, grpc.StatusCode.UNAVAILABLE)
    return code, f"upstream refused the sidecar's call ({error.code}): {error}"


Req = TypeVar("Req")
Resp = TypeVar("Resp")
Handler = Callable[[Any, Req, grpc.aio.ServicerContext], Awaitable[Resp]]


def maps_domain_errors(method: Handler[Req, Resp]) -> Handler[Req, Resp]:
    """The one place where domain errors become status codes; anything else is a bug and
    becomes INTERNAL with no detail leaked."""

    @wraps(method)
    async def wrapper(self: Any, request: Req, context: grpc.aio.ServicerContext) -> Resp:
        try:
            return await method(self, request, context)
        except InvalidArgument as error:
            await context.abort(grpc.StatusCode.INVALID_ARGUMENT, str(error))
        except Overloaded as error:
            await context.abort(grpc.StatusCode.RESOURCE_EXHAUSTED, str(error) or "overloaded")
        except UpstreamRejected as error:
            code, message = upstream_status(error)
            await context.abort(code, message)
        raise AssertionError("unreachable")  # context.abort always raises

    return wrapper


def _enum(field: str, table: dict[int, str], value: int) -> str:
    name = table.get(value)
    if name is None:
        raise InvalidArgument(field, f"unknown enum value {value}")
    return name


def _address(message: Any) -> TransactionAddress:
    return TransactionAddress(
        recipient=message.recipient,
        address=tuple(message.address),
        locality=message.locality,
        administrative_area=message.administrative_area,
        region_code=message.region_code,
        postal_code=message.postal_code,
    )


def _user(message: Any) -> TransactionUser:
    return TransactionUser(
        account_id=message.account_id,
        creation_ms=message.creation_ms,
        email=message.email,
        email_verified=message.email_verified,
        phone_number=message.phone_number,
        phone_verified=message.phone_verified,
    )


def to_transaction_data(message: sidecar_pb2.TransactionData) -> TransactionData:
    """Proto → domain, field for field (validation is the core's)."""
    gateway = None
    if message.HasField("gateway_info"):
        info = message.gateway_info
        gateway = TransactionGatewayInfo(
            name=info.name,
            gateway_response_code=info.gateway_response_code,
            avs_response_code=info.avs_response_code,
            cvv_response_code=info.cvv_response_code,
        )
    return TransactionData(
        transaction_id=message.transaction_id,
        payment_method=message.payment_method,
        card_bin=message.card_bin,
        card_last_four=message.card_last_four,
        currency_code=message.currency_code,
        value=message.value,
        shipping_value=message.shipping_value,
        shipping_address=(
            _address(message.shipping_address) if message.HasField("shipping_address") else None
        ),
        billing_address=(
            _address(message.billing_address) if message.HasField("billing_address") else None
        ),
        user=_user(message.user) if message.HasField("user") else None,
        merchants=tuple(_user(m) for m in message.merchants),
        items=tuple(
            TransactionItem(
                name=item.name,
                value=item.value,
                quantity=item.quantity,
                merchant_account_id=item.merchant_account_id,
            )
            for item in message.items
        ),
        gateway_info=gateway,
    )


def to_assessment_request(message: sidecar_pb2.AssessRequest) -> AssessmentRequest:
    """Proto → domain. Unset UserId oneofs become empty values that validation rejects."""
    user_ids = []
    for user_id in message.user_ids:
        kind = user_id.WhichOneof("id")
        if kind is None:
            user_ids.append(UserId(UserIdKind.USERNAME, ""))
        else:
            user_ids.append(UserId(_USER_ID_KIND[kind], getattr(user_id, kind)))
    client_type = ClientType.UNSPECIFIED
    if message.client_type:
        found = _CLIENT_TYPE.get(message.client_type)
        if found is None:
            raise InvalidArgument("client_type", f"unknown enum value {message.client_type}")
        client_type = found
    return AssessmentRequest(
        token=message.token,
        expected_action=message.expected_action,
        site_key=message.site_key,
        user_ip_address=message.user_ip_address,
        user_agent=message.user_agent,
        ja3=message.ja3,
        ja4=message.ja4,
        requested_uri=message.requested_uri,
        account_id=message.account_id,
        user_ids=tuple(user_ids),
        idempotency_key=message.idempotency_key,
        headers=tuple(message.headers),
        client_type=client_type,
        express=message.express,
        transaction_data=(
            to_transaction_data(message.transaction_data)
            if message.HasField("transaction_data")
            else None
        ),
    )


def to_assess_response(decision: Decision) -> sidecar_pb2.AssessResponse:
    """Domain → proto."""
    response = sidecar_pb2.AssessResponse(
        allowed=decision.allowed,
        verdict=_VERDICT[decision.verdict.value],
        token_status=_TOKEN_STATUS[decision.token_status.value],
        invalid_reason=decision.invalid_reason,
        score=decision.score,
        reasons=decision.reasons,
        action=decision.action,
        hostname=decision.hostname,
        assessment_name=decision.assessment_name,
        account_defender_labels=decision.account_defender_labels,
        replayed=decision.replayed,
        android_package_name=decision.android_package_name,
        ios_bundle_id=decision.ios_bundle_id,
        threshold=decision.threshold,
        recommended_action=_RECOMMENDED[decision.recommended_action.value],
        decided_by=decision.decided_by,
        policy_version=decision.policy_version,
    )
    if decision.create_time is not None:
        response.create_time.FromNanoseconds(int(decision.create_time * 1e9))
    if decision.sms_toll_fraud_risk is not None:  # absent means not assessed, never 0.0
        response.sms_toll_fraud_risk = decision.sms_toll_fraud_risk
        response.sms_toll_fraud_reasons.extend(decision.sms_toll_fraud_reasons)
    if decision.signals is not None:
        _add_signals(response, decision.signals)
    return response


# Signals whose absence means "not given": set on the response only when present.
_OPTIONAL_SIGNALS = (
    "transaction_risk",
    "stolen_instrument_risk",
    "card_testing_risk",
    "behavioral_trust",
    "account_takeover_risk",
)
_REPEATED_SIGNALS = (
    "transaction_risk_reasons",
    "account_takeover_risk_reasons",
    "account_takeover_trust_reasons",
    "extended_verdict_reasons",
)


def _add_signals(response: sidecar_pb2.AssessResponse, signals: Signals) -> None:
    for name in _OPTIONAL_SIGNALS:
        value = getattr(signals, name)
        if value is not None:
            setattr(response, name, value)
    for name in _REPEATED_SIGNALS:
        getattr(response, name).extend(getattr(signals, name))
    response.challenge = signals.challenge


def _seconds(stamp: timestamp_pb2.Timestamp) -> float:
    return float(stamp.seconds + stamp.nanos / 1e9)


def to_annotation_request(message: sidecar_pb2.AnnotateRequest) -> AnnotationRequest:
    """Proto → domain; unknown enum values are INVALID_ARGUMENT naming the field."""
    annotation = ""
    if message.annotation:
        annotation = _enum("annotation", _ANNOTATION, message.annotation)
    reasons = tuple(
        _enum(f"reasons[{i}]", _ANNOTATION_REASON, r) for i, r in enumerate(message.reasons)
    )
    event = None
    if message.HasField("transaction_event"):
        te = message.transaction_event
        event_type = ""
        if te.event_type:
            event_type = _enum(
                "transaction_event.event_type", _TRANSACTION_EVENT_TYPE, te.event_type
            )
        event = TransactionEvent(
            event_type=event_type,
            reason=te.reason,
            value=te.value,
            event_time=_seconds(te.event_time) if te.HasField("event_time") else None,
        )
    phone = None
    if message.HasField("phone_authentication_event"):
        pe = message.phone_authentication_event
        phone = PhoneAuthenticationEvent(
            phone_number=pe.phone_number,
            event_time=_seconds(pe.event_time) if pe.HasField("event_time") else None,
        )
    return AnnotationRequest(
        assessment_name=message.assessment_name,
        annotation=annotation,
        reasons=reasons,
        account_id=message.account_id,
        transaction_event=event,
        wait_for_upstream=message.wait_for_upstream,
        phone_authentication_event=phone,
    )


class VerificationServicer(sidecar_pb2_grpc.VerificationServiceServicer):
    """recaptcha.sidecar.v1.VerificationService over the transport-neutral core."""

    def __init__(self, verifier: Verifier, annotator: Annotator, related: RelatedAccounts) -> None:
        self._verifier = verifier
        self._annotator = annotator
        self._related = related

    @maps_domain_errors
    async def Assess(
        self, request: sidecar_pb2.AssessRequest, context: grpc.aio.ServicerContext
    ) -> sidecar_pb2.AssessResponse:
        decision = await self._verifier.assess(
            to_assessment_request(request), context.time_remaining(), call=ASSESS_CALL
        )
        return to_assess_response(decision)

    @maps_domain_errors
    async def Annotate(
        self, request: sidecar_pb2.AnnotateRequest, context: grpc.aio.ServicerContext
    ) -> sidecar_pb2.AnnotateResponse:
        delivery = await self._annotator.annotate(
            to_annotation_request(request), context.time_remaining(), call=ANNOTATE_CALL
        )
        return sidecar_pb2.AnnotateResponse(delivery=_DELIVERY[delivery])

    @maps_domain_errors
    async def SearchRelatedAccounts(
        self, request: sidecar_pb2.SearchRelatedAccountsRequest, context: grpc.aio.ServicerContext
    ) -> sidecar_pb2.SearchRelatedAccountsResponse:
        query = RelatedAccountsQuery(
            account_id=request.account_id,
            page_size=request.page_size,
            page_token=request.page_token,
        )
        page = await self._related.search(query, context.time_remaining(), call=SEARCH_CALL)
        return sidecar_pb2.SearchRelatedAccountsResponse(
            related_accounts=[
                sidecar_pb2.RelatedAccount(
                    account_id=account.account_id, group=account.group, decrypted=account.decrypted
                )
                for account in page.accounts
            ],
            next_page_token=page.next_page_token,
        )


class VerificationFrontDoor:
    """Our own API as a gRPC front door of the composition root (`server.app`)."""

    services = (SERVICE,)

    def __init__(self, verifier: Verifier, annotator: Annotator, related: RelatedAccounts) -> None:
        self._servicer = VerificationServicer(verifier, annotator, related)

    def add_to(self, server: grpc.aio.Server) -> None:
        sidecar_pb2_grpc.add_VerificationServiceServicer_to_server(self._servicer, server)
