"""The emulator as Google really is: TLS, credentials (API key, access tokens from a GCE
metadata server), the project, typed site keys, express, and Google's error shapes, seen
through Google's own Python client (GAPIC) and google-auth, over real sockets."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import grpc
import pytest
from google.api_core import exceptions as gexc
from google.cloud.recaptchaenterprise_v1 import (
    AnnotateAssessmentRequest,
    Assessment,
    CreateAssessmentRequest,
    Event,
    TokenProperties,
)
from google.cloud.recaptchaenterprise_v1.services.recaptcha_enterprise_service import (
    RecaptchaEnterpriseServiceAsyncClient,
)
from google.cloud.recaptchaenterprise_v1.services.recaptcha_enterprise_service.transports import (
    grpc_asyncio,
)
from google.rpc import error_details_pb2

from sidecar.emulator import express_claims_header, launch_emulator, mint_token
from tests.support import google as g
from tests.support.google import GoogleEmulator
from tests.support.processes import ROOT, emulator_process

PARENT = f"projects/{g.PROJECT_ID}"


def gapic(channel: Any) -> RecaptchaEnterpriseServiceAsyncClient:
    transport = grpc_asyncio.RecaptchaEnterpriseServiceGrpcAsyncIOTransport(channel=channel)
    return RecaptchaEnterpriseServiceAsyncClient(transport=transport)


@pytest.fixture
async def client(
    google_emulator: GoogleEmulator,
) -> AsyncIterator[RecaptchaEnterpriseServiceAsyncClient]:
    """Google's client over TLS (the emulator's CA) with the project's API key."""
    channel = google_emulator.channel(api_key=google_emulator.api_key)
    yield gapic(channel)
    await channel.close()


async def assess(
    client: RecaptchaEnterpriseServiceAsyncClient,
    token: str = "",
    *,
    site_key: str = g.WEB_KEY,
    parent: str = PARENT,
    metadata: tuple[tuple[str, str], ...] = (),
    **event: Any,
) -> Assessment:
    request = CreateAssessmentRequest(
        parent=parent, assessment=Assessment(event=Event(token=token, site_key=site_key, **event))
    )
    return await client.create_assessment(request=request, timeout=5, metadata=metadata)


def reason_of(answer: Assessment) -> str:
    properties = answer.token_properties
    return (
        "VALID"
        if properties.valid
        else TokenProperties.InvalidReason(properties.invalid_reason).name
    )


def detail(error: gexc.GoogleAPICallError, kind: type) -> Any:
    (found,) = [d for d in error.details if isinstance(d, kind)]
    return found


def metadata_get(
    address: str, path: str, *, flavor: bool = True, timeout: float = 5.0
) -> tuple[int, dict[str, str], bytes]:
    request = urllib.request.Request(f"http://{address}{path}")
    if flavor:
        request.add_header("Metadata-Flavor", "Google")
    try:
        with urllib.request.urlopen(request, timeout=timeout) as answer:
            return answer.status, dict(answer.headers), answer.read()
    except urllib.error.HTTPError as error:
        return error.code, dict(error.headers), error.read()


