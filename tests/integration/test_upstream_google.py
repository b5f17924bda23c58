"""The sidecar against Google as it really is (the emulator over TLS, with credentials, in
Google's error shapes), for each credential mode and each way credentials, TLS, the endpoint,
the key, quota or the request can fail: what the app gets, how many attempts reached
upstream, whether the token was released, and the health entries.

The failure table in docs/failures.md is checked against these tests (`FAILURE_TABLE`)."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc
from recaptcha.sidecar.v1 import sidecar_pb2 as pb
from recaptcha.sidecar.v1 import sidecar_pb2_grpc

from sidecar.emulator import mint_token
from tests.conftest import SidecarFactory
from tests.support import google as g
from tests.support.google import GoogleEmulator
from tests.support.network import free_port
from tests.support.polling import eventually
from tests.support.processes import ROOT, Process, sidecar_process

SERVING = health_pb2.HealthCheckResponse.SERVING
NOT_SERVING = health_pb2.HealthCheckResponse.NOT_SERVING
OPEN_ON_UPSTREAM_FAILURE = "policy:\n  default: {on_upstream_failure: open}\n"


def token() -> str:
    return mint_token(site_key=g.WEB_KEY, action="login")


async def assess(stub: Any, value: str, timeout: float = 10.0) -> pb.AssessResponse:
    request = pb.AssessRequest(token=value, expected_action="login")
    answer: pb.AssessResponse = await stub.Assess(request, timeout=timeout)
    return answer


async def upstream_health(health: Any) -> int:
    request = health_pb2.HealthCheckRequest(service="upstream")
    status: int = (await health.Check(request, timeout=5)).status
    return status


async def calls(google: GoogleEmulator, value: str) -> int:
    return await google.control.calls_for(value)


def open_config(tmp_path: Path, text: str = OPEN_ON_UPSTREAM_FAILURE) -> Path:
    path = tmp_path / "sidecar.yaml"
    path.write_text(text)
    return path


# ---- API key ----------------------------------------------------------------------------------


async def test_api_key_over_tls_assesses_and_annotates(
    make_google_sidecar: SidecarFactory, google_emulator: GoogleEmulator
) -> None:
    handle = await make_google_sidecar()
    value = token()
    answer = await assess(handle.stub, value)
    assert (answer.token_status, answer.allowed) == (pb.TOKEN_STATUS_VALID, True)
    await handle.stub.Annotate(
        pb.AnnotateRequest(
            assessment_name=answer.assessment_name,
            annotation=pb.ANNOTATION_LEGITIMATE,
            wait_for_upstream=True,
        ),
        timeout=10,
    )
    stats = await google_emulator.control.stats(tokens=[value])
    assert stats["create_calls_by_token"][value] == 1
    assert stats["calls_by_credential"] == {"api_key": 2}
    assert stats["annotated_names"] == [answer.assessment_name]
    assert await upstream_health(handle.health) == SERVING


async def test_a_bad_api_key_is_config_closed_released_and_never_opens_the_breaker(
    make_google_sidecar: SidecarFactory, google_emulator: GoogleEmulator, tmp_path: Path
) -> None:
    """Issue 14 item 2 on Assess: INVALID_ARGUMENT + API_KEY_INVALID is the sidecar's config."""
    handle = await make_google_sidecar(
        open_config(tmp_path), api_key="AIzaSyNotTheKey", breaker_min_calls=3
    )
    values = [token() for _ in range(6)]
    answers = [await assess(handle.stub, v) for v in values]
    for answer in answers:
        assert answer.token_status == pb.TOKEN_STATUS_UNCHECKED
        assert answer.decided_by == "config:invalid_argument"
        assert not answer.allowed, "credential errors stay closed though upstream failure is open"
    again = await assess(handle.stub, values[0])
    assert again.decided_by == "config:invalid_argument", "released: never DUPLICATE"
    stats = await google_emulator.control.stats(tokens=values)
    assert stats["create_calls_by_token"][values[0]] == 2
    assert set(list(stats["create_calls_by_token"].values())[1:]) == {1}, "never retried"
    assert stats["rejected_calls"] == {"API_KEY_INVALID": 7}
    assert handle.sidecar.upstream.breaker_state().value == "closed"
    await eventually(lambda: _is(upstream_health(handle.health), NOT_SERVING))


