"""`policy check` and `policy dry-run`: through the real command line entry point."""

from __future__ import annotations

import contextlib
import io
import json
from pathlib import Path

import pytest

from sidecar.cli import main
from sidecar.policy.dryrun import RecordError, parse_record
from sidecar.policy.tools import load_policy_file

ROOT = Path(__file__).resolve().parents[2]
SAMPLE = ROOT / "deploy" / "config" / "account-protection.yaml"
ACCOUNT_DEFENDER_ACTIONS = [
    "LOGIN",
    "REGISTRATION",
    "SECURITY_QUESTION_CHANGE",
    "PASSWORD_RESET",
    "PHONE_NUMBER_UPDATE",
    "EMAIL_UPDATE",
    "ACCOUNT_UPDATE",
    "TRIGGER_MFA",
    "REDEEM_CODE",
    "LIST_PAYMENT_METHODS",
]


def cli(*args: str) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = main(list(args))
    return code, out.getvalue(), err.getvalue()


POLICY = """
project: p
policy:
  default:
    threshold: 0.5
    account_defender: {SUSPICIOUS_LOGIN_ACTIVITY: challenge, SUSPICIOUS_ACCOUNT_CREATION: block}
  actions:
    login: {threshold: 0.7, max_token_age: 60}
    signup: {mode: audit}
"""


@pytest.fixture
def config(tmp_path: Path) -> Path:
    path = tmp_path / "sidecar.yaml"
    path.write_text(POLICY)
    return path


def test_check_prints_effective_rules_per_action(config: Path) -> None:
    code, out, err = cli("policy", "check", "--config", str(config))
    assert code == 0 and err == ""
    policy = load_policy_file(config)
    assert out.startswith(f"policy {policy.version}: valid; 2 action(s)")
    login = out.split("actions.login")[1].split("actions.signup")[0]
    assert " * threshold" in login and "0.7" in login
    assert " * max_token_age             60 s" in login
    assert "SUSPICIOUS_LOGIN_ACTIVITY → challenge" in login  # inherited from the default
    assert "   mode                      enforce" in login
    signup = out.split("actions.signup")[1]
    assert " * mode                      audit" in signup


def test_check_json(config: Path) -> None:
    code, out, _ = cli("policy", "check", "--config", str(config), "--json")
    document = json.loads(out)
    assert code == 0
    assert document["actions"]["login"]["threshold"] == 0.7
    assert document["actions"]["login"]["account_defender"] == {
        "SUSPICIOUS_LOGIN_ACTIVITY": "challenge",
        "SUSPICIOUS_ACCOUNT_CREATION": "block",
    }
    assert document["version"] == load_policy_file(config).version


@pytest.mark.parametrize(
    ("text", "fragment"),
    [
        ("policy:\n  default: {threshold: 2}\n", "policy.default.threshold"),
        ("policy:\n  actions:\n    login: {threshhold: 0.7}\n", "policy.actions.login.threshhold"),
        ("policy:\n  default: {mode: [\n", "line 3"),
        ("- a list\n", "expected a mapping"),
        ("default: {max_token_age: -1}\n", "default.max_token_age"),  # a bare policy file
    ],
)
def test_check_refuses_bad_files_naming_the_key(tmp_path: Path, text: str, fragment: str) -> None:
    path = tmp_path / "bad.yaml"
    path.write_text(text)
    code, out, err = cli("policy", "check", "--config", str(path))
    assert code == 2 and out == ""
    assert fragment in err


def test_check_warns_about_unknown_labels(tmp_path: Path) -> None:
    path = tmp_path / "c.yaml"
    path.write_text("policy:\n  default:\n    account_defender: {SUSPICOUS_LOGIN: block}\n")
    code, _, err = cli("policy", "check", "--config", str(path))
    assert (
        code == 0 and "warning: default: account_defender: unknown label(s) SUSPICOUS_LOGIN" in err
    )


def test_check_missing_file(tmp_path: Path) -> None:
    code, _, err = cli("policy", "check", "--config", str(tmp_path / "absent.yaml"))
    assert code == 2 and "absent.yaml" in err


