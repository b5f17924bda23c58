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
6. account defender: a label mapped to `block` fails the request; a label mapped to `challenge`
   lets it through with `recommended_action = CHALLENGE` (ask for a second factor).

A failure is FAILED_ENFORCE (not allowed) in enforce mode and FAILED_AUDIT (allowed, counted)
in audit mode; audit mode never asks for a challenge either, so it changes nothing users see.
"""

from __future__ import annotations

import enum
import hashlib
import json
import math
import re
import struct
from collections.abc import Mapping
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from sidecar.core.model import (
    Decision,
    RecommendedAction,
    TokenStatus,
    UpstreamAssessment,
    Verdict,
)


class Mode(enum.StrEnum):
    """Audit lets failures through (and counts them); enforce denies them."""

    AUDIT = "audit"
    ENFORCE = "enforce"


class FailurePolicy(enum.StrEnum):
    """What to do when no answer could be had: let the request through or not."""

    OPEN = "open"
    CLOSED = "closed"


class FailureKind(enum.StrEnum):
    """Why no answer could be had; each kind has its own failure policy."""

    TRANSIENT = "transient"  # upstream unavailable, deadline, breaker open, outcome unknown
    QUOTA = "quota"  # upstream RESOURCE_EXHAUSTED: junk tokens must not switch protection off
    CONFIG = "config"  # credentials, permissions, a bad project or key
    REPLAY_STORE = "replay_store"  # the replay store could not be asked


class LabelAction(enum.StrEnum):
    """What an account defender label asks of the app. `allow` is the default for any label
    not listed; it is accepted so a policy can say so explicitly."""

    ALLOW = "allow"
    CHALLENGE = "challenge"
    BLOCK = "block"


# AccountDefenderAssessment.AccountDefenderLabel names known today. Google adds labels over
# time, so others are accepted, but `policy check` warns about them (a typo never matches).
KNOWN_ACCOUNT_DEFENDER_LABELS: frozenset[str] = frozenset(
    {
        "PROFILE_MATCH",
        "SUSPICIOUS_LOGIN_ACTIVITY",
        "SUSPICIOUS_ACCOUNT_CREATION",
        "RELATED_ACCOUNTS_NUMBER_HIGH",
    }
)
_LABEL = re.compile(r"[A-Z][A-Z0-9_]*")
# reCAPTCHA's rule for action names (as sidecar.core.validation applies it to requests).
_ACTION_NAME = re.compile(r"[A-Za-z0-9/_]{1,100}")
_SEVERITY = {LabelAction.ALLOW: 0, LabelAction.CHALLENGE: 1, LabelAction.BLOCK: 2}


def _check_patterns(values: tuple[str, ...], *, app_ids: bool) -> tuple[str, ...]:
    """Reject patterns that could never match or that would match more than they seem to:
    `*` is allowed only as a leading `*.` (and, for app ids, a trailing `.*`)."""
    for value in values:
        core = value if app_ids else value.rstrip(".")  # a DNS name may end in a dot
        if core.startswith("*."):
            core = core[2:]
        elif app_ids and core.endswith(".*"):
            core = core[:-2]
        if not core or "*" in core or core.startswith(".") or core.endswith("."):
            allowed = "'*.example.com'" + (" or 'com.example.*'" if app_ids else "")
            raise ValueError(f"{value!r}: expected an exact name or {allowed}")
        if any(ch.isspace() for ch in core):
            raise ValueError(f"{value!r}: names contain no spaces")
    return values


class ActionPolicy(BaseModel):
    """The rules for one action. Every field is a config key under `policy.default` or
    `policy.actions.<name>`; an action's entry overrides only the keys it names."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    threshold: float = Field(0.5, ge=0.0, le=1.0, description="Lowest score that passes.")
    mode: Mode = Field(Mode.ENFORCE, description="audit: failures are allowed and counted.")
    require_action_match: bool = Field(
        True, description="Fail when the token's action differs from expected_action."
    )
    allowed_hostnames: tuple[str, ...] = Field(
        (),
        description="Hostnames a web token may come from; '*.example.com' wildcards; empty: any.",
    )
    allowed_android_packages: tuple[str, ...] = Field(
        (),
        description="Android packages a token may come from; '*.example.app' or "
        "'com.example.*' wildcards; empty: any.",
    )
    allowed_ios_bundles: tuple[str, ...] = Field(
        (),
        description="iOS bundle ids a token may come from; '*.' or '.*' wildcards; empty: any.",
    )
    max_token_age: float | None = Field(
        None,
        gt=0,
        description="Fail tokens created more than this many seconds ago; null: no limit.",
    )
    account_defender: Mapping[str, LabelAction] = Field(
        default_factory=dict,
        description="Account defender label → allow | challenge | block.",
    )
    on_upstream_failure: FailurePolicy = Field(
        FailurePolicy.CLOSED, description="Upstream unavailable, deadline, breaker open."
    )
    on_quota_exhausted: FailurePolicy = Field(
        FailurePolicy.CLOSED, description="Upstream RESOURCE_EXHAUSTED."
    )
    on_config_error: FailurePolicy = Field(
        FailurePolicy.CLOSED, description="Upstream rejected our credentials or project."
    )
    on_replay_store_failure: FailurePolicy = Field(
        FailurePolicy.CLOSED, description="The replay store could not be asked."
    )

    @field_validator("allowed_hostnames")
    @classmethod
    def _hostname_patterns(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        return _check_patterns(value, app_ids=False)

    @field_validator("allowed_android_packages", "allowed_ios_bundles")
    @classmethod
    def _app_id_patterns(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        return _check_patterns(value, app_ids=True)

    @field_validator("account_defender", mode="before")
    @classmethod
    def _label_names(cls, value: Any) -> Any:
        """Labels are upstream enum names: compared upper-case, so `suspicious_login_activity`
        in a file works; two spellings of one label are a mistake, not an override."""
        if not isinstance(value, Mapping):
            return value
        labels: dict[str, Any] = {}
        for name, action in value.items():
            label = str(name).strip().upper()
            if not _LABEL.fullmatch(label):
                raise ValueError(f"{name!r}: not an account defender label name")
            if label in labels:
                raise ValueError(f"{label} is listed twice")
            labels[label] = action.lower() if isinstance(action, str) else action
        return labels

    def failure_policy(self, kind: FailureKind) -> FailurePolicy:
        """The failure policy that applies to one kind of failure."""
        if kind is FailureKind.QUOTA:
            return self.on_quota_exhausted
        if kind is FailureKind.CONFIG:
            return self.on_config_error
        if kind is FailureKind.REPLAY_STORE:
            return self.on_replay_store_failure
        return self.on_upstream_failure

    def warnings(self) -> list[str]:
        """Things that are valid but probably not meant (shown by `policy check`, logged on
        load)."""
        found = []
        unknown = sorted(set(self.account_defender) - KNOWN_ACCOUNT_DEFENDER_LABELS)
        if unknown:
            found.append(
                "account_defender: unknown label(s) " + ", ".join(unknown) + " (a typo never "
                "matches; known: " + ", ".join(sorted(KNOWN_ACCOUNT_DEFENDER_LABELS)) + ")"
            )
        if self.max_token_age is not None and self.max_token_age < 1:
            found.append(f"max_token_age: {self.max_token_age} s leaves no time to assess")
        return found


class Policy(BaseModel):
    """The default rules and per-action overrides (config key `policy`)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    default: ActionPolicy = Field(default_factory=ActionPolicy)
    actions: Mapping[str, ActionPolicy] = Field(default_factory=dict)
    version: str = Field(
        "", description="Reported in every response; derived from the rules if empty."
    )

    @model_validator(mode="before")
    @classmethod
    def _merge_action_overrides(cls, data: Any) -> Any:
        """Let `actions.login: {threshold: 0.7}` inherit every other key from `default`."""
        if not isinstance(data, Mapping):
            return data
        default = data.get("default") or {}
        if isinstance(default, ActionPolicy):
            default = default.model_dump()
        actions = data.get("actions") or {}
        if not isinstance(actions, Mapping):
            return data
        merged: dict[str, Any] = {}
        for name, override in actions.items():
            key = str(name).lower()
            if not _ACTION_NAME.fullmatch(key):
                raise ValueError(
                    f"actions: {name!r} is not an action name (letters, digits, '/' and '_')"
                )
            if key in merged:
                raise ValueError(f"actions: {name!r} is listed twice (names ignore case)")
            if isinstance(override, ActionPolicy):
                merged[key] = override
            elif isinstance(override, Mapping) and isinstance(default, Mapping):
                merged[key] = {**default, **override}
            else:
                merged[key] = override
        return {**data, "actions": merged}

    @model_validator(mode="after")
    def _derive_version(self) -> Policy:
        """A version derived from the effective rules: it changes exactly when they do, and a
        file re-read with only comments or key order changed keeps its version."""
        if not self.version:
            object.__setattr__(self, "version", self.digest())
        return self

    def digest(self) -> str:
        """12 hex digits of SHA-256 over the effective rules (not the version label)."""
        canonical = json.dumps(
            self.model_dump(mode="json", exclude={"version"}), sort_keys=True, default=str
        )
        return hashlib.sha256(canonical.encode()).hexdigest()[:12]

    def for_action(self, action: str) -> ActionPolicy:
        """reCAPTCHA treats action names case-insensitively, and so do we."""
        if action:
            found = self.actions.get(action.lower())
            if found is not None:
                return found
        return self.default

    def warnings(self) -> list[str]:
        """Every action's warnings, prefixed with where they are."""
        found = [f"default: {w}" for w in self.default.warnings()]
        for name, rules in sorted(self.actions.items()):
            found += [f"actions.{name}: {w}" for w in rules.warnings()]
        return found


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


_UPSTREAM_STATUS = {
    "EXPIRED": TokenStatus.EXPIRED,
    "DUPE": TokenStatus.DUPLICATE,
    "MISSING": TokenStatus.MISSING,
}


def _failed(policy: ActionPolicy) -> tuple[bool, Verdict]:
    if policy.mode is Mode.AUDIT:
        return True, Verdict.FAILED_AUDIT
    return False, Verdict.FAILED_ENFORCE


def decide(
    policy: ActionPolicy,
    expected_action: str,
    upstream: UpstreamAssessment,
    version: str = "",
    *,
    now: float | None = None,
) -> Decision:
    """The verdict for an assessment upstream answered. `now` (unix seconds) is the clock for
    `max_token_age`; without it that rule is not applied (a caller enforcing it passes it)."""
    status = TokenStatus.VALID
    rule = "passed"
    invalid_reason = upstream.invalid_reason
    failed = True
    challenge = False
    if not upstream.valid:
        status = _UPSTREAM_STATUS.get(upstream.invalid_reason, TokenStatus.INVALID)
        rule = f"token_{status.lower()}"
    elif (
        policy.require_action_match
        and expected_action
        and upstream.action.lower() != expected_action.lower()
    ):
        rule = "action_mismatch"
        invalid_reason = "UNEXPECTED_ACTION"
    elif (source := _source_rule(policy, upstream)) is not None:
        rule = source
    elif (
        policy.max_token_age is not None
        and now is not None
        and upstream.create_time is not None
        and now - upstream.create_time > policy.max_token_age
    ):
        rule = "token_too_old"
    elif not score_passes(upstream.score, policy.threshold):
        rule = "score_below_threshold"
    else:
        label_action, label = _label_rule(policy, upstream.account_defender_labels)
        failed = label_action is LabelAction.BLOCK
        if label_action is not LabelAction.ALLOW:
            rule = f"account_defender:{label}"
            # Audit mode changes nothing users see: no challenge either, only decided_by.
            challenge = label_action is LabelAction.CHALLENGE and policy.mode is Mode.ENFORCE

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


def decide_unchecked(
    policy: ActionPolicy, kind: FailureKind, detail: str, version: str = ""
) -> Decision:
    """No answer could be had. In enforce mode the failure policy for this kind of failure
    decides; an open policy lets the request through as FAILED_AUDIT so it is still counted."""
    if policy.mode is Mode.AUDIT or policy.failure_policy(kind) is FailurePolicy.OPEN:
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
