"""Account-id protection for Assess: an `Upstream` decorator that protects `account_id` on its
way to the upstream it wraps. Annotate protects in its use case (`core.annotate`), before the
outbox stores anything, with the same protector.

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
from sidecar.core.model import AnnotationRequest, AssessmentRequest, UpstreamAssessment
from sidecar.core.ports import Upstream


class AccountIdProtectingUpstream:
    """An Upstream that protects `account_id` on the way to the one it wraps."""

    def __init__(self, inner: Upstream, protector: AccountIdProtector) -> None:
        self._inner = inner
        self._protector = protector

    async def create_assessment(
        self, request: AssessmentRequest, *, site_key: str, timeout: float
    ) -> UpstreamAssessment:
        if request.account_id:
            request = dataclasses.replace(
                request, account_id=self._protector.protect(request.account_id)
            )
        return await self._inner.create_assessment(request, site_key=site_key, timeout=timeout)

    async def annotate(self, request: AnnotationRequest, *, timeout: float) -> None:
        """Passed through untouched: annotations arrive already protected by the Annotate use
        case (protecting them again would encrypt a ciphertext)."""
        await self._inner.annotate(request, timeout=timeout)

    async def close(self) -> None:
        await self._inner.close()


def protect_upstream(inner: Upstream, protector: AccountIdProtector) -> Upstream:
    """The decorated upstream, or `inner` itself when ids go as given (no cost in plain mode)."""
    if protector.mode is Protection.PLAIN:
        return inner
    return AccountIdProtectingUpstream(inner, protector)
