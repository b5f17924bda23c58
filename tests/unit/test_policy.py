"""The decision rules, table-driven: every rule alone, in both modes, and in combination."""

from __future__ import annotations

import dataclasses
import itertools
from typing import Any

import pytest
from pydantic import ValidationError

from sidecar.core.model import (
    Decision,
    RecommendedAction,
    TokenStatus,
    UpstreamAssessment,
    Verdict,
)
from sidecar.core.ports import FailureKind
from sidecar.policy.rules import (
    app_id_allowed,
    as_float32,
    decide,
    decide_duplicate,
    decide_missing,
    decide_unchecked,
    hostname_allowed,
)
from sidecar.policy.schema import ActionPolicy, FailurePolicy, LabelAction, Mode, Policy

NOW = 1_700_000_000.0
GOOD = UpstreamAssessment(
    name="projects/1/assessments/a",
    valid=True,
    score=as_float32(0.9),
    action="login",
    hostname="shop.example.com",
    create_time=NOW - 5,
)


def rules(**fields: Any) -> ActionPolicy:
    return ActionPolicy.model_validate(fields)


def upstream(**fields: Any) -> UpstreamAssessment:
    return dataclasses.replace(GOOD, **fields)


def verdict_of(decision: Decision) -> tuple[bool, Verdict, RecommendedAction, str]:
    return (
        decision.allowed,
        decision.verdict,
        decision.recommended_action,
        decision.decided_by,
    )


PASS = (True, Verdict.PASSED, RecommendedAction.ALLOW, "passed")


def enforce_fail(rule: str) -> tuple[bool, Verdict, RecommendedAction, str]:
    return (False, Verdict.FAILED_ENFORCE, RecommendedAction.BLOCK, rule)


def audit_fail(rule: str) -> tuple[bool, Verdict, RecommendedAction, str]:
    return (True, Verdict.FAILED_AUDIT, RecommendedAction.ALLOW, rule)


