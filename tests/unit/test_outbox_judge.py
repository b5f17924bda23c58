"""How the outbox judges a row after one send: delivered, retried later (with the shared,
jittered back-off) or dead-lettered."""

from __future__ import annotations

import dataclasses

from sidecar.core.ports import FailureKind, UpstreamError, UpstreamFailure
from sidecar.outbox import judge
from sidecar.outbox.store import Row
from tests.support.defaults import FLUSH

ROW = Row(id=7, payload=b"", created=0.0, attempts=3, rejections=0)
SETTINGS = dataclasses.replace(FLUSH, max_attempts=3, initial_backoff=0.5, max_backoff=4.0)


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
        UpstreamFailure(FailureKind.REQUEST, "NOT_FOUND", "no such assessment", reached=False)
    )
    first = judge(ROW, error, 0.0, SETTINGS)
    assert first.retry is not None and first.retry.rejected
    last = judge(Row(7, b"", 0.0, 3, rejections=2), error, 0.0, SETTINGS)
    assert last.dead.startswith("NOT_FOUND")


def test_only_the_request_kind_counts_against_the_row_not_its_code() -> None:
    """An INVALID_ARGUMENT about the API key is the sidecar's problem: never a rejection."""
    for kind in (FailureKind.CONFIG, FailureKind.QUOTA, FailureKind.TRANSIENT):
        failure = UpstreamFailure(kind, "INVALID_ARGUMENT", "x", reached=False)
        retry = judge(Row(7, b"", 0.0, 3, rejections=2), UpstreamError(failure), 0.0, SETTINGS)
        assert retry.retry is not None and not retry.retry.rejected and not retry.dead


def test_breaker_refusal_is_not_an_attempt() -> None:
    error = UpstreamError(
        UpstreamFailure(FailureKind.TRANSIENT, "BREAKER_OPEN", "open", reached=False)
    )
    retry = judge(ROW, error, 0.0, SETTINGS).retry
    assert retry is not None and not retry.attempted and not retry.rejected


def test_rows_failed_together_spread_out() -> None:
    """Jitter: fifty rows failed in one batch are not all due at the same instant, and none
    is due before half its back-off."""
    error = UpstreamError(UpstreamFailure(FailureKind.TRANSIENT, "UNAVAILABLE", "x"))
    due = []
    for row_id in range(50):
        retry = judge(Row(row_id, b"", 0.0, 3, 0), error, 100.0, SETTINGS).retry
        assert retry is not None
        due.append(retry.next_attempt)
    assert all(102.0 <= when <= 104.0 for when in due)
    assert len(set(due)) > 25
