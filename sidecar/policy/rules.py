"""The decision rules: pure functions from (policy, what upstream said) to a Decision.

Pure so that they can be tested exhaustively and replayed offline against recorded assessments
(`recaptcha-sidecar policy dry-run`): the clock is an argument (`now`), never read here.

The rules of one action, in the order they are applied (the first that fails decides):

1. the token is valid upstream (else its status: INVALID, EXPIRED, DUPLICATE, …);
2. its action matches `expected_action` (case-insensitive), when `require_action_match`;
3. where it comes from is allowed: the hostname list for web tokens, the Android package list
   for Android tokens, the iOS bundle list for iOS tokens;
4. it is no older than `max_token_age` seconds (by upstream's `create_time`);
5. its score reaches `threshold` (both compared as float32);
6. SMS defense's toll-fraud risk, when assessed, is at most `max_sms_toll_fraud_risk`;
7. fraud prevention's transaction risk, when assessed, is at most `max_transaction_risk`;
8. account defender: a label mapped to `block` fails the request; a label mapped to `challenge`
   lets it through with `recommended_action = CHALLENGE` (ask for a second factor).

An express assessment (no token) skips rules 1-4: the risk rules (5 on) decide.

A failure is FAILED_ENFORCE (not allowed) in enforce mode and FAILED_AUDIT (allowed, counted)
in audit mode; audit mode never asks for a challenge either, so it changes nothing users see.
"""

from __future__ import annotations

import dataclasses
import math
import struct

from sidecar.core.model import (
    Decision,
    RecommendedAction,
    TokenStatus,
    UpstreamAssessment,
    Verdict,
)
from sidecar.core.ports import FailureKind
from sidecar.policy.schema import ActionPolicy, FailurePolicy, LabelAction, Mode

_SEVERITY = {LabelAction.ALLOW: 0, LabelAction.CHALLENGE: 1, LabelAction.BLOCK: 2}


def as_float32(value: float) -> float:
    """Round to the nearest float32: upstream scores are float32, so 0.9 arrives as 0.8999999761…
    and must still pass a 0.9 threshold."""
    try:
        result: float = struct.unpack("f", struct.pack("f", value))[0]
    except OverflowError:  # beyond float32's range: keep the sign, as float32 would (inf)
        result = math.copysign(math.inf, value)
    return result


def hostname_allowed(hostname: str, allowed: tuple[str, ...]) -> bool:
    """Exact names, or `*.example.com` for any subdomain of example.com (not the apex).
    Hostnames ignore case and a trailing dot, as DNS does."""
    if not allowed:
        return True
    host = hostname.lower().rstrip(".")
    for pattern in allowed:
        pattern = pattern.lower().rstrip(".")
        if pattern.startswith("*."):
            if host.endswith(pattern[1:]) and len(host) > len(pattern) - 1:
                return True
        elif host == pattern:
            return True
    return False


def app_id_allowed(app_id: str, allowed: tuple[str, ...]) -> bool:
    """Exact package or bundle ids (case matters: they are identifiers, not DNS names),
    `*.example.app` for ids ending in `.example.app`, or `com.example.*` for ids that start
    with `com.example.` (reverse-DNS ids grow at the end)."""
    if not allowed:
        return True
    for pattern in allowed:
        if pattern.startswith("*."):
            suffix = pattern[1:]
            if app_id.endswith(suffix) and len(app_id) > len(suffix):
                return True
        elif pattern.endswith(".*"):
            prefix = pattern[:-1]
            if app_id.startswith(prefix) and len(app_id) > len(prefix):
                return True
        elif app_id == pattern:
            return True
    return False


