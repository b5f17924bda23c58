"""Listener security: who may call the sidecar, on which address.

A loopback or Unix-socket listener is reachable only from inside the pod (the socket's file
mode decides who may connect), so it needs nothing. Any other address is reachable from the
network: it must carry TLS (optionally verifying client certificates, i.e. mTLS) or a bearer
token, or the operator must say `insecure_listen` explicitly.

Calls on exposed listeners arrive on a gRPC server of their own, built with the token
interceptor, so the check applies to exactly those listeners. It never depends on the caller's
address: a service mesh proxy delivers outside calls from 127.0.0.6, which looks local.
Kubelet's gRPC probes speak neither TLS nor tokens; they go to `health_listen`, a separate
listener that serves only `grpc.health.v1.Health` (SERVING or not, nothing else).

Certificates and the token are read from files (mounted Secrets) and re-read when the files
change, so cert-manager renewals and Secret rotation need no restart.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import os
import ssl
import threading
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import grpc

log = logging.getLogger(__name__)

MIN_TOKEN_LENGTH = 16
UNAUTHENTICATED_DETAILS = "missing or invalid bearer token"


class SecurityError(Exception):
    """Listener security that cannot be set up; the message names the setting."""


def apply_socket_mode(address: str, mode: str) -> None:
    """Set the permission bits of a Unix socket gRPC has just created."""
    path = address.removeprefix("unix://").removeprefix("unix:")
    os.chmod(path, int(mode, 8))


def fingerprint(path: Path) -> tuple[int, int, int]:
    """Changes when a mounted Secret is updated (kubelet swaps a symlink, so follow it)."""
    info = path.stat()
    return (info.st_ino, info.st_mtime_ns, info.st_size)


class TokenFile:
    """A bearer token kept in a file; re-read when the file changes (Secret rotation)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._lock = threading.Lock()
        self._seen: tuple[int, int, int] | None = None
        self._digest = b""
        self.reload()

    def reload(self) -> None:
        try:
            seen = fingerprint(self.path)
            token = self.path.read_text().strip()
        except OSError as error:
            raise SecurityError(
                f"auth_token_file: cannot read {self.path}: {error.strerror}"
            ) from None
        if len(token) < MIN_TOKEN_LENGTH:
            raise SecurityError(
                f"auth_token_file: the token in {self.path} must be at least "
                f"{MIN_TOKEN_LENGTH} characters"
            )
        with self._lock:
            self._seen, self._digest = seen, hashlib.sha256(token.encode()).digest()

    def _refresh(self) -> None:
        try:
            if fingerprint(self.path) != self._seen:
                self.reload()
        except (OSError, SecurityError) as error:
            # Keep the last good token: a half-written Secret update must not lock everyone out.
            log.warning(
                "auth token file unreadable, keeping the previous one: %s", type(error).__name__
            )

    def matches(self, presented: str) -> bool:
        """Constant-time comparison of digests, so neither content nor length leaks."""
        self._refresh()
        return hmac.compare_digest(hashlib.sha256(presented.encode()).digest(), self._digest)


def bearer_token(metadata: Sequence[tuple[str, str | bytes]] | None) -> str | None:
    """The token of an `authorization: Bearer …` header, if there is exactly one such header."""
    values = [v for k, v in metadata or () if k == "authorization"]
    if len(values) != 1 or not isinstance(values[0], str):
        return None
    scheme, _, token = values[0].partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        return None
    return token.strip()


async def _deny_unary(request: Any, context: grpc.aio.ServicerContext) -> Any:
    await context.abort(grpc.StatusCode.UNAUTHENTICATED, UNAUTHENTICATED_DETAILS)


def _unread(data: bytes) -> None:
    """An unauthenticated caller's bytes are never parsed."""
    return None


def _denying(handler: grpc.RpcMethodHandler) -> grpc.RpcMethodHandler:
    """A handler of the same shape as `handler` that answers UNAUTHENTICATED without decoding
    the request (authentication comes before decoding: junk from a stranger costs no parse)."""
    codecs = {
        "request_deserializer": _unread,
        "response_serializer": handler.response_serializer,
    }
    if handler.unary_unary:
        return grpc.unary_unary_rpc_method_handler(_deny_unary, **codecs)
    if handler.unary_stream:
        return grpc.unary_stream_rpc_method_handler(_deny_unary, **codecs)
    if handler.stream_unary:
        return grpc.stream_unary_rpc_method_handler(_deny_unary, **codecs)
    return grpc.stream_stream_rpc_method_handler(_deny_unary, **codecs)


class BearerTokenInterceptor(grpc.aio.ServerInterceptor):  # type: ignore[misc]
    """Answers UNAUTHENTICATED unless the call carries `authorization: Bearer <token>`.

    Installed only on the server that holds the exposed listeners."""

    def __init__(self, token: TokenFile) -> None:
        self._token = token

    async def intercept_service(
        self,
        continuation: Callable[[grpc.HandlerCallDetails], Awaitable[grpc.RpcMethodHandler]],
        handler_call_details: grpc.HandlerCallDetails,
    ) -> grpc.RpcMethodHandler:
        handler = await continuation(handler_call_details)
        if handler is None:
            return None
        presented = bearer_token(handler_call_details.invocation_metadata)
        if presented is not None and self._token.matches(presented):
            return handler
        return _denying(handler)


