"""`policy check`: validate a file and show the effective rules per action. Reading a policy
file (`load_policy_file`) is shared with `policy dry-run` (`sidecar.policy.dryrun`)."""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any, TextIO

import yaml
from pydantic import ValidationError

from sidecar.policy.schema import ActionPolicy, Policy, RateLimitRule, parse_rate


class PolicyFileError(Exception):
    """The file cannot be used as a policy; the message names the key or the line."""


# ---- reading a policy ------------------------------------------------------------------------


def _read_settings(path: Path) -> Mapping[str, Any]:
    """The YAML mapping at the top of `path`; PolicyFileError names the line when it is not."""
    try:
        data = yaml.safe_load(path.read_text())
    except OSError as error:
        raise PolicyFileError(f"{path}: {error.strerror or 'unreadable'}") from None
    except yaml.YAMLError as error:
        mark = getattr(error, "problem_mark", None)
        where = f" (line {mark.line + 1}, column {mark.column + 1})" if mark else ""
        problem = getattr(error, "problem", None) or "not YAML"
        raise PolicyFileError(f"{path}: {problem}{where}") from None
    if data is None:
        data = {}
    if not isinstance(data, Mapping):
        raise PolicyFileError(f"{path}: expected a mapping of settings at the top")
    return data


def load_policy_file(path: Path) -> Policy:
    """The policy of a settings file (its `policy` key), or of a file that is only a policy
    (`default` / `actions` at the top)."""
    data = _read_settings(path)
    prefix = "policy."
    if "policy" in data:
        raw = data["policy"] if data["policy"] is not None else {}
    elif {"default", "actions"} & set(data):
        raw, prefix = data, ""
    else:
        raw = {}
    try:
        return Policy.model_validate(raw)
    except ValidationError as error:
        lines = []
        for item in error.errors():
            key = ".".join(str(part) for part in item["loc"])
            lines.append(f"  {prefix}{key}".rstrip(".") + f": {item['msg']}")
        raise PolicyFileError("invalid policy:\n" + "\n".join(lines)) from None


def load_upstream_cap(path: Path) -> tuple[int, float] | None:
    """The settings file's `upstream_rate_limit` as `(calls, period)`, None when unset."""
    value = _read_settings(path).get("upstream_rate_limit") or ""
    if not isinstance(value, str):
        raise PolicyFileError("upstream_rate_limit: expected a rate such as '900/second'")
    if not value.strip():
        return None
    try:
        return parse_rate(value)
    except ValueError as error:
        raise PolicyFileError(f"upstream_rate_limit: {error}") from None


# ---- policy check ----------------------------------------------------------------------------


def _describe_rules(rules: ActionPolicy) -> dict[str, str]:
    """Each rule in words, in the order decide() applies them."""

    def names(values: tuple[str, ...]) -> str:
        return ", ".join(values) if values else "any"

    threshold = f"{rules.threshold:g} (score ≥ threshold, as float32)"
    labels = ", ".join(
        f"{label} → {action.value}" for label, action in rules.account_defender.items()
    )
    return {
        "mode": rules.mode.value,
        "require_action_match": str(rules.require_action_match).lower(),
        "allowed_hostnames": names(rules.allowed_hostnames),
        "allowed_android_packages": names(rules.allowed_android_packages),
        "allowed_ios_bundles": names(rules.allowed_ios_bundles),
        "max_token_age": "no limit"
        if rules.max_token_age is None
        else f"{rules.max_token_age:g} s",
        "threshold": threshold,
        "max_sms_toll_fraud_risk": "no limit"
        if rules.max_sms_toll_fraud_risk is None
        else f"{rules.max_sms_toll_fraud_risk:g} (risk ≤ max, as float32)",
        "max_transaction_risk": "no limit"
        if rules.max_transaction_risk is None
        else f"{rules.max_transaction_risk:g} (risk ≤ max, as float32)",
        "rate_limits": "; ".join(_describe_limit(rule) for rule in rules.rate_limits)
        or "none (only upstream_rate_limit, if set, caps this action)",
        "account_defender": labels or "no rules (every label allowed)",
        "on_upstream_failure": rules.on_upstream_failure.value,
        "on_quota_exhausted": rules.on_quota_exhausted.value,
        "on_config_error": rules.on_config_error.value,
        "on_replay_store_failure": rules.on_replay_store_failure.value,
        "on_client_type_missing": rules.on_client_type_missing.value,
        "on_keys_missing": rules.on_keys_missing.value,
    }


def check_report(policy: Policy) -> str:
    """The effective rules, per action; keys that differ from the default are starred."""
    default = _describe_rules(policy.default)
    out = [f"policy {policy.version}: valid; {len(policy.actions)} action(s) besides the default"]
    sections = [("default", "any action not listed below", default)]
    for name in sorted(policy.actions):
        sections.append(
            (f"actions.{name}", f"expected_action {name!r}", _describe_rules(policy.actions[name]))
        )
    for title, applies, rules in sections:
        out.append("")
        out.append(f"{title}  ({applies})")
        width = max(len(key) for key in rules)
        for key, value in rules.items():
            star = "*" if title != "default" and default[key] != value else " "
            out.append(f" {star} {key.ljust(width)}  {value}")
    if policy.actions:
        out.append("")
        out.append("* differs from the default")
    return "\n".join(out)


def check_json(policy: Policy) -> dict[str, Any]:
    return {
        "version": policy.version,
        "default": policy.default.model_dump(mode="json"),
        "actions": {
            name: rules.model_dump(mode="json") for name, rules in sorted(policy.actions.items())
        },
        "warnings": policy.warnings(),
    }


def _describe_limit(rule: RateLimitRule) -> str:
    calls, period = rule.rate
    where = f" (IPv4 /{rule.ipv4_prefix}, IPv6 /{rule.ipv6_prefix})" if rule.per == "ip" else ""
    return (
        f"per {rule.per} {rule.limit} = {calls} at once, then one every {period / calls:g} s{where}"
    )


def policy_check(config: Path, *, as_json: bool, out: TextIO, err: TextIO) -> int:
    """`recaptcha-sidecar policy check`: 0 valid, 2 invalid."""
    try:
        policy = load_policy_file(config)
    except PolicyFileError as error:
        print(f"recaptcha-sidecar: {error}", file=err)
        return 2
    if as_json:
        json.dump(check_json(policy), out, indent=2, sort_keys=True)
        out.write("\n")
        return 0
    print(check_report(policy), file=out)
    for warning in policy.warnings():
        print(f"warning: {warning}", file=err)
    return 0