async def _is(status: Any, expected: int) -> bool:
    return bool(await status == expected)


# ---- TLS and the endpoint ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("overrides", "decided_by"),
    [
        ({"upstream_ca_file": None}, "config:tls_untrusted"),
        ({"upstream_endpoint": "upstream.invalid:443"}, "config:endpoint_unresolvable"),
    ],
    ids=["untrusted-ca", "unknown-endpoint"],
)
async def test_an_untrusted_ca_or_unknown_endpoint_is_config_and_the_token_is_released(
    make_google_sidecar: SidecarFactory,
    google_emulator: GoogleEmulator,
    tmp_path: Path,
    overrides: dict[str, Any],
    decided_by: str,
) -> None:
    handle = await make_google_sidecar(open_config(tmp_path), breaker_min_calls=3, **overrides)
    values = [token() for _ in range(5)]
    for value in values:
        answer = await assess(handle.stub, value)
        assert (answer.token_status, answer.decided_by) == (pb.TOKEN_STATUS_UNCHECKED, decided_by)
        assert not answer.allowed
    assert (await assess(handle.stub, values[0])).decided_by == decided_by, "released"
    assert (await google_emulator.control.stats())["create_calls"] == 0
    assert handle.sidecar.upstream.breaker_state().value == "closed"
    await eventually(lambda: _is(upstream_health(handle.health), NOT_SERVING))


async def test_a_refused_connection_stays_transient(
    make_google_sidecar: SidecarFactory, tmp_path: Path
) -> None:
    """Nothing listening is not configuration: on_upstream_failure decides (open here)."""
    handle = await make_google_sidecar(
        open_config(tmp_path), upstream_endpoint=f"127.0.0.1:{free_port()}"
    )
    answer = await assess(handle.stub, token())
    assert (answer.decided_by, answer.allowed) == ("transient:unavailable", True)


# ---- the site key and the request -------------------------------------------------------------


async def test_an_unknown_site_key_is_config(
    make_google_sidecar: SidecarFactory, google_emulator: GoogleEmulator
) -> None:
    handle = await make_google_sidecar(site_key="not-a-key-of-the-project")
    value = token()
    answer = await assess(handle.stub, value)
    assert (answer.token_status, answer.decided_by) == (
        pb.TOKEN_STATUS_UNCHECKED,
        "config:invalid_argument",
    )
    assert await calls(google_emulator, value) == 1
    await eventually(lambda: _is(upstream_health(handle.health), NOT_SERVING))


async def test_a_field_the_app_sent_is_that_requests_problem(
    make_google_sidecar: SidecarFactory, google_emulator: GoogleEmulator
) -> None:
    """Issue 14 item 2: a BadRequest on another field makes the token INVALID; upstream stays
    healthy and the breaker is not involved."""
    handle = await make_google_sidecar(breaker_min_calls=3)
    await google_emulator.control.set_faults(
        "create", error_rate=1.0, error_field="assessment.event.user_ip_address"
    )
    for _ in range(5):
        answer = await assess(handle.stub, token())
        assert (answer.token_status, answer.decided_by) == (
            pb.TOKEN_STATUS_INVALID,
            "request:invalid_argument",
        )
        assert not answer.allowed
    await asyncio.sleep(1.2)  # two health polls
    assert await upstream_health(handle.health) == SERVING
    assert handle.sidecar.upstream.breaker_state().value == "closed"


# ---- quota: Google's RetryInfo window ---------------------------------------------------------


