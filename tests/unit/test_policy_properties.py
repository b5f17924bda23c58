"""Properties of the decision rules (hypothesis): the decision is total (every assessment gets
exactly one consistent verdict, never an exception), and the rules move the right way."""

from __future__ import annotations

import dataclasses
import math
import struct
from typing import Any

from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st
from pydantic import ValidationError

from sidecar.core.model import RecommendedAction, TokenStatus, UpstreamAssessment, Verdict
from sidecar.core.ports import FailureKind
from sidecar.policy.rules import (
    as_float32,
    decide,
    decide_duplicate,
    decide_missing,
    decide_unchecked,
)
from sidecar.policy.schema import ActionPolicy, Mode, Policy

LABELS = [
    "PROFILE_MATCH",
    "SUSPICIOUS_LOGIN_ACTIVITY",
    "SUSPICIOUS_ACCOUNT_CREATION",
    "RELATED_ACCOUNTS_NUMBER_HIGH",
    "LABEL_99",
]
HOST_PATTERNS = ["example.com", "*.example.com", "shop.example.org", "*.test"]
APP_PATTERNS = ["com.example.app", "com.example.*", "*.example.app", "org.other"]
NAMES = st.one_of(
    st.sampled_from(["", "example.com", "a.example.com", "com.example.app", "x.test", "LOGIN"]),
    st.text(max_size=30),
)
ANY_FLOAT = st.floats(allow_nan=True, allow_infinity=True)

action_policies = st.builds(
    ActionPolicy,
    threshold=st.floats(0.0, 1.0),
    mode=st.sampled_from(Mode),
    require_action_match=st.booleans(),
    allowed_hostnames=st.lists(st.sampled_from(HOST_PATTERNS), max_size=3).map(tuple),
    allowed_android_packages=st.lists(st.sampled_from(APP_PATTERNS), max_size=3).map(tuple),
    allowed_ios_bundles=st.lists(st.sampled_from(APP_PATTERNS), max_size=3).map(tuple),
    max_token_age=st.one_of(st.none(), st.floats(0.001, 1e6)),
    account_defender=st.dictionaries(
        st.sampled_from(LABELS), st.sampled_from(["allow", "challenge", "block"]), max_size=4
    ),
    on_upstream_failure=st.sampled_from(["open", "closed"]),
    on_quota_exhausted=st.sampled_from(["open", "closed"]),
)

assessments = st.builds(
    UpstreamAssessment,
    name=st.text(max_size=20),
    valid=st.booleans(),
    invalid_reason=st.one_of(
        st.sampled_from(["", "EXPIRED", "DUPE", "MISSING", "MALFORMED", "BROWSER_ERROR"]),
        st.text(max_size=20),
    ),
    score=ANY_FLOAT,
    reasons=st.lists(st.text(max_size=10), max_size=3).map(tuple),
    action=NAMES,
    hostname=NAMES,
    android_package_name=st.one_of(st.just(""), NAMES),
    ios_bundle_id=st.one_of(st.just(""), NAMES),
    create_time=st.one_of(st.none(), ANY_FLOAT),
    account_defender_labels=st.lists(
        st.one_of(st.sampled_from(LABELS), st.text(max_size=10)), max_size=4
    ).map(tuple),
)
clocks = st.one_of(st.none(), ANY_FLOAT)


