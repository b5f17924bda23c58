"""Fault knobs for the emulated RPCs, validated once and shaped as Google shapes failures.

Every injected failure carries the `google.rpc.Status` details Google would send for it (see
errors.py): `quota` is `RESOURCE_EXHAUSTED` with `ErrorInfo RATE_LIMIT_EXCEEDED`,
`QuotaFailure` and `Help`; `error_code` alone gets Google's default reason for that code;
`error_reason` picks the ErrorInfo reason (and with it the code); `error_field` makes it an
`INVALID_ARGUMENT` naming that field in a `BadRequest`; `retry_delay_ms` adds `RetryInfo`.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, fields
from typing import Any

import grpc

from sidecar.emulator import errors
from sidecar.emulator.errors import GoogleError


@dataclass(frozen=True, slots=True)
class Faults:
    """The misbehaviour configured for one RPC; the defaults are a healthy upstream."""

    latency_ms: float = 0.0
    # Each answer waits latency_ms plus a uniform draw in [0, latency_jitter_ms): Google over
    # the internet answers in 50-150 ms, not in a fixed time.
    latency_jitter_ms: float = 0.0
    error_rate: float = 0.0
    error_code: grpc.StatusCode = grpc.StatusCode.UNAVAILABLE
    error_reason: str | None = None
    error_field: str | None = None
    hang: bool = False
    fail_after_consume_rate: float = 0.0
    quota: bool = False
    retry_delay_ms: int | None = None
    seed: int | None = None
    # Parts of the assessment left out, as when the project has not enabled the feature:
    # `phone_fraud_assessment` (SMS defense), `fraud_prevention_assessment`,
    # `account_defender_assessment`.
    omit: frozenset[str] = frozenset()

    @property
    def active(self) -> bool:
        """False for a healthy configuration, so the hot path can skip every check."""
        return bool(
            self.latency_ms
            or self.latency_jitter_ms
            or self.error_rate
            or self.hang
            or self.quota
            or self.fail_after_consume_rate
        )

    @classmethod
    def from_knobs(cls, knobs: Mapping[str, object]) -> Faults:
        """Validate knobs from a test or the JSON control plane; ValueError names the bad one."""
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(knobs) - known)
        if unknown:
            raise ValueError(f"unknown fault knob(s) {unknown}; known: {sorted(known)}")
        reason = _optional_str(knobs, "error_reason")
        if reason is not None and reason not in errors.REASONS:
            raise ValueError(f"error_reason must be one of {sorted(errors.REASONS)}")
        field = _optional_str(knobs, "error_field")
        code = _status_code(knobs.get("error_code", grpc.StatusCode.UNAVAILABLE))
        implied = (
            errors.reason_code(reason)
            if reason is not None
            else grpc.StatusCode.INVALID_ARGUMENT
            if field is not None
            else None
        )
        if implied is not None:
            if "error_code" in knobs and code is not implied:
                raise ValueError(f"error_code {code.name} disagrees with the error, {implied.name}")
            code = implied
        if reason is not None and field is not None:
            raise ValueError("give error_reason or error_field, not both")
        return cls(
            latency_ms=_number(knobs, "latency_ms", 0.0, upper=None),
            latency_jitter_ms=_number(knobs, "latency_jitter_ms", 0.0, upper=None),
            error_rate=_number(knobs, "error_rate", 0.0, upper=1.0),
            error_code=code,
            error_reason=reason,
            error_field=field,
            hang=_flag(knobs, "hang"),
            fail_after_consume_rate=_number(knobs, "fail_after_consume_rate", 0.0, upper=1.0),
            quota=_flag(knobs, "quota"),
            retry_delay_ms=_optional_int(knobs, "retry_delay_ms"),
            seed=_optional_int(knobs, "seed", minimum=None),
            omit=_parts(knobs, "omit"),
        )

    def to_json(self) -> dict[str, Any]:
        """The knobs as the control plane shows them (status codes by name)."""
        out = {f.name: getattr(self, f.name) for f in fields(self)}
        out["error_code"] = self.error_code.name
        out["omit"] = sorted(self.omit)
        return out

    def _delay(self) -> float | None:
        return None if self.retry_delay_ms is None else self.retry_delay_ms / 1000.0

    def quota_error(self, project_number: str) -> GoogleError:
        return errors.rate_limit_exceeded(project_number, self._delay())

    def injected_error(self, rpc: str, project_number: str) -> GoogleError:
        """What `error_rate` injects: `error_code`, shaped by `error_reason` / `error_field`."""
        error = errors.injected(
            self.error_code,
            rpc=rpc,
            project=project_number,
            reason=self.error_reason,
            field=self.error_field,
        )
        return error.with_retry_delay(self._delay())

    def lost_answer(self) -> GoogleError:
        """What `fail_after_consume_rate` answers once the work is done."""
        return errors.plain(grpc.StatusCode.UNAVAILABLE).with_retry_delay(self._delay())


def _number(knobs: Mapping[str, object], key: str, default: float, upper: float | None) -> float:
    value = knobs.get(key, default)
    if not isinstance(value, int | float) or isinstance(value, bool) or value != value:
        raise ValueError(f"{key} must be a number")
    if value < 0 or (upper is not None and value > upper):
        raise ValueError(f"{key} must be in [0, {upper if upper is not None else 'inf'}]")
    return float(value)


def _flag(knobs: Mapping[str, object], key: str) -> bool:
    value = knobs.get(key, False)
    if not isinstance(value, bool):
        raise ValueError(f"{key} must be true or false")
    return value


def _optional_str(knobs: Mapping[str, object], key: str) -> str | None:
    value = knobs.get(key)
    if value is not None and (not isinstance(value, str) or not value):
        raise ValueError(f"{key} must be a non-empty string")
    return value


def _optional_int(knobs: Mapping[str, object], key: str, minimum: int | None = 0) -> int | None:
    value = knobs.get(key)
    if value is None:
        return None
    if not isinstance(value, int) or isinstance(value, bool):
        raise ValueError(f"{key} must be an integer")
    if minimum is not None and value < minimum:
        raise ValueError(f"{key} must be >= {minimum}")
    return value


def _parts(knobs: Mapping[str, object], key: str) -> frozenset[str]:
    from sidecar.emulator.answers import OPTIONAL_PARTS

    value = knobs.get(key, ())
    if not isinstance(value, list | tuple) or not all(v in OPTIONAL_PARTS for v in value):
        raise ValueError(f"{key} must be a list of {sorted(OPTIONAL_PARTS)}")
    return frozenset(str(v) for v in value)


def _status_code(value: object) -> grpc.StatusCode:
    """Accept a grpc.StatusCode, its name ("UNAVAILABLE") or its number (14)."""
    if isinstance(value, bool):
        raise ValueError(f"error_code must be a non-OK gRPC status code, not {value!r}")
    for code in grpc.StatusCode:
        if value is code or value == code.name or value == code.value[0]:
            if code is grpc.StatusCode.OK:
                break
            return code
    raise ValueError(f"error_code must be a non-OK gRPC status code, not {value!r}")
