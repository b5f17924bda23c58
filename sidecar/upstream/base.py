"""What the core needs from upstream: a small protocol, free of gRPC types."""

from __future__ import annotations

import contextvars
from typing import Protocol

from sidecar.core.model import AnnotationRequest, AssessmentRequest, UpstreamAssessment

# The attempt number (1, 2, …) of the upstream call in progress: set by the retry layer, read by
# whatever observes single attempts (spans, metrics), so neither needs to know the other.
ATTEMPT: contextvars.ContextVar[int] = contextvars.ContextVar("upstream_attempt", default=1)


class Upstream(Protocol):
    """reCAPTCHA Enterprise as the core sees it. Implementations raise `UpstreamError`."""

    async def create_assessment(
        self, request: AssessmentRequest, *, site_key: str, timeout: float
    ) -> UpstreamAssessment:
        """One CreateAssessment. Not idempotent: the first attempt consumes the token."""
        ...

    async def annotate(self, request: AnnotationRequest, *, timeout: float) -> None:
        """One AnnotateAssessment. Idempotent enough to retry: a repeat only re-labels."""
        ...

    async def close(self) -> None:
        """Release channels."""
        ...
