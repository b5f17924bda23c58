import datetime

from google.protobuf import timestamp_pb2 as _timestamp_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class ClientType(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    CLIENT_TYPE_UNSPECIFIED: _ClassVar[ClientType]
    CLIENT_TYPE_WEB: _ClassVar[ClientType]
    CLIENT_TYPE_ANDROID: _ClassVar[ClientType]
    CLIENT_TYPE_IOS: _ClassVar[ClientType]

class Verdict(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    VERDICT_UNSPECIFIED: _ClassVar[Verdict]
    VERDICT_PASSED: _ClassVar[Verdict]
    VERDICT_FAILED_AUDIT: _ClassVar[Verdict]
    VERDICT_FAILED_ENFORCE: _ClassVar[Verdict]
    VERDICT_CLIENT_TYPE_MISSING: _ClassVar[Verdict]
    VERDICT_KEYS_MISSING: _ClassVar[Verdict]

class TokenStatus(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    TOKEN_STATUS_UNSPECIFIED: _ClassVar[TokenStatus]
    TOKEN_STATUS_VALID: _ClassVar[TokenStatus]
    TOKEN_STATUS_EXPIRED: _ClassVar[TokenStatus]
    TOKEN_STATUS_DUPLICATE: _ClassVar[TokenStatus]
    TOKEN_STATUS_INVALID: _ClassVar[TokenStatus]
    TOKEN_STATUS_MISSING: _ClassVar[TokenStatus]
    TOKEN_STATUS_UNCHECKED: _ClassVar[TokenStatus]

class RecommendedAction(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    RECOMMENDED_ACTION_UNSPECIFIED: _ClassVar[RecommendedAction]
    RECOMMENDED_ACTION_ALLOW: _ClassVar[RecommendedAction]
    RECOMMENDED_ACTION_CHALLENGE: _ClassVar[RecommendedAction]
    RECOMMENDED_ACTION_BLOCK: _ClassVar[RecommendedAction]

class Annotation(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    ANNOTATION_UNSPECIFIED: _ClassVar[Annotation]
    ANNOTATION_LEGITIMATE: _ClassVar[Annotation]
    ANNOTATION_FRAUDULENT: _ClassVar[Annotation]

class AnnotationReason(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    ANNOTATION_REASON_UNSPECIFIED: _ClassVar[AnnotationReason]
    ANNOTATION_REASON_CHARGEBACK: _ClassVar[AnnotationReason]
    ANNOTATION_REASON_PAYMENT_HEURISTICS: _ClassVar[AnnotationReason]
    ANNOTATION_REASON_PASSED_TWO_FACTOR: _ClassVar[AnnotationReason]
    ANNOTATION_REASON_FAILED_TWO_FACTOR: _ClassVar[AnnotationReason]
    ANNOTATION_REASON_CORRECT_PASSWORD: _ClassVar[AnnotationReason]
    ANNOTATION_REASON_INCORRECT_PASSWORD: _ClassVar[AnnotationReason]
    ANNOTATION_REASON_INITIATED_TWO_FACTOR: _ClassVar[AnnotationReason]
    ANNOTATION_REASON_CHARGEBACK_FRAUD: _ClassVar[AnnotationReason]
    ANNOTATION_REASON_CHARGEBACK_DISPUTE: _ClassVar[AnnotationReason]
    ANNOTATION_REASON_REFUND: _ClassVar[AnnotationReason]
    ANNOTATION_REASON_REFUND_FRAUD: _ClassVar[AnnotationReason]
    ANNOTATION_REASON_TRANSACTION_ACCEPTED: _ClassVar[AnnotationReason]
    ANNOTATION_REASON_TRANSACTION_DECLINED: _ClassVar[AnnotationReason]
    ANNOTATION_REASON_SOCIAL_SPAM: _ClassVar[AnnotationReason]

class TransactionEventType(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    TRANSACTION_EVENT_TYPE_UNSPECIFIED: _ClassVar[TransactionEventType]
    TRANSACTION_EVENT_TYPE_MERCHANT_APPROVE: _ClassVar[TransactionEventType]
    TRANSACTION_EVENT_TYPE_MERCHANT_DENY: _ClassVar[TransactionEventType]
    TRANSACTION_EVENT_TYPE_MANUAL_REVIEW: _ClassVar[TransactionEventType]
    TRANSACTION_EVENT_TYPE_AUTHORIZATION: _ClassVar[TransactionEventType]
    TRANSACTION_EVENT_TYPE_AUTHORIZATION_DECLINE: _ClassVar[TransactionEventType]
    TRANSACTION_EVENT_TYPE_PAYMENT_CAPTURE: _ClassVar[TransactionEventType]
    TRANSACTION_EVENT_TYPE_PAYMENT_CAPTURE_DECLINE: _ClassVar[TransactionEventType]
    TRANSACTION_EVENT_TYPE_CANCEL: _ClassVar[TransactionEventType]
    TRANSACTION_EVENT_TYPE_CHARGEBACK_INQUIRY: _ClassVar[TransactionEventType]
    TRANSACTION_EVENT_TYPE_CHARGEBACK_ALERT: _ClassVar[TransactionEventType]
    TRANSACTION_EVENT_TYPE_FRAUD_NOTIFICATION: _ClassVar[TransactionEventType]
    TRANSACTION_EVENT_TYPE_CHARGEBACK: _ClassVar[TransactionEventType]
    TRANSACTION_EVENT_TYPE_CHARGEBACK_REPRESENTMENT: _ClassVar[TransactionEventType]
    TRANSACTION_EVENT_TYPE_CHARGEBACK_REVERSE: _ClassVar[TransactionEventType]
    TRANSACTION_EVENT_TYPE_REFUND_REQUEST: _ClassVar[TransactionEventType]
    TRANSACTION_EVENT_TYPE_REFUND_DECLINE: _ClassVar[TransactionEventType]
    TRANSACTION_EVENT_TYPE_REFUND: _ClassVar[TransactionEventType]
    TRANSACTION_EVENT_TYPE_REFUND_REVERSE: _ClassVar[TransactionEventType]

class AnnotationDelivery(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    ANNOTATION_DELIVERY_UNSPECIFIED: _ClassVar[AnnotationDelivery]
    ANNOTATION_DELIVERY_QUEUED: _ClassVar[AnnotationDelivery]
    ANNOTATION_DELIVERY_DELIVERED: _ClassVar[AnnotationDelivery]
CLIENT_TYPE_UNSPECIFIED: ClientType
CLIENT_TYPE_WEB: ClientType
CLIENT_TYPE_ANDROID: ClientType
CLIENT_TYPE_IOS: ClientType
VERDICT_UNSPECIFIED: Verdict
VERDICT_PASSED: Verdict
VERDICT_FAILED_AUDIT: Verdict
VERDICT_FAILED_ENFORCE: Verdict
VERDICT_CLIENT_TYPE_MISSING: Verdict
VERDICT_KEYS_MISSING: Verdict
TOKEN_STATUS_UNSPECIFIED: TokenStatus
TOKEN_STATUS_VALID: TokenStatus
TOKEN_STATUS_EXPIRED: TokenStatus
TOKEN_STATUS_DUPLICATE: TokenStatus
TOKEN_STATUS_INVALID: TokenStatus
TOKEN_STATUS_MISSING: TokenStatus
TOKEN_STATUS_UNCHECKED: TokenStatus
RECOMMENDED_ACTION_UNSPECIFIED: RecommendedAction
RECOMMENDED_ACTION_ALLOW: RecommendedAction
RECOMMENDED_ACTION_CHALLENGE: RecommendedAction
RECOMMENDED_ACTION_BLOCK: RecommendedAction
ANNOTATION_UNSPECIFIED: Annotation
ANNOTATION_LEGITIMATE: Annotation
ANNOTATION_FRAUDULENT: Annotation
ANNOTATION_REASON_UNSPECIFIED: AnnotationReason
ANNOTATION_REASON_CHARGEBACK: AnnotationReason
ANNOTATION_REASON_PAYMENT_HEURISTICS: AnnotationReason
ANNOTATION_REASON_PASSED_TWO_FACTOR: AnnotationReason
ANNOTATION_REASON_FAILED_TWO_FACTOR: AnnotationReason
ANNOTATION_REASON_CORRECT_PASSWORD: AnnotationReason
ANNOTATION_REASON_INCORRECT_PASSWORD: AnnotationReason
ANNOTATION_REASON_INITIATED_TWO_FACTOR: AnnotationReason
ANNOTATION_REASON_CHARGEBACK_FRAUD: AnnotationReason
ANNOTATION_REASON_CHARGEBACK_DISPUTE: AnnotationReason
ANNOTATION_REASON_REFUND: AnnotationReason
ANNOTATION_REASON_REFUND_FRAUD: AnnotationReason
ANNOTATION_REASON_TRANSACTION_ACCEPTED: AnnotationReason
ANNOTATION_REASON_TRANSACTION_DECLINED: AnnotationReason
ANNOTATION_REASON_SOCIAL_SPAM: AnnotationReason
TRANSACTION_EVENT_TYPE_UNSPECIFIED: TransactionEventType
TRANSACTION_EVENT_TYPE_MERCHANT_APPROVE: TransactionEventType
TRANSACTION_EVENT_TYPE_MERCHANT_DENY: TransactionEventType
TRANSACTION_EVENT_TYPE_MANUAL_REVIEW: TransactionEventType
TRANSACTION_EVENT_TYPE_AUTHORIZATION: TransactionEventType
TRANSACTION_EVENT_TYPE_AUTHORIZATION_DECLINE: TransactionEventType
TRANSACTION_EVENT_TYPE_PAYMENT_CAPTURE: TransactionEventType
TRANSACTION_EVENT_TYPE_PAYMENT_CAPTURE_DECLINE: TransactionEventType
TRANSACTION_EVENT_TYPE_CANCEL: TransactionEventType
TRANSACTION_EVENT_TYPE_CHARGEBACK_INQUIRY: TransactionEventType
TRANSACTION_EVENT_TYPE_CHARGEBACK_ALERT: TransactionEventType
TRANSACTION_EVENT_TYPE_FRAUD_NOTIFICATION: TransactionEventType
TRANSACTION_EVENT_TYPE_CHARGEBACK: TransactionEventType
TRANSACTION_EVENT_TYPE_CHARGEBACK_REPRESENTMENT: TransactionEventType
TRANSACTION_EVENT_TYPE_CHARGEBACK_REVERSE: TransactionEventType
TRANSACTION_EVENT_TYPE_REFUND_REQUEST: TransactionEventType
TRANSACTION_EVENT_TYPE_REFUND_DECLINE: TransactionEventType
TRANSACTION_EVENT_TYPE_REFUND: TransactionEventType
TRANSACTION_EVENT_TYPE_REFUND_REVERSE: TransactionEventType
ANNOTATION_DELIVERY_UNSPECIFIED: AnnotationDelivery
ANNOTATION_DELIVERY_QUEUED: AnnotationDelivery
ANNOTATION_DELIVERY_DELIVERED: AnnotationDelivery

class SearchRelatedAccountsRequest(_message.Message):
    __slots__ = ("account_id", "page_size", "page_token")
    ACCOUNT_ID_FIELD_NUMBER: _ClassVar[int]
    PAGE_SIZE_FIELD_NUMBER: _ClassVar[int]
    PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    account_id: str
    page_size: int
    page_token: str
    def __init__(self, account_id: _Optional[str] = ..., page_size: _Optional[int] = ..., page_token: _Optional[str] = ...) -> None: ...

class SearchRelatedAccountsResponse(_message.Message):
    __slots__ = ("related_accounts", "next_page_token")
    RELATED_ACCOUNTS_FIELD_NUMBER: _ClassVar[int]
    NEXT_PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    related_accounts: _containers.RepeatedCompositeFieldContainer[RelatedAccount]
    next_page_token: str
    def __init__(self, related_accounts: _Optional[_Iterable[_Union[RelatedAccount, _Mapping]]] = ..., next_page_token: _Optional[str] = ...) -> None: ...

class RelatedAccount(_message.Message):
    __slots__ = ("account_id", "group", "decrypted")
    ACCOUNT_ID_FIELD_NUMBER: _ClassVar[int]
    GROUP_FIELD_NUMBER: _ClassVar[int]
    DECRYPTED_FIELD_NUMBER: _ClassVar[int]
    account_id: str
    group: str
    decrypted: bool
    def __init__(self, account_id: _Optional[str] = ..., group: _Optional[str] = ..., decrypted: _Optional[bool] = ...) -> None: ...

class AssessRequest(_message.Message):
    __slots__ = ("token", "expected_action", "site_key", "user_ip_address", "user_agent", "ja3", "ja4", "requested_uri", "account_id", "user_ids", "idempotency_key", "headers", "client_type", "express", "transaction_data")
    TOKEN_FIELD_NUMBER: _ClassVar[int]
    EXPECTED_ACTION_FIELD_NUMBER: _ClassVar[int]
    SITE_KEY_FIELD_NUMBER: _ClassVar[int]
    USER_IP_ADDRESS_FIELD_NUMBER: _ClassVar[int]
    USER_AGENT_FIELD_NUMBER: _ClassVar[int]
    JA3_FIELD_NUMBER: _ClassVar[int]
    JA4_FIELD_NUMBER: _ClassVar[int]
    REQUESTED_URI_FIELD_NUMBER: _ClassVar[int]
    ACCOUNT_ID_FIELD_NUMBER: _ClassVar[int]
    USER_IDS_FIELD_NUMBER: _ClassVar[int]
    IDEMPOTENCY_KEY_FIELD_NUMBER: _ClassVar[int]
    HEADERS_FIELD_NUMBER: _ClassVar[int]
    CLIENT_TYPE_FIELD_NUMBER: _ClassVar[int]
    EXPRESS_FIELD_NUMBER: _ClassVar[int]
    TRANSACTION_DATA_FIELD_NUMBER: _ClassVar[int]
    token: str
    expected_action: str
    site_key: str
    user_ip_address: str
    user_agent: str
    ja3: str
    ja4: str
    requested_uri: str
    account_id: str
    user_ids: _containers.RepeatedCompositeFieldContainer[UserId]
    idempotency_key: str
    headers: _containers.RepeatedScalarFieldContainer[str]
    client_type: ClientType
    express: bool
    transaction_data: TransactionData
    def __init__(self, token: _Optional[str] = ..., expected_action: _Optional[str] = ..., site_key: _Optional[str] = ..., user_ip_address: _Optional[str] = ..., user_agent: _Optional[str] = ..., ja3: _Optional[str] = ..., ja4: _Optional[str] = ..., requested_uri: _Optional[str] = ..., account_id: _Optional[str] = ..., user_ids: _Optional[_Iterable[_Union[UserId, _Mapping]]] = ..., idempotency_key: _Optional[str] = ..., headers: _Optional[_Iterable[str]] = ..., client_type: _Optional[_Union[ClientType, str]] = ..., express: _Optional[bool] = ..., transaction_data: _Optional[_Union[TransactionData, _Mapping]] = ...) -> None: ...

class TransactionData(_message.Message):
    __slots__ = ("transaction_id", "payment_method", "card_bin", "card_last_four", "currency_code", "value", "shipping_value", "shipping_address", "billing_address", "user", "merchants", "items", "gateway_info")
    class Address(_message.Message):
        __slots__ = ("recipient", "address", "locality", "administrative_area", "region_code", "postal_code")
        RECIPIENT_FIELD_NUMBER: _ClassVar[int]
        ADDRESS_FIELD_NUMBER: _ClassVar[int]
        LOCALITY_FIELD_NUMBER: _ClassVar[int]
        ADMINISTRATIVE_AREA_FIELD_NUMBER: _ClassVar[int]
        REGION_CODE_FIELD_NUMBER: _ClassVar[int]
        POSTAL_CODE_FIELD_NUMBER: _ClassVar[int]
        recipient: str
        address: _containers.RepeatedScalarFieldContainer[str]
        locality: str
        administrative_area: str
        region_code: str
        postal_code: str
        def __init__(self, recipient: _Optional[str] = ..., address: _Optional[_Iterable[str]] = ..., locality: _Optional[str] = ..., administrative_area: _Optional[str] = ..., region_code: _Optional[str] = ..., postal_code: _Optional[str] = ...) -> None: ...
    class User(_message.Message):
        __slots__ = ("account_id", "creation_ms", "email", "email_verified", "phone_number", "phone_verified")
        ACCOUNT_ID_FIELD_NUMBER: _ClassVar[int]
        CREATION_MS_FIELD_NUMBER: _ClassVar[int]
        EMAIL_FIELD_NUMBER: _ClassVar[int]
        EMAIL_VERIFIED_FIELD_NUMBER: _ClassVar[int]
        PHONE_NUMBER_FIELD_NUMBER: _ClassVar[int]
        PHONE_VERIFIED_FIELD_NUMBER: _ClassVar[int]
        account_id: str
        creation_ms: int
        email: str
        email_verified: bool
        phone_number: str
        phone_verified: bool
        def __init__(self, account_id: _Optional[str] = ..., creation_ms: _Optional[int] = ..., email: _Optional[str] = ..., email_verified: _Optional[bool] = ..., phone_number: _Optional[str] = ..., phone_verified: _Optional[bool] = ...) -> None: ...
    class Item(_message.Message):
        __slots__ = ("name", "value", "quantity", "merchant_account_id")
        NAME_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        QUANTITY_FIELD_NUMBER: _ClassVar[int]
        MERCHANT_ACCOUNT_ID_FIELD_NUMBER: _ClassVar[int]
        name: str
        value: float
        quantity: int
        merchant_account_id: str
        def __init__(self, name: _Optional[str] = ..., value: _Optional[float] = ..., quantity: _Optional[int] = ..., merchant_account_id: _Optional[str] = ...) -> None: ...
    class GatewayInfo(_message.Message):
        __slots__ = ("name", "gateway_response_code", "avs_response_code", "cvv_response_code")
        NAME_FIELD_NUMBER: _ClassVar[int]
        GATEWAY_RESPONSE_CODE_FIELD_NUMBER: _ClassVar[int]
        AVS_RESPONSE_CODE_FIELD_NUMBER: _ClassVar[int]
        CVV_RESPONSE_CODE_FIELD_NUMBER: _ClassVar[int]
        name: str
        gateway_response_code: str
        avs_response_code: str
        cvv_response_code: str
        def __init__(self, name: _Optional[str] = ..., gateway_response_code: _Optional[str] = ..., avs_response_code: _Optional[str] = ..., cvv_response_code: _Optional[str] = ...) -> None: ...
    TRANSACTION_ID_FIELD_NUMBER: _ClassVar[int]
    PAYMENT_METHOD_FIELD_NUMBER: _ClassVar[int]
    CARD_BIN_FIELD_NUMBER: _ClassVar[int]
    CARD_LAST_FOUR_FIELD_NUMBER: _ClassVar[int]
    CURRENCY_CODE_FIELD_NUMBER: _ClassVar[int]
    VALUE_FIELD_NUMBER: _ClassVar[int]
    SHIPPING_VALUE_FIELD_NUMBER: _ClassVar[int]
    SHIPPING_ADDRESS_FIELD_NUMBER: _ClassVar[int]
    BILLING_ADDRESS_FIELD_NUMBER: _ClassVar[int]
    USER_FIELD_NUMBER: _ClassVar[int]
    MERCHANTS_FIELD_NUMBER: _ClassVar[int]
    ITEMS_FIELD_NUMBER: _ClassVar[int]
    GATEWAY_INFO_FIELD_NUMBER: _ClassVar[int]
    transaction_id: str
    payment_method: str
    card_bin: str
    card_last_four: str
    currency_code: str
    value: float
    shipping_value: float
    shipping_address: TransactionData.Address
    billing_address: TransactionData.Address
    user: TransactionData.User
    merchants: _containers.RepeatedCompositeFieldContainer[TransactionData.User]
    items: _containers.RepeatedCompositeFieldContainer[TransactionData.Item]
    gateway_info: TransactionData.GatewayInfo
    def __init__(self, transaction_id: _Optional[str] = ..., payment_method: _Optional[str] = ..., card_bin: _Optional[str] = ..., card_last_four: _Optional[str] = ..., currency_code: _Optional[str] = ..., value: _Optional[float] = ..., shipping_value: _Optional[float] = ..., shipping_address: _Optional[_Union[TransactionData.Address, _Mapping]] = ..., billing_address: _Optional[_Union[TransactionData.Address, _Mapping]] = ..., user: _Optional[_Union[TransactionData.User, _Mapping]] = ..., merchants: _Optional[_Iterable[_Union[TransactionData.User, _Mapping]]] = ..., items: _Optional[_Iterable[_Union[TransactionData.Item, _Mapping]]] = ..., gateway_info: _Optional[_Union[TransactionData.GatewayInfo, _Mapping]] = ...) -> None: ...

class UserId(_message.Message):
    __slots__ = ("email", "phone_number", "username")
    EMAIL_FIELD_NUMBER: _ClassVar[int]
    PHONE_NUMBER_FIELD_NUMBER: _ClassVar[int]
    USERNAME_FIELD_NUMBER: _ClassVar[int]
    email: str
    phone_number: str
    username: str
    def __init__(self, email: _Optional[str] = ..., phone_number: _Optional[str] = ..., username: _Optional[str] = ...) -> None: ...

class AssessResponse(_message.Message):
    __slots__ = ("allowed", "verdict", "token_status", "invalid_reason", "score", "reasons", "action", "hostname", "assessment_name", "account_defender_labels", "replayed", "android_package_name", "ios_bundle_id", "threshold", "create_time", "recommended_action", "decided_by", "policy_version", "sms_toll_fraud_risk", "sms_toll_fraud_reasons", "transaction_risk", "transaction_risk_reasons", "stolen_instrument_risk", "card_testing_risk", "behavioral_trust", "account_takeover_risk", "account_takeover_risk_reasons", "account_takeover_trust_reasons", "extended_verdict_reasons", "challenge")
    ALLOWED_FIELD_NUMBER: _ClassVar[int]
    VERDICT_FIELD_NUMBER: _ClassVar[int]
    TOKEN_STATUS_FIELD_NUMBER: _ClassVar[int]
    INVALID_REASON_FIELD_NUMBER: _ClassVar[int]
    SCORE_FIELD_NUMBER: _ClassVar[int]
    REASONS_FIELD_NUMBER: _ClassVar[int]
    ACTION_FIELD_NUMBER: _ClassVar[int]
    HOSTNAME_FIELD_NUMBER: _ClassVar[int]
    ASSESSMENT_NAME_FIELD_NUMBER: _ClassVar[int]
    ACCOUNT_DEFENDER_LABELS_FIELD_NUMBER: _ClassVar[int]
    REPLAYED_FIELD_NUMBER: _ClassVar[int]
    ANDROID_PACKAGE_NAME_FIELD_NUMBER: _ClassVar[int]
    IOS_BUNDLE_ID_FIELD_NUMBER: _ClassVar[int]
    THRESHOLD_FIELD_NUMBER: _ClassVar[int]
    CREATE_TIME_FIELD_NUMBER: _ClassVar[int]
    RECOMMENDED_ACTION_FIELD_NUMBER: _ClassVar[int]
    DECIDED_BY_FIELD_NUMBER: _ClassVar[int]
    POLICY_VERSION_FIELD_NUMBER: _ClassVar[int]
    SMS_TOLL_FRAUD_RISK_FIELD_NUMBER: _ClassVar[int]
    SMS_TOLL_FRAUD_REASONS_FIELD_NUMBER: _ClassVar[int]
    TRANSACTION_RISK_FIELD_NUMBER: _ClassVar[int]
    TRANSACTION_RISK_REASONS_FIELD_NUMBER: _ClassVar[int]
    STOLEN_INSTRUMENT_RISK_FIELD_NUMBER: _ClassVar[int]
    CARD_TESTING_RISK_FIELD_NUMBER: _ClassVar[int]
    BEHAVIORAL_TRUST_FIELD_NUMBER: _ClassVar[int]
    ACCOUNT_TAKEOVER_RISK_FIELD_NUMBER: _ClassVar[int]
    ACCOUNT_TAKEOVER_RISK_REASONS_FIELD_NUMBER: _ClassVar[int]
    ACCOUNT_TAKEOVER_TRUST_REASONS_FIELD_NUMBER: _ClassVar[int]
    EXTENDED_VERDICT_REASONS_FIELD_NUMBER: _ClassVar[int]
    CHALLENGE_FIELD_NUMBER: _ClassVar[int]
    allowed: bool
    verdict: Verdict
    token_status: TokenStatus
    invalid_reason: str
    score: float
    reasons: _containers.RepeatedScalarFieldContainer[str]
    action: str
    hostname: str
    assessment_name: str
    account_defender_labels: _containers.RepeatedScalarFieldContainer[str]
    replayed: bool
    android_package_name: str
    ios_bundle_id: str
    threshold: float
    create_time: _timestamp_pb2.Timestamp
    recommended_action: RecommendedAction
    decided_by: str
    policy_version: str
    sms_toll_fraud_risk: float
    sms_toll_fraud_reasons: _containers.RepeatedScalarFieldContainer[str]
    transaction_risk: float
    transaction_risk_reasons: _containers.RepeatedScalarFieldContainer[str]
    stolen_instrument_risk: float
    card_testing_risk: float
    behavioral_trust: float
    account_takeover_risk: float
    account_takeover_risk_reasons: _containers.RepeatedScalarFieldContainer[str]
    account_takeover_trust_reasons: _containers.RepeatedScalarFieldContainer[str]
    extended_verdict_reasons: _containers.RepeatedScalarFieldContainer[str]
    challenge: str
    def __init__(self, allowed: _Optional[bool] = ..., verdict: _Optional[_Union[Verdict, str]] = ..., token_status: _Optional[_Union[TokenStatus, str]] = ..., invalid_reason: _Optional[str] = ..., score: _Optional[float] = ..., reasons: _Optional[_Iterable[str]] = ..., action: _Optional[str] = ..., hostname: _Optional[str] = ..., assessment_name: _Optional[str] = ..., account_defender_labels: _Optional[_Iterable[str]] = ..., replayed: _Optional[bool] = ..., android_package_name: _Optional[str] = ..., ios_bundle_id: _Optional[str] = ..., threshold: _Optional[float] = ..., create_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., recommended_action: _Optional[_Union[RecommendedAction, str]] = ..., decided_by: _Optional[str] = ..., policy_version: _Optional[str] = ..., sms_toll_fraud_risk: _Optional[float] = ..., sms_toll_fraud_reasons: _Optional[_Iterable[str]] = ..., transaction_risk: _Optional[float] = ..., transaction_risk_reasons: _Optional[_Iterable[str]] = ..., stolen_instrument_risk: _Optional[float] = ..., card_testing_risk: _Optional[float] = ..., behavioral_trust: _Optional[float] = ..., account_takeover_risk: _Optional[float] = ..., account_takeover_risk_reasons: _Optional[_Iterable[str]] = ..., account_takeover_trust_reasons: _Optional[_Iterable[str]] = ..., extended_verdict_reasons: _Optional[_Iterable[str]] = ..., challenge: _Optional[str] = ...) -> None: ...

class AnnotateRequest(_message.Message):
    __slots__ = ("assessment_name", "annotation", "reasons", "account_id", "transaction_event", "wait_for_upstream", "phone_authentication_event")
    ASSESSMENT_NAME_FIELD_NUMBER: _ClassVar[int]
    ANNOTATION_FIELD_NUMBER: _ClassVar[int]
    REASONS_FIELD_NUMBER: _ClassVar[int]
    ACCOUNT_ID_FIELD_NUMBER: _ClassVar[int]
    TRANSACTION_EVENT_FIELD_NUMBER: _ClassVar[int]
    WAIT_FOR_UPSTREAM_FIELD_NUMBER: _ClassVar[int]
    PHONE_AUTHENTICATION_EVENT_FIELD_NUMBER: _ClassVar[int]
    assessment_name: str
    annotation: Annotation
    reasons: _containers.RepeatedScalarFieldContainer[AnnotationReason]
    account_id: str
    transaction_event: TransactionEvent
    wait_for_upstream: bool
    phone_authentication_event: PhoneAuthenticationEvent
    def __init__(self, assessment_name: _Optional[str] = ..., annotation: _Optional[_Union[Annotation, str]] = ..., reasons: _Optional[_Iterable[_Union[AnnotationReason, str]]] = ..., account_id: _Optional[str] = ..., transaction_event: _Optional[_Union[TransactionEvent, _Mapping]] = ..., wait_for_upstream: _Optional[bool] = ..., phone_authentication_event: _Optional[_Union[PhoneAuthenticationEvent, _Mapping]] = ...) -> None: ...

class PhoneAuthenticationEvent(_message.Message):
    __slots__ = ("phone_number", "event_time")
    PHONE_NUMBER_FIELD_NUMBER: _ClassVar[int]
    EVENT_TIME_FIELD_NUMBER: _ClassVar[int]
    phone_number: str
    event_time: _timestamp_pb2.Timestamp
    def __init__(self, phone_number: _Optional[str] = ..., event_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ...) -> None: ...

class TransactionEvent(_message.Message):
    __slots__ = ("event_type", "reason", "value", "event_time")
    EVENT_TYPE_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    VALUE_FIELD_NUMBER: _ClassVar[int]
    EVENT_TIME_FIELD_NUMBER: _ClassVar[int]
    event_type: TransactionEventType
    reason: str
    value: float
    event_time: _timestamp_pb2.Timestamp
    def __init__(self, event_type: _Optional[_Union[TransactionEventType, str]] = ..., reason: _Optional[str] = ..., value: _Optional[float] = ..., event_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ...) -> None: ...

class AnnotateResponse(_message.Message):
    __slots__ = ("delivery",)
    DELIVERY_FIELD_NUMBER: _ClassVar[int]
    delivery: AnnotationDelivery
    def __init__(self, delivery: _Optional[_Union[AnnotationDelivery, str]] = ...) -> None: ...
