"""The decision rules: pure functions from (policy, what upstream said) to a Decision.

Pure so that they can be tested exhaustively and replayed offline against recorded assessments.
"""

from __future__ import annotations

import enum
import hashlib
import json
import struct
from collections.abc import Mapping
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, model_validator

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

    def failure_policy(self, kind: FailureKind) -> FailurePolicy:
        """The failure policy that applies to one kind of failure."""
        if kind is FailureKind.QUOTA:
            return self.on_quota_exhausted
        if kind is FailureKind.CONFIG:
            return self.on_config_error
        if kind is FailureKind.REPLAY_STORE:
            return self.on_replay_store_failure
        return self.on_upstream_failure


class Policy(BaseModel):
    """The default rules and per-action overrides (config key `policy`)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    default: ActionPolicy = Field(default_factory=ActionPolicy)
    actions: Mapping[str, ActionPolicy] = Field(default_factory=dict)
    version: str = Field("", description="Reported in every response; derived if empty.")

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
            if isinstance(override, ActionPolicy):
                merged[str(name).lower()] = override
            elif isinstance(override, Mapping):
                merged[str(name).lower()] = {**default, **override}
            else:
                merged[str(name).lower()] = override
        data = {**data, "actions": merged}
        if not data.get("version"):
            canonical = json.dumps(data, sort_keys=True, default=_jsonable)
            data["version"] = hashlib.sha256(canonical.encode()).hexdigest()[:12]
        return data

    def for_action(self, action: str) -> ActionPolicy:
        """reCAPTCHA treats action names case-insensitively, and so do we."""
        if action:
            found = self.actions.get(action.lower())
            if found is not None:
                return found
        return self.default


def _jsonable(value: object) -> object:
    if isinstance(value, BaseModel):
        return value.model_dump(mode="json")
    return str(value)


def as_float32(value: float) -> float:
    """Round to the nearest float32: upstream scores are float32, so 0.9 arrives as 0.8999999761…
    and must still pass a 0.9 threshold."""
    result: float = struct.unpack("f", struct.pack("f", value))[0]
    return result


def hostname_allowed(hostname: str, allowed: tuple[str, ...]) -> bool:
    """Exact names, or `*.example.com` for any subdomain of example.com (not the apex)."""
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
    policy: ActionPolicy, expected_action: str, upstream: UpstreamAssessment, version: str = ""
) -> Decision:
    """The verdict for an assessment upstream answered."""
    status = TokenStatus.VALID
    rule = "passed"
    if not upstream.valid:
        status = _UPSTREAM_STATUS.get(upstream.invalid_reason, TokenStatus.INVALID)
        rule = f"token_{status.lower()}"
    elif (
        policy.require_action_match
        and expected_action
        and upstream.action.lower() != expected_action.lower()
    ):
        rule = "action_mismatch"
    elif (
        upstream.hostname or not (upstream.android_package_name or upstream.ios_bundle_id)
    ) and not hostname_allowed(upstream.hostname, policy.allowed_hostnames):
        rule = "hostname_not_allowed"
    elif upstream.score < as_float32(policy.threshold):
        rule = "score_below_threshold"

    if rule == "passed":
        allowed, verdict = True, Verdict.PASSED
    else:
        allowed, verdict = _failed(policy)
    return Decision(
        allowed=allowed,
        verdict=verdict,
        token_status=status,
        recommended_action=RecommendedAction.ALLOW if allowed else RecommendedAction.BLOCK,
        decided_by=rule,
        invalid_reason=upstream.invalid_reason,
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
