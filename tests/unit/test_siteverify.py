"""siteverify's wire format: parameters in, Google's legacy JSON out."""

from __future__ import annotations

import json

import pytest

from sidecar.core.model import Decision, RecommendedAction, TokenStatus, Verdict
from sidecar.server import siteverify
from sidecar.server.siteverify import BadRequest, SiteverifyRequest, parse_request


def _decision(status: TokenStatus, **fields: object) -> Decision:
    base: dict[str, object] = {
        "allowed": status is TokenStatus.VALID,
        "verdict": Verdict.PASSED if status is TokenStatus.VALID else Verdict.FAILED_ENFORCE,
        "token_status": status,
        "recommended_action": RecommendedAction.ALLOW,
        "decided_by": "passed",
    }
    base.update(fields)
    return Decision(**base)  # type: ignore[arg-type]


FORM = "application/x-www-form-urlencoded"


def test_post_form_as_google_recaptcha_php_sends_it() -> None:
    body = b"secret=s3&response=tok&remoteip=192.0.2.1&version=php_1.2.4"
    assert parse_request("POST", FORM, [], body) == SiteverifyRequest("s3", "tok", "192.0.2.1")


def test_get_query_as_the_ruby_gem_sends_it() -> None:
    query = [("secret", "s3"), ("response", "tok"), ("remoteip", "::1")]
    assert parse_request("GET", "", query, b"") == SiteverifyRequest("s3", "tok", "::1")


def test_post_json_with_turnstile_idempotency_key() -> None:
    body = json.dumps({"secret": "s", "response": "t", "idempotency_key": "k", "x": 1}).encode()
    request = parse_request("POST", "application/json; charset=utf-8", [], body)
    assert request == SiteverifyRequest("s", "t", "", "k")


def test_post_with_parameters_in_the_query_string_and_no_body() -> None:
    query = [("secret", "s"), ("response", "t")]
    assert parse_request("POST", "", query, b"") == SiteverifyRequest("s", "t")


def test_form_without_content_type_is_read_as_a_form() -> None:
    assert parse_request("POST", "", [], b"secret=s&response=t") == SiteverifyRequest("s", "t")


@pytest.mark.parametrize(
    ("query", "body"),
    [
        ([], b"secret=a&secret=b&response=t"),
        ([("response", "t1")], b"secret=a&response=t2"),
    ],
    ids=["twice-in-the-body", "query-and-body"],
)
def test_a_parameter_given_twice_is_a_bad_request(
    query: list[tuple[str, str]], body: bytes
) -> None:
    with pytest.raises(BadRequest, match="more than once"):
        parse_request("POST", FORM, query, body)


def test_unknown_parameters_repeated_are_still_ignored() -> None:
    body = b"secret=s&response=t&version=a&version=b"
    assert parse_request("POST", FORM, [], body) == SiteverifyRequest("s", "t")


@pytest.mark.parametrize(
    ("content_type", "body", "problem"),
    [
        ("text/plain", b"secret=s", "content type"),
        ("multipart/form-data; boundary=x", b"--x--", "content type"),
        ("application/json", b"{not json", "not JSON"),
        ("application/json", b"[1, 2]", "not an object"),
        ("application/json", b'{"secret": 7}', "not a string"),
        (FORM, b"secret=\xff\xfe", "not UTF-8"),
        (FORM, b"secret=%ff", "does not parse"),
        (FORM, b"&".join(b"p%d=1" % i for i in range(200)), "does not parse"),
    ],
)
def test_unreadable_bodies_are_bad_requests(content_type: str, body: bytes, problem: str) -> None:
    with pytest.raises(BadRequest, match=problem):
        parse_request("POST", content_type, [], body)


def test_other_methods_are_bad_requests() -> None:
    with pytest.raises(BadRequest, match="method PUT"):
        parse_request("PUT", FORM, [], b"secret=s")


def test_precheck_in_googles_order() -> None:
    assert siteverify.precheck(SiteverifyRequest(), None) == [
        "missing-input-secret",
        "missing-input-response",
    ]
    assert siteverify.precheck(SiteverifyRequest("s", "t"), None) == ["invalid-input-secret"]
    assert siteverify.precheck(SiteverifyRequest("s"), None) == [
        "invalid-input-secret",
        "missing-input-response",
    ]
    # a known secret: the core decides, a missing response included (it is observed there)
    assert siteverify.precheck(SiteverifyRequest("s"), "site-key") == []


def test_assessment_request_carries_token_key_ip_and_idempotency_key() -> None:
    request = siteverify.to_assessment_request(
        SiteverifyRequest("s", "tok", " 192.0.2.1 ", "k"), "key-1"
    )
    assert (request.token, request.site_key, request.user_ip_address, request.idempotency_key) == (
        "tok",
        "key-1",
        "192.0.2.1",
        "k",
    )
    assert request.expected_action == ""


def test_valid_token_answer_is_googles_legacy_json() -> None:
    decision = _decision(
        TokenStatus.VALID,
        score=0.8999999761581421,  # float32 0.9
        action="login",
        hostname="example.com",
        create_time=1_700_000_000.25,
    )
    assert siteverify.answer(decision) == {
        "success": True,
        "challenge_ts": "2023-11-14T22:13:20Z",
        "hostname": "example.com",
        "score": 0.9,
        "action": "login",
    }


def test_android_token_answers_apk_package_name_instead_of_hostname() -> None:
    decision = _decision(TokenStatus.VALID, score=0.7, android_package_name="com.example")
    body = siteverify.answer(decision)
    assert body["apk_package_name"] == "com.example"
    assert "hostname" not in body


def test_valid_but_denied_by_policy_still_succeeds() -> None:
    """success keeps its legacy meaning; the app checks score and action itself."""
    decision = _decision(
        TokenStatus.VALID, allowed=False, verdict=Verdict.FAILED_ENFORCE, score=0.1
    )
    assert siteverify.answer(decision)["success"] is True


@pytest.mark.parametrize(
    ("status", "code"),
    [
        (TokenStatus.MISSING, "missing-input-response"),
        (TokenStatus.INVALID, "invalid-input-response"),
        (TokenStatus.EXPIRED, "timeout-or-duplicate"),
        (TokenStatus.DUPLICATE, "timeout-or-duplicate"),
        (TokenStatus.UNCHECKED, "internal-error"),
    ],
)
def test_every_other_status_is_one_error_code(status: TokenStatus, code: str) -> None:
    # an UNCHECKED token that an open failure policy allowed is still no valid token
    assert siteverify.answer(_decision(status, allowed=True, score=0.9)) == {
        "success": False,
        "error-codes": [code],
    }


def test_invalid_argument_codes() -> None:
    assert siteverify.invalid_argument_code("token") == "invalid-input-response"
    assert siteverify.invalid_argument_code("user_ip_address") == "bad-request"
    assert siteverify.invalid_argument_code("idempotency_key") == "bad-request"
