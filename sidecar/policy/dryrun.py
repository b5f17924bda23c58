"""`policy dry-run`: replay recorded assessments through a policy and count what it would
decide, so thresholds are chosen from data before a switch to enforce.

Dry-run input is JSON Lines, one assessment per line, in either shape:

1. The sidecar's record: the fields of an assessment as the policy reads them.

       {"expected_action": "login", "valid": true, "score": 0.7, "action": "login",
        "hostname": "shop.example.com", "create_time": 1718000000.0,
        "assessed_at": 1718000001.2, "account_defender_labels": ["PROFILE_MATCH"]}

   Keys (all optional): `expected_action` (selects the action's rules, as in Assess),
   `valid` (default: true unless `invalid_reason` is given), `invalid_reason` (upstream's
   name: EXPIRED, DUPE, MALFORMED, …), `score`, `reasons`, `action`, `hostname`,
   `android_package_name`, `ios_bundle_id`, `create_time` (when the token was created),
   `account_defender_labels`, `name`, `express` (an express assessment: no token rules),
   `sms_toll_fraud_risk` and `sms_toll_fraud_reasons` (SMS defense), `transaction_risk` and
   `transaction_risk_reasons` (fraud prevention), and `assessed_at` (when it was assessed:
   the clock for `max_token_age` and the rate limits; without it neither is applied). For
   the rate limits: `user_ip_address`, `account_id`, `site_key` (a rule whose key a record
   lacks does not apply to it, as in Assess). Times are unix seconds or RFC 3339 strings.
   Unknown keys are ignored.

2. reCAPTCHA's own Assessment JSON, as the REST API returns it (camelCase) or with proto
   field names: `{"name": …, "tokenProperties": {…}, "riskAnalysis": {…}, "event":
   {"expectedAction": …}, "accountDefenderAssessment": {…}}`, optionally wrapped as
   `{"assessment": {…}, "expected_action": …, "assessed_at": …}`. A backend that logged
   Google's answers before adopting the sidecar can replay them as they are (the event's
   `userIpAddress`, `siteKey` and `userInfo.accountId` feed the rate limits).

Rate limits (`rate_limits`, and `upstream_rate_limit` when the file sets it) are replayed in
the order of the lines, on the records' `assessed_at` clock, with the sidecar's own GCRA
arithmetic: each record is a call that reached upstream, so each counts, and one a limit
would have shed is decided as Assess would have answered it (UNCHECKED `rate_limited:<per>`).

A line that is neither is reported (by number, never its content) and skipped.
"""

from __future__ import annotations

import datetime
import json
import math
import secrets
import sys
from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TextIO

from sidecar.core.model import (
    AssessmentRequest,
    RecommendedAction,
    Signals,
    UpstreamAssessment,
    Verdict,
)
from sidecar.core.shield import LimiterKeys, QuotaShield
from sidecar.policy.rules import as_float32, decide, decide_rate_limited, risk_within
from sidecar.policy.schema import ActionPolicy, Policy
from sidecar.policy.tools import PolicyFileError, load_policy_file, load_upstream_cap
from sidecar.ratelimit.memory import MemoryRateLimiter

DEFAULT_GROUP = "(none)"
_MAX_REPORTED_BAD_LINES = 10


class RecordError(ValueError):
    """One JSONL line that cannot be read as an assessment."""


@dataclass(frozen=True, slots=True)
class Record:
    """One recorded assessment, ready for decide()."""

    expected_action: str
    assessment: UpstreamAssessment
    assessed_at: float | None
    # what the rate limits count by (empty when not recorded)
    user_ip_address: str = ""
    account_id: str = ""
    site_key: str = ""


def _time(value: Any, key: str) -> float | None:
    if value is None:
        return None
    if isinstance(value, bool):
        raise RecordError(f"{key}: expected unix seconds or an RFC 3339 time")
    if isinstance(value, int | float):
        if not math.isfinite(value):
            raise RecordError(f"{key}: not a finite number")
        return float(value)
    if isinstance(value, str):
        try:
            stamp = datetime.datetime.fromisoformat(value.replace("Z", "+00:00"))
        except ValueError:
            raise RecordError(f"{key}: expected unix seconds or an RFC 3339 time") from None
        if stamp.tzinfo is None:
            stamp = stamp.replace(tzinfo=datetime.UTC)
        return stamp.timestamp()
    raise RecordError(f"{key}: expected unix seconds or an RFC 3339 time")