async def test_inside_the_retry_info_window_no_call_is_made_and_quota_decides(
    make_google_sidecar: SidecarFactory, google_emulator: GoogleEmulator, tmp_path: Path
) -> None:
    """Issue 14 item 6: within RetryInfo's window no upstream call; UNCHECKED quota:retry_after
    under on_quota_exhausted (closed by default); the breaker never opens on quota."""
    handle = await make_google_sidecar(open_config(tmp_path), breaker_min_calls=3)
    await google_emulator.control.set_faults("create", quota=True, retry_delay_ms=60_000)
    first = await assess(handle.stub, token())
    assert first.decided_by == "quota:resource_exhausted" and not first.allowed
    values = [token() for _ in range(20)]
    for value in values:
        answer = await assess(handle.stub, value)
        assert (answer.token_status, answer.decided_by) == (
            pb.TOKEN_STATUS_UNCHECKED,
            "quota:retry_after",
        )
        assert not answer.allowed
    stats = await google_emulator.control.stats()
    assert stats["create_calls"] == 1, "one call found the quota; none inside the window"
    assert handle.sidecar.upstream.breaker_state().value == "closed"
    assert 50 < handle.sidecar.upstream.retry_after() <= 60
    await eventually(lambda: _is(upstream_health(handle.health), NOT_SERVING))


async def test_an_open_quota_policy_lets_the_window_through_but_settles_the_token(
    make_google_sidecar: SidecarFactory, google_emulator: GoogleEmulator, tmp_path: Path
) -> None:
    config = open_config(tmp_path, "policy:\n  default: {on_quota_exhausted: open}\n")
    handle = await make_google_sidecar(config)
    await google_emulator.control.set_faults("create", quota=True, retry_delay_ms=60_000)
    await assess(handle.stub, token())
    value = token()
    answer = await assess(handle.stub, value)
    assert (answer.decided_by, answer.allowed) == ("quota:retry_after", True)
    repeat = await assess(handle.stub, value)
    assert repeat.token_status == pb.TOKEN_STATUS_DUPLICATE, "an allowed answer settles"


async def test_quota_without_retry_info_opens_no_window(
    make_google_sidecar: SidecarFactory, google_emulator: GoogleEmulator
) -> None:
    handle = await make_google_sidecar()
    await google_emulator.control.set_faults("create", quota=True)
    for _ in range(3):
        assert (await assess(handle.stub, token())).decided_by == "quota:resource_exhausted"
    assert (await google_emulator.control.stats())["create_calls"] == 3, "not retried, not held"


# ---- Annotate --------------------------------------------------------------------------------


async def test_an_unknown_assessment_is_the_requests_problem_and_upstream_stays_healthy(
    make_google_sidecar: SidecarFactory,
) -> None:
    """Issue 14 item 3."""
    handle = await make_google_sidecar()
    unknown = f"projects/{g.PROJECT_NUMBER}/assessments/ffff0000ffff0000"
    for _ in range(3):
        with pytest.raises(grpc.aio.AioRpcError) as caught:
            await handle.stub.Annotate(
                pb.AnnotateRequest(assessment_name=unknown, wait_for_upstream=True), timeout=10
            )
        assert caught.value.code() == grpc.StatusCode.NOT_FOUND
    await asyncio.sleep(1.2)
    assert await upstream_health(handle.health) == SERVING


@pytest.mark.parametrize(
    ("knobs", "code"),
    [
        ({"error_reason": "CREDENTIALS_MISSING"}, grpc.StatusCode.FAILED_PRECONDITION),
        ({"error_reason": "API_KEY_INVALID"}, grpc.StatusCode.FAILED_PRECONDITION),
        ({"quota": True}, grpc.StatusCode.UNAVAILABLE),
    ],
    ids=["unauthenticated", "api-key-invalid", "resource-exhausted"],
)
async def test_synchronous_annotate_never_passes_upstream_auth_or_quota_codes_on(
    make_google_sidecar: SidecarFactory,
    google_emulator: GoogleEmulator,
    knobs: dict[str, Any],
    code: grpc.StatusCode,
) -> None:
    """Issue 14 item 9: UNAUTHENTICATED / RESOURCE_EXHAUSTED from Google would read as the
    sidecar's own listener auth or load shedding."""
    handle = await make_google_sidecar()
    name = (await assess(handle.stub, token())).assessment_name
    await google_emulator.control.set_faults("annotate", error_rate=1.0, **knobs)
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await handle.stub.Annotate(
            pb.AnnotateRequest(
                assessment_name=name, annotation=pb.ANNOTATION_LEGITIMATE, wait_for_upstream=True
            ),
            timeout=10,
        )
    assert caught.value.code() == code
    assert (caught.value.details() or "").startswith("upstream refused the sidecar's call")


