"""Annotate: validate, then hand the annotation to whatever delivers it upstream."""

from __future__ import annotations

from typing import Protocol

from sidecar.core.errors import UpstreamRejected
from sidecar.core.model import AnnotationRequest, Delivery
from sidecar.core.ports import Upstream, UpstreamError
from sidecar.core.validation import validate_annotation


class Annotator(Protocol):
    """The Annotate use case."""

    async def annotate(self, request: AnnotationRequest, timeout: float | None) -> Delivery:
        """Accept one annotation."""
        ...


class DirectAnnotator:
    """Sends each annotation upstream before answering."""

    def __init__(self, upstream: Upstream, upstream_timeout: float) -> None:
        self._upstream = upstream
        self._upstream_timeout = upstream_timeout

    async def annotate(self, request: AnnotationRequest, timeout: float | None) -> Delivery:
        validate_annotation(request)
        budget = self._upstream_timeout if timeout is None else min(self._upstream_timeout, timeout)
        try:
            await self._upstream.annotate(request, timeout=budget)
        except UpstreamError as error:
            raise UpstreamRejected(error.code, str(error)) from None
        return Delivery.DELIVERED
