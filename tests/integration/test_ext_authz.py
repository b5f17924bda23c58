"""Envoy ext_authz on the gRPC listeners: a client built from the generated Envoy protos calls
Check over TCP and the Unix socket, on the emulator. No Envoy binary runs here: this client
sends what Envoy sends (deploy/examples/envoy/envoy.yaml)."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator

import grpc
import pytest
from google.rpc import code_pb2
from grpc_reflection.v1alpha import reflection_pb2, reflection_pb2_grpc

from sidecar.emulator import mint_token
from sidecar.third_party.envoy.service.auth.v3 import (
    attribute_context_pb2,
    external_auth_pb2,
    external_auth_pb2_grpc,
)
from tests.conftest import EmulatorHandle, SidecarHandle

Stub = external_auth_pb2_grpc.AuthorizationStub


def _check(
    token: str | None, action: str | None = "login", **headers: str
) -> external_auth_pb2.CheckRequest:
    http = attribute_context_pb2.AttributeContext.HttpRequest(
        method="POST", scheme="https", host="shop.example", path="/login", headers=headers
    )
    if token is not None:
        http.headers["x-recaptcha-token"] = token
    request = external_auth_pb2.CheckRequest()
    request.attributes.request.http.CopyFrom(http)
    request.attributes.source.address.socket_address.address = "198.51.100.7"
    if action is not None:
        request.attributes.context_extensions["recaptcha_action"] = action
    return request


@pytest.fixture(params=["tcp", "uds"])
async def stub(request: pytest.FixtureRequest, sidecar: SidecarHandle) -> AsyncIterator[Stub]:
    address = sidecar.tcp if request.param == "tcp" else sidecar.uds
    async with grpc.aio.insecure_channel(address) as channel:
        yield Stub(channel)


def _ok_headers(response: external_auth_pb2.CheckResponse) -> dict[str, str]:
    return {o.header.key: o.header.value for o in response.ok_response.headers}


async def test_allow_then_deny_on_replay(stub: Stub, emulator: EmulatorHandle) -> None:
    token = mint_token(score=0.8, action="login")
    response = await stub.Check(
        _check(token, **{"user-agent": "Mozilla/5.0", "x-ja3-fingerprint": "ja3"}), timeout=10
    )
    assert response.status.code == code_pb2.OK
    headers = _ok_headers(response)
    assert headers["x-recaptcha-allowed"] == "true"
    assert headers["x-recaptcha-verdict"] == "PASSED"
    assert headers["x-recaptcha-score"] == "0.8"
    assert headers["x-recaptcha-assessment"].startswith("projects/")
    event = emulator.service.stats()["recent_creates"][-1]["event"]
    assert event["user_ip_address"] == "198.51.100.7"
    assert event["expected_action"] == "login"
    assert event["user_agent"] == "Mozilla/5.0"
    assert event["ja3"] == "ja3"
    assert event["requested_uri"] == "https://shop.example/login"

    again = await stub.Check(_check(token), timeout=10)
    assert again.status.code == code_pb2.PERMISSION_DENIED
    assert again.denied_response.status.code == 403
    assert json.loads(again.denied_response.body)["token_status"] == "DUPLICATE"
    assert emulator.service.stats(tokens=[token])["create_calls_by_token"][token] == 1


async def test_deny_on_a_missing_token(stub: Stub, emulator: EmulatorHandle) -> None:
    response = await stub.Check(_check(None), timeout=10)
    assert response.status.code == code_pb2.PERMISSION_DENIED
    assert json.loads(response.denied_response.body) == {
        "allowed": False,
        "verdict": "FAILED_ENFORCE",
        "token_status": "MISSING",
    }
    assert emulator.service.stats()["create_calls"] == 0


async def test_the_action_is_only_the_context_extension(stub: Stub) -> None:
    """A token for `login` presented on a route whose extension says `checkout` is denied,
    whatever header the end user adds."""
    token = mint_token(action="login")
    request = _check(token, action="checkout", **{"x-recaptcha-action": "login"})
    response = await stub.Check(request, timeout=10)
    assert response.status.code == code_pb2.PERMISSION_DENIED


@pytest.mark.parametrize(
    "request_",
    [
        _check("x" * 10_001),
        _check(mint_token(action="login"), action="not an action!"),
        external_auth_pb2.CheckRequest(),
    ],
    ids=["token-too-long", "bad-action", "empty-request"],
)
async def test_bad_input_is_a_denial_never_an_error_status(
    stub: Stub, request_: external_auth_pb2.CheckRequest
) -> None:
    response = await stub.Check(request_, timeout=10)
    assert response.status.code == code_pb2.PERMISSION_DENIED
    assert json.loads(response.denied_response.body)["allowed"] is False


async def test_reflection_lists_the_authorization_service(sidecar: SidecarHandle) -> None:
    async with grpc.aio.insecure_channel(sidecar.tcp) as channel:
        stub = reflection_pb2_grpc.ServerReflectionStub(channel)
        request = reflection_pb2.ServerReflectionRequest(list_services="")
        async for answer in stub.ServerReflectionInfo(iter([request]), timeout=10):
            names = {s.name for s in answer.list_services_response.service}
            break
    assert "envoy.service.auth.v3.Authorization" in names
