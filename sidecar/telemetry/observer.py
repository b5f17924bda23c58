"""The `DecisionObserver` telemetry implements: every answer the use cases give becomes the
decision metrics (`verdict_count`, `token_count`, `risk_scores`, `sms_tf_risk_scores`,
`transaction_risk_scores`), attributes of the caller's span and the decision fields of its
access line, whichever front door it came through.

The use cases call it in the caller's task, so the current span is the front door's server
span and `CALL_FIELDS` is the dict the front door's access line will be written from (set per
call by the gRPC interceptor; a front door without one simply has no access fields). Only enum
names, numbers and bounded action labels are recorded: never the token, IP or account.
"""

from __future__ import annotations

import contextvars
from typing import Any

from opentelemetry import trace

from sidecar.core.model import (
    AnnotationRequest,
    AssessmentRequest,
    Decision,
    Delivery,
    RelatedAccountsPage,
    RelatedAccountsQuery,
    TokenStatus,
)
from sidecar.core.ports import CallContext
from sidecar.telemetry.metrics import Instruments

# The access-line fields of the call in progress, filled by the observer.
CALL_FIELDS: contextvars.ContextVar[dict[str, Any] | None] = contextvars.ContextVar(
    "recaptcha_sidecar_call_fields", default=None
)


# Answers whose score is upstream's fresh word on the request (counted once in risk_scores).
_SCORED = frozenset({TokenStatus.VALID.value, TokenStatus.EXPRESS.value})


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
        fresh = status in _SCORED and not decision.replayed
        sms_risk = decision.sms_toll_fraud_risk
        signals = decision.signals
        transaction_risk = signals.transaction_risk if signals is not None else None
        instruments.record_decision(
            verdict=verdict,
            token_status=status,
            action=action,
            score=decision.score if fresh else None,
            sms_risk=sms_risk if fresh else None,
            transaction_risk=transaction_risk if fresh else None,
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
        if sms_risk is not None:  # a number about the phone, never the phone itself
            fields["sms_toll_fraud_risk"] = round(sms_risk, 6)
        if transaction_risk is not None:  # likewise: never the card, e-mail or address
            fields["transaction_risk"] = round(transaction_risk, 6)
        if decision.rate_limited:  # shed before upstream: counted, and said in the line
            instruments.rate_limited.add(action, decision.rate_limited)
            fields["rate_limited"] = decision.rate_limited
        self._report(fields)

    def annotated(self, call: CallContext, request: AnnotationRequest, delivery: Delivery) -> None:
        self._report({"delivery": delivery.value})

    def searched(
        self, call: CallContext, query: RelatedAccountsQuery, page: RelatedAccountsPage
    ) -> None:
        # How many came back and whether more pages follow: never an account id.
        self._report(
            {"related_accounts": len(page.accounts), "more_pages": bool(page.next_page_token)}
        )

    def _report(self, fields: dict[str, Any]) -> None:
        record = CALL_FIELDS.get()
        if record is not None:
            record.update(fields)
        if self._tracing:
            span = trace.get_current_span()
            if span.is_recording():
                span.set_attributes({f"recaptcha.{key}": value for key, value in fields.items()})