def _str(raw: Mapping[str, Any], key: str) -> str:
    value = raw.get(key, "")
    if value is None:
        return ""
    if not isinstance(value, str):
        raise RecordError(f"{key}: expected a string")
    return value


def _strs(raw: Mapping[str, Any], key: str) -> tuple[str, ...]:
    value = raw.get(key) or []
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise RecordError(f"{key}: expected a list of strings")
    return tuple(value)


def _risk(raw: Mapping[str, Any], key: str) -> float | None:
    """An optional risk: absent (not assessed) or a number in [0, 1]."""
    value = raw.get(key)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float) or not 0 <= value <= 1:
        raise RecordError(f"{key}: expected a number from 0 to 1")
    return float(value)


def _flat_record(raw: Mapping[str, Any]) -> Record:
    invalid_reason = _str(raw, "invalid_reason")
    express = raw.get("express", False)
    if not isinstance(express, bool):
        raise RecordError("express: expected true or false")
    transaction_risk = _risk(raw, "transaction_risk")
    transaction_reasons = _strs(raw, "transaction_risk_reasons")
    signals = None
    if transaction_risk is not None or transaction_reasons:
        signals = Signals(
            transaction_risk=transaction_risk, transaction_risk_reasons=transaction_reasons
        )
    valid = raw.get("valid", not invalid_reason and not express)
    if not isinstance(valid, bool):
        raise RecordError("valid: expected true or false")
    score = raw.get("score", 0.0)
    if isinstance(score, bool) or not isinstance(score, int | float):
        raise RecordError("score: expected a number")
    if not valid and not invalid_reason and not express:
        invalid_reason = "UNKNOWN_INVALID_REASON"
    return Record(
        expected_action=_str(raw, "expected_action"),
        assessment=UpstreamAssessment(
            name=_str(raw, "name"),
            valid=valid,
            invalid_reason="" if valid else invalid_reason,
            score=float(score),
            reasons=_strs(raw, "reasons"),
            action=_str(raw, "action"),
            hostname=_str(raw, "hostname"),
            android_package_name=_str(raw, "android_package_name"),
            ios_bundle_id=_str(raw, "ios_bundle_id"),
            create_time=_time(raw.get("create_time"), "create_time"),
            account_defender_labels=_strs(raw, "account_defender_labels"),
            express=express,
            sms_toll_fraud_risk=_risk(raw, "sms_toll_fraud_risk"),
            sms_toll_fraud_reasons=_strs(raw, "sms_toll_fraud_reasons"),
            signals=signals,
        ),
        assessed_at=_time(raw.get("assessed_at"), "assessed_at"),
        user_ip_address=_str(raw, "user_ip_address"),
        account_id=_str(raw, "account_id"),
        site_key=_str(raw, "site_key"),
    )


def _google_record(raw: Mapping[str, Any], outer: Mapping[str, Any]) -> Record:
    """reCAPTCHA's Assessment JSON, read by the same code that reads live answers."""
    from google.cloud.recaptchaenterprise_v1.types import recaptchaenterprise as types
    from google.protobuf import json_format

    from sidecar.upstream.client import to_upstream_assessment

    message = types.Assessment.pb()()
    try:
        json_format.ParseDict(dict(raw), message, ignore_unknown_fields=True)
    except json_format.ParseError as error:
        raise RecordError(f"not a reCAPTCHA Assessment: {str(error).splitlines()[0]}") from None
    expected = outer.get("expected_action")
    if expected is None:
        expected = message.event.expected_action
    if not isinstance(expected, str):
        raise RecordError("expected_action: expected a string")
    return Record(
        expected_action=expected,
        assessment=to_upstream_assessment(message),
        assessed_at=_time(outer.get("assessed_at"), "assessed_at"),
        user_ip_address=message.event.user_ip_address,
        account_id=message.event.user_info.account_id,
        site_key=message.event.site_key,
    )