def probe(
    google: GoogleEmulator, *args: str, mode: str = "api_key", **extra: str
) -> dict[str, Any]:
    """Google's Python client in its own process (see tests/support/gapic_probe.py)."""
    completed = subprocess.run(
        [
            sys.executable,
            "-m",
            "tests.support.gapic_probe",
            "--endpoint",
            google.address,
            "--project",
            g.PROJECT_ID,
            *args,
        ],
        cwd=ROOT,
        env=g.probe_env(google, mode, extra),
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    result: dict[str, Any] = json.loads(completed.stdout.strip().splitlines()[-1])
    return result


# ---- TLS ------------------------------------------------------------------------------------


async def test_tls_with_the_ca_reaches_google_and_without_it_the_handshake_fails(
    google_emulator: GoogleEmulator, client: RecaptchaEnterpriseServiceAsyncClient
) -> None:
    token = mint_token(site_key=g.WEB_KEY)
    assert reason_of(await assess(client, token)) == "VALID"
    untrusted = grpc.aio.secure_channel(google_emulator.address, grpc.ssl_channel_credentials())
    plaintext = grpc.aio.insecure_channel(google_emulator.address)
    try:
        for channel in (untrusted, plaintext):
            with pytest.raises(gexc.ServiceUnavailable):
                await assess(gapic(channel), mint_token(site_key=g.WEB_KEY))
    finally:
        await untrusted.close()
        await plaintext.close()
    stats = await google_emulator.control.stats()
    assert stats["create_calls"] == 1, "no call without a trusted handshake reaches Google"


async def test_the_server_certificate_names_localhost_and_loopback(tmp_path: Path) -> None:
    emulator = await launch_emulator(["localhost:0"], tls=True, ca_file=tmp_path / "ca.pem")
    try:
        for target in (emulator.address, f"127.0.0.1:{emulator.ports[0]}"):
            channel = emulator.channel(target)
            try:
                answer = await assess(gapic(channel), mint_token(), site_key="")
            finally:
                await channel.close()
            assert answer.token_properties.valid
        assert (tmp_path / "ca.pem").read_bytes().startswith(b"-----BEGIN CERTIFICATE-----")
    finally:
        await emulator.stop(0)


# ---- credentials ----------------------------------------------------------------------------


async def test_a_wrong_api_key_is_invalid_argument_api_key_invalid_and_consumes_nothing(
    google_emulator: GoogleEmulator,
) -> None:
    token = mint_token(site_key=g.WEB_KEY)
    channel = google_emulator.channel(api_key="AIzaSyNotTheKey")
    try:
        with pytest.raises(gexc.InvalidArgument) as caught:
            await assess(gapic(channel), token)
    finally:
        await channel.close()
    error = caught.value
    assert error.message == "API key not valid. Please pass a valid API key."
    assert (error.reason, error.domain) == ("API_KEY_INVALID", "googleapis.com")
    assert error.metadata == {"service": "recaptchaenterprise.googleapis.com"}
    assert detail(error, error_details_pb2.LocalizedMessage).locale == "en-US"
    good = google_emulator.channel(api_key=google_emulator.api_key)
    try:
        assert reason_of(await assess(gapic(good), token)) == "VALID", "the token was not spent"
    finally:
        await good.close()
    stats = await google_emulator.control.stats(tokens=[token])
    assert stats["rejected_calls"] == {"API_KEY_INVALID": 1}
    assert stats["create_calls_by_token"][token] == 2


@pytest.mark.parametrize(
    ("authorization", "reason"),
    [
        (None, "CREDENTIALS_MISSING"),
        ("Bearer ya29.not-issued-here", "ACCESS_TOKEN_TYPE_UNSUPPORTED"),
        ("Basic dXNlcjpwYXNz", "ACCESS_TOKEN_TYPE_UNSUPPORTED"),
    ],
)
async def test_missing_or_foreign_credentials_are_unauthenticated(
    google_emulator: GoogleEmulator, authorization: str | None, reason: str
) -> None:
    channel = google_emulator.channel()
    metadata = () if authorization is None else (("authorization", authorization),)
    try:
        with pytest.raises(gexc.Unauthenticated) as caught:
            await assess(gapic(channel), mint_token(site_key=g.WEB_KEY), metadata=metadata)
    finally:
        await channel.close()
    error = caught.value
    assert (error.reason, error.domain) == (reason, "googleapis.com")
    assert error.metadata == {
        "service": "recaptchaenterprise.googleapis.com",
        "method": "google.cloud.recaptchaenterprise.v1.RecaptchaEnterpriseService.CreateAssessment",
    }


async def test_an_access_token_from_the_metadata_server_is_accepted_until_it_expires(
    google_emulator: GoogleEmulator,
) -> None:
    status, headers, body = metadata_get(
        google_emulator.metadata_address,
        "/computeMetadata/v1/instance/service-accounts/default/token"
        "?scopes=https://www.googleapis.com/auth/cloud-platform",
    )
    assert status == 200 and headers["Metadata-Flavor"] == "Google"
    issued = json.loads(body)
    assert issued["token_type"] == "Bearer" and issued["expires_in"] == 3599
    bearer = (("authorization", f"Bearer {issued['access_token']}"),)
    channel = google_emulator.channel()
    client = gapic(channel)
    try:
        assert (
            reason_of(await assess(client, mint_token(site_key=g.WEB_KEY), metadata=bearer))
            == "VALID"
        )
        assert await google_emulator.control.expire_access_tokens() == 1
        with pytest.raises(gexc.Unauthenticated) as caught:
            await assess(client, mint_token(site_key=g.WEB_KEY), metadata=bearer)
        assert caught.value.reason == "ACCESS_TOKEN_EXPIRED"
    finally:
        await channel.close()
    stats = await google_emulator.control.stats()
    assert stats["calls_by_credential"] == {"access_token": 2}
    assert stats["access_tokens_issued"] == 1
    assert issued["access_token"] not in json.dumps(stats), "never a credential in clear"


async def test_a_token_minted_without_the_cloud_platform_scope_is_refused(
    google_emulator: GoogleEmulator,
) -> None:
    _, _, body = metadata_get(
        google_emulator.metadata_address,
        "/computeMetadata/v1/instance/service-accounts/default/token"
        "?scopes=https://www.googleapis.com/auth/userinfo.email",
    )
    bearer = (("authorization", f"Bearer {json.loads(body)['access_token']}"),)
    channel = google_emulator.channel()
    try:
        with pytest.raises(gexc.PermissionDenied) as caught:
            await assess(gapic(channel), mint_token(site_key=g.WEB_KEY), metadata=bearer)
    finally:
        await channel.close()
    assert caught.value.reason == "ACCESS_TOKEN_SCOPE_INSUFFICIENT"


# ---- the metadata server --------------------------------------------------------------------


async def test_the_metadata_server_answers_what_google_auth_asks(
    google_emulator: GoogleEmulator,
) -> None:
    address = google_emulator.metadata_address
    status, headers, body = metadata_get(address, "/", flavor=False)
    assert (status, headers["Metadata-Flavor"]) == (200, "Google"), "the ping google-auth makes"
    status, _, body = metadata_get(address, "/computeMetadata/v1/project/project-id", flavor=False)
    assert status == 403 and b"Metadata-Flavor" in body, "refused without the header"
    assert (
        metadata_get(address, "/computeMetadata/v1/project/project-id")[2] == g.PROJECT_ID.encode()
    )
    numeric = metadata_get(address, "/computeMetadata/v1/project/numeric-project-id")[2]
    assert numeric == g.PROJECT_NUMBER.encode()
    status, _, body = metadata_get(
        address, "/computeMetadata/v1/instance/service-accounts/default/?recursive=true"
    )
    info = json.loads(body)
    assert status == 200 and info["aliases"] == ["default"]
    assert info["email"].endswith(".iam.gserviceaccount.com")
    assert metadata_get(address, "/computeMetadata/v1/instance/nope")[0] == 404


async def test_metadata_knobs_refuse_fail_transiently_then_heal(
    google_emulator: GoogleEmulator,
) -> None:
    address = google_emulator.metadata_address
    path = "/computeMetadata/v1/instance/service-accounts/default/token"
    await google_emulator.control.set_faults("metadata", status=403)
    status, _, body = metadata_get(address, path)
    assert status == 403 and b"iam.serviceAccounts.getAccessToken" in body
    assert metadata_get(address, path)[0] == 403, "a refusal lasts until cleared"
    await google_emulator.control.set_faults("metadata", status=503, times=2)
    assert [metadata_get(address, path)[0] for _ in range(3)] == [503, 503, 200]
    await google_emulator.control.set_faults("metadata", hang=True, times=1)
    with pytest.raises(TimeoutError):
        await asyncio.to_thread(metadata_get, address, path, timeout=0.5)
    assert metadata_get(address, path)[0] == 200
    stats = await google_emulator.control.stats()
    assert stats["metadata_server"]["injected_failures"] == 5
    assert stats["access_tokens_issued"] == 2


async def test_google_auth_gets_application_default_credentials_from_the_metadata_server(
    google_emulator: GoogleEmulator,
) -> None:
    token = mint_token(site_key=g.WEB_KEY)
    answer = await asyncio.to_thread(
        probe, google_emulator, "--site-key", g.WEB_KEY, "--token", token, mode="adc"
    )
    assert answer["valid"] is True and answer["name"].startswith(f"projects/{g.PROJECT_NUMBER}/")
    stats = await google_emulator.control.stats()
    assert stats["calls_by_credential"] == {"access_token": 1}
    requests = stats["metadata_server"]["requests"]
    assert requests["/"] >= 1, "google-auth's detection pinged GCE_METADATA_IP"
    token_paths = [p for p in requests if p.endswith("/token")]  # by "default" or by email
    assert sum(requests[p] for p in token_paths) == 1


async def test_a_refused_token_fails_the_call_before_it_reaches_google(
    google_emulator: GoogleEmulator,
) -> None:
    """What issue 14 reproduces: Google's client says only "Getting metadata from plugin
    failed" (UNAVAILABLE); nothing reaches the API."""
    await google_emulator.control.set_faults("metadata", status=403)
    answer = await asyncio.to_thread(
        probe,
        google_emulator,
        "--site-key",
        g.WEB_KEY,
        "--token",
        mint_token(site_key=g.WEB_KEY),
        mode="adc",
    )
    assert answer["error"]["code"] == "UNAVAILABLE"
    assert "metadata" in answer["error"]["message"].lower()
    assert (await google_emulator.control.stats())["create_calls"] == 0


async def test_google_client_takes_the_ca_from_grpc_default_roots_with_an_api_key(
    google_emulator: GoogleEmulator,
) -> None:
    token = mint_token(site_key=g.WEB_KEY)
    answer = await asyncio.to_thread(
        probe, google_emulator, "--api-key", g.API_KEY, "--site-key", g.WEB_KEY, "--token", token
    )
    assert answer["valid"] is True
    wrong = await asyncio.to_thread(
        probe,
        google_emulator,
        "--api-key",
        "AIzaSyWrong",
        "--site-key",
        g.WEB_KEY,
        "--token",
        token,
    )
    assert wrong["error"]["type"] == "InvalidArgument"
    assert (wrong["error"]["reason"], wrong["error"]["domain"]) == (
        "API_KEY_INVALID",
        "googleapis.com",
    )
    stats = await google_emulator.control.stats()
    assert stats["calls_by_credential"] == {"api_key": 2}


async def test_google_client_on_a_channel_built_with_the_ca(
    google_emulator: GoogleEmulator,
) -> None:
    token = mint_token(site_key=g.WEB_KEY)
    answer = await asyncio.to_thread(
        probe,
        google_emulator,
        "--channel-ca",
        str(google_emulator.ca_file),
        "--site-key",
        g.WEB_KEY,
        "--token",
        token,
        mode="adc",
        GRPC_DEFAULT_SSL_ROOTS_FILE_PATH="",
    )
    assert answer["valid"] is True
    untrusted = await asyncio.to_thread(
        probe,
        google_emulator,
        "--api-key",
        g.API_KEY,
        "--token",
        token,
        GRPC_DEFAULT_SSL_ROOTS_FILE_PATH="",
    )
    assert untrusted["error"]["code"] == "UNAVAILABLE", "Google's public roots do not trust it"


# ---- project and permission -----------------------------------------------------------------


async def test_another_project_is_permission_denied(
    google_emulator: GoogleEmulator, client: RecaptchaEnterpriseServiceAsyncClient
) -> None:
    token = mint_token(site_key=g.WEB_KEY)
    with pytest.raises(gexc.PermissionDenied) as caught:
        await assess(client, token, parent="projects/someone-else")
    assert caught.value.reason == "IAM_PERMISSION_DENIED"
    assert caught.value.metadata == {
        "permission": "recaptchaenterprise.assessments.create",
        "resource": "projects/someone-else",
    }
    by_number = await assess(client, token, parent=f"projects/{g.PROJECT_NUMBER}")
    assert reason_of(by_number) == "VALID", "the project by number is the same project"


async def test_annotate_errors_as_google_gives_them(
    client: RecaptchaEnterpriseServiceAsyncClient,
) -> None:
    name = (await assess(client, mint_token(site_key=g.WEB_KEY))).name
    assessment_id = name.rsplit("/", 1)[1]
    label = AnnotateAssessmentRequest.Annotation.LEGITIMATE
    for alias in (name, f"projects/{g.PROJECT_ID}/assessments/{assessment_id}"):
        await client.annotate_assessment(name=alias, annotation=label, timeout=5)
    with pytest.raises(gexc.InvalidArgument) as malformed:
        await client.annotate_assessment(name=f"projects/{g.PROJECT_ID}/{assessment_id}", timeout=5)
    assert detail(malformed.value, error_details_pb2.BadRequest).field_violations[0].field == "name"
    with pytest.raises(gexc.PermissionDenied) as other:
        await client.annotate_assessment(
            name=f"projects/elsewhere/assessments/{assessment_id}", timeout=5
        )
    assert other.value.metadata["permission"] == "recaptchaenterprise.assessments.annotate"
    with pytest.raises(gexc.NotFound):
        await client.annotate_assessment(
            name=f"projects/{g.PROJECT_ID}/assessments/ffff0000ffff0000", timeout=5
        )


# ---- site keys and express ------------------------------------------------------------------


@pytest.mark.parametrize("site_key", ["", "not-a-key-of-this-project"])
async def test_a_missing_or_unknown_site_key_is_invalid_argument_about_the_site_key(
    google_emulator: GoogleEmulator, client: RecaptchaEnterpriseServiceAsyncClient, site_key: str
) -> None:
    token = mint_token()
    with pytest.raises(gexc.InvalidArgument) as caught:
        await assess(client, token, site_key=site_key)
    (violation,) = detail(caught.value, error_details_pb2.BadRequest).field_violations
    assert violation.field == "assessment.event.site_key"
    assert caught.value.reason is None, "no ErrorInfo: this is about the request, not the key"
    assert reason_of(await assess(client, token)) == "VALID", "nothing consumed"


@pytest.mark.parametrize(
    ("site_key", "claims", "expected"),
    [
        (g.WEB_KEY, {"hostname": "shop.example"}, ("VALID", "hostname", "shop.example")),
        (
            g.WEB_KEY,
            {"hostname": "checkout.shop.example"},
            ("VALID", "hostname", "checkout.shop.example"),
        ),
        (g.WEB_KEY, {"hostname": "evil.example"}, ("DOMAIN_MISMATCH", None, None)),
        (g.WEB_KEY, {"android_package_name": "com.example.shop"}, ("KEY_MISMATCH", None, None)),
        (g.ANDROID_KEY, {}, ("VALID", "android_package_name", "com.example.shop")),
        (g.ANDROID_KEY, {"android_package_name": "com.other.app"}, ("KEY_MISMATCH", None, None)),
        (g.ANDROID_KEY, {"ios_bundle_id": "com.example.Shop"}, ("KEY_MISMATCH", None, None)),
        (
            g.IOS_KEY,
            {"ios_bundle_id": "com.example.Shop"},
            ("VALID", "ios_bundle_id", "com.example.Shop"),
        ),
        (g.EXPRESS_KEY, {}, ("KEY_MISMATCH", None, None)),
        (g.ANDROID_KEY, {"site_key": g.WEB_KEY}, ("KEY_MISMATCH", None, None)),
    ],
)
async def test_key_types_decide_key_mismatch_and_the_platform_field(
    client: RecaptchaEnterpriseServiceAsyncClient,
    site_key: str,
    claims: dict[str, str],
    expected: tuple[str, str | None, str | None],
) -> None:
    answer = await assess(client, mint_token(**claims), site_key=site_key)
    reason, field, value = expected
    assert reason_of(answer) == reason
    properties = answer.token_properties
    origins = {
        "hostname": properties.hostname,
        "android_package_name": properties.android_package_name,
        "ios_bundle_id": properties.ios_bundle_id,
    }
    if field is None:
        assert set(origins.values()) == {""}, "an invalid token says nothing about its origin"
    else:
        assert origins.pop(field) == value
        assert set(origins.values()) == {""}, "one platform field, the key's"


async def test_an_express_assessment_is_scored_not_missing(
    google_emulator: GoogleEmulator, client: RecaptchaEnterpriseServiceAsyncClient
) -> None:
    default = await assess(
        client, site_key=g.EXPRESS_KEY, express=True, user_ip_address="203.0.113.7"
    )
    assert default.risk_analysis.score == pytest.approx(0.9)
    assert not default.token_properties.valid and default.token_properties.invalid_reason == 0
    header = express_claims_header(mint_token(score=0.2, reasons=["AUTOMATION"]))
    scored = await assess(client, site_key=g.EXPRESS_KEY, express=True, headers=[header])
    assert scored.risk_analysis.score == pytest.approx(0.2)
    assert [r.name for r in scored.risk_analysis.reasons] == ["AUTOMATION"]
    assert scored.name and scored.event.express
    assert (await google_emulator.control.stats())["outcomes"] == {"EXPRESS": 2}


@pytest.mark.parametrize(
    ("site_key", "token", "field"),
    [
        (g.WEB_KEY, "", "assessment.event.site_key"),
        (g.EXPRESS_KEY, "emu1.e30", "assessment.event.token"),
    ],
)
async def test_express_needs_an_express_key_and_no_token(
    client: RecaptchaEnterpriseServiceAsyncClient, site_key: str, token: str, field: str
) -> None:
    with pytest.raises(gexc.InvalidArgument) as caught:
        await assess(client, token, site_key=site_key, express=True)
    assert detail(caught.value, error_details_pb2.BadRequest).field_violations[0].field == field


async def test_the_lenient_emulator_scores_express_too(tmp_path: Path) -> None:
    emulator = await launch_emulator(["127.0.0.1:0"])
    channel = emulator.channel()
    try:
        answer = await assess(gapic(channel), site_key="", express=True, parent="projects/any")
    finally:
        await channel.close()
        await emulator.stop(0)
    assert answer.risk_analysis.score == pytest.approx(0.9)


# ---- Google's error shapes for every fault knob ---------------------------------------------


@pytest.mark.parametrize(
    ("knobs", "exception", "reason"),
    [
        ({"quota": True}, gexc.ResourceExhausted, "RATE_LIMIT_EXCEEDED"),
        ({"error_rate": 1.0}, gexc.ServiceUnavailable, None),
        ({"error_rate": 1.0, "error_code": "INTERNAL"}, gexc.InternalServerError, None),
        (
            {"error_rate": 1.0, "error_code": "PERMISSION_DENIED"},
            gexc.PermissionDenied,
            "IAM_PERMISSION_DENIED",
        ),
        (
            {"error_rate": 1.0, "error_code": "UNAUTHENTICATED"},
            gexc.Unauthenticated,
            "ACCESS_TOKEN_EXPIRED",
        ),
        (
            {"error_rate": 1.0, "error_reason": "API_KEY_INVALID"},
            gexc.InvalidArgument,
            "API_KEY_INVALID",
        ),
        (
            {"error_rate": 1.0, "error_reason": "SERVICE_DISABLED"},
            gexc.PermissionDenied,
            "SERVICE_DISABLED",
        ),
        (
            {"error_rate": 1.0, "error_reason": "BILLING_DISABLED"},
            gexc.PermissionDenied,
            "BILLING_DISABLED",
        ),
        (
            {"error_rate": 1.0, "error_reason": "CONSUMER_INVALID"},
            gexc.PermissionDenied,
            "CONSUMER_INVALID",
        ),
        (
            {"error_rate": 1.0, "error_field": "assessment.event.user_ip_address"},
            gexc.InvalidArgument,
            None,
        ),
        ({"fail_after_consume_rate": 1.0}, gexc.ServiceUnavailable, None),
    ],
)
async def test_every_fault_knob_fails_with_googles_shape(
    google_emulator: GoogleEmulator,
    client: RecaptchaEnterpriseServiceAsyncClient,
    knobs: dict[str, Any],
    exception: type[gexc.GoogleAPICallError],
    reason: str | None,
) -> None:
    await google_emulator.control.set_faults("create", **knobs)
    with pytest.raises(exception) as caught:
        await assess(client, mint_token(site_key=g.WEB_KEY))
    error = caught.value
    assert error.reason == reason
    if reason is not None:
        assert error.domain == "googleapis.com"
    trailing = dict(error.response.trailing_metadata())
    assert "grpc-retry-pushback-ms" not in trailing
    assert "grpc-status-details-bin" in trailing
    if "error_field" in knobs:
        (violation,) = detail(error, error_details_pb2.BadRequest).field_violations
        assert violation.field == knobs["error_field"]


async def test_quota_says_which_quota_and_when_to_come_back(
    google_emulator: GoogleEmulator, client: RecaptchaEnterpriseServiceAsyncClient
) -> None:
    await google_emulator.control.set_faults("create", quota=True, retry_delay_ms=30_000)
    with pytest.raises(gexc.ResourceExhausted) as caught:
        await assess(client, mint_token(site_key=g.WEB_KEY))
    error = caught.value
    assert error.metadata["quota_metric"] == "recaptchaenterprise.googleapis.com/assessments"
    assert error.metadata["consumer"] == f"projects/{g.PROJECT_NUMBER}"
    assert error.metadata["quota_limit_value"] == "60000"
    (violation,) = detail(error, error_details_pb2.QuotaFailure).violations
    assert violation.subject == f"project_number:{g.PROJECT_NUMBER}"
    assert detail(error, error_details_pb2.RetryInfo).retry_delay.seconds == 30
    assert (
        detail(error, error_details_pb2.Help).links[0].url.startswith("https://cloud.google.com/")
    )


async def test_faults_come_after_credentials_as_at_googles_front_end(
    google_emulator: GoogleEmulator,
) -> None:
    await google_emulator.control.set_faults("create", quota=True)
    channel = google_emulator.channel(api_key="AIzaSyWrong")
    try:
        with pytest.raises(gexc.InvalidArgument):
            await assess(gapic(channel), mint_token(site_key=g.WEB_KEY))
    finally:
        await channel.close()
    stats = await google_emulator.control.stats()
    assert stats["injected_failures"]["create"] == 0


# ---- the command line -----------------------------------------------------------------------


async def test_the_cli_serves_tls_credentials_and_metadata(tmp_path: Path) -> None:
    ca_file = tmp_path / "ca.pem"
    process = emulator_process(
        "--listen",
        "127.0.0.1:0",
        "--tls",
        "--ca-file",
        str(ca_file),
        "--api-key",
        "k-1",
        "--metadata-listen",
        "127.0.0.1:0",
        "--site-key",
        "w=web:localhost",
        "--project-id",
        "p",
    )
    try:
        lines = process.output()
        assert f"recaptcha-emulator CA certificate in {ca_file}" in lines
        metadata = next(
            line.split(" on ", 1)[1] for line in process.lines if "metadata server on" in line
        )
        assert metadata_get(metadata.strip(), "/", flavor=False)[0] == 200
        credentials = grpc.composite_channel_credentials(
            grpc.ssl_channel_credentials(ca_file.read_bytes()),
            grpc.metadata_call_credentials(g._ApiKey("k-1")),
        )
        channel = grpc.aio.secure_channel(process.addresses()[0], credentials)
        try:
            answer = await assess(gapic(channel), mint_token(), site_key="w", parent="projects/p")
        finally:
            await channel.close()
        assert answer.token_properties.valid
    finally:
        assert process.terminate() == 0


def test_the_cli_refuses_a_bad_site_key_spec_in_one_line() -> None:
    completed = subprocess.run(
        [sys.executable, "-m", "sidecar", "emulator", "--site-key", "k=desktop"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert completed.returncode == 1
    platforms = "web, android, ios, express"
    assert completed.stderr.strip().splitlines() == [
        f"recaptcha-sidecar emulator: site key 'k=desktop': platform must be one of {platforms}"
    ]


async def test_metadata_server_survives_a_client_that_gives_up(
    google_emulator: GoogleEmulator,
) -> None:
    await google_emulator.control.set_faults("metadata", hang=True)
    started = time.monotonic()
    with pytest.raises(TimeoutError):
        await asyncio.to_thread(
            metadata_get,
            google_emulator.metadata_address,
            "/computeMetadata/v1/instance/service-accounts/default/token",
            timeout=0.3,
        )
    assert time.monotonic() - started < 5
    await google_emulator.control.clear_faults()
    status, _, _ = metadata_get(
        google_emulator.metadata_address,
        "/computeMetadata/v1/instance/service-accounts/default/token",
    )
    assert status == 200
