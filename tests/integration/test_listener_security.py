"""Listener security over real sockets and real TLS handshakes.

Tests bind loopback only, so the secured listeners here are loopback TCP made "exposed" with
`secure_loopback` (the hostNetwork setting); a Unix socket beside them stays open, which shows
the check applies per listener. Addresses that really are non-loopback are refused before
anything is bound.
"""

from __future__ import annotations

import asyncio
import os
import stat
import subprocess
import sys
from collections.abc import AsyncIterator, Sequence
from pathlib import Path

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection_pb2, reflection_pb2_grpc
from recaptcha.sidecar.v1 import sidecar_pb2 as pb
from recaptcha.sidecar.v1 import sidecar_pb2_grpc

from sidecar.config import ConfigError, load_settings
from sidecar.emulator import mint_token
from sidecar.server.listeners import ListenError
from tests.conftest import SidecarFactory, SidecarHandle
from tests.support.certs import Authority, KeyPair, authority
from tests.support.processes import ROOT

TOKEN = "s3cret-token-for-the-sidecar-0123456789"
Metadata = Sequence[tuple[str, str]]


@pytest.fixture
def ca(tmp_path: Path) -> Authority:
    return authority("trusted", tmp_path)


@pytest.fixture
def rogue_ca(tmp_path: Path) -> Authority:
    return authority("rogue", tmp_path)


@pytest.fixture
def server_pair(ca: Authority) -> KeyPair:
    return ca.issue("server", server=True)


@pytest.fixture
def token_file(tmp_path: Path) -> Path:
    path = tmp_path / "token"
    path.write_text(TOKEN + "\n")
    return path


@pytest.fixture
async def channels() -> AsyncIterator[list[grpc.aio.Channel]]:
    opened: list[grpc.aio.Channel] = []
    yield opened
    for channel in opened:
        await channel.close()


def tls_channel(
    opened: list[grpc.aio.Channel],
    address: str,
    trust: Authority,
    client: KeyPair | None = None,
) -> grpc.aio.Channel:
    credentials = grpc.ssl_channel_credentials(
        root_certificates=trust.cert_pem,
        private_key=client.key_pem if client else None,
        certificate_chain=client.cert_pem if client else None,
    )
    channel = grpc.aio.secure_channel(address, credentials)
    opened.append(channel)
    return channel


def plain_channel(opened: list[grpc.aio.Channel], address: str) -> grpc.aio.Channel:
    channel = grpc.aio.insecure_channel(address)
    opened.append(channel)
    return channel


async def assess(channel: grpc.aio.Channel, metadata: Metadata = ()) -> pb.AssessResponse:
    """A real Assess with a fresh token: proves the call reached the verifier, not just TLS."""
    stub = sidecar_pb2_grpc.VerificationServiceStub(channel)
    request = pb.AssessRequest(token=mint_token(score=0.9, action="login"), expected_action="login")
    return await stub.Assess(request, metadata=metadata, timeout=10)


async def assess_fails(channel: grpc.aio.Channel, metadata: Metadata = ()) -> grpc.StatusCode:
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await assess(channel, metadata)
    return caught.value.code()


def bearer(token: str) -> Metadata:
    return (("authorization", f"Bearer {token}"),)


async def secured(
    make_sidecar: SidecarFactory, tmp_path: Path, **settings: object
) -> SidecarHandle:
    """A sidecar whose loopback TCP listener is secured, beside an open Unix socket."""
    return await make_sidecar(
        listen=["127.0.0.1:0", f"unix://{tmp_path}/open.sock"], secure_loopback=True, **settings
    )


# --- TLS ----------------------------------------------------------------------------------


async def test_tls_listener_serves_a_client_that_trusts_its_ca(
    make_sidecar: SidecarFactory,
    tmp_path: Path,
    ca: Authority,
    server_pair: KeyPair,
    channels: list[grpc.aio.Channel],
) -> None:
    handle = await secured(
        make_sidecar,
        tmp_path,
        tls_cert_file=server_pair.cert_file,
        tls_key_file=server_pair.key_file,
        insecure_listen=True,  # TLS alone authenticates nobody: only on purpose
    )
    answer = await assess(tls_channel(channels, handle.tcp, ca))
    assert answer.allowed and answer.token_status == pb.TOKEN_STATUS_VALID


