"""Credentials the sidecar obtains itself: a failed refresh judged from google-auth's types and
the HTTP status it carries; one refresh shared by concurrent calls, bounded by each call's
deadline; a failure remembered briefly; Google's window after RESOURCE_EXHAUSTED; the
endpoint probe's parsing."""

from __future__ import annotations

import asyncio
import threading
from typing import Any

import pytest
from google.auth import exceptions

from sidecar.core.ports import RETRY_AFTER, FailureKind, UpstreamError, UpstreamFailure
from sidecar.upstream import diagnosis
from sidecar.upstream.credentials import (
    CREDENTIALS_UNAVAILABLE,
    AccessTokens,
    ApiKey,
    refresh_failure,
)
from sidecar.upstream.quota import MAX_WINDOW, RetryAfterWindow
from tests.support.clock import FakeClock


class Response:
    """What google-auth's transports attach to a TransportError: a `.status`."""

    def __init__(self, status: int) -> None:
        self.status = status


def metadata_refusal(status: int) -> exceptions.RefreshError:
    """As compute_engine.Credentials.refresh raises it for a metadata server's HTTP answer."""
    transport = exceptions.TransportError("Failed to retrieve token", Response(status))
    try:
        raise exceptions.RefreshError(transport) from transport
    except exceptions.RefreshError as error:
        return error


def exhausted_retries() -> exceptions.RefreshError:
    """5xx after google-auth's own retries: a TransportError with a message, no response."""
    transport = exceptions.TransportError("Compute Engine Metadata server unavailable")
    try:
        raise exceptions.RefreshError(transport) from transport
    except exceptions.RefreshError as error:
        return error


@pytest.mark.parametrize(
    ("error", "kind"),
    [
        (metadata_refusal(403), FailureKind.CONFIG),
        (metadata_refusal(404), FailureKind.CONFIG),
        (metadata_refusal(401), FailureKind.CONFIG),
        (metadata_refusal(500), FailureKind.TRANSIENT),
        (metadata_refusal(503), FailureKind.TRANSIENT),
        (metadata_refusal(429), FailureKind.TRANSIENT),
        (metadata_refusal(408), FailureKind.TRANSIENT),
        (exhausted_retries(), FailureKind.TRANSIENT),
        (exceptions.TransportError("timed out"), FailureKind.TRANSIENT),
        (exceptions.RefreshError("internal_failure", retryable=True), FailureKind.TRANSIENT),
        (exceptions.RefreshError("invalid_grant: account not found"), FailureKind.CONFIG),
        (exceptions.DefaultCredentialsError("no file"), FailureKind.CONFIG),
    ],
)
def test_a_failed_refresh_is_judged_from_types_and_status(
    error: BaseException, kind: FailureKind
) -> None:
    failure = refresh_failure(error)
    assert failure.kind is kind
    assert (failure.code, failure.reached) == (CREDENTIALS_UNAVAILABLE, False)
    assert failure.retryable is (kind is FailureKind.TRANSIENT)


def test_the_message_is_never_what_decides() -> None:
    """A 503 whose text says "403 Forbidden" is still transient; a 403 saying "try again" is
    still config."""
    transport = exceptions.TransportError("403 Forbidden, please", Response(503))
    assert refresh_failure(exceptions.RefreshError(transport)).kind is FailureKind.TRANSIENT
    transport = exceptions.TransportError("temporarily unavailable, try again", Response(403))
    assert refresh_failure(exceptions.RefreshError(transport)).kind is FailureKind.CONFIG


class FakeCredentials:
    """google-auth's Credentials surface the sidecar uses: valid, refresh(request), apply."""

    def __init__(self, *failures: BaseException, block: threading.Event | None = None) -> None:
        self.failures = list(failures)
        self.block = block
        self.refreshes = 0
        self.token = ""

    @property
    def valid(self) -> bool:
        return bool(self.token)

    def refresh(self, request: Any) -> None:
        self.refreshes += 1
        if self.block is not None:
            self.block.wait(5)
        if self.failures:
            raise self.failures.pop(0)
        self.token = f"ya29.t{self.refreshes}"

    def apply(self, headers: dict[str, str]) -> None:
        headers["authorization"] = f"Bearer {self.token}"
        headers["x-goog-user-project"] = "billing-project"


async def test_one_refresh_serves_every_waiting_call_and_is_kept_until_invalid() -> None:
    gate = threading.Event()
    credentials = FakeCredentials(block=gate)
    tokens = AccessTokens(credentials, request=lambda: None)
    waiting = [asyncio.ensure_future(tokens.metadata(5.0)) for _ in range(10)]
    await asyncio.sleep(0.05)
    gate.set()
    answers = await asyncio.gather(*waiting)
    assert credentials.refreshes == 1
    assert set(answers) == {
        (("authorization", "Bearer ya29.t1"), ("x-goog-user-project", "billing-project"))
    }
    await tokens.metadata(1.0)
    assert credentials.refreshes == 1, "a valid token is reused"
    tokens.invalidate()  # Google said UNAUTHENTICATED
    assert (await tokens.metadata(1.0))[0] == ("authorization", "Bearer ya29.t2")


