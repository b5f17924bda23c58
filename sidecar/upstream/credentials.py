"""Credentials for the calls to Google, obtained and refreshed here and attached per call.

Google's gRPC transport hides the access token behind a metadata plugin: when the metadata
server refuses a token (a broken Workload Identity binding), the call ends in a bare
`UNAVAILABLE: Getting metadata from plugin failed`, indistinguishable from Google being down.
So the sidecar asks google-auth for the token itself, before each call that needs a fresh one,
and judges a failure from google-auth's typed exceptions, never from a message:

- the metadata server (or token endpoint) answered HTTP 4xx (403, 404, 401): the credential
  cannot be had. `config`: closed unless `on_config_error` says otherwise, nothing sent, the
  token released, not retried, not counted by the breaker, `upstream` unhealthy;
- it timed out, could not be reached, answered 5xx, 408 or 429 (GKE's metadata server has
  hiccups): `transient`, like Google being briefly unavailable;
- any other refusal (an OAuth `invalid_grant`, a malformed key file): `config`.

A refresh runs in a thread (google-auth is synchronous) and is shared by every call waiting
for it; each call waits no longer than its own deadline, while the refresh carries on for the
next ones. A failure is remembered for `FAILURE_MEMORY` seconds so a refused credential does
not turn every request into a metadata-server request.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading
import time
from collections.abc import Callable, Sequence
from typing import Any, Protocol

from sidecar.core.ports import Clock, FailureKind, UpstreamError, UpstreamFailure

log = logging.getLogger(__name__)

CLOUD_PLATFORM_SCOPE = "https://www.googleapis.com/auth/cloud-platform"
CREDENTIALS_UNAVAILABLE = "CREDENTIALS_UNAVAILABLE"
FAILURE_MEMORY = 1.0  # seconds a failed refresh answers for, before another is tried
Metadata = tuple[tuple[str, str], ...]


class CredentialsMissing(Exception):
    """No credentials could be found at startup: the one line names what to set."""


class CallCredentials(Protocol):
    """What every upstream call carries to authenticate itself."""

    async def metadata(self, timeout: float) -> Metadata:
        """The metadata for one call, within `timeout` seconds; raises `UpstreamError`."""
        ...

    def invalidate(self) -> None:
        """Google refused what was sent (an expired or revoked token): get a fresh one."""
        ...


class ApiKey:
    """An API key, sent as `x-goog-api-key` on every call (no token to refresh)."""

    def __init__(self, key: str) -> None:
        self._metadata: Metadata = (("x-goog-api-key", key),)

    async def metadata(self, timeout: float) -> Metadata:
        return self._metadata

    def invalidate(self) -> None:
        return None


class AccessTokens:
    """OAuth access tokens from google-auth credentials (Application Default Credentials:
    Workload Identity, a GCE metadata server, a key file), refreshed before they expire."""

    def __init__(
        self,
        credentials: Any,
        *,
        request: Callable[[], Any] | None = None,
        clock: Clock = time.monotonic,
    ) -> None:
        self._credentials = credentials
        self._request = request or _requests_transport
        self._clock = clock
        self._metadata: Metadata = ()
        self._refreshing: asyncio.Future[None] | None = None
        self._failure: tuple[float, UpstreamFailure] | None = None
        self._stale = True

    async def metadata(self, timeout: float) -> Metadata:
        if not self._stale and self._credentials.valid:
            return self._metadata
        if self._failure is not None:
            failed_at, failure = self._failure
            if self._clock() - failed_at < FAILURE_MEMORY:
                raise UpstreamError(failure)
        if self._refreshing is None or self._refreshing.done():
            self._refreshing = _in_daemon_thread(self._refresh)
            self._refreshing.add_done_callback(self._settled)
        try:
            await asyncio.wait_for(asyncio.shield(self._refreshing), max(0.0, timeout))
        except TimeoutError:
            raise UpstreamError(
                UpstreamFailure(
                    FailureKind.TRANSIENT,
                    CREDENTIALS_UNAVAILABLE,
                    "no access token within the deadline (the token refresh is still running)",
                    reached=False,
                    retryable=True,
                )
            ) from None
        except UpstreamError:
            raise
        return self._metadata

    def invalidate(self) -> None:
        self._stale = True

    def _refresh(self) -> None:
        """In a thread: refresh, then keep the headers google-auth would send."""
        try:
            self._credentials.refresh(self._request())
        except Exception as error:
            raise UpstreamError(refresh_failure(error)) from None
        headers: dict[str, str] = {}
        self._credentials.apply(headers)
        self._metadata = tuple((key.lower(), value) for key, value in headers.items())
        self._stale = False

    def _settled(self, future: asyncio.Future[None]) -> None:
        if future.cancelled():
            return
        error = future.exception()
        if isinstance(error, UpstreamError):
            self._failure = (self._clock(), error.failure)
            log.warning(
                "could not get an access token for upstream: %s",
                error.failure.message,
                extra={"failure_kind": error.failure.kind.value},
            )
        elif error is None:
            self._failure = None


def _in_daemon_thread(work: Callable[[], None]) -> asyncio.Future[None]:
    """Run blocking `work` in a daemon thread of its own: a refresh hung on an unresponsive
    metadata server must not hold up the event loop's shutdown (which waits for the default
    executor's threads), and never does it hold a caller past its deadline."""
    loop = asyncio.get_running_loop()
    future: asyncio.Future[None] = loop.create_future()

    def finish(error: BaseException | None) -> None:
        if future.done():
            return
        if error is None:
            future.set_result(None)
        else:
            future.set_exception(error)

    def run() -> None:
        try:
            work()
        except BaseException as error:  # handed to the loop, raised there
            outcome: BaseException | None = error
        else:
            outcome = None
        with contextlib.suppress(RuntimeError):  # a closed loop: nobody waits any more
            loop.call_soon_threadsafe(finish, outcome)

    threading.Thread(target=run, name="upstream-token-refresh", daemon=True).start()
    return future


