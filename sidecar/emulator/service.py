"""The emulated reCAPTCHA Enterprise v1 gRPC service: behaviour, counters and fault knobs.

It answers from the claims a token carries (see ``tokens.py``) the way Google documents the
API: one assessment per token, then DUPE; EXPIRED after two minutes; an assessment name that
Annotate accepts. It checks what Google checks, each when configured (see ``project.py``):
credentials, the project, the site key; and it fails with Google's error shapes (``errors.py``).
The counters and knobs exist so tests can prove what the sidecar sent upstream and how it
copes when upstream misbehaves.

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
from collections.abc import Callable, Iterable, Sequence
from typing import Any

import grpc
from google.cloud.recaptchaenterprise_v1.types import (
    AnnotateAssessmentRequest,
    AnnotateAssessmentResponse,
    CreateAssessmentRequest,
    SearchRelatedAccountGroupMembershipsRequest,
    SearchRelatedAccountGroupMembershipsResponse,
)
from google.protobuf import json_format

from sidecar.emulator import answers, errors
from sidecar.emulator.answers import AssessmentPb
from sidecar.emulator.errors import GoogleError
from sidecar.emulator.faults import Faults
from sidecar.emulator.keys import Platform, SiteKey, origin_without_key
from sidecar.emulator.metadata import MetadataFaults, MetadataState
from sidecar.emulator.project import (
    DEFAULT_PROJECT_NUMBER,
    Project,
    TokenIssuer,
    check_credentials,
    redact,
)
from sidecar.emulator.tokens import parse_token
from sidecar.googleapi.service import SERVICE, register_service_descriptor

SERVICE_NAME = SERVICE
RPC_CREATE = "create"
RPC_ANNOTATE = "annotate"
RPC_SEARCH = "related"  # SearchRelatedAccountGroupMemberships
RPC_METADATA = "metadata"  # the fake GCE metadata server's token endpoint
RPCS = (RPC_CREATE, RPC_ANNOTATE, RPC_SEARCH)
_METHODS = {
    RPC_CREATE: "CreateAssessment",
    RPC_ANNOTATE: "AnnotateAssessment",
    RPC_SEARCH: "SearchRelatedAccountGroupMemberships",
}

# Plain protobuf classes: proto-plus marshalling costs more than the emulator's own work.
CreateAssessmentRequestPb: Any = CreateAssessmentRequest.pb()
AnnotateAssessmentRequestPb: Any = AnnotateAssessmentRequest.pb()
AnnotateAssessmentResponsePb: Any = AnnotateAssessmentResponse.pb()
SearchRequestPb: Any = SearchRelatedAccountGroupMembershipsRequest.pb()
SearchResponsePb: Any = SearchRelatedAccountGroupMembershipsResponse.pb()
_EMPTY_ANNOTATE_RESPONSE: Any = AnnotateAssessmentResponsePb()

_PARENT = re.compile(r"projects/([^/]+)")
_ASSESSMENT_NAME = re.compile(r"projects/([^/]+)/assessments/([^/]+)")
_SITE_KEY_FIELD = "assessment.event.site_key"


register_service_descriptor()  # so reflection can describe the service (grpcurl, grpcui)


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
    """The emulated upstream. One instance per server; all state lives on the event loop
    (the metadata server's threads touch only the token issuer and their own state).

    Every state change happens synchronously between awaits, so concurrent calls for one
    token are serialised exactly as upstream serialises them: one VALID, the rest DUPE.
    """

    def __init__(
        self,
        *,
        project_number: str | None = None,
        project: Project | None = None,
        seed: int | None = None,
        clock: Callable[[], float] = time.time,
        recent_limit: int = 100,
        annotation_limit: int = 10_000,
        tracked_limit: int = 1_000_000,
    ) -> None:
        if project is None:
            project = Project(number=project_number or DEFAULT_PROJECT_NUMBER)
        elif project_number is not None and project_number != project.number:
            raise ValueError("project_number disagrees with project.number")
        self.project = project
        self.project_number = project.number
        self.issuer = TokenIssuer(clock=clock)
        self.metadata = MetadataState()
        self._name_prefix = f"projects/{project.number}/assessments/"
        self._seed = seed
        self._clock = clock
        self._recent_limit = recent_limit
        self._annotation_limit = annotation_limit
        self._tracked_limit = tracked_limit
        self._faults = {rpc: _FaultState(seed) for rpc in RPCS}
        self.reset()

    # ---- control -------------------------------------------------------------------------

    def reset(self) -> None:
        """Forget every token, assessment, counter and fault: a fresh upstream.

        Access tokens already issued stay valid: they are the client's credentials, not data.
        """
        self._consumed: OrderedDict[bytes, None] = OrderedDict()
        self._assessments: OrderedDict[str, None] = OrderedDict()
        self._calls_by_digest: OrderedDict[bytes, int] = OrderedDict()
        self._repeated_tokens = 0
        self._create_calls = 0
        self._annotate_calls = 0
        self._search_calls = 0
        self._recent_searches: deque[str] = deque(maxlen=self._recent_limit)
        # Related accounts: the accounts assessed with each `device` claim form one group.
        self._device_accounts: OrderedDict[str, OrderedDict[str, None]] = OrderedDict()
        self._account_devices: OrderedDict[str, OrderedDict[str, None]] = OrderedDict()
        self._outcomes: dict[str, int] = {}
        self._annotations: deque[Any] = deque(maxlen=self._annotation_limit)
        self._annotations_total = 0
        self._annotated_names: set[str] = set()
        self._recent_creates: deque[tuple[str, Any, Any]] = deque(maxlen=self._recent_limit)
        self._metadata_keys: set[str] = set()
        self._credentials: dict[str, int] = {}
        self._rejected: dict[str, int] = {}
        self._hanging = 0
        for state in self._faults.values():
            state.injected = 0
        self.metadata.reset_counters()
        self.clear_faults()

    def set_faults(self, rpc: str, **knobs: object) -> dict[str, dict[str, Any]]:
        """Replace the knobs of ``rpc`` ("create", "annotate" or "metadata"); unnamed knobs go
        back to their defaults. ``seed`` reseeds that RPC's RNG for a reproducible run."""
        if rpc == RPC_METADATA:
            self.metadata.set(MetadataFaults.from_knobs(dict(knobs)))
            return self.faults()
        if rpc not in self._faults:
            raise ValueError(f"unknown rpc {rpc!r}; expected one of {[*RPCS, RPC_METADATA]}")
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
        self.metadata.set(MetadataFaults())

    def faults(self) -> dict[str, dict[str, Any]]:
        """The current knobs per RPC, as JSON."""
        current = {rpc: state.faults.to_json() for rpc, state in self._faults.items()}
        current[RPC_METADATA] = self.metadata.faults.to_json()
        return current

    def expire_access_tokens(self) -> int:
        """Make every access token issued so far expired; returns how many there were."""
        return self.issuer.expire_all()

    def stats(self, *, tokens: Iterable[str] = (), digests: Iterable[str] = ()) -> dict[str, Any]:
        """A JSON-ready snapshot of what reached the emulator.

        Per-token call counts are returned only for the ``tokens`` (or SHA-256 hex
        ``digests``) asked about, since a benchmark may have sent millions.
        """
        by_digest = self._calls_by_digest
        return {
            "create_calls": self._create_calls,
            "annotate_calls": self._annotate_calls,
            "search_calls": self._search_calls,
            "related_groups": len(self._device_accounts),
            "recent_searches": list(self._recent_searches),
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
            "calls_by_credential": dict(self._credentials),
            "rejected_calls": dict(self._rejected),
            "access_tokens_issued": self.issuer.issued,
            "metadata_server": self.metadata.stats(),
            "hanging_calls": self._hanging,
            "injected_failures": {rpc: s.injected for rpc, s in self._faults.items()},
            "faults": self.faults(),
        }

    def recent_events(self) -> list[Any]:
        """The events of the latest CreateAssessment calls as received (plain protobuf, with
        any field this library does not know still in them), oldest first."""
        return [event for _, event, _ in self._recent_creates]

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
                "SearchRelatedAccountGroupMemberships": grpc.unary_unary_rpc_method_handler(
                    self.search_related_account_group_memberships,
                    request_deserializer=SearchRequestPb.FromString,
                    response_serializer=SearchResponsePb.SerializeToString,
                ),
            },
        )

    async def create_assessment(self, request: Any, context: Any) -> Any:
        """CreateAssessment, in the order Google's front end and service check things:
        credentials, project, quota, the request, then assess (consuming the token)."""
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
            await self._delay(state)
        await self._admit(RPC_CREATE, metadata, context)
        await self._check_parent(request.parent, context)
        if state.faults.active:
            await self._fail_before(RPC_CREATE, state, context)
        key = await self._site_key(event, context)
        assessment = self._assess(event, digest, key)
        if state.faults.active:
            await self._fail_after(state, context)
        return assessment

    async def annotate_assessment(self, request: Any, context: Any) -> Any:
        """AnnotateAssessment: malformed name INVALID_ARGUMENT, another project's assessment
        PERMISSION_DENIED, an id this emulator did not issue NOT_FOUND."""
        self._annotate_calls += 1
        metadata = context.invocation_metadata() or ()
        self._note_metadata(metadata)
        state = self._faults[RPC_ANNOTATE]
        if state.faults.active:
            await self._delay(state)
        await self._admit(RPC_ANNOTATE, metadata, context)
        name = self._assessment_name(request.name)
        if isinstance(name, GoogleError):
            await self._reject(context, name)
        if state.faults.active:
            await self._fail_before(RPC_ANNOTATE, state, context)
        if name not in self._assessments:
            await self._reject(context, errors.not_found("Assessment", request.name, "Assessment"))
        self._annotations.append(request)
        self._annotations_total += 1
        self._annotated_names.add(request.name)
        if state.faults.active:
            await self._fail_after(state, context)
        return _EMPTY_ANNOTATE_RESPONSE

    async def search_related_account_group_memberships(self, request: Any, context: Any) -> Any:
        """The memberships of every related-account group the account belongs to (accounts
        assessed with one `device` claim are one group), ordered by group then account, a page
        at a time: `page_size` 0 is 50, above 1,000 is 1,000 (as Google coerces)."""
        self._search_calls += 1
        metadata = context.invocation_metadata() or ()
        self._note_metadata(metadata)
        state = self._faults[RPC_SEARCH]
        if state.faults.active:
            await self._delay(state)
        await self._admit(RPC_SEARCH, metadata, context)
        await self._check_project(request.project, RPC_SEARCH, context)
        if bool(request.account_id) == bool(request.hashed_account_id):
            detail = "Exactly one of account_id and hashed_account_id must be set."
            await self._reject(context, errors.bad_request([("account_id", detail)]))
        if request.page_size < 0:
            await self._reject(context, errors.bad_request([("page_size", "Must be >= 0.")]))
        start = _page_offset(request.page_token)
        if start is None:
            await self._reject(context, errors.bad_request([("page_token", "Invalid token.")]))
            return None
        if state.faults.active:
            await self._fail_before(RPC_SEARCH, state, context)
        account = request.account_id or request.hashed_account_id.hex()
        self._recent_searches.append(account)
        members = [
            (device, member)
            for device in sorted(self._account_devices.get(account, ()), key=_group_id)
            for member in sorted(self._device_accounts.get(device, ()))
        ]
        size = min(request.page_size or 50, 1000)
        response = SearchResponsePb()
        prefix = f"projects/{self.project_number}/relatedaccountgroups/"
        for device, member in members[start : start + size]:
            membership = response.related_account_group_memberships.add()
            membership.name = f"{prefix}{_group_id(device)}/memberships/{_group_id(member)}"
            membership.account_id = member
        if start + size < len(members):
            response.next_page_token = _page_token(start + size)
        if state.faults.active:
            await self._fail_after(state, context)
        return response

    def _relate(self, event: Any, claims: Any) -> None:
        """Remember which account a device was seen with (bounded like the other state)."""
        account = event.user_info.account_id or event.hashed_account_id.hex()
        device = claims.device
        if not account or device is None:
            return
        accounts = self._device_accounts.get(device)
        if accounts is None:
            accounts = OrderedDict()
            _remember(self._device_accounts, device, accounts, self._tracked_limit)
        accounts[account] = None
        devices = self._account_devices.get(account)
        if devices is None:
            devices = OrderedDict()
            _remember(self._account_devices, account, devices, self._tracked_limit)
        devices[device] = None

    # ---- Google's checks -----------------------------------------------------------------

    async def _admit(self, rpc: str, metadata: Sequence[tuple[str, Any]], context: Any) -> None:
        """Credentials, when the project requires them (API key, or a token issued here)."""
        if not self.project.require_credentials:
            return
        headers = {k: v for k, v in metadata if isinstance(v, str)}
        _, error = check_credentials(
            self.project, self.issuer, headers, _METHODS[rpc], self._clock()
        )
        if error is not None:
            await self._reject(context, error)

    async def _check_parent(self, parent: str, context: Any) -> None:
        await self._check_project(parent, RPC_CREATE, context, field="parent")

    async def _check_project(
        self, parent: str, rpc: str, context: Any, *, field: str = "project"
    ) -> None:
        match = _PARENT.fullmatch(parent)
        if match is None:
            await self._reject(
                context,
                errors.bad_request([(field, "Must be of the form 'projects/{project}'.")]),
            )
            return
        if not self.project.owns(match[1]):
            await self._reject(
                context, errors.permission_denied(errors.permission_for(_METHODS[rpc]), parent)
            )

    def _assessment_name(self, name: str) -> str | GoogleError:
        """The name this emulator files the assessment under, or the error for the name."""
        match = _ASSESSMENT_NAME.fullmatch(name)
        if match is None:
            return errors.bad_request(
                [("name", "Must be of the form 'projects/{project}/assessments/{assessment}'.")]
            )
        project, assessment = match[1], match[2]
        if self.project.id is None:
            return name  # lenient: only the exact names issued here exist
        if not self.project.owns(project):
            resource = f"projects/{project}/assessments/{assessment}"
            return errors.permission_denied(errors.permission_for("AnnotateAssessment"), resource)
        return self._name_prefix + assessment  # by project id or number alike

    async def _site_key(self, event: Any, context: Any) -> SiteKey | None:
        """The key the request names, when the project lists its keys; express rules."""
        key = None
        registry = self.project.site_keys
        if registry is not None:
            if not event.site_key:
                await self._reject(
                    context, errors.bad_request([(_SITE_KEY_FIELD, "A site key is required.")])
                )
            key = registry.get(event.site_key)
            if key is None:
                detail = f"Key '{event.site_key}' does not exist in project {self.project_number}."
                await self._reject(context, errors.bad_request([(_SITE_KEY_FIELD, detail)]))
        if event.express:
            if event.token:
                detail = "An express assessment carries no token."
                await self._reject(
                    context, errors.bad_request([("assessment.event.token", detail)])
                )
            if key is not None and key.platform is not Platform.EXPRESS:
                detail = f"Key '{key.id}' is not an express key."
                await self._reject(context, errors.bad_request([(_SITE_KEY_FIELD, detail)]))
        return key

    async def _reject(self, context: Any, error: GoogleError) -> None:
        """Refuse the call as Google would; counted by reason (or code) in the stats."""
        label = error.reason or error.code.name
        self._rejected[label] = self._rejected.get(label, 0) + 1
        await errors.abort(context, error)

    # ---- behaviour -----------------------------------------------------------------------

    def _assess(self, event: Any, digest: bytes, key: SiteKey | None) -> Any:
        """Build the assessment; consumes the token whatever the verdict (like upstream)."""
        assessment = AssessmentPb()
        name = self._name_prefix + secrets.token_hex(8)
        assessment.name = name
        _remember(self._assessments, name, None, self._tracked_limit)
        assessment.event.CopyFrom(event)
        omit = self._faults[RPC_CREATE].faults.omit
        if event.express:
            claims = answers.express_claims(event)
            answers.risk(assessment, claims)
            answers.signals(assessment, claims, event, omit)
            self._relate(event, claims)
            self._outcomes["EXPRESS"] = self._outcomes.get("EXPRESS", 0) + 1
            return assessment
        verdict = self._judge(event, digest, key)
        if isinstance(verdict, str):
            answers.invalid(assessment, verdict)
            self._outcomes[verdict] = self._outcomes.get(verdict, 0) + 1
            return assessment
        answers.valid(assessment, *verdict)
        answers.signals(assessment, verdict[0], event, omit)
        self._relate(event, verdict[0])
        self._outcomes["VALID"] = self._outcomes.get("VALID", 0) + 1
        return assessment

    def _judge(self, event: Any, digest: bytes, key: SiteKey | None) -> Any:
        """The InvalidReason name, or (claims, origin) when the token is valid."""
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
        origin = origin_without_key(claims) if key is None else key.check(claims)
        if isinstance(origin, str):
            return origin
        return claims, origin

    def _note_metadata(self, metadata: Sequence[tuple[str, Any]]) -> None:
        keys = self._metadata_keys
        api_key = bearer = False
        for key, _ in metadata:
            keys.add(key)
            if key == "x-goog-api-key":
                api_key = True
            elif key == "authorization":
                bearer = True
        kind = (
            ("both" if bearer else "api_key") if api_key else ("access_token" if bearer else "none")
        )
        self._credentials[kind] = self._credentials.get(kind, 0) + 1

    # ---- faults --------------------------------------------------------------------------

    async def _delay(self, state: _FaultState) -> None:
        """Latency and hangs strike first, before Google has looked at the request."""
        faults = state.faults
        if faults.latency_ms or faults.latency_jitter_ms:
            jitter = state.rng.random() * faults.latency_jitter_ms
            await asyncio.sleep((faults.latency_ms + jitter) / 1000.0)
        if faults.hang:
            self._hanging += 1
            try:
                await asyncio.get_running_loop().create_future()  # until the client cancels
            finally:
                self._hanging -= 1

    async def _fail_before(self, rpc: str, state: _FaultState, context: Any) -> None:
        """Faults that strike before the request is processed: nothing is consumed."""
        faults = state.faults
        if faults.quota:
            await self._inject(state, context, faults.quota_error(self.project_number))
        if faults.error_rate and state.rng.random() < faults.error_rate:
            error = faults.injected_error(_METHODS[rpc], self.project_number)
            await self._inject(state, context, error)

    async def _fail_after(self, state: _FaultState, context: Any) -> None:
        """The answer is lost after the work is done: the token stays consumed."""
        faults = state.faults
        rate = faults.fail_after_consume_rate
        if rate and state.rng.random() < rate:
            await self._inject(state, context, faults.lost_answer())

    async def _inject(self, state: _FaultState, context: Any, error: GoogleError) -> None:
        state.injected += 1
        await errors.abort(context, error)