# (case id, policy fields, upstream fields, expected_action, expected verdict in enforce mode)
SINGLE_RULES: list[tuple[str, dict[str, Any], dict[str, Any], str, str | None]] = [
    ("defaults pass", {}, {}, "login", None),
    ("no expected action, no check", {}, {"action": "other"}, "", None),
    (
        "invalid token",
        {},
        {"valid": False, "invalid_reason": "BROWSER_ERROR"},
        "login",
        "token_invalid",
    ),
    ("expired token", {}, {"valid": False, "invalid_reason": "EXPIRED"}, "login", "token_expired"),
    ("dupe token", {}, {"valid": False, "invalid_reason": "DUPE"}, "login", "token_duplicate"),
    (
        "unknown invalid reason",
        {},
        {"valid": False, "invalid_reason": "NEW_ONE"},
        "login",
        "token_invalid",
    ),
    ("action mismatch", {}, {"action": "signup"}, "login", "action_mismatch"),
    ("action match ignores case", {}, {"action": "LOGIN"}, "login", None),
    ("action match ignores case (expected)", {}, {"action": "login"}, "LoGiN", None),
    ("action match off", {"require_action_match": False}, {"action": "signup"}, "login", None),
    ("hostname listed", {"allowed_hostnames": ["shop.example.com"]}, {}, "login", None),
    ("hostname wildcard", {"allowed_hostnames": ["*.example.com"]}, {}, "login", None),
    ("hostname case and dot", {"allowed_hostnames": ["SHOP.example.com."]}, {}, "login", None),
    (
        "hostname wildcard not apex",
        {"allowed_hostnames": ["*.example.com"]},
        {"hostname": "example.com"},
        "login",
        "hostname_not_allowed",
    ),
    (
        "hostname not listed",
        {"allowed_hostnames": ["example.org"]},
        {},
        "login",
        "hostname_not_allowed",
    ),
    (
        "hostname lookalike",
        {"allowed_hostnames": ["*.example.com"]},
        {"hostname": "evilexample.com"},
        "login",
        "hostname_not_allowed",
    ),
    (
        "empty hostname with a list",
        {"allowed_hostnames": ["example.com"]},
        {"hostname": ""},
        "login",
        "hostname_not_allowed",
    ),
    (
        "android listed",
        {"allowed_android_packages": ["com.example.app"]},
        {"hostname": "", "android_package_name": "com.example.app"},
        "login",
        None,
    ),
    (
        "android prefix wildcard",
        {"allowed_android_packages": ["com.example.*"]},
        {"hostname": "", "android_package_name": "com.example.app.debug"},
        "login",
        None,
    ),
    (
        "android suffix wildcard",
        {"allowed_android_packages": ["*.example.app"]},
        {"hostname": "", "android_package_name": "com.example.app"},
        "login",
        None,
    ),
    (
        "android not listed",
        {"allowed_android_packages": ["com.example.app"]},
        {"hostname": "", "android_package_name": "com.evil.app"},
        "login",
        "android_package_not_allowed",
    ),
    (
        "android case matters",
        {"allowed_android_packages": ["com.example.app"]},
        {"hostname": "", "android_package_name": "com.Example.app"},
        "login",
        "android_package_not_allowed",
    ),
    (
        "android prefix is not the package",
        {"allowed_android_packages": ["com.example.*"]},
        {"hostname": "", "android_package_name": "com.example"},
        "login",
        "android_package_not_allowed",
    ),
    (
        "android ignores hostname list",
        {"allowed_hostnames": ["example.org"]},
        {"hostname": "", "android_package_name": "com.any.app"},
        "login",
        None,
    ),
    (
        "ios listed",
        {"allowed_ios_bundles": ["com.example.ios"]},
        {"hostname": "", "ios_bundle_id": "com.example.ios"},
        "login",
        None,
    ),
    (
        "ios wildcard",
        {"allowed_ios_bundles": ["com.example.*"]},
        {"hostname": "", "ios_bundle_id": "com.example.ios"},
        "login",
        None,
    ),
    (
        "ios not listed",
        {"allowed_ios_bundles": ["com.example.ios"]},
        {"hostname": "", "ios_bundle_id": "com.other.ios"},
        "login",
        "ios_bundle_not_allowed",
    ),
    (
        "ios ignores android list",
        {"allowed_android_packages": ["com.example.app"]},
        {"hostname": "", "ios_bundle_id": "com.other.ios"},
        "login",
        None,
    ),
    (
        "web ignores app lists",
        {"allowed_android_packages": ["a.b"], "allowed_ios_bundles": ["c.d"]},
        {},
        "login",
        None,
    ),
    ("young token", {"max_token_age": 30}, {"create_time": NOW - 30}, "login", None),
    ("old token", {"max_token_age": 30}, {"create_time": NOW - 30.001}, "login", "token_too_old"),
    ("token from the future", {"max_token_age": 30}, {"create_time": NOW + 60}, "login", None),
    ("no create_time, no age check", {"max_token_age": 30}, {"create_time": None}, "login", None),
    ("score at threshold", {"threshold": 0.9}, {}, "login", None),
    (
        "score below threshold",
        {"threshold": 0.9},
        {"score": as_float32(0.89)},
        "login",
        "score_below_threshold",
    ),
    ("score zero threshold zero", {"threshold": 0.0}, {"score": 0.0}, "login", None),
    ("score one threshold one", {"threshold": 1.0}, {"score": 1.0}, "login", None),
    (
        "score NaN never passes",
        {"threshold": 0.0},
        {"score": float("nan")},
        "login",
        "score_below_threshold",
    ),
    (
        "label allowed by default",
        {},
        {"account_defender_labels": ("SUSPICIOUS_LOGIN_ACTIVITY",)},
        "login",
        None,
    ),
    (
        "label explicitly allowed",
        {"account_defender": {"PROFILE_MATCH": "allow"}},
        {"account_defender_labels": ("PROFILE_MATCH",)},
        "login",
        None,
    ),
    (
        "label blocks",
        {"account_defender": {"SUSPICIOUS_ACCOUNT_CREATION": "block"}},
        {"account_defender_labels": ("SUSPICIOUS_ACCOUNT_CREATION",)},
        "login",
        "account_defender:SUSPICIOUS_ACCOUNT_CREATION",
    ),
    (
        "label config ignores case",
        {"account_defender": {"suspicious_account_creation": "BLOCK"}},
        {"account_defender_labels": ("SUSPICIOUS_ACCOUNT_CREATION",)},
        "login",
        "account_defender:SUSPICIOUS_ACCOUNT_CREATION",
    ),
    (
        "unlisted label",
        {"account_defender": {"SUSPICIOUS_ACCOUNT_CREATION": "block"}},
        {"account_defender_labels": ("PROFILE_MATCH",)},
        "login",
        None,
    ),
]