async def test_tls_listener_rejects_plaintext_and_untrusting_clients(
    make_sidecar: SidecarFactory,
    tmp_path: Path,
    server_pair: KeyPair,
    rogue_ca: Authority,
    channels: list[grpc.aio.Channel],
) -> None:
    handle = await secured(
        make_sidecar,
        tmp_path,
        tls_cert_file=server_pair.cert_file,
        tls_key_file=server_pair.key_file,
        insecure_listen=True,  # TLS alone authenticates nobody: only on purpose
    )
    assert await assess_fails(plain_channel(channels, handle.tcp)) == grpc.StatusCode.UNAVAILABLE
    untrusting = tls_channel(channels, handle.tcp, rogue_ca)
    assert await assess_fails(untrusting) == grpc.StatusCode.UNAVAILABLE
    # The Unix socket beside it needs nothing.
    assert (await assess(plain_channel(channels, handle.uds))).allowed


async def test_tls_certificate_is_reloaded_when_its_files_change(
    make_sidecar: SidecarFactory,
    tmp_path: Path,
    ca: Authority,
    server_pair: KeyPair,
    channels: list[grpc.aio.Channel],
) -> None:
    handle = await secured(
        make_sidecar,
        tmp_path,
        tls_cert_file=server_pair.cert_file,
        tls_key_file=server_pair.key_file,
        insecure_listen=True,  # TLS alone authenticates nobody: only on purpose
    )
    assert (await assess(tls_channel(channels, handle.tcp, ca))).allowed
    renewed_ca = authority("renewed", tmp_path)
    renewed = renewed_ca.issue("server", server=True)
    # What a Secret update looks like: both files replaced.
    server_pair.cert_file.write_bytes(renewed.cert_pem)
    server_pair.key_file.write_bytes(renewed.key_pem)
    assert (await assess(tls_channel(channels, handle.tcp, renewed_ca))).allowed
    stale = tls_channel(channels, handle.tcp, ca)
    assert await assess_fails(stale) == grpc.StatusCode.UNAVAILABLE


# --- mTLS ---------------------------------------------------------------------------------


async def test_mtls_listener_serves_a_client_with_a_certificate_from_its_ca(
    make_sidecar: SidecarFactory,
    tmp_path: Path,
    ca: Authority,
    server_pair: KeyPair,
    channels: list[grpc.aio.Channel],
) -> None:
    handle = await secured(
        make_sidecar,
        tmp_path,
        tls_cert_file=server_pair.cert_file,
        tls_key_file=server_pair.key_file,
        tls_client_ca_file=ca.cert_file,
    )
    client = ca.issue("app", server=False)
    assert (await assess(tls_channel(channels, handle.tcp, ca, client))).allowed


async def test_mtls_listener_fails_the_handshake_without_a_good_client_certificate(
    make_sidecar: SidecarFactory,
    tmp_path: Path,
    ca: Authority,
    rogue_ca: Authority,
    server_pair: KeyPair,
    channels: list[grpc.aio.Channel],
) -> None:
    handle = await secured(
        make_sidecar,
        tmp_path,
        tls_cert_file=server_pair.cert_file,
        tls_key_file=server_pair.key_file,
        tls_client_ca_file=ca.cert_file,
    )
    no_cert = tls_channel(channels, handle.tcp, ca)
    assert await assess_fails(no_cert) == grpc.StatusCode.UNAVAILABLE
    impostor = tls_channel(channels, handle.tcp, ca, rogue_ca.issue("app", server=False))
    assert await assess_fails(impostor) == grpc.StatusCode.UNAVAILABLE


# --- bearer token -------------------------------------------------------------------------


