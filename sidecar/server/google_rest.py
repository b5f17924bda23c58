"""reCAPTCHA Enterprise's REST API on the HTTP listener (`http_listen`), as the seed document's
`curl` and Google's HTTP transports (Node's `fallback`) call it:

- `POST /v1/projects/{project}/assessments`, the body an `Assessment` (Google's HTTP rule:
  `body: "assessment"`);
- `POST /v1/projects/{project}/assessments/{assessment}:annotate`, the body the rest of an
  `AnnotateAssessmentRequest` (`body: "*"`).

Google's JSON mapping through protobuf's `json_format` (camelCase, enums by name, every field
printed as Google's front end prints them); unknown JSON fields are accepted and ignored
(`json_format` cannot carry them on, unlike binary gRPC). Two of Google's system parameters
shape the answer as Google's front end does: `$alt=json;enum-encoding=int` (sent by Google's
HTTP transports) asks for enums as numbers, and `prettyPrint=false` for compact JSON (the
default is indented, as Google's). `?key=` and `x-goog-api-key` are accepted and ignored: the
sidecar's own credentials are used. The semantics are the gRPC
face's (`google_face`); errors are Google's JSON error shape with the HTTP status of the code,
and the decision headers ride on every answer that has a decision. Nothing here answers 500.
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import Any

import grpc
from aiohttp import web
from google.protobuf import json_format

from sidecar.core.validation import MAX_MESSAGE_BYTES
from sidecar.googleapi import errors
from sidecar.googleapi.errors import GoogleError
from sidecar.googleapi.service import SERVED
from sidecar.server.google_face import (
    IDEMPOTENCY_HEADER,
    AnnotateAssessmentRequestPb,
    AnnotateAssessmentResponsePb,
    AssessmentPb,
    CreateAssessmentRequestPb,
    FaceAnswer,
    GoogleFace,
    unserved,
)
from sidecar.server.http import BodyTooLarge, read_body

CREATE_PATH = "/v1/projects/{project}/assessments"
ANNOTATE_PATH = "/v1/projects/{project}/assessments/{assessment:[^/:]+}:annotate"
# Google's JSON is larger than the binary message the gRPC listeners bound at 64 KiB.
MAX_BODY_BYTES = 2 * MAX_MESSAGE_BYTES
# The caller's deadline in seconds, as Google's front end reads it; none: the sidecar's own.
TIMEOUT_HEADER = "X-Server-Timeout"
_JSON_TYPES = ("application/json",)
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


@dataclass(frozen=True, slots=True)
class JsonStyle:
    """How the answer's JSON is written, from Google's system parameters (`$alt` / `alt`,
    `$prettyPrint` / `prettyPrint`)."""

    integer_enums: bool = False
    indent: int | None = 2

    @classmethod
    def of(cls, query: Mapping[str, str]) -> JsonStyle | GoogleError:
        alt = query.get("$alt", query.get("alt", "json")).replace(" ", "").lower()
        if alt not in _ALTS:
            return errors.bad_request(
                [("alt", f"Unsupported value {alt[:40]!r}: the sidecar answers JSON only.")]
            )
        pretty = query.get("$prettyPrint", query.get("prettyPrint", "true")).lower()
        return cls(integer_enums=_ALTS[alt], indent=None if pretty in _FALSE else 2)

    def dumps(self, body: object) -> str:
        separators = (",", ":") if self.indent is None else None
        return json.dumps(body, indent=self.indent, separators=separators)


# `$alt` values served → whether enums are numbers.
_ALTS = {"json": False, "json;enum-encoding=int": True}
_FALSE = frozenset({"false", "0"})


def _render(answer: FaceAnswer, response: Any, style: JsonStyle) -> web.Response:
    """The face's answer as HTTP: the message (of class `response`) in Google's JSON, or the
    error's JSON shape."""
    if answer.error is not None:
        return _error(answer.error, style, answer.headers)
    message = response.FromString(answer.body)
    body = json_format.MessageToDict(
        message,
        always_print_fields_with_no_presence=True,
        use_integers_for_enums=style.integer_enums,
    )
    return _json(200, style.dumps(body), answer.headers)


def _error(
    error: GoogleError, style: JsonStyle, headers: tuple[tuple[str, str], ...] = ()
) -> web.Response:
    return _json(error.http_status, style.dumps(error.to_json()), headers)