@pytest.mark.parametrize(
    ("policy_fields", "upstream_fields", "expected_action", "rule"),
    [case[1:] for case in SINGLE_RULES],
    ids=[case[0] for case in SINGLE_RULES],
)
@pytest.mark.parametrize("mode", [Mode.ENFORCE, Mode.AUDIT])
def test_each_rule_in_each_mode(
    policy_fields: dict[str, Any],
    upstream_fields: dict[str, Any],
    expected_action: str,
    rule: str | None,
    mode: Mode,
) -> None:
    policy = rules(**policy_fields, mode=mode)
    decision = decide(policy, expected_action, upstream(**upstream_fields), "v1", now=NOW)
    if rule is None:
        assert verdict_of(decision) == PASS
    elif mode is Mode.ENFORCE:
        assert verdict_of(decision) == enforce_fail(rule)
    else:
        assert verdict_of(decision) == audit_fail(rule)
    assert decision.policy_version == "v1"
    assert decision.threshold == policy.threshold


@pytest.mark.parametrize(
    ("reason", "status"),
    [
        ("EXPIRED", TokenStatus.EXPIRED),
        ("DUPE", TokenStatus.DUPLICATE),
        ("MISSING", TokenStatus.MISSING),
        ("MALFORMED", TokenStatus.INVALID),
        ("KEY_MISMATCH", TokenStatus.INVALID),
        ("UNEXPECTED_ACTION", TokenStatus.INVALID),
        ("", TokenStatus.INVALID),
    ],
)
def test_invalid_tokens_keep_upstream_reason(reason: str, status: TokenStatus) -> None:
    decision = decide(rules(), "login", upstream(valid=False, invalid_reason=reason), now=NOW)
    assert (decision.token_status, decision.invalid_reason) == (status, reason)


def test_dupe_after_an_ambiguous_attempt_is_outcome_unknown_not_duplicate() -> None:
    """Our own earlier attempt may have spent the token: a DUPE then proves nothing. It is
    UNCHECKED under the upstream-failure policy (closed by default, open if so configured)."""
    answer = upstream(valid=False, invalid_reason="DUPE", ambiguous_retry=True)
    decision = decide(rules(), "login", answer, "v1", now=NOW)
    assert (decision.token_status, decision.decided_by) == (
        TokenStatus.UNCHECKED,
        "transient:outcome_unknown",
    )
    assert not decision.allowed and decision.policy_version == "v1"
    assert decide(rules(on_upstream_failure="open"), "login", answer, now=NOW).allowed
    # any other answer after an ambiguous attempt is as good as a first one
    fresh = decide(rules(), "login", upstream(ambiguous_retry=True), now=NOW)
    assert fresh.token_status is TokenStatus.VALID and fresh.allowed


def test_policy_rules_keep_token_valid_and_action_mismatch_says_why() -> None:
    decision = decide(rules(), "login", upstream(action="signup"), now=NOW)
    assert (decision.token_status, decision.invalid_reason) == (
        TokenStatus.VALID,
        "UNEXPECTED_ACTION",
    )
    for fields, policy in [
        ({"score": 0.1}, rules()),
        ({"hostname": "x"}, rules(allowed_hostnames=["y"])),
        ({"create_time": 0.0}, rules(max_token_age=1)),
    ]:
        decision = decide(policy, "login", upstream(**fields), now=NOW)
        assert (decision.token_status, decision.invalid_reason) == (TokenStatus.VALID, "")