def test_sample_account_protection_config_covers_account_defender_actions() -> None:
    code, out, err = cli("policy", "check", "--config", str(SAMPLE))
    assert code == 0, err
    assert "warning" not in err
    policy = load_policy_file(SAMPLE)
    for action in ACCOUNT_DEFENDER_ACTIONS:
        assert action.lower() in policy.actions, action
        assert f"actions.{action.lower()}" in out
        assert policy.for_action(action) is policy.actions[action.lower()]
    assert policy.for_action("LOGIN").account_defender["SUSPICIOUS_LOGIN_ACTIVITY"] == "challenge"
    assert policy.for_action("REGISTRATION").account_defender["SUSPICIOUS_ACCOUNT_CREATION"] == (
        "block"
    )


# ---- dry-run ---------------------------------------------------------------------------------


def record(**fields: object) -> str:
    return json.dumps(fields)


def test_dry_run_counts_per_action(config: Path, tmp_path: Path) -> None:
    lines = [
        record(expected_action="login", score=0.9, action="login"),
        record(expected_action="LOGIN", score=0.7, action="login"),  # float64 0.7 ≥ 0.7
        record(expected_action="login", score=0.6999999880790710, action="login"),  # float32 0.7
        record(expected_action="login", score=0.6, action="login"),
        record(expected_action="login", score=0.9, action="signup"),
        record(expected_action="login", score=0.9, action="login", create_time=0, assessed_at=61),
        record(expected_action="login", score=0.9, action="login", create_time=0, assessed_at=60),
        record(
            expected_action="login",
            score=0.9,
            action="login",
            account_defender_labels=["SUSPICIOUS_LOGIN_ACTIVITY"],
        ),
        record(expected_action="signup", score=0.1, action="signup"),
        record(expected_action="signup", invalid_reason="EXPIRED"),
        record(score=0.9, account_defender_labels=["SUSPICIOUS_ACCOUNT_CREATION"]),
        "",
        "garbage",
        record(expected_action="login", score="high"),
    ]
    source = tmp_path / "assessments.jsonl"
    source.write_text("\n".join(lines) + "\n")
    code, out, _ = cli(
        "policy", "dry-run", "--config", str(config), "--input", str(source), "--json"
    )
    assert code == 0
    result = json.loads(out)
    login = result["actions"]["login"]
    assert (login["records"], login["PASSED"], login["FAILED_AUDIT"], login["FAILED_ENFORCE"]) == (
        8,
        5,
        0,
        3,
    )
    assert login["CHALLENGE"] == 1
    assert login["rules"] == "actions.login"
    assert login["decided_by"] == {
        "score_below_threshold": 1,
        "action_mismatch": 1,
        "token_too_old": 1,
        "account_defender:SUSPICIOUS_LOGIN_ACTIVITY": 1,
    }
    signup = result["actions"]["signup"]
    assert (signup["PASSED"], signup["FAILED_AUDIT"], signup["FAILED_ENFORCE"]) == (0, 2, 0)
    none = result["actions"]["(none)"]
    assert (none["rules"], none["FAILED_ENFORCE"]) == ("default", 1)
    assert result["total"]["records"] == 11
    assert result["skipped"] == 2
    assert [bad["line"] for bad in result["bad_lines"]] == [13, 14]
    assert result["max_token_age_not_evaluated"] == 6
    assert login["valid_scores_at_or_above"]["0.7"] == 7

    code, text, _ = cli("policy", "dry-run", "--config", str(config), "--input", str(source))
    assert code == 0
    assert "TOTAL" in text and "line 13: not JSON" in text and "garbage" not in text


def test_dry_run_reads_googles_assessment_json(config: Path, tmp_path: Path) -> None:
    google = {
        "name": "projects/1/assessments/abc",
        "event": {"expectedAction": "login", "token": "t"},
        "riskAnalysis": {"score": 0.8999999761581421, "reasons": ["AUTOMATION", "NEW_REASON"]},
        "tokenProperties": {
            "valid": True,
            "action": "login",
            "hostname": "shop.example.com",
            "createTime": "2024-06-01T10:00:00Z",
        },
        "accountDefenderAssessment": {"labels": ["SUSPICIOUS_ACCOUNT_CREATION"]},
        "someFieldFromTheFuture": {"x": 1},
    }
    wrapped = {"assessment": google, "assessed_at": "2024-06-01T10:05:00Z"}
    invalid = {"tokenProperties": {"valid": False, "invalidReason": "DUPE"}}
    source = tmp_path / "google.jsonl"
    source.write_text("\n".join(json.dumps(x) for x in (google, wrapped, invalid)) + "\n")
    code, out, _ = cli(
        "policy", "dry-run", "--config", str(config), "--input", str(source), "--json"
    )
    result = json.loads(out)
    assert code == 0 and result["skipped"] == 0
    login = result["actions"]["login"]
    assert login["decided_by"] == {
        "account_defender:SUSPICIOUS_ACCOUNT_CREATION": 1,
        "token_too_old": 1,  # assessed 300 s after creation, max_token_age 60
    }
    assert result["actions"]["(none)"]["decided_by"] == {"token_duplicate": 1}


