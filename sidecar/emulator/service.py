"""The emulated reCAPTCHA Enterprise v1 gRPC service: behaviour, counters and fault knobs.

It answers from the claims a token carries (see ``tokens.py``) the way Google documents the
API: one assessment per token, then DUPE; EXPIRED after two minutes; an assessment name that
Annotate accepts. The counters and knobs exist so tests can prove what the sidecar sent
upstream and how it copes when upstream misbehaves.

The hot path uses plain protobuf classes (no proto-plus wrappers) and constant-time state
operations, because the sidecar's benchmark uses this emulator as its upstream.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import random
import re
import secrets
import time
from collections import OrderedDict, deque
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, fields
from typing import Any

import grpc
from google.cloud.recaptchaenterprise_v1.types import (
    AccountDefenderAssessment,
    AnnotateAssessmentRequest,
    AnnotateAssessmentResponse,
    Assessment,
    CreateAssessmentRequest,
    RiskAnalysis,
    TokenProperties,
)
from google.protobuf import descriptor_pb2, descriptor_pool, json_format

from sidecar.emulator.tokens import parse_token

SERVICE_NAME = "google.cloud.recaptchaenterprise.v1.RecaptchaEnterpriseService"
DEFAULT_PROJECT_NUMBER = "123456789"
RPC_CREATE = "create"
RPC_ANNOTATE = "annotate"
RPCS = (RPC_CREATE, RPC_ANNOTATE)
RETRY_PUSHBACK_KEY = "grpc-retry-pushback-ms"

# Plain protobuf classes: proto-plus marshalling costs more than the emulator's own work.
CreateAssessmentRequestPb: Any = CreateAssessmentRequest.pb()
AssessmentPb: Any = Assessment.pb()
AnnotateAssessmentRequestPb: Any = AnnotateAssessmentRequest.pb()
AnnotateAssessmentResponsePb: Any = AnnotateAssessmentResponse.pb()
_InvalidReason: Any = TokenProperties.pb().InvalidReason
_ClassificationReason: Any = RiskAnalysis.pb().ClassificationReason
_AccountDefenderLabel: Any = AccountDefenderAssessment.pb().AccountDefenderLabel
_EMPTY_ANNOTATE_RESPONSE: Any = AnnotateAssessmentResponsePb()

_PARENT = re.compile(r"projects/[^/]+")


def _register_service_descriptor() -> None:
    """Put the service in the default descriptor pool so reflection can describe it.

    The GAPIC package registers the messages but not the service; without this, grpcurl and
    grpcui could list the service but not call it.
    """
    pool = descriptor_pool.Default()
    try:
        pool.FindServiceByName(SERVICE_NAME)
        return
    except KeyError:
        pass
    package, _, name = SERVICE_NAME.rpartition(".")
    file = descriptor_pb2.FileDescriptorProto(
        name="sidecar/emulator/recaptchaenterprise_service.proto",
        package=package,
        dependency=[AssessmentPb.DESCRIPTOR.file.name],
        syntax="proto3",
    )
    service = file.service.add(name=name)
    for method, request, response in (
        ("CreateAssessment", CreateAssessmentRequestPb, AssessmentPb),
        ("AnnotateAssessment", AnnotateAssessmentRequestPb, AnnotateAssessmentResponsePb),
    ):
        service.method.add(
            name=method,
            input_type="." + request.DESCRIPTOR.full_name,
            output_type="." + response.DESCRIPTOR.full_name,
        )
    pool.Add(file)


_register_service_descriptor()


@dataclass(frozen=True, slots=True)
class Faults:
    """The misbehaviour configured for one RPC; the defaults are a healthy upstream."""

    latency_ms: float = 0.0
    error_rate: float = 0.0
    error_code: grpc.StatusCode = grpc.StatusCode.UNAVAILABLE
    hang: bool = False
    fail_after_consume_rate: float = 0.0
    quota: bool = False
    retry_pushback_ms: int | None = None
    seed: int | None = None

    @property
    def active(self) -> bool:
        """False for a healthy configuration, so the hot path can skip every check."""
        return bool(
            self.latency_ms
            or self.error_rate
            or self.hang
            or self.quota
            or self.fail_after_consume_rate
        )

    @classmethod
    def from_knobs(cls, knobs: Mapping[str, object]) -> Faults:
        """Validate knobs from a test or the JSON control plane; ValueError names the bad one."""
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(knobs) - known)
        if unknown:
            raise ValueError(f"unknown fault knob(s) {unknown}; known: {sorted(known)}")
        return cls(
            latency_ms=_number(knobs, "latency_ms", 0.0, upper=None),
            error_rate=_number(knobs, "error_rate", 0.0, upper=1.0),
            error_code=_status_code(knobs.get("error_code", grpc.StatusCode.UNAVAILABLE)),
            hang=_flag(knobs, "hang"),
            fail_after_consume_rate=_number(knobs, "fail_after_consume_rate", 0.0, upper=1.0),
            quota=_flag(knobs, "quota"),
            retry_pushback_ms=_optional_int(knobs, "retry_pushback_ms"),
            seed=_optional_int(knobs, "seed", minimum=None),
        )

    def to_json(self) -> dict[str, Any]:
        """The knobs as the control plane shows them (status codes by name)."""
        return {
            "latency_ms": self.latency_ms,
            "error_rate": self.error_rate,
            "error_code": self.error_code.name,
            "hang": self.hang,
            "fail_after_consume_rate": self.fail_after_consume_rate,
            "quota": self.quota,
            "retry_pushback_ms": self.retry_pushback_ms,
            "seed": self.seed,
        }


def _number(knobs: Mapping[str, object], key: str, default: float, upper: float | None) -> float:
    value = knobs.get(key, default)
    if not isinstance(value, int | float) or isinstance(value, bool) or value != value:
        raise ValueError(f"{key} must be a number")
    if value < 0 or (upper is not None and value > upper):
        raise ValueError(f"{key} must be in [0, {upper if upper is not None else 'inf'}]")
    return float(value)


def _flag(knobs: Mapping[str, object], key: str) -> bool:
    value = knobs.get(key, False)
    if not isinstance(value, bool):
        raise ValueError(f"{key} must be true or false")
    return value


def _optional_int(knobs: Mapping[str, object], key: str, minimum: int | None = 0) -> int | None:
    value = knobs.get(key)
    if value is None:
        return None
    if not isinstance(value, int) or isinstance(value, bool):
        raise ValueError(f"{key} must be an integer")
    if minimum is not None and value < minimum:
        raise ValueError(f"{key} must be >= {minimum}")
    return value


def _status_code(value: object) -> Any:
    """Accept a grpc.StatusCode, its name ("UNAVAILABLE") or its number (14)."""
    if isinstance(value, bool):
        raise ValueError(f"error_code must be a non-OK gRPC status code, not {value!r}")
    for code in grpc.StatusCode:
        if value is code or value == code.name or value == code.value[0]:
            if code is grpc.StatusCode.OK:
                break
            return code
    raise ValueError(f"error_code must be a non-OK gRPC status code, not {value!r}")


class _FaultState:
    """One RPC's knobs and its own RNG, so the two RPCs' draws do not disturb each other."""

    __slots__ = ("faults", "injected", "rng")

    def __init__(self, seed: int | None) -> None:
        self.faults = Faults(seed=seed)
        self.rng = random.Random(seed)
        self.injected = 0


def _remember(store: OrderedDict[Any, Any], key: Any, value: Any, limit: int) -> None:
    """Insert with FIFO eviction, keeping memory bounded during long benchmark runs."""
    if key not in store and len(store) >= limit:
        store.popitem(last=False)
    store[key] = value


class EmulatorService:
    """The emulated upstream. One instance per server; all state lives on the event loop.

    Every state change happens synchronously between awaits, so concurrent calls for one
    token are serialised exactly as upstream serialises them: one VALID, the rest DUPE.
    """

    def __init__(
        self,
        *,
        project_number: str = DEFAULT_PROJECT_NUMBER,
        seed: int | None = None,
        clock: Callable[[], float] = time.time,
        recent_limit: int = 100,
        annotation_limit: int = 10_000,
        tracked_limit: int = 1_000_000,
    ) -> None:
        if not project_number or "/" in project_number:
            raise ValueError(f"invalid project number {project_number!r}")
        self.project_number = project_number
        self._name_prefix = f"projects/{project_number}/assessments/"
        self._seed = seed
        self._clock = clock
        self._recent_limit = recent_limit
        self._annotation_limit = annotation_limit
        self._tracked_limit = tracked_limit
        self._faults = {rpc: _FaultState(seed) for rpc in RPCS}
        self.reset()

    # ---- control -------------------------------------------------------------------------

    def reset(self) -> None:
        """Forget every token, assessment, counter and fault: a fresh upstream."""
        self._consumed: OrderedDict[bytes, None] = OrderedDict()
        self._assessments: OrderedDict[str, None] = OrderedDict()
        self._calls_by_digest: OrderedDict[bytes, int] = OrderedDict()
        self._repeated_tokens = 0
        self._create_calls = 0
        self._annotate_calls = 0
        self._outcomes: dict[str, int] = {}
        self._annotations: deque[Any] = deque(maxlen=self._annotation_limit)
        self._annotations_total = 0
        self._annotated_names: set[str] = set()
        self._recent_creates: deque[tuple[str, Any, Any]] = deque(maxlen=self._recent_limit)
        self._metadata_keys: set[str] = set()
        self._hanging = 0
        for state in self._faults.values():
            state.injected = 0
        self.clear_faults()

    def set_faults(self, rpc: str, **knobs: object) -> dict[str, dict[str, Any]]:
        """Replace the knobs of ``rpc`` ("create" or "annotate"); unnamed knobs go back to
        their defaults. ``seed`` reseeds that RPC's RNG for a reproducible run."""
        if rpc not in self._faults:
            raise ValueError(f"unknown rpc {rpc!r}; expected one of {list(RPCS)}")
        faults = Faults.from_knobs(knobs)
        state = self._faults[rpc]
        state.faults = faults
        if faults.seed is not None:
            state.rng.seed(faults.seed)
        return self.faults()

    def clear_faults(self) -> None:
        """Make upstream healthy again, reseeding from the constructor's seed if any."""
        for state in self._faults.values():
            state.faults = Faults(seed=self._seed)
            state.rng.seed(self._seed)

    def faults(self) -> dict[str, dict[str, Any]]:
        """The current knobs per RPC, as JSON."""
        return {rpc: state.faults.to_json() for rpc, state in self._faults.items()}

    def stats(self, *, tokens: Iterable[str] = (), digests: Iterable[str] = ()) -> dict[str, Any]:
        """A JSON-ready snapshot of what reached the emulator.

        Per-token call counts are returned only for the ``tokens`` (or SHA-256 hex
        ``digests``) asked about, since a benchmark may have sent millions.
        """
        by_digest = self._calls_by_digest
        return {
            "create_calls": self._create_calls,
            "annotate_calls": self._annotate_calls,
            "assessments": len(self._assessments),
            "outcomes": dict(self._outcomes),
            "distinct_tokens": len(by_digest),
            "repeated_tokens": self._repeated_tokens,
            "create_calls_by_token": {
                t: by_digest.get(token_digest(t), 0) for t in tokens if isinstance(t, str)
            },
            "create_calls_by_digest": {
                d: by_digest.get(_from_hex(d), 0) for d in digests if isinstance(d, str)
            },
            "annotations_total": self._annotations_total,
            "annotations": [_annotation_json(a) for a in self._annotations],
            "annotated_names": sorted(self._annotated_names),
            "recent_creates": [
                {
                    "parent": parent,
                    "event": json_format.MessageToDict(event, preserving_proto_field_name=True),
                    "metadata": _metadata_json(metadata),
                }
                for parent, event, metadata in self._recent_creates
            ],
            "metadata_keys": sorted(self._metadata_keys),
            "hanging_calls": self._hanging,
            "injected_failures": {rpc: s.injected for rpc, s in self._faults.items()},
            "faults": self.faults(),
        }

    # ---- gRPC ----------------------------------------------------------------------------

    def rpc_handler(self) -> Any:
        """The generic handler for the Google service (the GAPIC package ships no servicer).

        Methods other than these two answer UNIMPLEMENTED, as gRPC does for unknown methods.
        """
        return grpc.method_handlers_generic_handler(
            SERVICE_NAME,
            {
                "CreateAssessment": grpc.unary_unary_rpc_method_handler(
                    self.create_assessment,
                    request_deserializer=CreateAssessmentRequestPb.FromString,
                    response_serializer=AssessmentPb.SerializeToString,
                ),
                "AnnotateAssessment": grpc.unary_unary_rpc_method_handler(
                    self.annotate_assessment,
                    request_deserializer=AnnotateAssessmentRequestPb.FromString,
                    response_serializer=AnnotateAssessmentResponsePb.SerializeToString,
                ),
            },
        )

    async def create_assessment(self, request: Any, context: Any) -> Any:
        """CreateAssessment: count, inject faults, then assess and consume the token."""
        self._create_calls += 1
        event = request.assessment.event
        token: str = event.token
        if token:
            digest = token_digest(token)
            count = self._calls_by_digest.get(digest, 0) + 1
            _remember(self._calls_by_digest, digest, count, self._tracked_limit)
            if count == 2:
                self._repeated_tokens += 1
        else:
            digest = b""
        metadata = context.invocation_metadata() or ()
        self._recent_creates.append((request.parent, event, metadata))
        self._note_metadata(metadata)
        state = self._faults[RPC_CREATE]
        if state.faults.active:
            await self._fail_before(state, context)
        if not _PARENT.fullmatch(request.parent):
            await context.abort(
                grpc.StatusCode.INVALID_ARGUMENT,
                f"parent must be 'projects/{{project}}', got {request.parent!r}",
            )
        assessment = self._assess(request, digest)
        if state.faults.active:
            await self._fail_after(state, context)
        return assessment

    async def annotate_assessment(self, request: Any, context: Any) -> Any:
        """AnnotateAssessment: accept annotations only for assessments made here."""
        self._annotate_calls += 1
        self._note_metadata(context.invocation_metadata() or ())
        state = self._faults[RPC_ANNOTATE]
        if state.faults.active:
            await self._fail_before(state, context)
        if request.name not in self._assessments:
            await context.abort(
                grpc.StatusCode.NOT_FOUND, f"assessment {request.name!r} does not exist"
            )
        self._annotations.append(request)
        self._annotations_total += 1
        self._annotated_names.add(request.name)
        if state.faults.active:
            await self._fail_after(state, context)
        return _EMPTY_ANNOTATE_RESPONSE

    # ---- behaviour -----------------------------------------------------------------------

    def _assess(self, request: Any, digest: bytes) -> Any:
        """Build the assessment; consumes the token whatever the verdict (like upstream)."""
        event = request.assessment.event
        assessment = AssessmentPb()
        name = self._name_prefix + secrets.token_hex(8)
        assessment.name = name
        _remember(self._assessments, name, None, self._tracked_limit)
        assessment.event.CopyFrom(event)
        properties = assessment.token_properties
        reason = self._invalid_reason(event, digest)
        if isinstance(reason, str):
            properties.valid = False
            properties.invalid_reason = _InvalidReason.Value(reason)
            self._outcomes[reason] = self._outcomes.get(reason, 0) + 1
            return assessment
        claims = reason
        properties.valid = True
        if claims.android_package_name is not None:
            properties.android_package_name = claims.android_package_name
        elif claims.ios_bundle_id is not None:
            properties.ios_bundle_id = claims.ios_bundle_id
        else:
            properties.hostname = claims.hostname
        properties.action = claims.action
        properties.create_time.FromNanoseconds(int(claims.issued_at * 1e9))
        risk = assessment.risk_analysis
        risk.score = claims.score
        if claims.reasons:
            risk.reasons.extend(_ClassificationReason.Value(r) for r in claims.reasons)
        if claims.labels:
            assessment.account_defender_assessment.labels.extend(
                _AccountDefenderLabel.Value(label) for label in claims.labels
            )
        self._outcomes["VALID"] = self._outcomes.get("VALID", 0) + 1
        return assessment

    def _invalid_reason(self, event: Any, digest: bytes) -> Any:
        """The InvalidReason name, or the token's claims when it is valid."""
        token: str = event.token
        if not token:
            return "MISSING"
        if digest in self._consumed:
            return "DUPE"  # it parsed before: malformed tokens are never recorded
        claims = parse_token(token)
        if claims is None:
            return "MALFORMED"
        _remember(self._consumed, digest, None, self._tracked_limit)
        if claims.expired(self._clock()):
            return "EXPIRED"
        if claims.invalid_reason is not None:
            return claims.invalid_reason
        if claims.site_key is not None and claims.site_key != event.site_key:
            return "KEY_MISMATCH"
        return claims

    def _note_metadata(self, metadata: Sequence[tuple[str, Any]]) -> None:
        keys = self._metadata_keys
        for key, _ in metadata:
            keys.add(key)

    # ---- faults --------------------------------------------------------------------------

    async def _fail_before(self, state: _FaultState, context: Any) -> None:
        """Faults that strike before the request is processed: nothing is consumed."""
        faults = state.faults
        if faults.latency_ms:
            await asyncio.sleep(faults.latency_ms / 1000.0)
        if faults.hang:
            self._hanging += 1
            try:
                await asyncio.get_running_loop().create_future()  # until the client cancels
            finally:
                self._hanging -= 1
        if faults.quota:
            await self._inject(
                state, context, grpc.StatusCode.RESOURCE_EXHAUSTED, "emulated quota exceeded"
            )
        if faults.error_rate and state.rng.random() < faults.error_rate:
            await self._inject(state, context, faults.error_code, "emulated upstream failure")

    async def _fail_after(self, state: _FaultState, context: Any) -> None:
        """The answer is lost after the work is done: the token stays consumed."""
        faults = state.faults
        rate = faults.fail_after_consume_rate
        if rate and state.rng.random() < rate:
            await self._inject(
                state, context, grpc.StatusCode.UNAVAILABLE, "emulated failure after processing"
            )

    async def _inject(self, state: _FaultState, context: Any, code: Any, details: str) -> None:
        state.injected += 1
        pushback = state.faults.retry_pushback_ms
        trailing = () if pushback is None else ((RETRY_PUSHBACK_KEY, str(pushback)),)
        await context.abort(code, details, trailing_metadata=trailing)