def _source_rule(policy: ActionPolicy, upstream: UpstreamAssessment) -> str | None:
    """Where the token comes from decides which list applies; None when it is allowed."""
    if upstream.android_package_name:
        if not app_id_allowed(upstream.android_package_name, policy.allowed_android_packages):
            return "android_package_not_allowed"
    elif upstream.ios_bundle_id:
        if not app_id_allowed(upstream.ios_bundle_id, policy.allowed_ios_bundles):
            return "ios_bundle_not_allowed"
    elif not hostname_allowed(upstream.hostname, policy.allowed_hostnames):
        return "hostname_not_allowed"
    return None


def _label_rule(policy: ActionPolicy, labels: tuple[str, ...]) -> tuple[LabelAction, str]:
    """The most severe action any label asks for (block > challenge > allow), and the label.
    Among equally severe labels the first upstream listed decides, so answers are stable."""
    worst, which = LabelAction.ALLOW, ""
    for label in labels:
        action = policy.account_defender.get(label.upper(), LabelAction.ALLOW)
        if _SEVERITY[action] > _SEVERITY[worst]:
            worst, which = action, label.upper()
    return worst, which


def score_passes(score: float, threshold: float) -> bool:
    """`score ≥ threshold` as float32 values; a score that is not a number never passes."""
    if math.isnan(score):
        return False
    return as_float32(score) >= as_float32(threshold)


def risk_within(risk: float | None, maximum: float | None) -> bool:
    """`risk ≤ maximum` as float32 values; no limit, or a risk not assessed, passes; a risk that
    is not a number never does."""
    if maximum is None or risk is None:
        return True
    if math.isnan(risk):
        return False
    return as_float32(risk) <= as_float32(maximum)


_UPSTREAM_STATUS = {
    "EXPIRED": TokenStatus.EXPIRED,
    "DUPE": TokenStatus.DUPLICATE,
    "MISSING": TokenStatus.MISSING,
}


def _failed(policy: ActionPolicy) -> tuple[bool, Verdict]:
    if policy.mode is Mode.AUDIT:
        return True, Verdict.FAILED_AUDIT
    return False, Verdict.FAILED_ENFORCE


def _token_rule(
    policy: ActionPolicy,
    expected_action: str,
    upstream: UpstreamAssessment,
    now: float | None,
) -> tuple[str, TokenStatus, str] | None:
    """Rules 1-4, about the token: (rule, token status, invalid reason) of the first that
    fails, None when they all hold."""
    if not upstream.valid:
        status = _UPSTREAM_STATUS.get(upstream.invalid_reason, TokenStatus.INVALID)
        return f"token_{status.lower()}", status, upstream.invalid_reason
    if (
        policy.require_action_match
        and expected_action
        and upstream.action.lower() != expected_action.lower()
    ):
        return "action_mismatch", TokenStatus.VALID, "UNEXPECTED_ACTION"
    source = _source_rule(policy, upstream)
    if source is not None:
        return source, TokenStatus.VALID, ""
    if (
        policy.max_token_age is not None
        and now is not None
        and upstream.create_time is not None
        and now - upstream.create_time > policy.max_token_age
    ):
        return "token_too_old", TokenStatus.VALID, ""
    return None


def _risk_rule(policy: ActionPolicy, upstream: UpstreamAssessment) -> tuple[str, bool, bool]:
    """The rules about the request's risk, for tokens and express assessments alike:
    (rule, failed, challenge)."""
    if not score_passes(upstream.score, policy.threshold):
        return "score_below_threshold", True, False
    if not risk_within(upstream.sms_toll_fraud_risk, policy.max_sms_toll_fraud_risk):
        return "sms_toll_fraud_risk_above_max", True, False
    transaction_risk = upstream.signals.transaction_risk if upstream.signals else None
    if not risk_within(transaction_risk, policy.max_transaction_risk):
        return "transaction_risk_above_max", True, False
    label_action, label = _label_rule(policy, upstream.account_defender_labels)
    if label_action is LabelAction.ALLOW:
        return "passed", False, False
    # Audit mode changes nothing users see: no challenge either, only decided_by.
    challenge = label_action is LabelAction.CHALLENGE and policy.mode is Mode.ENFORCE
    return f"account_defender:{label}", label_action is LabelAction.BLOCK, challenge