def token_digest(token: str) -> bytes:
    """The key single use is tracked by (never the token itself), as the sidecar does."""
    return hashlib.sha256(token.encode()).digest()


def _group_id(name: str) -> str:
    """A stable resource id for a device (a group) or an account (a membership)."""
    return hashlib.sha256(name.encode()).hexdigest()[:16]


def _page_token(offset: int) -> str:
    return base64.urlsafe_b64encode(f"emu-page:{offset}".encode()).decode()


def _page_offset(token: str) -> int | None:
    """Where a page token continues; None when it is not one of ours."""
    if not token:
        return 0
    try:
        text = base64.urlsafe_b64decode(token.encode()).decode()
    except (ValueError, UnicodeError):
        return None
    prefix, _, number = text.partition(":")
    if prefix != "emu-page" or not number.isdigit():
        return None
    return int(number)


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
    phone = None
    if request.HasField("phone_authentication_event"):
        phone = json_format.MessageToDict(
            request.phone_authentication_event, preserving_proto_field_name=True
        )
    return {
        "name": request.name,
        "annotation": _enum_name(AnnotateAssessmentRequestPb.Annotation, request.annotation),
        "reasons": [_enum_name(AnnotateAssessmentRequestPb.Reason, r) for r in request.reasons],
        "account_id": request.account_id,
        "hashed_account_id": base64.b64encode(request.hashed_account_id).decode("ascii"),
        "transaction_event": transaction,
        "phone_authentication_event": phone,
    }


def _enum_name(enum: Any, number: int) -> str:
    """Values newer than this package's protos still show, as their number."""
    try:
        return str(enum.Name(number))
    except ValueError:
        return str(number)


def _metadata_json(metadata: Sequence[tuple[str, Any]]) -> dict[str, str]:
    """Binary (-bin) values are shown base64-encoded so the snapshot stays JSON; credentials
    only as a digest prefix."""
    out: dict[str, str] = {}
    for key, value in metadata:
        value = redact(key, value)
        if isinstance(value, bytes):
            value = base64.b64encode(value).decode("ascii")
        out[key] = value
    return out