def test_max_token_age_needs_a_clock() -> None:
    """decide is pure: without `now` the age rule cannot and does not apply."""
    old = upstream(create_time=0.0)
    assert decide(rules(max_token_age=1), "login", old).decided_by == "passed"
    assert decide(rules(max_token_age=1), "login", old, now=NOW).decided_by == "token_too_old"


# ---- account defender ------------------------------------------------------------------------

LABEL_RULES = {
    "SUSPICIOUS_LOGIN_ACTIVITY": "challenge",
    "SUSPICIOUS_ACCOUNT_CREATION": "block",
    "RELATED_ACCOUNTS_NUMBER_HIGH": "challenge",
    "PROFILE_MATCH": "allow",
}


@pytest.mark.parametrize(
    ("labels", "mode", "expected"),
    [
        ((), Mode.ENFORCE, PASS),
        (("PROFILE_MATCH",), Mode.ENFORCE, PASS),
        (
            ("SUSPICIOUS_LOGIN_ACTIVITY",),
            Mode.ENFORCE,
            (
                True,
                Verdict.PASSED,
                RecommendedAction.CHALLENGE,
                "account_defender:SUSPICIOUS_LOGIN_ACTIVITY",
            ),
        ),
        (
            ("SUSPICIOUS_ACCOUNT_CREATION",),
            Mode.ENFORCE,
            enforce_fail("account_defender:SUSPICIOUS_ACCOUNT_CREATION"),
        ),
        # block outranks challenge, whatever the order upstream lists them in
        (
            ("SUSPICIOUS_LOGIN_ACTIVITY", "SUSPICIOUS_ACCOUNT_CREATION"),
            Mode.ENFORCE,
            enforce_fail("account_defender:SUSPICIOUS_ACCOUNT_CREATION"),
        ),
        (
            ("SUSPICIOUS_ACCOUNT_CREATION", "SUSPICIOUS_LOGIN_ACTIVITY"),
            Mode.ENFORCE,
            enforce_fail("account_defender:SUSPICIOUS_ACCOUNT_CREATION"),
        ),
        # challenge outranks allow; among equals the first listed names the rule
        (
            ("PROFILE_MATCH", "RELATED_ACCOUNTS_NUMBER_HIGH", "SUSPICIOUS_LOGIN_ACTIVITY"),
            Mode.ENFORCE,
            (
                True,
                Verdict.PASSED,
                RecommendedAction.CHALLENGE,
                "account_defender:RELATED_ACCOUNTS_NUMBER_HIGH",
            ),
        ),
        # audit mode changes nothing users see: a block is FAILED_AUDIT, a challenge is ALLOW
        (
            ("SUSPICIOUS_ACCOUNT_CREATION",),
            Mode.AUDIT,
            audit_fail("account_defender:SUSPICIOUS_ACCOUNT_CREATION"),
        ),
        (
            ("SUSPICIOUS_LOGIN_ACTIVITY",),
            Mode.AUDIT,
            (
                True,
                Verdict.PASSED,
                RecommendedAction.ALLOW,
                "account_defender:SUSPICIOUS_LOGIN_ACTIVITY",
            ),
        ),
        # labels upstream sends in another case still match
        (
            ("suspicious_login_activity",),
            Mode.ENFORCE,
            (
                True,
                Verdict.PASSED,
                RecommendedAction.CHALLENGE,
                "account_defender:SUSPICIOUS_LOGIN_ACTIVITY",
            ),
        ),
    ],
)
def test_account_defender_labels(
    labels: tuple[str, ...], mode: Mode, expected: tuple[bool, Verdict, RecommendedAction, str]
) -> None:
    policy = rules(account_defender=LABEL_RULES, mode=mode)
    decision = decide(policy, "login", upstream(account_defender_labels=labels), now=NOW)
    assert verdict_of(decision) == expected
    assert decision.account_defender_labels == labels