@pytest.mark.parametrize(
    ("line", "why"),
    [
        ("[]", "JSON object"),
        ('{"valid": "yes"}', "valid"),
        ('{"score": null}', "score"),
        ('{"reasons": "AUTOMATION"}', "reasons"),
        ('{"create_time": "yesterday"}', "create_time"),
        ('{"create_time": true}', "create_time"),
        ('{"expected_action": 5}', "expected_action"),
        ('{"tokenProperties": {"valid": "maybe"}}', "Assessment"),
        ('{"assessment": {"riskAnalysis": {"score": "x"}}}', "Assessment"),
        ("{" * 100_000, "not JSON"),
    ],
)
def test_bad_records_say_why(line: str, why: str) -> None:
    with pytest.raises(RecordError, match=why):
        parse_record(line)


def test_dry_run_errors(config: Path, tmp_path: Path) -> None:
    code, _, err = cli(
        "policy", "dry-run", "--config", str(config), "--input", str(tmp_path / "absent.jsonl")
    )
    assert code == 1 and "absent.jsonl" in err
    bad = tmp_path / "bad.yaml"
    bad.write_text("policy: {default: {threshold: -1}}\n")
    source = tmp_path / "a.jsonl"
    source.write_text("{}\n")
    code, _, err = cli("policy", "dry-run", "--config", str(bad), "--input", str(source))
    assert code == 2 and "policy.default.threshold" in err


@pytest.mark.parametrize(("page", "least"), [("policy.md", 2), ("quota.md", 1)])
def test_docs_policy_examples_are_valid(tmp_path: Path, page: str, least: int) -> None:
    """Every YAML block of the policy and quota references that holds a policy passes
    `policy check`."""
    text = (ROOT / "docs" / page).read_text()
    blocks = [b.split("```", 1)[0] for b in text.split("```yaml\n")[1:]]
    policies = [b for b in blocks if "policy:" in b]
    assert len(policies) >= least
    for index, block in enumerate(policies):
        path = tmp_path / f"policy-doc-{index}.yaml"
        path.write_text(block)
        code, _, err = cli("policy", "check", "--config", str(path))
        assert (code, err) == (0, ""), block


# ---- rate limits (issue 19) ------------------------------------------------------------------

LIMITED = """
upstream_rate_limit: 5/second
policy:
  default:
    rate_limits: [{per: ip, limit: 3/minute}, {per: account, limit: 2/minute}]
  actions:
    signup:
      rate_limits: [{per: ip, limit: 1/minute, ipv6_prefix: 56}]
"""


def test_check_describes_each_limit_in_words(tmp_path: Path) -> None:
    path = tmp_path / "c.yaml"
    path.write_text(LIMITED)
    code, out, err = cli("policy", "check", "--config", str(path))
    assert (code, err) == (0, "")
    default = out.split("actions.signup")[0]
    assert (
        "per ip 3/minute = 3 at once, then one every 20 s (IPv4 /32, IPv6 /64); "
        "per account 2/minute = 2 at once, then one every 30 s" in default
    )
    signup = out.split("actions.signup")[1]
    assert " * rate_limits" in signup and "(IPv4 /32, IPv6 /56)" in signup
    code, out, _ = cli("policy", "check", "--config", str(path), "--json")
    assert json.loads(out)["default"]["rate_limits"][1] == {
        "per": "account",
        "limit": "2/minute",
        "ipv4_prefix": 32,
        "ipv6_prefix": 64,
    }
    bare = tmp_path / "bare.yaml"
    bare.write_text("policy: {}\n")
    assert "none (only upstream_rate_limit" in cli("policy", "check", "--config", str(bare))[1]


