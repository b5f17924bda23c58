"""The emulator's control plane: fault knobs and counters over gRPC, JSON on the wire.

It shares the emulator's server so that tests in another process (reliability tests, the
benchmark) can steer and observe the very upstream the sidecar talks to. JSON bytes keep it
free of a .proto and of generated code; it is a test tool, not a contract. It has no auth:
never expose an emulator beyond loopback.

Wire shapes (every field optional unless noted):

- ``SetFaults``: ``{"rpc": "create" | "annotate" | "metadata", "faults": {knob: value}}``
  replaces that RPC's knobs; ``{"clear": true}`` resets all. Answers
  ``{"faults": {rpc: {knob: value}}}``.
- ``GetStats``: ``{"tokens": [str], "digests": [hex]}`` answers ``EmulatorService.stats()``.
- ``Reset``: ``{}`` forgets tokens, assessments, counters and faults. Answers ``{}``.
- ``ExpireAccessTokens``: ``{}`` makes every access token issued so far expired. Answers
  ``{"expired": n}``.

Bad requests answer INVALID_ARGUMENT with the reason in the details.
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable, Iterable
from typing import Any

import grpc

from sidecar.emulator.service import EmulatorService

CONTROL_SERVICE_NAME = "recaptcha.sidecar.emulator.v1.Control"

_Json = dict[str, Any]


def _dumps(value: _Json) -> bytes:
    return json.dumps(value, separators=(",", ":")).encode("utf-8")


def _loads(data: bytes) -> _Json:
    """Empty bytes mean an empty request, so any gRPC tool can call with no body."""
    if not data:
        return {}
    value = json.loads(data.decode("utf-8"))
    if not isinstance(value, dict):
        raise ValueError("the request must be a JSON object")
    return value


def control_handler(service: EmulatorService) -> Any:
    """The generic handler serving the Control service for ``service``."""

    def method(fn: Callable[[_Json], _Json]) -> Any:
        async def handle(request: bytes, context: Any) -> _Json:
            try:
                return fn(_loads(request))
            except (ValueError, TypeError, UnicodeDecodeError) as exc:
                await context.abort(grpc.StatusCode.INVALID_ARGUMENT, str(exc))
                raise  # unreachable: abort raises

        return grpc.unary_unary_rpc_method_handler(handle, response_serializer=_dumps)

    def set_faults(request: _Json) -> _Json:
        if request.get("clear"):
            service.clear_faults()
            return {"faults": service.faults()}
        rpc = request.get("rpc")
        knobs = request.get("faults", {})
        if not isinstance(rpc, str) or not isinstance(knobs, dict):
            raise ValueError('expected {"rpc": "create" | "annotate" | "metadata", "faults": {}}')
        return {"faults": service.set_faults(rpc, **knobs)}

    def get_stats(request: _Json) -> _Json:
        tokens = request.get("tokens", [])
        digests = request.get("digests", [])
        if not isinstance(tokens, list) or not isinstance(digests, list):
            raise ValueError("tokens and digests must be lists of strings")
        return service.stats(tokens=tokens, digests=digests)

    def reset(request: _Json) -> _Json:
        service.reset()
        return {}

    def expire_access_tokens(request: _Json) -> _Json:
        return {"expired": service.expire_access_tokens()}

    return grpc.method_handlers_generic_handler(
        CONTROL_SERVICE_NAME,
        {
            "SetFaults": method(set_faults),
            "GetStats": method(get_stats),
            "Reset": method(reset),
            "ExpireAccessTokens": method(expire_access_tokens),
        },
    )


class EmulatorControl:
    """Async client for the control plane, over a channel to the emulator's address."""

    def __init__(self, channel: Any, *, timeout: float = 5.0) -> None:
        self._timeout = timeout
        self._set_faults = self._method(channel, "SetFaults")
        self._get_stats = self._method(channel, "GetStats")
        self._reset = self._method(channel, "Reset")
        self._expire = self._method(channel, "ExpireAccessTokens")

    @staticmethod
    def _method(channel: Any, name: str) -> Callable[..., Awaitable[_Json]]:
        call: Callable[..., Awaitable[_Json]] = channel.unary_unary(
            f"/{CONTROL_SERVICE_NAME}/{name}",
            request_serializer=_dumps,
            response_deserializer=_loads,
        )
        return call

    async def set_faults(self, rpc: str, **knobs: object) -> dict[str, dict[str, Any]]:
        """Replace the knobs of ``rpc``; returns every RPC's knobs.

        "create" / "annotate": latency_ms, latency_jitter_ms, hang, quota, error_rate,
        error_code (name or number), error_reason, error_field, fail_after_consume_rate,
        retry_delay_ms, seed.
        "metadata" (the GCE metadata server's token endpoint): status, hang, latency_ms,
        times, token_lifetime_s.
        """
        wire = {k: v.name if isinstance(v, grpc.StatusCode) else v for k, v in knobs.items()}
        answer = await self._set_faults({"rpc": rpc, "faults": wire}, timeout=self._timeout)
        faults: dict[str, dict[str, Any]] = answer["faults"]
        return faults

    async def clear_faults(self) -> None:
        """Make the emulated upstream healthy again."""
        await self._set_faults({"clear": True}, timeout=self._timeout)

    async def stats(self, *, tokens: Iterable[str] = (), digests: Iterable[str] = ()) -> _Json:
        """Counters and recent requests; per-token counts for ``tokens``/``digests`` only."""
        return await self._get_stats(
            {"tokens": list(tokens), "digests": list(digests)}, timeout=self._timeout
        )

    async def calls_for(self, token: str) -> int:
        """How many CreateAssessment calls carried ``token`` (the upstream cost of it)."""
        stats = await self.stats(tokens=[token])
        count: int = stats["create_calls_by_token"][token]
        return count

    async def reset(self) -> None:
        """Forget every token, assessment, counter and fault."""
        await self._reset({}, timeout=self._timeout)

    async def expire_access_tokens(self) -> int:
        """Expire every access token issued so far; clients must refresh. Returns how many."""
        answer = await self._expire({}, timeout=self._timeout)
        expired: int = answer["expired"]
        return expired