def _json(status: int, text: str, headers: tuple[tuple[str, str], ...]) -> web.Response:
    out = web.Response(status=status, text=text, content_type="application/json", charset="utf-8")
    for name, value in headers:
        out.headers[name] = value
    return out


def _timeout(request: web.Request) -> float | None:
    """`X-Server-Timeout` (seconds) when it is a positive number, else no caller deadline."""
    raw = request.headers.get(TIMEOUT_HEADER, "")
    try:
        value = float(raw)
    except ValueError:
        return None
    return value if 0 < value < 86_400 else None


class GoogleRest:
    """The two REST methods over the face, and Google-shaped answers for everything else
    under `/v1/`."""

    PREFIX = "/v1/"

    def __init__(self, face: GoogleFace) -> None:
        self._face = face

    def routes(self) -> list[web.RouteDef]:
        return [
            web.post(CREATE_PATH, self.create),
            web.post(ANNOTATE_PATH, self.annotate),
            web.route("*", self.PREFIX + "{rest:.*}", self.unknown),
        ]

    @staticmethod
    def refusal(status: int, reason: str) -> web.Response:
        """A request the listener refused (no or a wrong bearer token on an exposed address):
        Google's UNAUTHENTICATED, in its JSON error shape."""
        error = errors.plain(
            grpc.StatusCode.UNAUTHENTICATED,
            f"Request had invalid authentication credentials: {reason} (the sidecar's "
            "listener token, not Google's).",
        )
        return _json(status, JsonStyle().dumps(error.to_json()), ())

    async def _body(self, request: web.Request, message: object) -> GoogleError | None:
        """Parse the JSON body into `message`; Google's error when it cannot be."""
        if request.content_type not in _JSON_TYPES:
            return errors.plain(
                grpc.StatusCode.INVALID_ARGUMENT,
                f"Invalid Content-Type {request.content_type!r}: the body must be JSON "
                "(application/json).",
            )
        try:
            body = await read_body(request, MAX_BODY_BYTES)
        except BodyTooLarge:
            return errors.plain(
                grpc.StatusCode.INVALID_ARGUMENT,
                f"Request payload size exceeds the limit: {MAX_BODY_BYTES} bytes.",
            )
        try:
            json_format.Parse(body.decode("utf-8") or "{}", message, ignore_unknown_fields=True)
        except Exception as error:  # ParseError, UnicodeDecodeError, RecursionError, …
            detail = str(error).splitlines()[0][:200] if str(error) else type(error).__name__
            return errors.plain(
                grpc.StatusCode.INVALID_ARGUMENT, f"Invalid JSON payload received. {detail}"
            )
        return None

    async def create(self, request: web.Request) -> web.Response:
        """`POST /v1/projects/{project}/assessments`: the body is the Assessment."""
        style = JsonStyle.of(request.query)
        if isinstance(style, GoogleError):
            return _error(style, JsonStyle())
        message = CreateAssessmentRequestPb(parent=f"projects/{request.match_info['project']}")
        refused = await self._body(request, message.assessment)
        if refused is not None:
            return _error(refused, style)
        if not message.assessment.ListFields():
            # An empty body: no event at all (Google's own check, at the face, names it).
            message.ClearField("assessment")
        answer = await self._face.create_assessment(
            message,
            idempotency_key=request.headers.get(IDEMPOTENCY_HEADER, ""),
            timeout=_timeout(request),
        )
        return _render(answer, AssessmentPb, style)

    async def annotate(self, request: web.Request) -> web.Response:
        """`POST /v1/{name=projects/*/assessments/*}:annotate`: the body is the rest."""
        style = JsonStyle.of(request.query)
        if isinstance(style, GoogleError):
            return _error(style, JsonStyle())
        message = AnnotateAssessmentRequestPb()
        refused = await self._body(request, message)
        if refused is not None:
            return _error(refused, style)
        message.name = (
            f"projects/{request.match_info['project']}"
            f"/assessments/{request.match_info['assessment']}"
        )
        answer = await self._face.annotate_assessment(message, timeout=_timeout(request))
        return _render(answer, AnnotateAssessmentResponsePb, style)

    async def unknown(self, request: web.Request) -> web.Response:
        """Any other method or path of Google's API: UNIMPLEMENTED, naming the two served."""
        style = JsonStyle.of(request.query)
        return _error(
            unserved(f"{request.method} {request.path}", SERVED),
            style if isinstance(style, JsonStyle) else JsonStyle(),
        )