async def test_token_listener_serves_the_right_token_only(
    make_sidecar: SidecarFactory, tmp_path: Path, token_file: Path, channels: list[grpc.aio.Channel]
) -> None:
    handle = await secured(make_sidecar, tmp_path, auth_token_file=token_file)
    channel = plain_channel(channels, handle.tcp)
    assert (await assess(channel, bearer(TOKEN))).allowed
    assert (await assess(channel, (("authorization", f"bearer {TOKEN}"),))).allowed
    for metadata in (
        (),
        bearer("wrong-token-of-the-same-kind-0123456789"),
        bearer(TOKEN + "x"),
        bearer(TOKEN[:-1]),
        (("authorization", TOKEN),),
        (("authorization", f"Basic {TOKEN}"),),
        (("x-api-key", TOKEN),),
        (*bearer(TOKEN), *bearer("another-token-0123456789")),
    ):
        assert await assess_fails(channel, metadata) == grpc.StatusCode.UNAUTHENTICATED, metadata


async def test_token_listener_guards_streaming_methods_too(
    make_sidecar: SidecarFactory, tmp_path: Path, token_file: Path, channels: list[grpc.aio.Channel]
) -> None:
    handle = await secured(make_sidecar, tmp_path, auth_token_file=token_file)
    channel = plain_channel(channels, handle.tcp)
    health = health_pb2_grpc.HealthStub(channel)
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await health.Check(health_pb2.HealthCheckRequest(), timeout=5)
    assert caught.value.code() == grpc.StatusCode.UNAUTHENTICATED
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        async for _ in health.Watch(health_pb2.HealthCheckRequest(), timeout=5):
            pass
    assert caught.value.code() == grpc.StatusCode.UNAUTHENTICATED
    reflection = reflection_pb2_grpc.ServerReflectionStub(channel)
    request = reflection_pb2.ServerReflectionRequest(list_services="")
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        async for _ in reflection.ServerReflectionInfo(iter([request]), timeout=5):
            pass
    assert caught.value.code() == grpc.StatusCode.UNAUTHENTICATED
    answer = await health.Check(health_pb2.HealthCheckRequest(), metadata=bearer(TOKEN), timeout=5)
    assert answer.status == health_pb2.HealthCheckResponse.SERVING


async def test_unix_socket_beside_a_token_listener_needs_no_token(
    make_sidecar: SidecarFactory, tmp_path: Path, token_file: Path, channels: list[grpc.aio.Channel]
) -> None:
    handle = await secured(make_sidecar, tmp_path, auth_token_file=token_file)
    assert (await assess(plain_channel(channels, handle.uds))).allowed
    tcp = plain_channel(channels, handle.tcp)
    assert await assess_fails(tcp) == grpc.StatusCode.UNAUTHENTICATED


async def test_token_is_reread_when_its_file_changes(
    make_sidecar: SidecarFactory, tmp_path: Path, token_file: Path, channels: list[grpc.aio.Channel]
) -> None:
    handle = await secured(make_sidecar, tmp_path, auth_token_file=token_file)
    channel = plain_channel(channels, handle.tcp)
    assert (await assess(channel, bearer(TOKEN))).allowed
    rotated = "rotated-token-abcdefghijklmnopqrstuvwxyz"
    replacement = tmp_path / "token.new"
    replacement.write_text(rotated)
    os.replace(replacement, token_file)  # an atomic swap, as kubelet updates a Secret volume
    assert (await assess(channel, bearer(rotated))).allowed
    assert await assess_fails(channel, bearer(TOKEN)) == grpc.StatusCode.UNAUTHENTICATED


async def test_tls_and_token_together_need_both(
    make_sidecar: SidecarFactory,
    tmp_path: Path,
    ca: Authority,
    server_pair: KeyPair,
    token_file: Path,
    channels: list[grpc.aio.Channel],
) -> None:
    handle = await secured(
        make_sidecar,
        tmp_path,
        tls_cert_file=server_pair.cert_file,
        tls_key_file=server_pair.key_file,
        auth_token_file=token_file,
    )
    channel = tls_channel(channels, handle.tcp, ca)
    assert (await assess(channel, bearer(TOKEN))).allowed
    assert await assess_fails(channel) == grpc.StatusCode.UNAUTHENTICATED
    plain = plain_channel(channels, handle.tcp)
    assert await assess_fails(plain, bearer(TOKEN)) == grpc.StatusCode.UNAVAILABLE


