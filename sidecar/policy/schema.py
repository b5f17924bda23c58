"""The policy's schema: the rules an operator writes, per action, as validated settings.

Frozen pydantic models, so a policy read from YAML (or the environment) fails at load with the
key named, and a policy in force can never change under a call. `sidecar.policy.rules` applies
them; `sidecar.policy.source` swaps them on reload; `tools` and `dryrun` check and replay.
"""

from __future__ import annotations

import enum
import hashlib
import json
import re
from collections.abc import Mapping
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, PrivateAttr, field_validator, model_validator

from sidecar.core.ports import FailureKind


class Mode(enum.StrEnum):
    """Audit lets failures through (and counts them); enforce denies them."""

    AUDIT = "audit"
    ENFORCE = "enforce"


class FailurePolicy(enum.StrEnum):
    """What to do when no answer could be had: let the request through or not."""

    OPEN = "open"
    CLOSED = "closed"


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


# "30/minute", "30 per minute", "100/5 minutes", "900/second": the notation of the `limits`
# library (and Flask-Limiter, slowapi), which operators already know.
_RATE = re.compile(
    r"\s*([0-9]+)\s*(?:/|\s+per\s+)\s*([0-9]+\s*)?(second|minute|hour|day)s?\s*", re.IGNORECASE
)
_UNIT_SECONDS = {"second": 1, "minute": 60, "hour": 3600, "day": 86_400}
MAX_RATE_AMOUNT = 10_000_000
MAX_RATE_PERIOD = 86_400.0


def parse_rate(text: str) -> tuple[int, float]:
    """`(calls, period in seconds)` of a rate such as `30/minute`; ValueError when it is none."""
    match = _RATE.fullmatch(text)
    if match is None:
        raise ValueError(
            f"{text!r}: expected a rate such as '30/minute', '900/second' or '100 per 5 minutes'"
        )
    amount = int(match.group(1))
    multiple = int(match.group(2) or 1)
    period = float(multiple * _UNIT_SECONDS[match.group(3).lower()])
    if not 1 <= amount <= MAX_RATE_AMOUNT:
        raise ValueError(f"{text!r}: the number of calls must be 1 … {MAX_RATE_AMOUNT:,}")
    if not 0 < period <= MAX_RATE_PERIOD:
        raise ValueError(f"{text!r}: the period must be 1 second … 1 day")
    return amount, period


class RateLimitRule(BaseModel):
    """One per-client limit on the calls of an action that would reach upstream (config key
    `policy.….rate_limits[]`): `{per: ip, limit: "30/minute"}`. A call over it is answered
    UNCHECKED `rate_limited:<per>` at once, never allowed, its token released."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    per: Literal["ip", "account", "site_key", "action"] = Field(
        description="What is counted: the client IP (by network prefix), the protected "
        "account id, the site key, or the action as a whole."
    )
    limit: str = Field(
        description="Calls per period: '30/minute', '900/second', '100 per 5 minutes'."
    )
    ipv4_prefix: int = Field(
        32, ge=8, le=32, description="per ip: IPv4 addresses in one /N network count as one."
    )
    ipv6_prefix: int = Field(
        64, ge=16, le=128, description="per ip: IPv6 addresses in one /N network count as one."
    )

    _rate: tuple[int, float] = PrivateAttr(default=(1, 1.0))

    @model_validator(mode="after")
    def _parsed(self) -> RateLimitRule:
        if self.per != "ip" and self.model_fields_set & {"ipv4_prefix", "ipv6_prefix"}:
            raise ValueError(
                f"ipv4_prefix / ipv6_prefix: only for per: ip (this rule is per: {self.per})"
            )
        self._rate = parse_rate(self.limit)  # parsed once: the hot path reads `rate`
        return self

    @property
    def rate(self) -> tuple[int, float]:
        """`(calls, period in seconds)`."""
        return self._rate


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
    max_sms_toll_fraud_risk: float | None = Field(
        None,
        ge=0.0,
        le=1.0,
        description="Fail when SMS defense's toll-fraud risk is above this (as float32); "
        "null: no limit. Applies only when the risk was assessed (a phone number in user_ids).",
    )
    max_transaction_risk: float | None = Field(
        None,
        ge=0.0,
        le=1.0,
        description="Fail when fraud prevention's transaction risk is above this (as float32); "
        "null: no limit. Applies only when the risk was assessed (transaction_data given).",
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
    # Identity Platform fails open when it cannot provision keys; a sidecar that cannot name a
    # key is misconfigured (or called by an app that does not say its client type), and open
    # here would let every token through unverified until someone notices: closed by default.
    on_client_type_missing: FailurePolicy = Field(
        FailurePolicy.CLOSED,
        description="No site_key nor client_type, and site_keys has keys for several client "
        "types (VERDICT_CLIENT_TYPE_MISSING).",
    )
    on_keys_missing: FailurePolicy = Field(
        FailurePolicy.CLOSED,
        description="No key for the request's client type, for express, or at all "
        "(VERDICT_KEYS_MISSING).",
    )
    rate_limits: tuple[RateLimitRule, ...] = Field(
        (),
        description="Per-client limits on the calls that would reach upstream, e.g. "
        "[{per: ip, limit: '30/minute'}, {per: account, limit: '10/minute'}]; a call over "
        "one is UNCHECKED rate_limited:<per>, never allowed. A rule whose key the request "
        "lacks (no IP, no account id) does not apply to it.",
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
        """The failure policy that applies to one kind of failure. A refused request has
        none: it is always closed (its token is INVALID, see `rules.decide_rejected`)."""
        if kind is FailureKind.REQUEST:
            return FailurePolicy.CLOSED
        if kind is FailureKind.QUOTA:
            return self.on_quota_exhausted
        if kind is FailureKind.CONFIG:
            return self.on_config_error
        if kind is FailureKind.REPLAY_STORE:
            return self.on_replay_store_failure
        if kind is FailureKind.CLIENT_TYPE_MISSING:
            return self.on_client_type_missing
        if kind is FailureKind.KEYS_MISSING:
            return self.on_keys_missing
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
        seen: set[tuple[str, tuple[int, float]]] = set()
        for rule in self.rate_limits:
            if (rule.per, rule.rate) in seen:
                found.append(f"rate_limits: per {rule.per} {rule.limit} is listed twice")
            seen.add((rule.per, rule.rate))
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

    def entry_name(self, action: str) -> str:
        """The `actions` entry whose rules apply to `action`, or "" for `default` (rate limit
        counters are kept per entry, so unknown action names share the default's)."""
        if action:
            name = action.lower()
            if name in self.actions:
                return name
        return ""

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
