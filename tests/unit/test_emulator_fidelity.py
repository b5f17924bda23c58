"""The emulator's Google checks as pure logic: key specs and platform rules, credentials,
the project, fault knobs and the error shapes they produce."""

from __future__ import annotations

import grpc
import pytest
from google.rpc import error_details_pb2, status_pb2

from sidecar.emulator import errors
from sidecar.emulator.faults import Faults
from sidecar.emulator.keys import Origin, Platform, SiteKey
from sidecar.emulator.metadata import MetadataFaults, MetadataState
from sidecar.emulator.project import Project, TokenIssuer, check_credentials, redact
from sidecar.emulator.tokens import mint_token as mint
from sidecar.emulator.tokens import parse_token


def claims(**kw: object):  # type: ignore[no-untyped-def]
    parsed = parse_token(mint(**kw))  # type: ignore[arg-type]
    assert parsed is not None
    return parsed


# ---- keys -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("spec", "key"),
    [
        ("k1", SiteKey("k1", Platform.WEB, ())),
        ("k1=web", SiteKey("k1", Platform.WEB, ())),
        ("k1=web:a.example, b.example", SiteKey("k1", Platform.WEB, ("a.example", "b.example"))),
        ("k_2=android:com.x.y", SiteKey("k_2", Platform.ANDROID, ("com.x.y",))),
        ("k-3=ios:com.x.Y", SiteKey("k-3", Platform.IOS, ("com.x.Y",))),
        ("k4=express", SiteKey("k4", Platform.EXPRESS, ())),
    ],
)
def test_site_key_specs_parse_and_print_back(spec: str, key: SiteKey) -> None:
    assert SiteKey.parse(spec) == key
    assert SiteKey.parse(key.spec()) == key


@pytest.mark.parametrize("spec", ["", "=web", "k=desktop", "k=express:a.example", "k y=web", "k/1"])
def test_bad_site_key_specs_are_refused(spec: str) -> None:
    with pytest.raises(ValueError, match="site key"):
        SiteKey.parse(spec)


@pytest.mark.parametrize(
    ("hostname", "allowed"),
    [
        ("shop.example", True),
        ("SHOP.example.", True),
        ("a.b.shop.example", True),
        ("notshop.example", False),
        ("shop.example.evil", False),
        ("example", False),
    ],
)
def test_a_web_key_allows_its_domains_and_their_subdomains_only(
    hostname: str, allowed: bool
) -> None:
    verdict = SiteKey.parse("w=web:shop.example").check(claims(hostname=hostname))
    assert verdict == (Origin("hostname", hostname) if allowed else "DOMAIN_MISMATCH")


def test_a_web_key_without_domains_allows_any() -> None:
    assert SiteKey.parse("w").check(claims(hostname="anything.test")) == Origin(
        "hostname", "anything.test"
    )


def test_an_app_key_answers_its_own_platform_field() -> None:
    android = SiteKey.parse("a=android")
    assert android.check(claims()) == Origin("android_package_name", "com.example.app")
    assert android.check(claims(android_package_name="com.x")) == Origin(
        "android_package_name", "com.x"
    )
    assert SiteKey.parse("i=ios:com.x.Y").check(claims()) == Origin("ios_bundle_id", "com.x.Y")
    assert SiteKey.parse("i=ios:com.x.Y").check(claims(ios_bundle_id="com.z")) == "KEY_MISMATCH"


@pytest.mark.parametrize(
    ("spec", "token"),
    [
        ("w=web", {"android_package_name": "com.x"}),
        ("w=web", {"ios_bundle_id": "com.x"}),
        ("a=android", {"ios_bundle_id": "com.x"}),
        ("i=ios", {"android_package_name": "com.x"}),
        ("e=express", {}),
    ],
)
def test_a_token_from_another_platform_is_key_mismatch(spec: str, token: dict[str, str]) -> None:
    assert SiteKey.parse(spec).check(claims(**token)) == "KEY_MISMATCH"


def test_project_keys_must_be_unique() -> None:
    with pytest.raises(ValueError, match="unique"):
        Project.of(site_keys=["k=web", "k=android"])


# ---- credentials ----------------------------------------------------------------------------


def strict(**kw: object) -> Project:
    return Project.of(api_keys=["good"], require_credentials=True, **kw)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("headers", "kind", "reason"),
    [
        ({"x-goog-api-key": "good"}, "api_key", None),
        ({"x-goog-api-key": "bad"}, "api_key", "API_KEY_INVALID"),
        ({}, "none", "CREDENTIALS_MISSING"),
        ({"authorization": "Bearer nope"}, "access_token", "ACCESS_TOKEN_TYPE_UNSUPPORTED"),
        ({"authorization": "nope"}, "access_token", "ACCESS_TOKEN_TYPE_UNSUPPORTED"),
        ({"x-goog-api-key": "bad", "authorization": "Bearer x"}, "both", "API_KEY_INVALID"),
    ],
)
def test_credentials_are_judged_as_google_judges_them(
    headers: dict[str, str], kind: str, reason: str | None
) -> None:
    found, error = check_credentials(strict(), TokenIssuer(), headers, "CreateAssessment", 0.0)
    assert found == kind
    assert (error.reason if error else None) == reason