def test_earlier_rules_win_over_labels() -> None:
    """A token that already fails is not also challenged: one verdict, one rule."""
    policy = rules(account_defender=LABEL_RULES, threshold=0.5)
    labels = ("SUSPICIOUS_LOGIN_ACTIVITY",)
    low = decide(policy, "login", upstream(score=0.1, account_defender_labels=labels), now=NOW)
    assert verdict_of(low) == enforce_fail("score_below_threshold")
    audit = rules(account_defender=LABEL_RULES, mode="audit")
    low = decide(audit, "login", upstream(score=0.1, account_defender_labels=labels), now=NOW)
    assert verdict_of(low) == audit_fail("score_below_threshold")


# ---- combinations: the first failing rule, in order, decides ---------------------------------

ORDER = ["token", "action", "source", "age", "score", "label"]
BREAKS: dict[str, tuple[dict[str, Any], str]] = {
    "token": ({"valid": False, "invalid_reason": "BROWSER_ERROR"}, "token_invalid"),
    "action": ({"action": "signup"}, "action_mismatch"),
    "source": ({"hostname": "evil.example.org"}, "hostname_not_allowed"),
    "age": ({"create_time": NOW - 3600}, "token_too_old"),
    "score": ({"score": 0.1}, "score_below_threshold"),
    "label": (
        {"account_defender_labels": ("SUSPICIOUS_ACCOUNT_CREATION",)},
        "account_defender:SUSPICIOUS_ACCOUNT_CREATION",
    ),
}
STRICT = {
    "threshold": 0.5,
    "allowed_hostnames": ["*.example.com"],
    "max_token_age": 60,
    "account_defender": LABEL_RULES,
}


@pytest.mark.parametrize(
    "broken",
    [combo for n in range(1, len(ORDER) + 1) for combo in itertools.combinations(ORDER, n)],
    ids=lambda combo: "+".join(combo),
)
@pytest.mark.parametrize("mode", [Mode.ENFORCE, Mode.AUDIT])
def test_every_combination_of_failures(broken: tuple[str, ...], mode: Mode) -> None:
    fields: dict[str, Any] = {}
    for name in broken:
        fields.update(BREAKS[name][0])
    decision = decide(rules(**STRICT, mode=mode), "login", upstream(**fields), now=NOW)
    first = min(broken, key=ORDER.index)
    expected = BREAKS[first][1]
    if mode is Mode.ENFORCE:
        assert verdict_of(decision) == enforce_fail(expected)
    else:
        assert verdict_of(decision) == audit_fail(expected)


# ---- float32 -------------------------------------------------------------------------------


@pytest.mark.parametrize("threshold", [0.1, 0.3, 0.5, 0.7, 0.9, 0.95, 0.99, 1 / 3, 0.123456789])
def test_float32_score_passes_its_own_threshold(threshold: float) -> None:
    arrived = as_float32(threshold)  # what upstream's float32 score becomes in Python
    policy = rules(threshold=threshold)
    assert decide(policy, "login", upstream(score=arrived), now=NOW).verdict is Verdict.PASSED
    below = as_float32(arrived - 1e-7)  # the next float32 values down
    assert below < arrived
    assert decide(policy, "login", upstream(score=below), now=NOW).verdict is not Verdict.PASSED


def test_float32_boundary_at_point_nine() -> None:
    assert as_float32(0.9) == pytest.approx(0.8999999761581421, abs=0)
    policy = rules(threshold=0.9)
    assert decide(policy, "", upstream(score=0.8999999761581421)).decided_by == "passed"
    assert decide(policy, "", upstream(score=0.9)).decided_by == "passed"
    assert decide(policy, "", upstream(score=0.89999997)).decided_by == "passed"  # rounds to 0.9f
    assert decide(policy, "", upstream(score=0.8999999)).decided_by == "score_below_threshold"


def test_as_float32_out_of_range_does_not_raise() -> None:
    assert as_float32(1e300) == float("inf")
    assert as_float32(-1e300) == float("-inf")


# ---- the other decisions -------------------------------------------------------------------


