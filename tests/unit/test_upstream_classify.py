"""What a failure means, decided once by `classify`: kind, reached, retryable, pushback from
either header, and ErrorInfo reasons."""

from __future__ import annotations

import grpc
import pytest
from google.protobuf import any_pb2, duration_pb2
from google.rpc import error_details_pb2, status_pb2
from grpc import aio

from sidecar.core.ports import FailureKind
from sidecar.upstream import classify as classification
from sidecar.upstream.classify import Meaning, classify


def rpc_error(code: grpc.StatusCode, *trailing: tuple[str, str | bytes]) -> aio.AioRpcError:
    return aio.AioRpcError(code, aio.Metadata(), aio.Metadata(*trailing), "details")


def test_retry_pushback_ms_header() -> None:
    error = classify(rpc_error(grpc.StatusCode.UNAVAILABLE, ("grpc-retry-pushback-ms", "250")))
    assert error.pushback == pytest.approx(0.25)
    assert (error.kind, error.retryable, error.reached) == (FailureKind.TRANSIENT, True, None)


def test_retry_info_in_status_details() -> None:
    info = error_details_pb2.RetryInfo(
        retry_delay=duration_pb2.Duration(seconds=1, nanos=500_000_000)
    )
    detail = any_pb2.Any()
    detail.Pack(info)
    status = status_pb2.Status(code=14, message="busy", details=[detail])
    error = classify(
        rpc_error(
            grpc.StatusCode.UNAVAILABLE, ("grpc-status-details-bin", status.SerializeToString())
        )
    )
    assert error.pushback == pytest.approx(1.5)


def test_unreadable_pushback_is_ignored() -> None:
    error = classify(rpc_error(grpc.StatusCode.UNAVAILABLE, ("grpc-retry-pushback-ms", "soon")))
    assert error.pushback is None
    error = classify(
        rpc_error(grpc.StatusCode.UNAVAILABLE, ("grpc-status-details-bin", b"\xff\xff"))
    )
    assert error.pushback is None


def status_details(*messages: object) -> bytes:
    details = []
    for message in messages:
        packed = any_pb2.Any()
        packed.Pack(message)  # type: ignore[arg-type]
        details.append(packed)
    return status_pb2.Status(code=3, message="x", details=details).SerializeToString()


@pytest.mark.parametrize(
    ("code", "kind", "reached", "retryable"),
    [
        (grpc.StatusCode.INVALID_ARGUMENT, FailureKind.CONFIG, False, False),
        (grpc.StatusCode.PERMISSION_DENIED, FailureKind.CONFIG, False, False),
        (grpc.StatusCode.RESOURCE_EXHAUSTED, FailureKind.QUOTA, False, False),
        (grpc.StatusCode.UNAVAILABLE, FailureKind.TRANSIENT, None, True),
        (grpc.StatusCode.DEADLINE_EXCEEDED, FailureKind.TRANSIENT, None, True),
        (grpc.StatusCode.CANCELLED, FailureKind.TRANSIENT, None, False),
        (grpc.StatusCode.DATA_LOSS, FailureKind.TRANSIENT, None, False),
    ],
)
def test_codes_decide_kind_reached_and_retryable(
    code: grpc.StatusCode, kind: FailureKind, reached: bool | None, retryable: bool
) -> None:
    failure = classify(rpc_error(code)).failure
    assert (failure.kind, failure.reached, failure.retryable) == (kind, reached, retryable)
    assert failure.code == code.name and failure.message == "details"


def test_a_refused_connection_never_reached_google() -> None:
    error = aio.AioRpcError(
        grpc.StatusCode.UNAVAILABLE, aio.Metadata(), aio.Metadata(), "failed to connect to all"
    )
    assert classify(error).reached is False


