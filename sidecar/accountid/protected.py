"""Account-id protection as decorators: over the Upstream for Assess, and over the Annotator for
Annotate (before the outbox, so no clear id is ever stored), one protector for both.

Only `account_id` is transformed. `user_ids` (e-mail, phone, username) go upstream as given:
reCAPTCHA reads them as what they claim to be (a phone number "should use the E.164 format",
e-mail addresses are used for account verification and their domains as signals), so a hash
or ciphertext there would be a malformed value rather than a private one. An app that must
not share them with Google should leave them out; `account_id` alone is enough for account
defender.
"""

from __future__ import annotations

import dataclasses

from sidecar.accountid.protection import AccountIdProtector, Protection
from sidecar.core.annotate import Annotator
from sidecar.core.model import AnnotationRequest, AssessmentRequest, Delivery, UpstreamAssessment
from sidecar.core.ports import Upstream
from sidecar.core.validation import validate_annotation


class AccountIdProtectingUpstream:
    """An Upstream that protects `account_id` on the way to the one it wraps."""

    def __init__(self, inner: Upstream, protector: AccountIdProtector) -> None:
        self._inner = inner
        self._protector = protector

    @property
    def inner(self) -> Upstream:
        """The wrapped upstream (for whoever needs to reach past the decorator)."""
        return self._inner

    async def create_assessment(
        self, request: AssessmentRequest, *, site_key: str, timeout: float
    ) -> UpstreamAssessment:
        if request.account_id:
            request = dataclasses.replace(
                request, account_id=self._protector.protect(request.account_id)
            )
        return await self._inner.create_assessment(request, site_key=site_key, timeout=timeout)

    async def annotate(self, request: AnnotationRequest, *, timeout: float) -> None:
        if request.account_id:
            request = dataclasses.replace(
                request, account_id=self._protector.protect(request.account_id)
            )
        await self._inner.annotate(request, timeout=timeout)

    async def close(self) -> None:
        await self._inner.close()


def protect_upstream(inner: Upstream, protector: AccountIdProtector) -> Upstream:
    """The decorated upstream, or `inner` itself when ids go as given (no cost in plain mode)."""
    if protector.mode is Protection.PLAIN:
        return inner
    return AccountIdProtectingUpstream(inner, protector)


class AccountIdProtectingAnnotator:
    """Protects `account_id` before an annotation is accepted, so the durable outbox never
    holds a clear id at rest. Validates first: the limits apply to what the app sent, not to
    the (longer) protected form."""

    def __init__(self, inner: Annotator, protector: AccountIdProtector) -> None:
        self._inner = inner
        self._protector = protector

    async def annotate(self, request: AnnotationRequest, timeout: float | None) -> Delivery:
        validate_annotation(request)
        if request.account_id:
            request = dataclasses.replace(
                request, account_id=self._protector.protect(request.account_id)
            )
        return await self._inner.annotate(request, timeout)


def protect_annotator(inner: Annotator, protector: AccountIdProtector) -> Annotator:
    """The decorated annotator, or `inner` itself in plain mode."""
    if protector.mode is Protection.PLAIN:
        return inner
    return AccountIdProtectingAnnotator(inner, protector)