def parse_record(line: str) -> Record:
    """One JSONL line → a Record; RecordError says why not (never echoing the line)."""
    try:
        raw = json.loads(line)
    except (ValueError, RecursionError):
        raise RecordError("not JSON") from None
    if not isinstance(raw, dict):
        raise RecordError("expected a JSON object")
    inner = raw.get("assessment")
    if isinstance(inner, dict):
        return _google_record(inner, raw)
    if any(
        key in raw
        for key in ("tokenProperties", "token_properties", "riskAnalysis", "risk_analysis")
    ):
        return _google_record(raw, raw)
    return _flat_record(raw)


@dataclass
class ActionTally:
    """What one action's records came to."""

    rules: str
    records: int = 0
    verdicts: Counter[str] = field(default_factory=Counter)
    challenges: int = 0
    decided_by: Counter[str] = field(default_factory=Counter)
    scores: list[float] = field(default_factory=list)
    sms_risks: list[float] = field(default_factory=list)  # assessed ones only
    transaction_risks: list[float] = field(default_factory=list)
    rate_limited: Counter[str] = field(default_factory=Counter)  # per → calls shed


@dataclass
class DryRun:
    """The whole replay: per-action tallies, and what could not be read."""

    policy_version: str
    actions: dict[str, ActionTally] = field(default_factory=dict)
    bad_lines: list[tuple[int, str]] = field(default_factory=list)
    skipped: int = 0
    age_not_evaluated: int = 0
    limits_not_evaluated: int = 0

    def total(self) -> ActionTally:
        total = ActionTally(rules="")
        for tally in self.actions.values():
            total.records += tally.records
            total.verdicts.update(tally.verdicts)
            total.challenges += tally.challenges
            total.rate_limited.update(tally.rate_limited)
        return total


class _Limits:
    """The shield's rules replayed on the records' clock: the same counter names (under a
    key of this run's) and the same GCRA arithmetic as Assess, in memory."""

    def __init__(self, cap: tuple[int, float] | None) -> None:
        self._now_us = 0
        self._limiter = MemoryRateLimiter(max_keys=10_000_000, clock=lambda: self._now_us)
        self._shield = QuotaShield(self._limiter, LimiterKeys(secrets.token_bytes(32), ""), cap=cap)
        self.capped = cap is not None

    def shed(self, policy: Policy, rules: ActionPolicy, record: Record, at: float) -> str | None:
        """The `per` of the limit that would have shed this call, else None (counted)."""
        self._now_us = round(at * 1_000_000)
        request = AssessmentRequest(
            token="",
            expected_action=record.expected_action,
            user_ip_address=record.user_ip_address,
            account_id=record.account_id,
        )
        scope = policy.entry_name(record.expected_action)
        limits, pers = self._shield.limits(request, scope, rules.rate_limits, record.site_key)
        refused = self._limiter.admit_now(limits) if limits else -1
        return None if refused < 0 else pers[refused]


def dry_run(policy: Policy, lines: Iterable[str], cap: tuple[int, float] | None = None) -> DryRun:
    """Replay every line through the policy, as Assess would have decided it; `cap` is the
    settings' upstream_rate_limit."""
    result = DryRun(policy.version)
    limits = _Limits(cap)
    result = DryRun(policy.version)
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        try:
            record = parse_record(line)
        except RecordError as error:
            result.skipped += 1
            if len(result.bad_lines) < _MAX_REPORTED_BAD_LINES:
                result.bad_lines.append((number, str(error)))
            continue
        rules = policy.for_action(record.expected_action)
        group = record.expected_action.lower() or DEFAULT_GROUP
        tally = result.actions.get(group)
        if tally is None:
            source = f"actions.{group}" if rules is not policy.default else "default"
            tally = result.actions[group] = ActionTally(rules=source)
        if rules.max_token_age is not None and record.assessed_at is None:
            result.age_not_evaluated += 1
        per = None
        if rules.rate_limits or limits.capped:
            if record.assessed_at is None:
                result.limits_not_evaluated += 1
            else:
                per = limits.shed(policy, rules, record, record.assessed_at)
        if per is not None:
            decision = decide_rate_limited(rules, per, policy.version)
            tally.rate_limited[per] += 1
        else:
            decision = decide(
                rules,
                record.expected_action,
                record.assessment,
                policy.version,
                now=record.assessed_at,
            )
        tally.records += 1
        tally.verdicts[decision.verdict.value] += 1
        if decision.recommended_action is RecommendedAction.CHALLENGE:
            tally.challenges += 1
        if decision.decided_by != "passed":
            tally.decided_by[decision.decided_by] += 1
        assessment = record.assessment
        if assessment.valid or assessment.express:
            tally.scores.append(assessment.score)
        if assessment.sms_toll_fraud_risk is not None:
            tally.sms_risks.append(assessment.sms_toll_fraud_risk)
        if assessment.signals is not None and assessment.signals.transaction_risk is not None:
            tally.transaction_risks.append(assessment.signals.transaction_risk)
    return result