@pytest.mark.parametrize(
    ("text", "fragment"),
    [
        (
            "policy: {default: {rate_limits: [{per: ip, limit: 'often'}]}}\n",
            "policy.default.rate_limits.0",
        ),
        ("policy: {default: {rate_limits: [{per: mac, limit: 1/second}]}}\n", "per"),
        (
            "policy: {default: {rate_limits: "
            "[{per: account, limit: 1/second, ipv4_prefix: 24}]}}\n",
            "only for per: ip",
        ),
    ],
)
def test_check_refuses_bad_limits(tmp_path: Path, text: str, fragment: str) -> None:
    path = tmp_path / "bad.yaml"
    path.write_text(text)
    code, _, err = cli("policy", "check", "--config", str(path))
    assert code == 2 and fragment in err


def test_dry_run_counts_what_each_limit_would_have_shed(tmp_path: Path) -> None:
    config = tmp_path / "c.yaml"
    config.write_text(LIMITED)
    lines = []
    # one IP, 6 calls in one second: 3 pass its 3/minute, 3 shed per ip
    lines += [
        record(score=0.9, user_ip_address="192.0.2.1", assessed_at=100 + i / 10) for i in range(6)
    ]
    # one account from 4 IPs: 2 pass its 2/minute, 2 shed per account
    lines += [
        record(score=0.9, user_ip_address=f"198.51.100.{i}", account_id="alice", assessed_at=101)
        for i in range(4)
    ]
    # signup per ip 1/minute with IPv6 by /56: two addresses of one /56 are one client
    lines += [
        record(
            expected_action="signup",
            score=0.9,
            action="signup",
            user_ip_address=addr,
            assessed_at=102,
        )
        for addr in ("2001:db8:0:1::1", "2001:db8:0:2::1", "2001:db8:1::1")
    ]
    # a minute later the IP's bucket is full again
    lines.append(record(score=0.9, user_ip_address="192.0.2.1", assessed_at=170))
    # no assessed_at: the limits cannot be replayed
    lines.append(record(score=0.9, user_ip_address="192.0.2.1"))
    # Google's own JSON: the event carries the IP and the account
    google = {
        "name": "projects/1/assessments/g",
        "event": {
            "expectedAction": "",
            "userIpAddress": "192.0.2.1",
            "userInfo": {"accountId": "bob"},
        },
        "riskAnalysis": {"score": 0.9},
        "tokenProperties": {"valid": True},
    }
    lines += [json.dumps({"assessment": google, "assessed_at": 171 + i}) for i in range(3)]
    source = tmp_path / "traffic.jsonl"
    source.write_text("\n".join(lines) + "\n")
    code, out, _ = cli(
        "policy", "dry-run", "--config", str(config), "--input", str(source), "--json"
    )
    assert code == 0
    result = json.loads(out)
    default, signup = result["actions"]["(none)"], result["actions"]["signup"]
    # 192.0.2.1 at 170-173: the refill (one every 20 s) after a minute admits 3 again, the
    # fourth call of the bucket (the third Google record) is shed
    assert default["rate_limited"] == {"ip": 4, "account": 2}, default
    assert signup["rate_limited"] == {"ip": 1}
    assert default["decided_by"]["rate_limited:ip"] == 4
    assert default["records"] == 15
    assert default["FAILED_ENFORCE"] == 6 and default["PASSED"] == 9
    assert result["total"]["rate_limited"] == {"ip": 5, "account": 2}
    assert result["rate_limits_not_evaluated"] == 1
    code, text, _ = cli("policy", "dry-run", "--config", str(config), "--input", str(source))
    assert "would have shed" in text and "per account: 2" in text
    assert "rate limits not applied to 1 record(s)" in text


def test_dry_run_replays_the_global_cap(tmp_path: Path) -> None:
    config = tmp_path / "c.yaml"
    config.write_text("upstream_rate_limit: 5/second\n")
    lines = [record(score=0.9, assessed_at=50 + i / 100) for i in range(8)]  # 8 in 80 ms
    lines += [record(score=0.9, assessed_at=51.1)]  # a second on: the bucket is full again
    source = tmp_path / "t.jsonl"
    source.write_text("\n".join(lines) + "\n")
    code, out, _ = cli(
        "policy", "dry-run", "--config", str(config), "--input", str(source), "--json"
    )
    assert code == 0
    assert json.loads(out)["actions"]["(none)"]["rate_limited"] == {"upstream": 3}
    config.write_text("upstream_rate_limit: lots\n")
    code, _, err = cli("policy", "dry-run", "--config", str(config), "--input", str(source))
    assert code == 2 and "upstream_rate_limit" in err