def decide(
    policy: ActionPolicy,
    expected_action: str,
    upstream: UpstreamAssessment,
    version: str = "",
    *,
    now: float | None = None,
) -> Decision:
    """The verdict for an assessment upstream answered. `now` (unix seconds) is the clock for
    `max_token_age`; without it that rule is not applied (a caller enforcing it passes it).
    An express assessment (no token) skips the token rules: its score decides."""
    if upstream.express:
        status, invalid_reason = TokenStatus.EXPRESS, ""
        rule, failed, challenge = _risk_rule(policy, upstream)
    elif not upstream.valid and upstream.invalid_reason == "DUPE" and upstream.ambiguous_retry:
        # Our own earlier attempt may have consumed the token and lost its answer: the
        # outcome is unknown, never DUPLICATE (and never a pass).
        return decide_unchecked(policy, FailureKind.TRANSIENT, "outcome_unknown", version)
    elif (token := _token_rule(policy, expected_action, upstream, now)) is not None:
        rule, status, invalid_reason = token
        failed, challenge = True, False
    else:
        status, invalid_reason = TokenStatus.VALID, upstream.invalid_reason
        rule, failed, challenge = _risk_rule(policy, upstream)

    if failed:
        allowed, verdict = _failed(policy)
    else:
        allowed, verdict = True, Verdict.PASSED
    if challenge:
        recommended = RecommendedAction.CHALLENGE
    else:
        recommended = RecommendedAction.ALLOW if allowed else RecommendedAction.BLOCK
    return Decision(
        allowed=allowed,
        verdict=verdict,
        token_status=status,
        recommended_action=recommended,
        decided_by=rule,
        invalid_reason=invalid_reason,
        score=upstream.score,
        threshold=policy.threshold,
        reasons=upstream.reasons,
        action=upstream.action,
        hostname=upstream.hostname,
        android_package_name=upstream.android_package_name,
        ios_bundle_id=upstream.ios_bundle_id,
        create_time=upstream.create_time,
        assessment_name=upstream.name,
        account_defender_labels=upstream.account_defender_labels,
        policy_version=version,
        sms_toll_fraud_risk=upstream.sms_toll_fraud_risk,
        sms_toll_fraud_reasons=upstream.sms_toll_fraud_reasons,
        signals=upstream.signals,
        passthrough=upstream.passthrough,
    )


def decide_missing(policy: ActionPolicy, version: str = "") -> Decision:
    """An empty token: answered locally, never sent upstream."""
    allowed, verdict = _failed(policy)
    return Decision(
        allowed=allowed,
        verdict=verdict,
        token_status=TokenStatus.MISSING,
        recommended_action=RecommendedAction.ALLOW if allowed else RecommendedAction.BLOCK,
        decided_by="token_missing",
        invalid_reason="MISSING",
        threshold=policy.threshold,
        policy_version=version,
    )


def decide_duplicate(
    policy: ActionPolicy, original: Decision | None, version: str = ""
) -> Decision:
    """A token this sidecar (or its replicas) already assessed: never allowed twice in enforce
    mode. The original assessment's name is kept so the app can still annotate it."""
    allowed, verdict = _failed(policy)
    return Decision(
        allowed=allowed,
        verdict=verdict,
        token_status=TokenStatus.DUPLICATE,
        recommended_action=RecommendedAction.ALLOW if allowed else RecommendedAction.BLOCK,
        decided_by="token_duplicate",
        invalid_reason="DUPE",
        threshold=policy.threshold,
        assessment_name=original.assessment_name if original else "",
        action=original.action if original else "",
        hostname=original.hostname if original else "",
        policy_version=version,
    )