async def test_a_bad_key_pauses_the_outbox_and_dead_letters_nothing(
    make_google_sidecar: SidecarFactory, google_emulator: GoogleEmulator, tmp_path: Path
) -> None:
    """Issue 14 item 2 on the outbox: 40 queued annotations, an invalid API key for longer than
    `outbox_max_attempts` sends: none dead-lettered; delivery pauses and resumes by itself."""
    outbox = tmp_path / "outbox.sqlite3"
    handle = await make_google_sidecar(
        outbox=outbox, outbox_max_attempts=2, outbox_flush_interval=0.05
    )
    names = [(await assess(handle.stub, token())).assessment_name for _ in range(40)]
    await google_emulator.control.set_faults(
        "annotate", error_rate=1.0, error_reason="API_KEY_INVALID"
    )
    for name in names:
        await handle.stub.Annotate(
            pb.AnnotateRequest(assessment_name=name, annotation=pb.ANNOTATION_LEGITIMATE),
            timeout=10,
        )
    flusher = handle.sidecar.flusher
    assert flusher is not None
    await eventually(lambda: flusher.paused)
    await eventually(lambda: _annotate_calls_at_least(google_emulator, 3))
    assert handle.sidecar.outbox is not None
    assert handle.sidecar.outbox.dead_letter_count() == 0
    await eventually(lambda: _is(upstream_health(handle.health), NOT_SERVING))
    await google_emulator.control.clear_faults()
    await eventually(lambda: _all_annotated(google_emulator, names), timeout=30)
    assert handle.sidecar.outbox.dead_letter_count() == 0
    assert flusher.paused_total >= 1


async def _annotate_calls_at_least(google: GoogleEmulator, count: int) -> bool:
    return bool((await google.control.stats())["annotate_calls"] >= count)


async def _all_annotated(google: GoogleEmulator, names: list[str]) -> bool:
    return set(names) <= set((await google.control.stats())["annotated_names"])


async def test_a_row_google_refuses_is_dead_lettered_the_others_delivered(
    make_google_sidecar: SidecarFactory, google_emulator: GoogleEmulator, tmp_path: Path
) -> None:
    handle = await make_google_sidecar(
        outbox=tmp_path / "outbox.sqlite3", outbox_max_attempts=2, outbox_flush_interval=0.05
    )
    good = [(await assess(handle.stub, token())).assessment_name for _ in range(5)]
    unknown = f"projects/{g.PROJECT_NUMBER}/assessments/ffff0000ffff0000"
    for name in [*good, unknown]:
        await handle.stub.Annotate(
            pb.AnnotateRequest(assessment_name=name, annotation=pb.ANNOTATION_LEGITIMATE),
            timeout=10,
        )
    outbox = handle.sidecar.outbox
    assert outbox is not None
    await eventually(lambda: outbox.dead_letter_count() == 1, timeout=30)
    assert await _all_annotated(google_emulator, good)
    assert handle.sidecar.flusher is not None and handle.sidecar.flusher.paused_total == 0


async def test_the_shutdown_drain_respects_each_rows_back_off(
    make_google_sidecar: SidecarFactory, google_emulator: GoogleEmulator, tmp_path: Path
) -> None:
    """Issue 14 item 5: one row upstream keeps refusing, a 3 s drain: a handful of sends, not
    one every 0.1 s (before the fix: 109 sends in 21.8 s in the issue, 26 in 3 s here)."""
    handle = await make_google_sidecar(outbox=tmp_path / "outbox.sqlite3", outbox_max_attempts=100)
    unknown = f"projects/{g.PROJECT_NUMBER}/assessments/ffff0000ffff0000"
    await handle.stub.Annotate(
        pb.AnnotateRequest(assessment_name=unknown, annotation=pb.ANNOTATION_LEGITIMATE), timeout=10
    )
    await eventually(lambda: _annotate_calls_at_least(google_emulator, 1))
    before = (await google_emulator.control.stats())["annotate_calls"]
    assert handle.sidecar.flusher is not None
    left = await handle.sidecar.flusher.stop(3.0)
    sends = (await google_emulator.control.stats())["annotate_calls"] - before
    assert left == 1
    assert sends <= 4, f"{sends} sends in a 3 s drain (back-off 0.5 s, 1 s, 2 s, … with jitter)"