@settings(max_examples=1500, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(policy=action_policies, upstream=assessments, expected=NAMES, now=clocks)
def test_decide_is_total_and_consistent(
    policy: ActionPolicy, upstream: UpstreamAssessment, expected: str, now: float | None
) -> None:
    decision = decide(policy, expected, upstream, "v", now=now)
    assert decision.verdict in set(Verdict)
    # allowed exactly for PASSED and FAILED_AUDIT
    assert decision.allowed == (decision.verdict is not Verdict.FAILED_ENFORCE)
    # BLOCK exactly when not allowed; CHALLENGE only on a passed verdict in enforce mode
    assert (decision.recommended_action is RecommendedAction.BLOCK) == (not decision.allowed)
    if decision.recommended_action is RecommendedAction.CHALLENGE:
        assert decision.verdict is Verdict.PASSED and policy.mode is Mode.ENFORCE
        assert decision.decided_by.startswith("account_defender:")
    # audit mode never denies and never challenges
    if policy.mode is Mode.AUDIT:
        assert decision.allowed
        assert decision.recommended_action is RecommendedAction.ALLOW
    # the status is upstream's; only valid tokens can pass
    assert (decision.token_status is TokenStatus.VALID) == upstream.valid
    if decision.verdict is Verdict.PASSED:
        assert upstream.valid
        assert decision.decided_by == "passed" or decision.decided_by.startswith(
            "account_defender:"
        )
    assert decision.decided_by
    assert decision.policy_version == "v"


@settings(max_examples=500, deadline=None)
@given(policy=action_policies, upstream=assessments, expected=NAMES, now=clocks)
def test_modes_differ_only_in_what_a_failure_does(
    policy: ActionPolicy, upstream: UpstreamAssessment, expected: str, now: float | None
) -> None:
    enforce = decide(policy.model_copy(update={"mode": Mode.ENFORCE}), expected, upstream, now=now)
    audit = decide(policy.model_copy(update={"mode": Mode.AUDIT}), expected, upstream, now=now)
    assert enforce.decided_by == audit.decided_by
    assert (enforce.verdict is Verdict.PASSED) == (audit.verdict is Verdict.PASSED)
    if enforce.verdict is Verdict.FAILED_ENFORCE:
        assert audit.verdict is Verdict.FAILED_AUDIT


@settings(max_examples=500, deadline=None)
@given(
    policy=action_policies,
    upstream=assessments,
    expected=NAMES,
    now=clocks,
    higher=st.floats(0.0, 1.0),
)
def test_a_higher_score_never_hurts(
    policy: ActionPolicy,
    upstream: UpstreamAssessment,
    expected: str,
    now: float | None,
    higher: float,
) -> None:
    assume(not math.isnan(upstream.score) and higher >= upstream.score)
    before = decide(policy, expected, upstream, now=now)
    after = decide(policy, expected, dataclasses.replace(upstream, score=higher), now=now)
    if before.verdict is Verdict.PASSED:
        assert after.verdict is Verdict.PASSED


@settings(max_examples=500, deadline=None)
@given(policy=action_policies, upstream=assessments, expected=NAMES, lower=st.floats(0.0, 1.0))
def test_a_lower_threshold_never_hurts(
    policy: ActionPolicy, upstream: UpstreamAssessment, expected: str, lower: float
) -> None:
    assume(lower <= policy.threshold)
    before = decide(policy, expected, upstream)
    after = decide(policy.model_copy(update={"threshold": lower}), expected, upstream)
    if before.verdict is Verdict.PASSED:
        assert after.verdict is Verdict.PASSED


@settings(max_examples=2000, deadline=None)
@given(threshold=st.floats(0.0, 1.0))
def test_a_score_passes_exactly_from_the_float32_of_its_threshold(threshold: float) -> None:
    """Upstream rounds a score to float32 (0.9 arrives as 0.8999999761…): the float32 nearest
    the threshold passes, the float32 just below it does not."""
    policy = ActionPolicy(threshold=threshold, require_action_match=False)
    at = as_float32(threshold)
    passed = decide(policy, "", UpstreamAssessment(name="n", valid=True, score=at))
    assert passed.verdict is Verdict.PASSED
    bits = struct.unpack("<I", struct.pack("<f", at))[0]
    if bits > 0:
        below = struct.unpack("<f", struct.pack("<I", bits - 1))[0]
        failed = decide(policy, "", UpstreamAssessment(name="n", valid=True, score=below))
        assert failed.decided_by == "score_below_threshold"


@settings(max_examples=2000, deadline=None)
@given(bits=st.integers(0, 0x3F800000))  # every float32 from 0.0 to 1.0
def test_every_float32_score_passes_the_threshold_it_prints_as(bits: int) -> None:
    """An operator copying a score from a log (printed to float32 precision, 9 digits) into
    a threshold gets a threshold that score passes."""
    score = struct.unpack("<f", struct.pack("<I", bits))[0]
    printed = float(f"{score:.9g}")
    policy = ActionPolicy(threshold=min(printed, 1.0), require_action_match=False)
    upstream = UpstreamAssessment(name="n", valid=True, score=score)
    assert decide(policy, "", upstream).verdict is Verdict.PASSED


@settings(max_examples=300, deadline=None)
@given(policy=action_policies, kind=st.sampled_from(FailureKind), detail=st.text(max_size=20))
def test_local_decisions_are_total(policy: ActionPolicy, kind: FailureKind, detail: str) -> None:
    for decision in (
        decide_missing(policy),
        decide_duplicate(policy, None),
        decide_unchecked(policy, kind, detail),
    ):
        assert decision.allowed == (decision.verdict is not Verdict.FAILED_ENFORCE)
        assert decision.verdict is not Verdict.PASSED


JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=10),
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner, max_size=3)
    ),
    max_leaves=10,
)
POLICY_KEYS = st.sampled_from(
    [
        "threshold",
        "mode",
        "require_action_match",
        "allowed_hostnames",
        "allowed_android_packages",
        "allowed_ios_bundles",
        "max_token_age",
        "account_defender",
        "on_upstream_failure",
        "bogus",
    ]
)
RULES_DOC = st.dictionaries(POLICY_KEYS, JSON, max_size=4)


@settings(max_examples=1000, deadline=None)
@given(
    document=st.one_of(
        JSON,
        st.fixed_dictionaries(
            {},
            optional={
                "default": st.one_of(RULES_DOC, JSON),
                "actions": st.one_of(
                    st.dictionaries(st.text(max_size=8), RULES_DOC, max_size=3), JSON
                ),
                "version": JSON,
            },
        ),
    )
)
def test_any_document_is_a_policy_or_a_validation_error(document: Any) -> None:
    """A config file can hold anything; reading it never fails any other way."""
    try:
        policy = Policy.model_validate(document)
    except ValidationError:
        return
    assert policy.version
    for rules in [policy.default, *policy.actions.values()]:
        assert 0.0 <= rules.threshold <= 1.0