@pytest.mark.parametrize("mode", [Mode.ENFORCE, Mode.AUDIT])
def test_missing_and_duplicate(mode: Mode) -> None:
    policy = rules(mode=mode)
    original = decide(policy, "login", GOOD, now=NOW)
    for decision, rule in [
        (decide_missing(policy, "v"), "token_missing"),
        (decide_duplicate(policy, original, "v"), "token_duplicate"),
        (decide_duplicate(policy, None, "v"), "token_duplicate"),
    ]:
        expected = enforce_fail(rule) if mode is Mode.ENFORCE else audit_fail(rule)
        assert verdict_of(decision) == expected
    assert decide_duplicate(policy, original).assessment_name == GOOD.name


@pytest.mark.parametrize(
    ("kind", "key"),
    [
        (FailureKind.TRANSIENT, "on_upstream_failure"),
        (FailureKind.QUOTA, "on_quota_exhausted"),
        (FailureKind.CONFIG, "on_config_error"),
        (FailureKind.REPLAY_STORE, "on_replay_store_failure"),
    ],
)
@pytest.mark.parametrize("failure_policy", [FailurePolicy.OPEN, FailurePolicy.CLOSED])
@pytest.mark.parametrize("mode", [Mode.ENFORCE, Mode.AUDIT])
def test_unchecked_follows_its_failure_policy(
    kind: FailureKind, key: str, failure_policy: FailurePolicy, mode: Mode
) -> None:
    policy = rules(**{key: failure_policy}, mode=mode)
    decision = decide_unchecked(policy, kind, "unavailable", "v")
    assert decision.token_status is TokenStatus.UNCHECKED
    assert decision.decided_by == f"{kind.value}:unavailable"
    if failure_policy is FailurePolicy.OPEN or mode is Mode.AUDIT:
        assert verdict_of(decision)[:3] == (True, Verdict.FAILED_AUDIT, RecommendedAction.ALLOW)
    else:
        assert verdict_of(decision)[:3] == (False, Verdict.FAILED_ENFORCE, RecommendedAction.BLOCK)
    # one kind's failure policy never opens another kind
    others = [k for k in FailureKind if k is not kind]
    for other in others:
        if mode is Mode.ENFORCE:
            assert not decide_unchecked(policy, other, "").allowed


def test_quota_and_config_stay_closed_when_upstream_failure_is_open() -> None:
    policy = rules(on_upstream_failure="open")
    assert decide_unchecked(policy, FailureKind.TRANSIENT, "").allowed
    assert not decide_unchecked(policy, FailureKind.QUOTA, "").allowed
    assert not decide_unchecked(policy, FailureKind.CONFIG, "").allowed
    assert not decide_unchecked(policy, FailureKind.REPLAY_STORE, "").allowed


# ---- matching helpers ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("host", "patterns", "allowed"),
    [
        ("a.example.com", (), True),
        ("a.example.com", ("*.example.com",), True),
        ("a.b.example.com", ("*.example.com",), True),
        ("example.com", ("*.example.com",), False),
        (".example.com", ("*.example.com",), False),  # an empty label is no subdomain
        ("xexample.com", ("*.example.com",), False),
        ("example.com.evil.org", ("example.com",), False),
        ("EXAMPLE.com", ("example.COM",), True),
        ("", ("example.com",), False),
    ],
)
def test_hostname_allowed(host: str, patterns: tuple[str, ...], allowed: bool) -> None:
    assert hostname_allowed(host, patterns) is allowed


@pytest.mark.parametrize(
    ("app_id", "patterns", "allowed"),
    [
        ("com.example.app", (), True),
        ("com.example.app", ("com.example.app",), True),
        ("com.example.app", ("com.example.*",), True),
        ("com.example", ("com.example.*",), False),
        ("com.examplex.app", ("com.example.*",), False),
        ("com.example.app", ("*.example.app",), True),
        ("example.app", ("*.example.app",), False),
        ("com.example.app", ("com.example.ap",), False),
    ],
)
def test_app_id_allowed(app_id: str, patterns: tuple[str, ...], allowed: bool) -> None:
    assert app_id_allowed(app_id, patterns) is allowed


# ---- the policy document -------------------------------------------------------------------