@dataclass(frozen=True)
class TlsFiles:
    """Server certificate and key, and optionally the CA that client certificates must chain
    to (mTLS). Re-read on the next handshake after any of the files changes."""

    cert: Path
    key: Path
    client_ca: Path | None = None

    def _read(self) -> tuple[bytes, bytes, bytes | None]:
        try:
            cert, key = self.cert.read_bytes(), self.key.read_bytes()
            ca = self.client_ca.read_bytes() if self.client_ca else None
        except OSError as error:
            raise SecurityError(f"tls: cannot read {error.filename}: {error.strerror}") from None
        return cert, key, ca

    def check(self) -> None:
        """Fail at start, with the setting named, rather than at the first handshake."""
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        try:
            context.load_cert_chain(self.cert, self.key)
        except (OSError, ssl.SSLError) as error:
            raise SecurityError(
                f"tls_cert_file/tls_key_file: {self.cert} and {self.key} are not a matching "
                f"PEM certificate chain and private key ({error})"
            ) from None
        if self.client_ca is not None:
            try:
                context.load_verify_locations(cafile=self.client_ca)
            except (OSError, ssl.SSLError) as error:
                raise SecurityError(
                    f"tls_client_ca_file: {self.client_ca} is not a PEM CA bundle ({error})"
                ) from None

    def _fingerprints(self) -> tuple[tuple[int, int, int], ...]:
        paths = [self.cert, self.key, *([self.client_ca] if self.client_ca else [])]
        return tuple(fingerprint(path) for path in paths)

    def server_credentials(self) -> grpc.ServerCredentials:
        """Credentials whose certificates follow the files (cert-manager renewals)."""
        self.check()
        state = {"seen": self._fingerprints()}

        def configuration() -> grpc.ServerCertificateConfiguration:
            cert, key, ca = self._read()
            return grpc.ssl_server_certificate_configuration([(key, cert)], root_certificates=ca)

        def fetch() -> grpc.ServerCertificateConfiguration | None:
            # Called by gRPC before each handshake; must be quick and must not raise.
            try:
                seen = self._fingerprints()
                if seen == state["seen"]:
                    return None
                self.check()
                fresh = configuration()
            except (OSError, SecurityError) as error:
                log.warning("TLS files unreadable, keeping the previous certificate: %s", error)
                return None
            state["seen"] = seen
            log.info("TLS certificate reloaded")
            return fresh

        return grpc.dynamic_ssl_server_credentials(
            configuration(), fetch, require_client_authentication=self.client_ca is not None
        )

    def _context(self) -> ssl.SSLContext:
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.minimum_version = ssl.TLSVersion.TLSv1_2
        context.load_cert_chain(self.cert, self.key)
        if self.client_ca is not None:
            context.verify_mode = ssl.CERT_REQUIRED
            context.load_verify_locations(cafile=self.client_ca)
        return context

    def ssl_context(self) -> ssl.SSLContext:
        """The same rules for an asyncio (HTTP) listener: a context whose certificates
        follow the files. Each handshake looks at the files (as gRPC's fetch does) and,
        after a change, is moved onto a fresh context (`sni_callback` may swap it)."""
        self.check()
        state = {"seen": self._fingerprints(), "current": self._context()}

        def follow(connection: ssl.SSLObject, _name: str | None, _: ssl.SSLContext) -> None:
            try:
                seen = self._fingerprints()
                if seen != state["seen"]:
                    self.check()
                    state["current"], state["seen"] = self._context(), seen
                    log.info("TLS certificate reloaded")
            except (OSError, ssl.SSLError, SecurityError) as error:
                log.warning("TLS files unreadable, keeping the previous certificate: %s", error)
            connection.context = state["current"]  # type: ignore[assignment]

        listening = self._context()
        listening.sni_callback = follow
        return listening


@dataclass(frozen=True)
class ListenerSecurity:
    """What the exposed listeners carry: TLS credentials, a token check, or neither
    (only with `insecure_listen`)."""

    credentials: grpc.ServerCredentials | None
    interceptors: tuple[grpc.aio.ServerInterceptor, ...]

    @property
    def describe(self) -> str:
        parts = [
            *(["tls"] if self.credentials is not None else []),
            *(["token"] if self.interceptors else []),
        ]
        return "+".join(parts) or "insecure"


def listener_security(
    *,
    tls_cert_file: Path | None,
    tls_key_file: Path | None,
    tls_client_ca_file: Path | None,
    auth_token_file: Path | None,
) -> ListenerSecurity:
    """Read the files the settings name and build what the exposed server needs."""
    credentials = None
    if tls_cert_file is not None and tls_key_file is not None:
        credentials = TlsFiles(tls_cert_file, tls_key_file, tls_client_ca_file).server_credentials()
    interceptors: tuple[grpc.aio.ServerInterceptor, ...] = ()
    if auth_token_file is not None:
        interceptors = (BearerTokenInterceptor(TokenFile(auth_token_file)),)
    return ListenerSecurity(credentials, interceptors)
