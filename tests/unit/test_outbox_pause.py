"""A sidecar-wide refusal (credentials, permission, quota) pauses the whole outbox: no row is
sent until the pause ends, none counts it against itself, and delivery resumes by itself."""

from __future__ import annotations

import asyncio
from pathlib import Path

from sidecar.core.model import AnnotationRequest
from sidecar.core.ports import FailureKind, UpstreamError, UpstreamFailure
from sidecar.outbox import Flusher, FlushSettings, Outbox


class Upstream:
    """Refuses with `failure` until told to accept; counts the sends."""

    def __init__(self, failure: UpstreamFailure | None) -> None:
        self.failure = failure
        self.sent: list[str] = []

    async def annotate(self, request: AnnotationRequest, *, timeout: float) -> None:
        self.sent.append(request.assessment_name)
        if self.failure is not None:
            raise UpstreamError(self.failure)

    async def create_assessment(self, *args: object, **kwargs: object) -> None:
        raise AssertionError("not used")

    async def close(self) -> None:
        return None


SETTINGS = FlushSettings(
    batch_size=100,
    flush_interval=0.5,
    concurrency=8,
    max_attempts=1,
    send_timeout=5.0,
    max_backoff=60.0,
)


def row(name: str) -> AnnotationRequest:
    return AnnotationRequest(
        assessment_name=f"projects/1/assessments/{name}", annotation="LEGITIMATE"
    )


async def test_a_sidecar_wide_refusal_pauses_every_row_and_delivery_resumes(tmp_path: Path) -> None:
    outbox = await Outbox.open(tmp_path / "outbox.sqlite3", max_items=1000)
    refusal = UpstreamFailure(
        FailureKind.CONFIG, "INVALID_ARGUMENT", "API key not valid", reached=False, pushback=0.4
    )
    upstream = Upstream(refusal)
    flusher = Flusher(outbox, upstream, SETTINGS)  # type: ignore[arg-type]
    try:
        await outbox.append(row("a"))
        await flusher._flush_once(deadline=None)
        assert (
            flusher.paused
            and flusher.paused_total == 1
            and upstream.sent == [row("a").assessment_name]
        )
        await outbox.append(row("b"))
        await outbox.append(row("c"))
        assert await flusher._flush_once(deadline=None) == (0, 0), "nothing is sent while paused"
        assert len(upstream.sent) == 1
        assert outbox.dead_letter_count() == 0, "max_attempts=1, yet nothing dead-lettered"
        upstream.failure = None
        await asyncio.sleep(0.5)
        assert not flusher.paused
        await flusher._flush_once(deadline=None)
        assert sorted(upstream.sent[1:]) == [row(n).assessment_name for n in "abc"]
        assert outbox.depth() == 0 and outbox.dead_letter_count() == 0
    finally:
        await outbox.close()


async def test_a_refusal_of_the_row_itself_is_not_a_pause(tmp_path: Path) -> None:
    outbox = await Outbox.open(tmp_path / "outbox.sqlite3", max_items=1000)
    refused = UpstreamFailure(FailureKind.REQUEST, "NOT_FOUND", "no such assessment", reached=False)
    flusher = Flusher(outbox, Upstream(refused), SETTINGS)  # type: ignore[arg-type]
    try:
        await outbox.append(row("gone"))
        await flusher._flush_once(deadline=None)
        assert not flusher.paused and flusher.paused_total == 0
        assert outbox.dead_letter_count() == 1
    finally:
        await outbox.close()