# ---- Application Default Credentials through the metadata server ------------------------------


@asynccontextmanager
async def adc_sidecar(
    google: GoogleEmulator, tmp_path: Path, *args: str, **settings: str
) -> AsyncIterator[tuple[Process, Any, Any]]:
    env = google.adc_env(**{f"RECAPTCHA_SIDECAR_{k.upper()}": v for k, v in settings.items()})
    process = sidecar_process(
        *google.sidecar_args("--listen", f"127.0.0.1:{free_port()}", *args), env=env
    )
    channel = grpc.aio.insecure_channel(process.addresses()[0])
    try:
        yield (
            process,
            sidecar_pb2_grpc.VerificationServiceStub(channel),
            health_pb2_grpc.HealthStub(channel),
        )
    finally:
        await channel.close()
        process.terminate()


async def test_adc_from_the_metadata_server_assesses(
    google_emulator: GoogleEmulator, tmp_path: Path
) -> None:
    async with adc_sidecar(google_emulator, tmp_path) as (_, stub, health):
        value = token()
        answer = await assess(stub, value)
        assert answer.token_status == pb.TOKEN_STATUS_VALID
        second = await assess(stub, token())
        assert second.token_status == pb.TOKEN_STATUS_VALID
        assert await upstream_health(health) == SERVING
    stats = await google_emulator.control.stats()
    assert stats["calls_by_credential"] == {"access_token": 2}
    assert stats["access_tokens_issued"] == 1, "one token, refreshed only when it expires"


async def test_a_refused_token_is_config_closed_released_not_retried_not_counted(
    google_emulator: GoogleEmulator, tmp_path: Path
) -> None:
    """Issue 14 item 1: the metadata server answers 403 (a broken Workload Identity binding):
    closed though on_upstream_failure is open, nothing reaches Google, the token released, no
    retry, the breaker closed, `upstream` NOT_SERVING."""
    config = open_config(tmp_path)
    async with adc_sidecar(
        google_emulator, tmp_path, "--config", str(config), breaker_min_calls="3"
    ) as (_, stub, health):
        await google_emulator.control.set_faults("metadata", status=403)
        await google_emulator.control.expire_access_tokens()  # none yet: the first call asks
        values = [token() for _ in range(8)]
        for value in values:
            answer = await assess(stub, value)
            assert (answer.token_status, answer.decided_by, answer.allowed) == (
                pb.TOKEN_STATUS_UNCHECKED,
                "config:credentials_unavailable",
                False,
            )
            await asyncio.sleep(
                0.15
            )  # past the sidecar's one-second memory of a failure now and then
        await eventually(lambda: _is(upstream_health(health), NOT_SERVING))
        await google_emulator.control.clear_faults()
        await asyncio.sleep(1.1)  # the remembered failure expires
        again = await assess(stub, values[0])
        assert again.token_status == pb.TOKEN_STATUS_VALID, "the token had been released"
    stats = await google_emulator.control.stats(tokens=values)
    assert stats["create_calls"] == 1, "only the call after the metadata server healed"
    requests = stats["metadata_server"]["requests"]
    token_requests = sum(n for path, n in requests.items() if path.endswith("/token"))
    assert 2 <= token_requests <= 8 + 1, "at most one refresh per call, none retried"


async def test_a_hanging_metadata_server_is_transient_within_the_deadline(
    google_emulator: GoogleEmulator, tmp_path: Path
) -> None:
    """GKE's metadata server hiccups: transient, the action's on_upstream_failure decides."""
    config = open_config(tmp_path)
    async with adc_sidecar(google_emulator, tmp_path, "--config", str(config)) as (_, stub, _h):
        await google_emulator.control.set_faults("metadata", hang=True)
        answer = await assess(stub, token(), timeout=3.0)
        assert answer.token_status == pb.TOKEN_STATUS_UNCHECKED
        assert (answer.decided_by, answer.allowed) == ("transient:credentials_unavailable", True)
        await google_emulator.control.clear_faults()
    assert (await google_emulator.control.stats())["create_calls"] == 0