def _invalid_here(
    policy: ActionPolicy, decided_by: str, version: str, *, invalid_reason: str = ""
) -> Decision:
    """INVALID decided without upstream's judgement of the token: never allowed in enforce."""
    allowed, verdict = _failed(policy)
    return Decision(
        allowed=allowed,
        verdict=verdict,
        token_status=TokenStatus.INVALID,
        recommended_action=RecommendedAction.ALLOW if allowed else RecommendedAction.BLOCK,
        decided_by=decided_by,
        invalid_reason=invalid_reason,
        threshold=policy.threshold,
        policy_version=version,
    )


def decide_impossible(policy: ActionPolicy, problem: str, version: str = "") -> Decision:
    """A token that cannot be real (the shape filter, `sidecar.core.shape`): INVALID, answered
    locally like an upstream MALFORMED, never sent upstream. `problem` says why."""
    return _invalid_here(policy, f"token_shape:{problem}", version, invalid_reason="MALFORMED")


_NO_KEY_VERDICT = {
    FailureKind.CLIENT_TYPE_MISSING: Verdict.CLIENT_TYPE_MISSING,
    FailureKind.KEYS_MISSING: Verdict.KEYS_MISSING,
}


def decide_no_key(
    policy: ActionPolicy, kind: FailureKind, detail: str = "", version: str = ""
) -> Decision:
    """No key could be chosen (`sidecar.core.keys`): the token is UNCHECKED and never went
    upstream; the verdict says why (CLIENT_TYPE_MISSING, KEYS_MISSING), and the action's
    `on_client_type_missing` / `on_keys_missing` decides `allowed` (audit mode allows, as it
    allows every failure)."""
    unchecked = decide_unchecked(policy, kind, detail, version)
    return dataclasses.replace(unchecked, verdict=_NO_KEY_VERDICT[kind])


def decide_rejected(policy: ActionPolicy, detail: str, version: str = "") -> Decision:
    """Upstream refused the request itself (a field the app sent): the token could not be
    judged valid, so it is INVALID, never allowed in enforce mode; no failure policy applies,
    since neither upstream nor the sidecar failed."""
    return _invalid_here(policy, f"{FailureKind.REQUEST.value}:{detail}", version)


def decide_unchecked(
    policy: ActionPolicy,
    kind: FailureKind,
    detail: str,
    version: str = "",
    *,
    closed: bool = False,
) -> Decision:
    """No answer could be had. In enforce mode the failure policy for this kind of failure
    decides; an open policy lets the request through as FAILED_AUDIT so it is still counted.
    `closed` ignores the failure policy: a repeat of a token still in flight may never be let
    through by it (only the first presentation may be)."""
    opened = not closed and policy.failure_policy(kind) is FailurePolicy.OPEN
    if policy.mode is Mode.AUDIT or opened:
        allowed, verdict = True, Verdict.FAILED_AUDIT
    else:
        allowed, verdict = False, Verdict.FAILED_ENFORCE
    return Decision(
        allowed=allowed,
        verdict=verdict,
        token_status=TokenStatus.UNCHECKED,
        recommended_action=RecommendedAction.ALLOW if allowed else RecommendedAction.BLOCK,
        decided_by=f"{kind.value}:{detail}" if detail else kind.value,
        threshold=policy.threshold,
        policy_version=version,
    )


def decide_rate_limited(policy: ActionPolicy, per: str, version: str = "") -> Decision:
    """A call a rate limit shed before it reached upstream (`per`: ip, account, site_key,
    action, or upstream for the global cap). Never allowed, whatever the mode or the failure
    policies say: the attacker's own flood trips the limit, so letting it through would hand
    them the switch that turns protection off."""
    return Decision(
        allowed=False,
        verdict=Verdict.FAILED_ENFORCE,
        token_status=TokenStatus.UNCHECKED,
        recommended_action=RecommendedAction.BLOCK,
        decided_by=f"rate_limited:{per}",
        threshold=policy.threshold,
        policy_version=version,
        rate_limited=per,
    )