def test_error_info_reason_is_kept_and_can_override_the_code(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    details = status_details(error_details_pb2.ErrorInfo(reason="SOME_NEW_REASON"))
    trailer = ("grpc-status-details-bin", details)
    failure = classify(rpc_error(grpc.StatusCode.UNAVAILABLE, trailer)).failure
    assert failure.reason == "SOME_NEW_REASON"
    assert failure.kind is FailureKind.TRANSIENT  # no row for the reason: the code decides
    monkeypatch.setattr(
        classification,
        "BY_REASON",
        {"SOME_NEW_REASON": Meaning(FailureKind.CONFIG, reached=False)},
    )
    failure = classify(rpc_error(grpc.StatusCode.UNAVAILABLE, trailer)).failure
    assert (failure.kind, failure.reached, failure.retryable) == (FailureKind.CONFIG, False, False)


def bad_request(*fields: str) -> error_details_pb2.BadRequest:
    return error_details_pb2.BadRequest(
        field_violations=[
            error_details_pb2.BadRequest.FieldViolation(field=f, description="bad") for f in fields
        ]
    )


@pytest.mark.parametrize(
    ("rpc", "code", "details", "kind"),
    [
        # Issue 14 item 2: an invalid API key is the sidecar's problem, whatever the RPC.
        (
            "create",
            grpc.StatusCode.INVALID_ARGUMENT,
            [error_details_pb2.ErrorInfo(reason="API_KEY_INVALID")],
            FailureKind.CONFIG,
        ),
        (
            "annotate",
            grpc.StatusCode.INVALID_ARGUMENT,
            [error_details_pb2.ErrorInfo(reason="API_KEY_INVALID")],
            FailureKind.CONFIG,
        ),
        # The site key or the parent come from the settings: configuration.
        (
            "create",
            grpc.StatusCode.INVALID_ARGUMENT,
            [bad_request("assessment.event.site_key")],
            FailureKind.CONFIG,
        ),
        ("create", grpc.StatusCode.INVALID_ARGUMENT, [bad_request("parent")], FailureKind.CONFIG),
        (
            "create",
            grpc.StatusCode.INVALID_ARGUMENT,
            [bad_request("assessment.event.user_ip_address", "assessment.event.site_key")],
            FailureKind.CONFIG,
        ),
        # A field the app sent: that request's problem.
        (
            "create",
            grpc.StatusCode.INVALID_ARGUMENT,
            [bad_request("assessment.event.user_ip_address")],
            FailureKind.REQUEST,
        ),
        # No details at all: on Assess it may be the key (closed, config); on Annotate the row.
        ("create", grpc.StatusCode.INVALID_ARGUMENT, [], FailureKind.CONFIG),
        ("annotate", grpc.StatusCode.INVALID_ARGUMENT, [], FailureKind.REQUEST),
        # Issue 14 item 3: an unknown assessment is that annotation's problem.
        ("annotate", grpc.StatusCode.NOT_FOUND, [], FailureKind.REQUEST),
        ("create", grpc.StatusCode.NOT_FOUND, [], FailureKind.CONFIG),
        (
            "annotate",
            grpc.StatusCode.PERMISSION_DENIED,
            [error_details_pb2.ErrorInfo(reason="IAM_PERMISSION_DENIED")],
            FailureKind.CONFIG,
        ),
        (
            "annotate",
            grpc.StatusCode.RESOURCE_EXHAUSTED,
            [error_details_pb2.ErrorInfo(reason="RATE_LIMIT_EXCEEDED")],
            FailureKind.QUOTA,
        ),
        (
            "create",
            grpc.StatusCode.UNAUTHENTICATED,
            [error_details_pb2.ErrorInfo(reason="ACCESS_TOKEN_EXPIRED")],
            FailureKind.CONFIG,
        ),
    ],
)
def test_error_info_and_field_violations_split_the_request_from_the_sidecar(
    rpc: str, code: grpc.StatusCode, details: list[object], kind: FailureKind
) -> None:
    trailer = ("grpc-status-details-bin", status_details(*details))
    failure = classify(rpc_error(code, trailer), rpc).failure
    assert failure.kind is kind
    assert failure.reached is False and not failure.retryable