# ---- a proxy, and startup ---------------------------------------------------------------------


async def test_grpc_proxy_carries_the_calls_to_the_tls_endpoint(
    google_emulator: GoogleEmulator, tmp_path: Path
) -> None:
    """Issue 14 item 7: gRPC reads `grpc_proxy` / `https_proxy` itself; the TLS session runs
    end to end through the proxy's CONNECT tunnel, trusting `upstream_ca_file`."""
    from tests.support.connect_proxy import ConnectProxy

    async with ConnectProxy() as proxy:
        env = {
            **g.probe_env(google_emulator, "api_key"),
            "grpc_proxy": proxy.url,
            "no_grpc_proxy": "",
            "no_proxy": "",
        }
        process = sidecar_process(
            *google_emulator.sidecar_args("--listen", f"127.0.0.1:{free_port()}"),
            env={**env, "RECAPTCHA_SIDECAR_API_KEY": g.API_KEY},
        )
        channel = grpc.aio.insecure_channel(process.addresses()[0])
        try:
            answer = await assess(sidecar_pb2_grpc.VerificationServiceStub(channel), token())
        finally:
            await channel.close()
            process.terminate()
    assert answer.token_status == pb.TOKEN_STATUS_VALID
    assert proxy.tunnels == [google_emulator.address]


def test_no_credentials_at_all_is_one_line_and_exit_2(tmp_path: Path) -> None:
    """Issue 14 item 8 (was a DefaultCredentialsError traceback and exit 1)."""
    env = {
        "PATH": "/usr/bin:/bin",
        "HOME": str(tmp_path),
        "CLOUDSDK_CONFIG": str(tmp_path / "gcloud"),
        "NO_GCE_CHECK": "true",
        "PYTHONPATH": ":".join(sys.path),
    }
    done = subprocess.run(
        [sys.executable, "-m", "sidecar", "serve", "--project", "p", "--listen", "127.0.0.1:0"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 2, done
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in done.stderr
    assert lines[0].startswith("recaptcha-sidecar: no credentials for Google: set api_key_file")


def test_an_unreadable_ca_file_is_one_line_and_exit_2(tmp_path: Path) -> None:
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "sidecar",
            "serve",
            "--project",
            "p",
            "--api-key",
            "k",
            "--upstream-ca-file",
            str(tmp_path / "missing.pem"),
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 2
    assert f"upstream_ca_file: no such file {tmp_path / 'missing.pem'}" in done.stderr


# ---- the reference table ----------------------------------------------------------------------

# What docs/failures.md promises for each upstream failure: the rows these tests prove.
FAILURE_TABLE = {
    "the metadata server refuses a token (HTTP 4xx)": "config:credentials_unavailable",
    "the metadata server times out or answers 5xx": "transient:credentials_unavailable",
    "an invalid API key (`INVALID_ARGUMENT` + `API_KEY_INVALID`)": "config:invalid_argument",
    "upstream's certificate does not chain to the trusted roots": "config:tls_untrusted",
    "the endpoint does not resolve": "config:endpoint_unresolvable",
    "`INVALID_ARGUMENT` naming a field the app sent (`BadRequest`)": "request:invalid_argument",
    "inside Google's `RetryInfo` window after `RESOURCE_EXHAUSTED`": "quota:retry_after",
}


def test_the_failure_table_in_the_docs_says_what_these_tests_prove() -> None:
    table = (ROOT / "docs" / "failures.md").read_text()
    rows = {
        line.split("|")[1].strip(): line.split("|")[2]
        for line in table.splitlines()
        if line.startswith("| ") and line.count("|") >= 4
    }
    for situation, decided_by in FAILURE_TABLE.items():
        assert situation in rows, f"docs/failures.md has no row for {situation!r}"
        assert f"`{decided_by}`" in rows[situation], (situation, rows[situation])
    assert json.dumps(FAILURE_TABLE)