_VERDICTS = (Verdict.PASSED.value, Verdict.FAILED_AUDIT.value, Verdict.FAILED_ENFORCE.value)
WHAT_IF_THRESHOLDS = (0.1, 0.3, 0.5, 0.7, 0.9)


def at_or_above(scores: Iterable[float], threshold: float) -> int:
    """How many scores a threshold would let through (float32 comparison, as decide does)."""
    limit = as_float32(threshold)
    return sum(1 for score in scores if not math.isnan(score) and as_float32(score) >= limit)


def at_or_below(risks: Iterable[float], maximum: float) -> int:
    """How many risks a maximum would let through (`risk_within`, as decide does)."""
    return sum(1 for risk in risks if risk_within(risk, maximum))


# The risks an operator chooses a maximum for, from what was assessed (label, tally field).
_RISKS = (
    ("sms_toll_fraud_risk", "sms_risks", "max_sms_toll_fraud_risk"),
    ("transaction_risk", "transaction_risks", "max_transaction_risk"),
)


def _counts_section(out: list[str], title: str, rows: list[tuple[str, str, int]]) -> None:
    """`title`, then one `action  what: n` line a row; nothing when there are no rows."""
    if not rows:
        return
    out.append("")
    out.append(title)
    width = max(len(name) for name, _, _ in rows)
    for name, what, n in rows:
        out.append(f"  {name.ljust(width)}  {what}: {n}")


def dry_run_report(result: DryRun, source: str) -> str:
    """A table per action, then what decided the failures and challenges."""
    total = result.total()
    out = [f"policy {result.policy_version}: {total.records} assessment(s) from {source}"]
    header = ["action", "rules", "records", *_VERDICTS, "CHALLENGE"]
    rows = [
        [
            name,
            tally.rules,
            str(tally.records),
            *(str(tally.verdicts[v]) for v in _VERDICTS),
            str(tally.challenges),
        ]
        for name, tally in sorted(result.actions.items())
    ]
    rows.append(
        [
            "TOTAL",
            "",
            str(total.records),
            *(str(total.verdicts[v]) for v in _VERDICTS),
            str(total.challenges),
        ]
    )
    widths = [max(len(row[i]) for row in [header, *rows]) for i in range(len(header))]
    out.append("")
    for row in [header, *rows]:
        cells = [row[0].ljust(widths[0]), row[1].ljust(widths[1])]
        cells += [cell.rjust(width) for cell, width in zip(row[2:], widths[2:], strict=True)]
        out.append("  ".join(cells).rstrip())
    _counts_section(
        out,
        "decided by (other than passed):",
        [
            (name, rule, n)
            for name, tally in sorted(result.actions.items())
            for rule, n in tally.decided_by.most_common()
        ],
    )
    if any(tally.scores for tally in result.actions.values()):
        out.append("")
        out.append("valid tokens whose score reaches a threshold (to choose one):")
        width = max(len(name) for name in result.actions)
        thresholds = "  ".join(f"≥{t:g}".rjust(6) for t in WHAT_IF_THRESHOLDS)
        out.append(f"  {''.ljust(width)}  {'valid':>6}  {thresholds}")
        for name, tally in sorted(result.actions.items()):
            counts = "  ".join(
                str(at_or_above(tally.scores, t)).rjust(6) for t in WHAT_IF_THRESHOLDS
            )
            out.append(f"  {name.ljust(width)}  {len(tally.scores):>6}  {counts}")
    for label, attribute, key in _RISKS:
        if not any(getattr(tally, attribute) for tally in result.actions.values()):
            continue
        out.append("")
        out.append(f"assessed {label} at or below a maximum (to choose {key}):")
        width = max(len(name) for name in result.actions)
        maxima = "  ".join(f"≤{t:g}".rjust(6) for t in WHAT_IF_THRESHOLDS)
        out.append(f"  {''.ljust(width)}  {'risks':>6}  {maxima}")
        for name, tally in sorted(result.actions.items()):
            risks = getattr(tally, attribute)
            counts = "  ".join(str(at_or_below(risks, t)).rjust(6) for t in WHAT_IF_THRESHOLDS)
            out.append(f"  {name.ljust(width)}  {len(risks):>6}  {counts}")
    _counts_section(
        out,
        "calls the rate limits would have shed before upstream (never allowed):",
        [
            (name, f"per {per}", n)
            for name, tally in sorted(result.actions.items())
            for per, n in sorted(tally.rate_limited.items())
        ],
    )
    if result.age_not_evaluated:
        out.append("")
        out.append(
            f"note: max_token_age not applied to {result.age_not_evaluated} record(s) "
            "without assessed_at"
        )
    if result.limits_not_evaluated:
        out.append("")
        out.append(
            f"note: rate limits not applied to {result.limits_not_evaluated} record(s) "
            "without assessed_at"
        )
    if result.skipped:
        out.append("")
        out.append(f"skipped {result.skipped} line(s) that are not assessments:")
        for number, why in result.bad_lines:
            out.append(f"  line {number}: {why}")
        if result.skipped > len(result.bad_lines):
            out.append(f"  … and {result.skipped - len(result.bad_lines)} more")
    return "\n".join(out)


