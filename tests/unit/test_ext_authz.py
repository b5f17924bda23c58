"""ext_authz's wire format: CheckRequest in, CheckResponse out (the generated Envoy protos)."""

from __future__ import annotations

import json

from google.rpc import code_pb2

from sidecar.core.model import Decision, RecommendedAction, TokenStatus, Verdict
from sidecar.server import ext_authz
from sidecar.third_party.envoy.config.core.v3 import base_pb2
from sidecar.third_party.envoy.service.auth.v3 import attribute_context_pb2, external_auth_pb2


def _check(headers: dict[str, str], extensions: dict[str, str] | None = None) -> object:
    http = attribute_context_pb2.AttributeContext.HttpRequest(
        method="POST", scheme="https", host="shop.example", path="/login?next=/", headers=headers
    )
    request = external_auth_pb2.CheckRequest()
    request.attributes.request.http.CopyFrom(http)
    request.attributes.source.address.socket_address.address = "198.51.100.7"
    request.attributes.context_extensions.update(extensions or {})
    return request


def test_inputs_from_the_check_request() -> None:
    check = _check(
        {
            "x-recaptcha-token": " tok ",
            "user-agent": "Mozilla/5.0",
            "x-ja3-fingerprint": "ja3",
            "x-ja4-fingerprint": "ja4",
            "x-recaptcha-action": "weak",  # never read: only Envoy's route sets the action
        },
        {"recaptcha_action": "login"},
    )
    request = ext_authz.to_assessment_request(check, "X-Recaptcha-Token")  # type: ignore[arg-type]
    assert request.token == "tok"
    assert request.expected_action == "login"
    assert request.user_ip_address == "198.51.100.7"
    assert request.user_agent == "Mozilla/5.0"
    assert (request.ja3, request.ja4) == ("ja3", "ja4")
    assert request.requested_uri == "https://shop.example/login?next=/"


def test_no_action_without_the_context_extension() -> None:
    check = _check({"x-recaptcha-token": "t", "x-recaptcha-action": "weak"})
    assert ext_authz.to_assessment_request(check, "x-recaptcha-token").expected_action == ""  # type: ignore[arg-type]


def _decision(allowed: bool, status: TokenStatus) -> Decision:
    return Decision(
        allowed=allowed,
        verdict=Verdict.PASSED if allowed else Verdict.FAILED_ENFORCE,
        token_status=status,
        recommended_action=RecommendedAction.ALLOW,
        decided_by="passed" if allowed else "token_duplicate",
        score=0.9,
        assessment_name="projects/1/assessments/a",
    )


def test_allowed_sets_the_headers_and_removes_the_empty_ones() -> None:
    response = ext_authz.answer(_decision(True, TokenStatus.VALID))
    assert response.status.code == code_pb2.OK
    assert response.WhichOneof("http_response") == "ok_response"
    set_headers = {o.header.key: o.header.value for o in response.ok_response.headers}
    assert set_headers["x-recaptcha-allowed"] == "true"
    assert set_headers["x-recaptcha-score"] == "0.9"
    assert set_headers["x-recaptcha-assessment"] == "projects/1/assessments/a"
    overwrite = base_pb2.HeaderValueOption.OVERWRITE_IF_EXISTS_OR_ADD
    assert {o.append_action for o in response.ok_response.headers} == {overwrite}
    assert list(response.ok_response.headers_to_remove) == ["x-recaptcha-policy-version"]


def test_denied_is_a_403_with_a_small_body_and_no_score() -> None:
    response = ext_authz.answer(_decision(False, TokenStatus.DUPLICATE))
    assert response.status.code == code_pb2.PERMISSION_DENIED
    denied = response.denied_response
    assert denied.status.code == 403
    assert json.loads(denied.body) == {
        "allowed": False,
        "verdict": "FAILED_ENFORCE",
        "token_status": "DUPLICATE",
    }
    headers = {o.header.key: o.header.value for o in denied.headers}
    assert headers == {
        "content-type": "application/json",
        "x-recaptcha-allowed": "false",
        "x-recaptcha-verdict": "FAILED_ENFORCE",
        "x-recaptcha-token-status": "DUPLICATE",
    }


def test_refused_is_a_denial_never_an_error_status() -> None:
    response = ext_authz.refused("token: longer than 10000 bytes")
    assert response.status.code == code_pb2.PERMISSION_DENIED
    assert json.loads(response.denied_response.body) == {
        "allowed": False,
        "error": "token: longer than 10000 bytes",
    }