# --- the probe listener -------------------------------------------------------------------


async def test_health_listener_answers_probes_without_auth_and_serves_nothing_else(
    make_sidecar: SidecarFactory, tmp_path: Path, token_file: Path, channels: list[grpc.aio.Channel]
) -> None:
    handle = await secured(
        make_sidecar, tmp_path, auth_token_file=token_file, health_listen="127.0.0.1:0"
    )
    assert handle.sidecar.health_address is not None
    probe = plain_channel(channels, handle.sidecar.health_address)
    health = health_pb2_grpc.HealthStub(probe)
    for service in ("", "recaptcha.sidecar.v1.VerificationService"):
        answer = await health.Check(health_pb2.HealthCheckRequest(service=service), timeout=5)
        assert answer.status == health_pb2.HealthCheckResponse.SERVING
    assert await assess_fails(probe) == grpc.StatusCode.UNIMPLEMENTED
    await handle.sidecar.health.shutdown()  # the probe listener follows the same entries
    answer = await health.Check(health_pb2.HealthCheckRequest(), timeout=5)
    assert answer.status == health_pb2.HealthCheckResponse.NOT_SERVING


async def test_health_listener_tells_outsiders_nothing_beyond_liveness_and_readiness(
    make_sidecar: SidecarFactory, tmp_path: Path, token_file: Path, channels: list[grpc.aio.Channel]
) -> None:
    """Issue 13 item 4: the unauthenticated probe listener answers the overall entry and the
    service's readiness only; `upstream` (which says when the sidecar fails open) is as
    unknown there as any made-up name, by Check, Watch and List alike."""
    handle = await secured(
        make_sidecar, tmp_path, auth_token_file=token_file, health_listen="127.0.0.1:0"
    )
    assert handle.sidecar.health_address is not None
    health = health_pb2_grpc.HealthStub(plain_channel(channels, handle.sidecar.health_address))
    for hidden in ("upstream", "no-such-entry"):
        with pytest.raises(grpc.aio.AioRpcError) as caught:
            await health.Check(health_pb2.HealthCheckRequest(service=hidden), timeout=5)
        assert caught.value.code() == grpc.StatusCode.NOT_FOUND
        watch = health.Watch(health_pb2.HealthCheckRequest(service=hidden), timeout=5)
        first = await watch.read()
        assert first.status == health_pb2.HealthCheckResponse.SERVICE_UNKNOWN
        watch.cancel()
    listed = await health.List(health_pb2.HealthListRequest(), timeout=5)
    # readiness of each gRPC front door (VerificationService, Google's, Envoy's ext_authz)
    assert set(listed.statuses) == {
        "",
        "recaptcha.sidecar.v1.VerificationService",
        "google.cloud.recaptchaenterprise.v1.RecaptchaEnterpriseService",
        "envoy.service.auth.v3.Authorization",
    }
    # The entry exists, and an authenticated caller on the service's own listener sees it.
    inside = health_pb2_grpc.HealthStub(plain_channel(channels, handle.uds))
    upstream = await inside.Check(health_pb2.HealthCheckRequest(service="upstream"), timeout=5)
    assert upstream.status == health_pb2.HealthCheckResponse.SERVING


# --- refusals -----------------------------------------------------------------------------


@pytest.mark.parametrize("address", ["0.0.0.0:0", "[::]:0", "10.1.2.3:50051", "my-pod:50051"])
def test_exposed_listen_without_security_is_refused(address: str) -> None:
    with pytest.raises(ConfigError) as caught:
        load_settings(emulator=True, listen=["127.0.0.1:0", address])
    message = str(caught.value)
    assert f"listen: {address} can be reached from outside the pod" in message
    for remedy in ("tls_cert_file", "auth_token_file", "--insecure-listen"):
        assert remedy in message