def token_digest(token: str) -> bytes:
    """The key single use is tracked by (never the token itself), as the sidecar does."""
    return hashlib.sha256(token.encode()).digest()


def _from_hex(digest: str) -> bytes:
    try:
        return bytes.fromhex(digest)
    except ValueError:
        return b""


def _annotation_json(request: Any) -> dict[str, Any]:
    transaction = None
    if request.HasField("transaction_event"):
        transaction = json_format.MessageToDict(
            request.transaction_event, preserving_proto_field_name=True
        )
    return {
        "name": request.name,
        "annotation": _enum_name(AnnotateAssessmentRequestPb.Annotation, request.annotation),
        "reasons": [_enum_name(AnnotateAssessmentRequestPb.Reason, r) for r in request.reasons],
        "account_id": request.account_id,
        "hashed_account_id": base64.b64encode(request.hashed_account_id).decode("ascii"),
        "transaction_event": transaction,
    }


def _enum_name(enum: Any, number: int) -> str:
    """Values newer than this package's protos still show, as their number."""
    try:
        return str(enum.Name(number))
    except ValueError:
        return str(number)


def _metadata_json(metadata: Sequence[tuple[str, Any]]) -> dict[str, str]:
    """Binary (-bin) values are shown base64-encoded so the snapshot stays JSON."""
    out: dict[str, str] = {}
    for key, value in metadata:
        if isinstance(value, bytes):
            value = base64.b64encode(value).decode("ascii")
        out[key] = value
    return out
