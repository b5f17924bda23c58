"""The quota shield on its own: which limits a call must pass, how counters are named
(HMACs, never the IP or account), and the Assess use case answering a shed call."""

from __future__ import annotations

import dataclasses

import pytest

from sidecar.core.model import AssessmentRequest, TokenStatus, UpstreamAssessment, Verdict
from sidecar.core.ports import CallContext
from sidecar.core.shield import LimiterKeys, QuotaShield, client_network
from sidecar.core.verify import Verifier, token_digest
from sidecar.policy.rules import decide_rate_limited
from sidecar.policy.schema import Policy, RateLimitRule, parse_rate
from sidecar.ratelimit.memory import MemoryRateLimiter
from sidecar.replay.memory import MemoryReplayStore
from tests.support.defaults import VERIFY
from tests.unit.test_verify import Observer, Upstream

SECRET = b"s" * 32
CALL = CallContext("test.FrontDoor", "Assess")
JUNK = UpstreamAssessment(name="projects/1/assessments/j", valid=False, invalid_reason="MALFORMED")


def rule(**fields: object) -> RateLimitRule:
    return RateLimitRule.model_validate({"per": "ip", "limit": "30/minute", **fields})


@pytest.mark.parametrize(
    ("text", "rate"),
    [
        ("30/minute", (30, 60.0)),
        ("900/second", (900, 1.0)),
        ("100 per 5 minutes", (100, 300.0)),
        (" 10 / hour ", (10, 3600.0)),
        ("1000/day", (1000, 86_400.0)),
        ("5/2 seconds", (5, 2.0)),
    ],
)
def test_rates_read_as_the_limits_notation(text: str, rate: tuple[int, float]) -> None:
    assert parse_rate(text) == rate


@pytest.mark.parametrize("text", ["", "30", "per minute", "0/minute", "30/fortnight", "-1/s"])
def test_bad_rates_are_refused_with_the_value(text: str) -> None:
    with pytest.raises(ValueError, match=r"30/minute|calls must be"):
        parse_rate(text)


def test_networks_group_ipv4_by_32_and_ipv6_by_64_and_the_prefix_is_configurable() -> None:
    ip = rule()
    assert client_network("192.0.2.1", ip) != client_network("192.0.2.2", ip)
    assert client_network("2001:db8:1:2::1", ip) == client_network("2001:db8:1:2:ffff::9", ip)
    assert client_network("2001:db8:1:2::1", ip) != client_network("2001:db8:1:3::1", ip)
    wide = rule(ipv4_prefix=24, ipv6_prefix=48)
    assert client_network("192.0.2.1", wide) == client_network("192.0.2.200", wide)
    assert client_network("2001:db8:1:2::1", wide) == client_network("2001:db8:1:ffff::1", wide)
    assert client_network("::ffff:192.0.2.1", ip) == client_network("192.0.2.1", ip)
    assert client_network("", ip) == ""


def test_counter_names_are_keyed_hmacs_never_the_identifier() -> None:
    keys = LimiterKeys(SECRET, "p:")
    ip = rule()
    name = keys.client("login", ip, client_network("192.0.2.1", ip))
    assert name.startswith("p:ip:30/60:") and "192" not in name and "c000" not in name
    assert name == LimiterKeys(SECRET, "p:").client("login", ip, client_network("192.0.2.1", ip))
    assert name != LimiterKeys(b"t" * 32, "p:").client(
        "login", ip, client_network("192.0.2.1", ip)
    ), "another secret, another name: an unkeyed hash of an IPv4 address is reversible"
    assert name != keys.client("", ip, client_network("192.0.2.1", ip)), "per policy entry"
    assert name != keys.client("login", rule(limit="500/hour"), client_network("192.0.2.1", ip))
    with pytest.raises(ValueError):
        LimiterKeys(b"short", "p:")


def shield(cap: tuple[int, float] | None = None, window: float = 0.0) -> QuotaShield:
    return QuotaShield(
        MemoryRateLimiter(),
        LimiterKeys(SECRET, "p:"),
        cap=cap,
        quota_window=lambda: window,
    )


def test_a_rule_whose_key_is_absent_does_not_apply_and_the_cap_comes_last() -> None:
    rules = tuple(
        RateLimitRule(per=per, limit="5/minute")  # type: ignore[arg-type]
        for per in ("ip", "account", "site_key", "action")
    )
    bare = AssessmentRequest(token="t" * 40)
    limits, pers = shield(cap=(100, 1.0)).limits(bare, "", rules, "default-key")
    assert pers == ["site_key", "action", "upstream"], "no IP, no account: those rules skip"
    full = dataclasses.replace(bare, user_ip_address="192.0.2.1", account_id="alice")
    limits, pers = shield(cap=(100, 1.0)).limits(full, "login", rules, "default-key")
    assert pers == ["ip", "account", "site_key", "action", "upstream"]
    assert all("alice" not in limit.key and "192.0.2.1" not in limit.key for limit in limits)
    assert limits[-1].calls == 100 and limits[-1].period == 1.0


