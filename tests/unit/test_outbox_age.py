"""The outbox's depth and oldest-age bookkeeping (what its gauges export), on a real SQLite
file and an injected wall clock: the age follows the oldest row still queued."""

from __future__ import annotations

from pathlib import Path

import pytest

from sidecar.core.model import AnnotationRequest
from sidecar.outbox import Outbox
from sidecar.outbox.store import Retry
from tests.support.clock import FakeClock


def annotation(n: int) -> AnnotationRequest:
    return AnnotationRequest(assessment_name=f"projects/1/assessments/{n:04x}")


async def test_oldest_age_follows_the_oldest_row_still_queued(tmp_path: Path) -> None:
    clock = FakeClock(1_000_000.0)
    outbox = await Outbox.open(tmp_path / "outbox.db", max_items=100, clock=clock)
    try:
        assert (outbox.depth(), outbox.oldest_age()) == (0, 0.0)
        first = await outbox.append(annotation(1))
        clock.advance(10)
        second = await outbox.append(annotation(2))
        clock.advance(5)
        assert outbox.depth() == 2
        assert outbox.oldest_age() == pytest.approx(15.0)
        await outbox.settle(delivered=[first])
        assert outbox.depth() == 1
        assert outbox.oldest_age() == pytest.approx(5.0)  # the second row is the oldest now
        rows = await outbox.lease_due(10)
        assert [row.id for row in rows] == [second]
        await outbox.settle(retries=[Retry(second, clock() + 60, "UNAVAILABLE", True, False)])
        assert outbox.oldest_age() == pytest.approx(5.0)  # retried, still waiting
        await outbox.settle(dead=[(second, "NOT_FOUND")])
        assert (outbox.depth(), outbox.oldest_age(), outbox.dead_letter_count()) == (0, 0.0, 1)
        clock.advance(100)
        await outbox.append(annotation(3))
        clock.advance(2)
        assert outbox.oldest_age() == pytest.approx(2.0)  # a new row after an empty queue
    finally:
        await outbox.close()


async def test_a_reopened_file_knows_its_oldest_row(tmp_path: Path) -> None:
    clock = FakeClock(2_000_000.0)
    outbox = await Outbox.open(tmp_path / "outbox.db", max_items=100, clock=clock)
    await outbox.append(annotation(1))
    await outbox.close()
    clock.advance(30)
    again = await Outbox.open(tmp_path / "outbox.db", max_items=100, clock=clock)
    try:
        assert (again.depth(), again.oldest_age()) == (1, pytest.approx(30.0))
    finally:
        await again.close()