def refresh_failure(error: BaseException) -> UpstreamFailure:
    """What a failed google-auth refresh means, from its types and the HTTP status google-auth
    attached (the response travels as an argument of its `TransportError`)."""
    from google.auth import exceptions

    chain = list(_chain(error))
    status = next((s for s in map(_http_status, chain) if s is not None), None)
    transport = any(isinstance(e, exceptions.TransportError) for e in chain)
    retryable = any(getattr(e, "retryable", False) is True for e in chain)
    if status is not None and 400 <= status < 500 and status not in (408, 429):
        kind = FailureKind.CONFIG
        detail = f"the credential was refused (HTTP {status})"
    elif status is not None or transport or retryable:
        kind = FailureKind.TRANSIENT
        detail = f"HTTP {status}" if status is not None else "unreachable or timed out"
    else:
        kind = FailureKind.CONFIG
        detail = f"the credential was refused ({type(error).__name__})"
    return UpstreamFailure(
        kind,
        CREDENTIALS_UNAVAILABLE,
        f"access token refresh failed: {detail}",
        reached=False,
        retryable=kind is FailureKind.TRANSIENT,
    )


def _chain(error: BaseException) -> list[BaseException]:
    """The error, its causes and the exceptions it was built from (google-auth wraps a
    `TransportError` in a `RefreshError`, as cause and as argument)."""
    seen: list[BaseException] = []
    todo = [error]
    while todo:
        current = todo.pop()
        if any(current is s for s in seen) or len(seen) > 20:
            continue
        seen.append(current)
        todo.extend(a for a in current.args if isinstance(a, BaseException))
        for linked in (current.__cause__, current.__context__):
            if linked is not None:
                todo.append(linked)
    return seen


def _http_status(error: BaseException) -> int | None:
    """The HTTP status of a response google-auth attached to an error, if any."""
    for arg in error.args:
        status = getattr(arg, "status", None)
        if isinstance(status, int) and not isinstance(status, bool):
            return status
    status = getattr(getattr(error, "response", None), "status_code", None)
    return status if isinstance(status, int) else None


def _requests_transport() -> Any:
    from google.auth.transport.requests import Request

    return Request()


def application_default(scopes: Sequence[str] = (CLOUD_PLATFORM_SCOPE,)) -> AccessTokens:
    """Application Default Credentials, found as google-auth finds them (a key file in
    `GOOGLE_APPLICATION_CREDENTIALS`, gcloud's, or the GCE / GKE metadata server). Blocking
    (the metadata server detection pings): call it from a thread at startup."""
    import google.auth
    from google.auth import exceptions

    quiet = logging.getLogger("google.auth._default")  # its own warning would be a 2nd line
    level = quiet.level
    quiet.setLevel(logging.ERROR)
    try:
        credentials, _ = google.auth.default(scopes=list(scopes))
    except exceptions.DefaultCredentialsError:
        raise CredentialsMissing(
            "no credentials for Google: set api_key_file (or api_key) to an API key, or run "
            "where Application Default Credentials exist (GOOGLE_APPLICATION_CREDENTIALS, "
            "`gcloud auth application-default login`, or a GCE/GKE metadata server)"
        ) from None
    finally:
        quiet.setLevel(level)
    return AccessTokens(credentials)
