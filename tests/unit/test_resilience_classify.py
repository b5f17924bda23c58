"""What the retry layer is told about a failure: pushback from either header, and how the
outbox judges a row after one send."""

from __future__ import annotations

import grpc
import pytest
from google.protobuf import any_pb2, duration_pb2
from google.rpc import error_details_pb2, status_pb2
from grpc import aio

from sidecar.core.ports import FailureKind, UpstreamError, UpstreamFailure
from sidecar.outbox import FlushSettings, judge
from sidecar.outbox.store import Row
from sidecar.upstream.client import classify


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


ROW = Row(id=7, payload=b"", created=0.0, attempts=3, rejections=0)
SETTINGS = FlushSettings(max_attempts=3, initial_backoff=0.5, max_backoff=4.0)


def test_accepted_row_is_delivered() -> None:
    assert judge(ROW, None, 100.0, SETTINGS).delivered


def test_transient_failure_retries_later_without_counting_toward_dead_letter() -> None:
    error = UpstreamError(UpstreamFailure(FailureKind.TRANSIENT, "UNAVAILABLE", "x", reached=None))
    retry = judge(ROW, error, 100.0, SETTINGS).retry
    assert retry is not None
    assert 100.0 + 2.0 <= retry.next_attempt <= 100.0 + 4.0  # 0.5 * 2**3, capped at 4
    assert (retry.attempted, retry.rejected) == (True, False)


def test_quota_and_credential_errors_are_retried_not_dead_lettered() -> None:
    many = Row(id=1, payload=b"", created=0.0, attempts=50, rejections=0)
    for kind, code in (
        (FailureKind.QUOTA, "RESOURCE_EXHAUSTED"),
        (FailureKind.CONFIG, "UNAUTHENTICATED"),
    ):
        judgement = judge(
            many, UpstreamError(UpstreamFailure(kind, code, "x", reached=False)), 0.0, SETTINGS
        )
        assert judgement.retry is not None and not judgement.dead


def test_row_rejections_end_in_the_dead_letter() -> None:
    error = UpstreamError(
        UpstreamFailure(FailureKind.CONFIG, "NOT_FOUND", "no such assessment", reached=False)
    )
    first = judge(ROW, error, 0.0, SETTINGS)
    assert first.retry is not None and first.retry.rejected
    last = judge(Row(7, b"", 0.0, 3, rejections=2), error, 0.0, SETTINGS)
    assert last.dead.startswith("NOT_FOUND")


def test_breaker_refusal_is_not_an_attempt() -> None:
    error = UpstreamError(
        UpstreamFailure(FailureKind.TRANSIENT, "BREAKER_OPEN", "open", reached=False)
    )
    retry = judge(ROW, error, 0.0, SETTINGS).retry
    assert retry is not None and not retry.attempted and not retry.rejected
