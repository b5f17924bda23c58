"""Annotations as stored in the outbox: compact JSON, so a queue written by one version of
the sidecar is read by the next (no pickles, no protobuf descriptors in the file)."""

from __future__ import annotations

import base64
import binascii
import json
from typing import Any

from sidecar.core.model import AnnotationRequest, PhoneAuthenticationEvent, TransactionEvent

FORMAT_VERSION = 1


def encode(request: AnnotationRequest) -> bytes:
    """Domain annotation → stored bytes. `wait_for_upstream` is a property of the call, not
    of the annotation, and is not stored."""
    body: dict[str, Any] = {"v": FORMAT_VERSION, "name": request.assessment_name}
    if request.annotation:
        body["annotation"] = request.annotation
    if request.reasons:
        body["reasons"] = list(request.reasons)
    if request.account_id:
        body["account_id"] = request.account_id
    event = request.transaction_event
    if event is not None:
        body["transaction_event"] = {
            "event_type": event.event_type,
            "reason": event.reason,
            "value": event.value,
            "event_time": event.event_time,
        }
    phone = request.phone_authentication_event
    if phone is not None:
        body["phone_authentication_event"] = {
            "phone_number": phone.phone_number,
            "event_time": phone.event_time,
        }
    if request.passthrough:
        body["passthrough"] = base64.b64encode(request.passthrough).decode("ascii")
    return json.dumps(body, separators=(",", ":")).encode()


def decode(data: bytes) -> AnnotationRequest:
    """Stored bytes → domain annotation; ValueError for anything unreadable."""
    body = json.loads(data)
    if not isinstance(body, dict) or body.get("v") != FORMAT_VERSION:
        raise ValueError("unknown outbox record format")
    event = None
    raw_event = body.get("transaction_event")
    if isinstance(raw_event, dict):
        event = TransactionEvent(
            event_type=str(raw_event.get("event_type", "")),
            reason=str(raw_event.get("reason", "")),
            value=float(raw_event.get("value", 0.0)),
            event_time=(
                None if raw_event.get("event_time") is None else float(raw_event["event_time"])
            ),
        )
    phone = None
    raw_phone = body.get("phone_authentication_event")
    if isinstance(raw_phone, dict):
        phone = PhoneAuthenticationEvent(
            phone_number=str(raw_phone.get("phone_number", "")),
            event_time=(
                None if raw_phone.get("event_time") is None else float(raw_phone["event_time"])
            ),
        )
    return AnnotationRequest(
        assessment_name=str(body["name"]),
        annotation=str(body.get("annotation", "")),
        reasons=tuple(str(r) for r in body.get("reasons", ())),
        account_id=str(body.get("account_id", "")),
        transaction_event=event,
        phone_authentication_event=phone,
        passthrough=_passthrough(body.get("passthrough", "")),
    )


def _passthrough(text: object) -> bytes:
    if not isinstance(text, str):
        raise ValueError("passthrough: expected base64 text")
    try:
        return base64.b64decode(text, validate=True)
    except binascii.Error as error:
        raise ValueError(f"passthrough: {error}") from None
