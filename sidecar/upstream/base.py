"""What the core needs from upstream: a small protocol, free of gRPC types."""

from __future__ import annotations

from typing import Protocol

from sidecar.core.model import AnnotationRequest, AssessmentRequest, UpstreamAssessment


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