def test_actions_inherit_default_and_names_ignore_case() -> None:
    policy = Policy.model_validate(
        {
            "default": {
                "threshold": 0.4,
                "mode": "audit",
                "account_defender": {"X_LABEL": "block"},
            },
            "actions": {"LOGIN": {"threshold": 0.8}, "signup": {"account_defender": {}}},
        }
    )
    login = policy.for_action("login")
    assert (login.threshold, login.mode, dict(login.account_defender)) == (
        0.8,
        Mode.AUDIT,
        {"X_LABEL": LabelAction.BLOCK},
    )
    assert policy.for_action("Login") is login
    assert dict(policy.for_action("signup").account_defender) == {}  # replaced, not merged
    assert policy.for_action("search") is policy.default
    assert policy.for_action("") is policy.default


def test_version_follows_the_effective_rules() -> None:
    a = Policy.model_validate({"default": {"threshold": 0.5}})
    b = Policy.model_validate({})
    c = Policy.model_validate({"default": {"threshold": 0.6}})
    d = Policy.model_validate({"actions": {"LOGIN": {"threshold": 0.7}}})
    e = Policy.model_validate({"actions": {"login": {"threshold": 0.7}}})
    assert a.version == b.version != c.version
    assert d.version == e.version != b.version
    assert len(a.version) == 12
    named = Policy.model_validate({"version": "2024-06-01", "default": {"threshold": 0.6}})
    assert named.version == "2024-06-01" and named.digest() == c.version


@pytest.mark.parametrize(
    ("document", "fragment"),
    [
        ({"default": {"threshold": 1.5}}, "threshold"),
        ({"default": {"threshold": float("nan")}}, "threshold"),
        ({"default": {"mode": "strict"}}, "mode"),
        ({"default": {"max_token_age": 0}}, "max_token_age"),
        ({"default": {"max_token_age": -5}}, "max_token_age"),
        ({"default": {"allowed_hostnames": ["*"]}}, "allowed_hostnames"),
        ({"default": {"allowed_hostnames": ["a.*.com"]}}, "allowed_hostnames"),
        ({"default": {"allowed_hostnames": ["example.*"]}}, "allowed_hostnames"),
        ({"default": {"allowed_hostnames": ["*."]}}, "allowed_hostnames"),
        ({"default": {"allowed_android_packages": ["com.*.app"]}}, "allowed_android_packages"),
        ({"default": {"allowed_ios_bundles": ["*"]}}, "allowed_ios_bundles"),
        (
            {"default": {"account_defender": {"SUSPICIOUS_LOGIN_ACTIVITY": "deny"}}},
            "account_defender",
        ),
        ({"default": {"account_defender": {"not a label": "block"}}}, "account_defender"),
        (
            {"default": {"account_defender": {"PROFILE_MATCH": "allow", "profile_match": "block"}}},
            "listed twice",
        ),
        ({"default": {"account_defender": ["PROFILE_MATCH"]}}, "account_defender"),
        ({"default": {"on_quota_exhausted": "maybe"}}, "on_quota_exhausted"),
        ({"default": {"treshold": 0.5}}, "treshold"),
        ({"actions": {"login": {"threshold": 2}}}, "threshold"),
        ({"actions": {"log in": {}}}, "not an action name"),
        ({"actions": {"login": {}, "LOGIN": {}}}, "listed twice"),
        ({"actions": {"login": "strict"}}, "login"),
    ],
)
def test_bad_policies_are_refused_naming_the_key(document: dict[str, Any], fragment: str) -> None:
    with pytest.raises(ValidationError) as caught:
        Policy.model_validate(document)
    assert fragment in str(caught.value)


def test_warnings_for_unknown_labels() -> None:
    policy = Policy.model_validate(
        {
            "default": {"account_defender": {"SUSPICOUS_LOGIN_ACTIVITY": "challenge"}},
            "actions": {"login": {"account_defender": {"PROFILE_MATCH": "allow"}}},
        }
    )
    warnings = policy.warnings()
    assert len(warnings) == 1 and "SUSPICOUS_LOGIN_ACTIVITY" in warnings[0]
    assert warnings[0].startswith("default:")