def test_tls_alone_authenticates_nobody_and_is_refused(
    server_pair: KeyPair, ca: Authority, token_file: Path
) -> None:
    """Issue 13 item 3: a certificate encrypts but serves any peer; an exposed listener needs a
    client CA (mTLS) or a bearer token, or `insecure_listen` said on purpose."""
    tls = {"tls_cert_file": server_pair.cert_file, "tls_key_file": server_pair.key_file}
    with pytest.raises(ConfigError) as caught:
        load_settings(emulator=True, listen=["0.0.0.0:0"], **tls)
    message = str(caught.value)
    assert "TLS alone authenticates nobody" in message
    for remedy in ("tls_client_ca_file", "auth_token_file", "--insecure-listen"):
        assert remedy in message
    assert load_settings(
        emulator=True, listen=["0.0.0.0:0"], tls_client_ca_file=ca.cert_file, **tls
    )
    assert load_settings(emulator=True, listen=["0.0.0.0:0"], auth_token_file=token_file, **tls)
    assert load_settings(emulator=True, listen=["0.0.0.0:0"], insecure_listen=True, **tls)
    # Loopback and Unix sockets stay the pod's own: a certificate there needs nothing more.
    assert load_settings(emulator=True, listen=["127.0.0.1:0"], **tls)