def dry_run_json(result: DryRun) -> dict[str, Any]:
    return {
        "policy_version": result.policy_version,
        "actions": {
            name: {
                "rules": tally.rules,
                "records": tally.records,
                **{v: tally.verdicts[v] for v in _VERDICTS},
                "CHALLENGE": tally.challenges,
                "decided_by": dict(tally.decided_by),
                "rate_limited": dict(tally.rate_limited),
                "valid_scores_at_or_above": {
                    f"{t:g}": at_or_above(tally.scores, t) for t in WHAT_IF_THRESHOLDS
                },
                **{
                    f"{label}s_at_or_below": {
                        f"{t:g}": at_or_below(getattr(tally, attribute), t)
                        for t in WHAT_IF_THRESHOLDS
                    }
                    for label, attribute, _ in _RISKS
                },
                **{
                    f"{label}s_assessed": len(getattr(tally, attribute))
                    for label, attribute, _ in _RISKS
                },
            }
            for name, tally in sorted(result.actions.items())
        },
        "total": {
            "records": result.total().records,
            **{v: result.total().verdicts[v] for v in _VERDICTS},
            "CHALLENGE": result.total().challenges,
            "rate_limited": dict(result.total().rate_limited),
        },
        "skipped": result.skipped,
        "bad_lines": [{"line": n, "error": why} for n, why in result.bad_lines],
        "max_token_age_not_evaluated": result.age_not_evaluated,
        "rate_limits_not_evaluated": result.limits_not_evaluated,
    }


def policy_dry_run(config: Path, source: Path, *, as_json: bool, out: TextIO, err: TextIO) -> int:
    """`recaptcha-sidecar policy dry-run`: 0 done, 2 bad policy, 1 unreadable input."""
    try:
        policy = load_policy_file(config)
        cap = load_upstream_cap(config)
    except PolicyFileError as error:
        print(f"recaptcha-sidecar: {error}", file=err)
        return 2
    try:
        if str(source) == "-":
            result = dry_run(policy, sys.stdin, cap)
        else:
            with source.open(encoding="utf-8", errors="replace") as lines:
                result = dry_run(policy, lines, cap)
    except OSError as error:
        print(f"recaptcha-sidecar: {source}: {error.strerror or 'unreadable'}", file=err)
        return 1
    if as_json:
        json.dump(dry_run_json(result), out, indent=2, sort_keys=True)
        out.write("\n")
    else:
        print(dry_run_report(result, "stdin" if str(source) == "-" else str(source)), file=out)
    return 0