async def test_the_shield_names_what_shed_and_counts_nothing_in_googles_window() -> None:
    policy = Policy.model_validate(
        {"default": {"rate_limits": [{"per": "ip", "limit": "2/minute"}]}}
    )
    request = AssessmentRequest(token="t" * 40, user_ip_address="192.0.2.1")
    quiet = shield(window=5.0)
    for _ in range(5):
        assert await quiet.check(request, "", policy.default) is None
    loud = shield(cap=(3, 60.0))
    answers = [await loud.check(request, "", policy.default) for _ in range(3)]
    assert answers == [None, None, "ip"]
    other = dataclasses.replace(request, user_ip_address="192.0.2.2")
    assert [await loud.check(other, "", policy.default) for _ in range(2)] == [None, "upstream"]
    assert loud.cap_shedding() is True and shield().cap_shedding() is None


def test_a_shed_call_is_never_allowed_whatever_the_mode_or_failure_policy() -> None:
    for rules in (
        {},
        {"mode": "audit"},
        {"on_quota_exhausted": "open", "on_upstream_failure": "open"},
    ):
        policy = Policy.model_validate({"default": rules}).default
        decision = decide_rate_limited(policy, "ip", "v1")
        assert (decision.allowed, decision.token_status, decision.verdict) == (
            False,
            TokenStatus.UNCHECKED,
            Verdict.FAILED_ENFORCE,
        )
        assert decision.decided_by == "rate_limited:ip" and decision.rate_limited == "ip"


async def test_assess_sheds_after_the_claim_releases_it_and_replays_count_nothing() -> None:
    policy = Policy.model_validate(
        {"default": {"rate_limits": [{"per": "ip", "limit": "2/minute"}]}}
    )
    upstream = Upstream(JUNK)
    replay = MemoryReplayStore()
    verifier = Verifier(
        upstream=upstream,
        replay=replay,
        policy=lambda: policy,
        settings=dataclasses.replace(VERIFY, default_site_key="unit-key"),
        observer=Observer(),
        shield=shield(),
    )
    ip = "192.0.2.7"
    first = AssessmentRequest(token="a" * 40, user_ip_address=ip)
    for _ in range(5):  # replays of one token: DUPLICATE from the store, never counted
        await verifier.assess(first, 5, call=CALL)
    blank = await verifier.assess(AssessmentRequest(token="", user_ip_address=ip), 5, call=CALL)
    short = await verifier.assess(AssessmentRequest(token="x", user_ip_address=ip), 5, call=CALL)
    assert (blank.token_status, short.token_status) == (TokenStatus.MISSING, TokenStatus.INVALID)
    second = await verifier.assess(
        AssessmentRequest(token="b" * 40, user_ip_address=ip), 5, call=CALL
    )
    assert second.token_status is TokenStatus.INVALID and upstream.calls == 2
    shed = AssessmentRequest(token="c" * 40, user_ip_address=ip)
    decision = await verifier.assess(shed, 5, call=CALL)
    assert (decision.allowed, decision.decided_by) == (False, "rate_limited:ip")
    assert upstream.calls == 2, "a shed call never reaches upstream"
    assert await replay.get(token_digest(shed.token)) is None, "its claim was released"
    elsewhere = AssessmentRequest(token="d" * 40, user_ip_address="192.0.2.8")
    assert (await verifier.assess(elsewhere, 5, call=CALL)).token_status is TokenStatus.INVALID


def test_settings_refuse_shared_limits_without_a_shared_secret(tmp_path: object) -> None:
    from pathlib import Path

    from sidecar.config import ConfigError, load_settings

    assert isinstance(tmp_path, Path)
    config = tmp_path / "c.yaml"
    config.write_text(
        "project: p\nreplay_store: redis://127.0.0.1:1/0\n"
        "policy: {default: {rate_limits: [{per: ip, limit: 30/minute}]}}\n"
    )
    with pytest.raises(ConfigError, match="rate_limit_key_file: required"):
        load_settings(config)
    key = tmp_path / "limit.key"
    key.write_text("c2hvcnQ=\n")  # "short"
    with pytest.raises(ConfigError, match="at least 16 bytes"):
        load_settings(config, rate_limit_key_file=key)
    key.write_text("QUJDREVGR0hJSktMTU5PUFFSU1RVVldYWVo=\n")
    assert load_settings(config, rate_limit_key_file=key).rate_limit_key_file == key
    memory = tmp_path / "m.yaml"
    memory.write_text(
        "project: p\npolicy: {default: {rate_limits: [{per: ip, limit: 30/minute}]}}\n"
    )
    assert load_settings(memory).rate_limit_key_file is None, "memory: a per-process key"
    with pytest.raises(ConfigError, match="upstream_rate_limit"):
        load_settings(memory, upstream_rate_limit="fast")