async def test_a_call_waits_no_longer_than_its_deadline_for_a_hung_refresh() -> None:
    gate = threading.Event()
    credentials = FakeCredentials(block=gate)
    tokens = AccessTokens(credentials, request=lambda: None)
    loop = asyncio.get_running_loop()
    started = loop.time()
    with pytest.raises(UpstreamError) as caught:
        await tokens.metadata(0.2)
    assert loop.time() - started < 1.0
    assert (caught.value.kind, caught.value.reached) == (FailureKind.TRANSIENT, False)
    gate.set()  # the refresh carries on for the next calls
    await asyncio.sleep(0.1)
    assert (await tokens.metadata(1.0))[0][1] == "Bearer ya29.t1"
    assert credentials.refreshes == 1


async def test_a_refused_refresh_is_remembered_for_a_second_then_tried_again() -> None:
    clock = FakeClock()
    credentials = FakeCredentials(metadata_refusal(403), metadata_refusal(403))
    tokens = AccessTokens(credentials, request=lambda: None, clock=clock)
    for _ in range(5):
        with pytest.raises(UpstreamError) as caught:
            await tokens.metadata(1.0)
        assert caught.value.kind is FailureKind.CONFIG
    assert credentials.refreshes == 1, "not one metadata request per call"
    clock.advance(1.5)
    with pytest.raises(UpstreamError):
        await tokens.metadata(1.0)
    assert credentials.refreshes == 2
    clock.advance(1.5)
    assert (await tokens.metadata(1.0))[0][1] == "Bearer ya29.t3"


async def test_an_api_key_is_one_header() -> None:
    assert await ApiKey("k").metadata(0.0) == (("x-goog-api-key", "k"),)


# ---- Google's RetryInfo window ----------------------------------------------------------------


def quota(pushback: float | None, code: str = "RESOURCE_EXHAUSTED") -> UpstreamFailure:
    return UpstreamFailure(FailureKind.QUOTA, code, "x", reached=False, pushback=pushback)


def test_the_window_opens_on_quota_with_retry_info_only() -> None:
    clock = FakeClock()
    window = RetryAfterWindow(clock)
    window.note(quota(None))
    assert window.refusal() is None, "no RetryInfo, no window"
    window.note(UpstreamFailure(FailureKind.TRANSIENT, "UNAVAILABLE", pushback=30.0))
    assert window.refusal() is None, "pushback on other failures is the retry loop's"
    window.note(quota(30.0))
    refusal = window.refusal()
    assert refusal is not None
    assert (refusal.kind, refusal.code, refusal.reached) == (FailureKind.QUOTA, RETRY_AFTER, False)
    assert refusal.failure.retryable is False
    clock.advance(29.9)
    assert window.refusal() is not None
    clock.advance(0.2)
    assert window.refusal() is None and window.remaining() == 0


def test_the_window_only_grows_is_capped_and_its_own_refusals_do_not_extend_it() -> None:
    clock = FakeClock()
    window = RetryAfterWindow(clock)
    window.note(quota(30.0))
    window.note(quota(5.0))
    assert window.remaining() == pytest.approx(30.0)
    window.note(quota(25.0, RETRY_AFTER))
    clock.advance(10)
    window.note(quota(25.0, RETRY_AFTER))
    assert window.remaining() == pytest.approx(20.0)
    window.note(quota(10 * MAX_WINDOW))
    assert window.remaining() == pytest.approx(MAX_WINDOW)


# ---- the endpoint probe -----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("endpoint", "target"),
    [
        ("recaptchaenterprise.googleapis.com:443", ("recaptchaenterprise.googleapis.com", 443)),
        ("dns:///example.com:8443", ("example.com", 8443)),
        ("[::1]:50052", ("::1", 50052)),
        ("example.com", ("example.com", 443)),
        ("unix:///tmp/emulator.sock", None),
    ],
)
def test_endpoints_are_parsed_for_the_probe(endpoint: str, target: object) -> None:
    assert diagnosis._host_port(endpoint) == target


def test_behind_a_proxy_the_probe_stands_aside(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("grpc_proxy", "https_proxy", "http_proxy", "no_grpc_proxy", "no_proxy"):
        monkeypatch.delenv(name, raising=False)
        monkeypatch.delenv(name.upper(), raising=False)
    assert not diagnosis._proxied("googleapis.com")
    monkeypatch.setenv("https_proxy", "http://proxy:3128")
    assert diagnosis._proxied("recaptchaenterprise.googleapis.com")
    monkeypatch.setenv("no_proxy", "localhost,.googleapis.com")
    assert not diagnosis._proxied("recaptchaenterprise.googleapis.com")
    assert diagnosis._proxied("example.com")