def test_issued_tokens_pass_until_they_expire_and_need_the_scope() -> None:
    now = [1000.0]
    issuer = TokenIssuer(clock=lambda: now[0])
    token, expires_in = issuer.issue(["https://www.googleapis.com/auth/cloud-platform"], 60)
    narrow, _ = issuer.issue(["https://www.googleapis.com/auth/userinfo.email"], 60)
    assert expires_in == 60 and issuer.issued == 2

    def verdict(value: str) -> str | None:
        headers = {"authorization": f"Bearer {value}"}
        _, error = check_credentials(strict(), issuer, headers, "CreateAssessment", now[0])
        return error.reason if error else None

    assert verdict(token) is None
    assert verdict(narrow) == "ACCESS_TOKEN_SCOPE_INSUFFICIENT"
    now[0] += 61
    assert verdict(token) == "ACCESS_TOKEN_EXPIRED"
    fresh, _ = issuer.issue(["https://www.googleapis.com/auth/cloud-platform"])
    assert verdict(fresh) is None
    assert issuer.expire_all() == 3
    assert verdict(fresh) == "ACCESS_TOKEN_EXPIRED"


def test_a_lenient_project_checks_no_credentials() -> None:
    kind, error = check_credentials(Project(), TokenIssuer(), {}, "CreateAssessment", 0.0)
    assert (kind, error) == ("none", None)
    assert Project.of(api_keys=["k"]).require_credentials, "an API key turns checks on"


def test_credentials_are_redacted_to_a_digest_prefix() -> None:
    assert redact("x-goog-api-key", "secret") == redact("x-goog-api-key", b"secret")
    assert str(redact("authorization", "Bearer t")).startswith("sha256:")
    assert "secret" not in str(redact("x-goog-api-key", "secret"))
    assert redact("traceparent", "00-ab") == "00-ab"


def test_a_project_id_restricts_parents_to_that_project() -> None:
    project = Project.of(number="42", id="shop")
    assert project.owns("shop") and project.owns("42") and not project.owns("other")
    assert Project().owns("anything"), "without an id, any parent is the project"


# ---- fault knobs and error shapes -----------------------------------------------------------


def test_an_error_reason_implies_its_code() -> None:
    assert (
        Faults.from_knobs({"error_reason": "API_KEY_INVALID"}).error_code
        is grpc.StatusCode.INVALID_ARGUMENT
    )
    assert Faults.from_knobs({"error_field": "name"}).error_code is grpc.StatusCode.INVALID_ARGUMENT
    same = Faults.from_knobs(
        {"error_reason": "SERVICE_DISABLED", "error_code": "PERMISSION_DENIED"}
    )
    assert same.error_code is grpc.StatusCode.PERMISSION_DENIED
    with pytest.raises(ValueError, match="disagrees"):
        Faults.from_knobs({"error_reason": "SERVICE_DISABLED", "error_code": "UNAVAILABLE"})


def test_the_old_pushback_knob_is_gone() -> None:
    with pytest.raises(ValueError, match="retry_pushback_ms"):
        Faults.from_knobs({"retry_pushback_ms": 10})


@pytest.mark.parametrize("reason", sorted(errors.REASONS))
def test_every_reason_travels_as_a_status_with_that_error_info(reason: str) -> None:
    error = errors.REASONS[reason]("CreateAssessment", "42")
    status = status_pb2.Status.FromString(
        dict(error.trailing_metadata())["grpc-status-details-bin"]
    )
    assert status.code == error.code.value[0] and status.message == error.message
    infos = [d for d in status.details if d.Is(error_details_pb2.ErrorInfo.DESCRIPTOR)]
    info = error_details_pb2.ErrorInfo()
    infos[0].Unpack(info)
    assert (info.reason, info.domain) == (reason, "googleapis.com")
    assert errors.reason_code(reason) is error.code


def test_retry_info_is_added_once() -> None:
    error = errors.rate_limit_exceeded("42", 1.5).with_retry_delay(3.0)
    delays = [d for d in error.details if isinstance(d, error_details_pb2.RetryInfo)]
    assert [d.retry_delay.ToTimedelta().total_seconds() for d in delays] == [3.0]
    assert errors.rate_limit_exceeded("42").with_retry_delay(None) == errors.rate_limit_exceeded(
        "42"
    )


def test_a_field_knob_is_a_bad_request_naming_the_field() -> None:
    error = Faults.from_knobs({"error_rate": 1, "error_field": "reasons"}).injected_error(
        "AnnotateAssessment", "1"
    )
    (request,) = error.details
    assert [v.field for v in request.field_violations] == ["reasons"]
    assert error.reason == ""


def test_metadata_times_heals_after_the_count() -> None:
    state = MetadataState()
    state.set(MetadataFaults.from_knobs({"status": 503, "times": 2, "token_lifetime_s": 30}))
    assert [f.status if f else None for f in (state.take_fault() for _ in range(3))] == [
        503,
        503,
        None,
    ]
    assert state.faults.token_lifetime_s == 30, "the lifetime outlives the fault"
    assert state.stats()["injected_failures"] == 2
