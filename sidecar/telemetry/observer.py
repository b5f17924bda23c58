"""The `DecisionObserver` telemetry implements: every answer the use cases give becomes the
decision metrics (`verdict_count`, `token_count`, `risk_scores`), attributes of the caller's
span and the decision fields of its access line, whichever front door it came through.

The use cases call it in the caller's task, so the current span is the front door's server
span and `CALL_FIELDS` is the dict the front door's access line will be written from (set per
call by the gRPC interceptor; a front door without one simply has no access fields). Only enum
names, numbers and bounded action labels are recorded: never the token, IP or account.
"""

from __future__ import annotations

import contextvars
from typing import Any

from opentelemetry import trace

from sidecar.core.model import AnnotationRequest, AssessmentRequest, Decision, Delivery
from sidecar.core.ports import CallContext
from sidecar.telemetry.metrics import Instruments

# The access-line fields of the call in progress, filled by the observer.
CALL_FIELDS: contextvars.ContextVar[dict[str, Any] | None] = contextvars.ContextVar(
    "recaptcha_sidecar_call_fields", default=None
)


class TelemetryObserver:
    """Decision metrics, span attributes and access-line fields, from the decision itself."""

    __slots__ = ("_instruments", "_tracing")

    def __init__(self, instruments: Instruments, *, tracing: bool) -> None:
        self._instruments = instruments
        self._tracing = tracing

    def assessed(self, call: CallContext, request: AssessmentRequest, decision: Decision) -> None:
        instruments = self._instruments
        action = instruments.actions(request.expected_action)
        verdict = decision.verdict.value
        status = decision.token_status.value
        fresh = status == "VALID" and not decision.replayed
        instruments.record_decision(
            verdict=verdict,
            token_status=status,
            action=action,
            score=decision.score if fresh else None,
        )
        fields = {
            "action": action,
            "verdict": verdict,
            "token_status": status,
            "replayed": decision.replayed,
            "threshold": round(decision.threshold, 6),
            "score": round(decision.score, 6),
            "decided_by": decision.decided_by,
        }
        self._report(fields)

    def annotated(self, call: CallContext, request: AnnotationRequest, delivery: Delivery) -> None:
        self._report({"delivery": delivery.value})

    def _report(self, fields: dict[str, Any]) -> None:
        record = CALL_FIELDS.get()
        if record is not None:
            record.update(fields)
        if self._tracing:
            span = trace.get_current_span()
            if span.is_recording():
                span.set_attributes({f"recaptcha.{key}": value for key, value in fields.items()})