def test_the_command_line_refuses_tls_alone_with_one_line(server_pair: KeyPair) -> None:
    done = subprocess.run(
        [
            *(sys.executable, "-m", "sidecar", "serve", "--emulator", "--listen", "0.0.0.0:0"),
            *("--tls-cert-file", str(server_pair.cert_file)),
            *("--tls-key-file", str(server_pair.key_file)),
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 2
    assert "TLS alone authenticates nobody" in done.stderr
    assert "Traceback" not in done.stderr and "serving on" not in done.stdout


@pytest.mark.parametrize("address", [":9464", "0.0.0.0:9464", "10.1.2.3:9464", "[::]:9464"])
def test_an_exposed_metrics_endpoint_needs_tls_or_metrics_insecure(
    address: str, server_pair: KeyPair, token_file: Path
) -> None:
    """Issue 13 item 4: independent of insecure_listen."""
    with pytest.raises(ConfigError) as caught:
        load_settings(emulator=True, metrics_listen=address, insecure_listen=True)
    assert f"metrics_listen: {address} can be reached from outside the pod" in str(caught.value)
    assert "metrics_insecure" in str(caught.value)
    assert load_settings(emulator=True, metrics_listen=address, metrics_insecure=True)
    tls = {"tls_cert_file": server_pair.cert_file, "tls_key_file": server_pair.key_file}
    assert load_settings(emulator=True, metrics_listen=address, **tls)
    assert load_settings(emulator=True, metrics_listen="127.0.0.1:9464")


async def test_metrics_beyond_loopback_are_served_over_https_with_the_listeners_certificate(
    make_sidecar: SidecarFactory, tmp_path: Path, ca: Authority
) -> None:
    """The scrape endpoint on every interface, with a certificate: HTTPS only (the test reaches
    it on loopback), with client certificates required when tls_client_ca_file is set."""
    import ssl
    import urllib.error
    import urllib.request

    pair = ca.issue("server", server=True)
    client = ca.issue("prometheus", server=False)
    handle = await make_sidecar(
        metrics_listen="0.0.0.0:0",
        tls_cert_file=pair.cert_file,
        tls_key_file=pair.key_file,
        tls_client_ca_file=ca.cert_file,
    )
    telemetry = handle.sidecar.telemetry
    assert telemetry is not None and telemetry.metrics_address is not None
    port = telemetry.metrics_address.rsplit(":", 1)[1]
    context = ssl.create_default_context(cafile=str(ca.cert_file))
    context.check_hostname = False
    context.load_cert_chain(client.cert_file, client.key_file)

    def fetch(url: str, context: ssl.SSLContext | None) -> str:
        with urllib.request.urlopen(url, context=context, timeout=5) as answer:
            return str(answer.read().decode())

    body = await asyncio.to_thread(fetch, f"https://127.0.0.1:{port}/metrics", context)
    assert "target_info" in body or "# HELP" in body
    with pytest.raises((urllib.error.URLError, ConnectionError, OSError)):
        await asyncio.to_thread(fetch, f"http://127.0.0.1:{port}/metrics", None)
    anonymous = ssl.create_default_context(cafile=str(ca.cert_file))
    anonymous.check_hostname = False
    with pytest.raises((urllib.error.URLError, ConnectionError, OSError, ssl.SSLError)):
        await asyncio.to_thread(fetch, f"https://127.0.0.1:{port}/metrics", anonymous)


def test_exposed_listen_is_allowed_when_secured_or_insecure_on_purpose(token_file: Path) -> None:
    assert load_settings(emulator=True, listen=["0.0.0.0:0"], auth_token_file=token_file)
    assert load_settings(emulator=True, listen=["0.0.0.0:0"], insecure_listen=True)
    assert load_settings(emulator=True, listen=["[::1]:0", "localhost:0", "unix:///tmp/x.sock"])


def test_the_command_line_refuses_an_exposed_listen_with_a_clear_message() -> None:
    done = subprocess.run(
        [sys.executable, "-m", "sidecar", "serve", "--emulator", "--listen", "0.0.0.0:0"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 2
    assert "0.0.0.0:0 can be reached from outside the pod and is not secured" in done.stderr
    assert "--insecure-listen" in done.stderr
    assert "serving on" not in done.stdout


@pytest.mark.parametrize(
    ("settings", "key"),
    [
        ({"tls_cert_file": "cert"}, "tls_cert_file and tls_key_file: set both or neither"),
        ({"tls_client_ca_file": "ca"}, "tls_client_ca_file: mTLS needs"),
        ({"health_listen": "127.0.0.1:7000", "listen": ["127.0.0.1:7000"]}, "health_listen"),
        ({"socket_mode": "0999"}, "socket_mode"),
    ],
)
def test_inconsistent_security_settings_are_refused(
    settings: dict[str, object], key: str, tmp_path: Path
) -> None:
    for name in ("tls_cert_file", "tls_client_ca_file"):
        if name in settings:
            path = tmp_path / str(settings[name])
            path.write_text("x")
            settings[name] = path
    with pytest.raises(ConfigError, match=key):
        load_settings(emulator=True, **settings)


def test_missing_security_files_are_refused(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="auth_token_file: no such file"):
        load_settings(emulator=True, auth_token_file=tmp_path / "absent")


async def test_mismatched_certificate_and_key_refuse_to_start(
    make_sidecar: SidecarFactory, tmp_path: Path, ca: Authority, server_pair: KeyPair
) -> None:
    other = ca.issue("other", server=True)
    with pytest.raises(ListenError, match="tls_cert_file/tls_key_file"):
        await secured(
            make_sidecar,
            tmp_path,
            tls_cert_file=server_pair.cert_file,
            tls_key_file=other.key_file,
            tls_client_ca_file=ca.cert_file,
        )


async def test_short_token_refuses_to_start(make_sidecar: SidecarFactory, tmp_path: Path) -> None:
    short = tmp_path / "short"
    short.write_text("tooshort")
    with pytest.raises(ListenError, match="at least 16 characters"):
        await secured(make_sidecar, tmp_path, auth_token_file=short)


# --- Unix socket permissions --------------------------------------------------------------


@pytest.mark.parametrize(
    ("configured", "expected"), [(None, 0o660), ("0600", 0o600), (0o640, 0o640)]
)
async def test_unix_socket_mode_is_applied(
    make_sidecar: SidecarFactory,
    tmp_path: Path,
    configured: object,
    expected: int,
    channels: list[grpc.aio.Channel],
) -> None:
    settings = {} if configured is None else {"socket_mode": configured}
    path = tmp_path / "mode.sock"
    handle = await make_sidecar(listen=[f"unix://{path}"], **settings)
    assert stat.S_IMODE(os.stat(path).st_mode) == expected
    assert stat.S_ISSOCK(os.stat(path).st_mode)
    assert (await assess(plain_channel(channels, handle.uds))).allowed
