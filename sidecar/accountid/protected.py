"""Account-id protection for Assess and SearchRelatedAccounts: an `Upstream` decorator that
protects `account_id` (and the account ids of `transaction_data`) on its way to the upstream
it wraps, and reveals the ids that come back where it can. Annotate protects in its use case
(`core.annotate`), before the outbox stores anything, with the same protector.

Only `account_id` is transformed. `user_ids` (e-mail, phone, username) go upstream as given:
reCAPTCHA reads them as what they claim to be (a phone number "should use the E.164 format",
e-mail addresses are used for account verification and their domains as signals), so a hash
or ciphertext there would be a malformed value rather than a private one. An app that must
not share them with Google should leave them out; `account_id` alone is enough for account
defender.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable

from sidecar.accountid.protection import AccountIdDecryptError, AccountIdProtector, Protection
from sidecar.core.model import (
    AnnotationRequest,
    AssessmentRequest,
    RelatedAccount,
    RelatedAccountsPage,
    RelatedAccountsQuery,
    TransactionData,
    TransactionUser,
    UpstreamAssessment,
)
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
        if request.transaction_data is not None:
            request = dataclasses.replace(
                request,
                transaction_data=protect_transaction(request.transaction_data, self._protector),
            )
        return await self._inner.create_assessment(request, site_key=site_key, timeout=timeout)

    async def annotate(self, request: AnnotationRequest, *, timeout: float) -> None:
        """Passed through untouched: annotations arrive already protected by the Annotate use
        case (protecting them again would encrypt a ciphertext)."""
        await self._inner.annotate(request, timeout=timeout)

    async def search_related_accounts(
        self, query: RelatedAccountsQuery, *, timeout: float
    ) -> RelatedAccountsPage:
        """The account id protected on the way up, as Assess protects it; the ids that come
        back revealed where the protector can (deterministic encryption), else as they are
        (HMAC hashes the app maps itself; ids this key did not encrypt)."""
        protected = dataclasses.replace(query, account_id=self._protector.protect(query.account_id))
        page = await self._inner.search_related_accounts(protected, timeout=timeout)
        reveal = getattr(self._protector, "reveal", None)
        if reveal is None:
            return page
        return dataclasses.replace(
            page, accounts=tuple(_revealed(reveal, a) for a in page.accounts)
        )

    async def close(self) -> None:
        await self._inner.close()


def _revealed(reveal: Callable[[str], str], account: RelatedAccount) -> RelatedAccount:
    try:
        clear = reveal(account.account_id)
    except AccountIdDecryptError:
        return account  # not encrypted by this key (sent plain before, or by another key)
    return dataclasses.replace(account, account_id=clear, decrypted=True)


def protect_transaction(data: TransactionData, protector: AccountIdProtector) -> TransactionData:
    """The account ids of a payment (payer, merchants, the merchant of each item) protected as
    `account_id` is, so the payer's id matches the assessment's and a merchant's matches its
    items'."""

    def user(found: TransactionUser | None) -> TransactionUser | None:
        if found is None or not found.account_id:
            return found
        return dataclasses.replace(found, account_id=protector.protect(found.account_id))

    return dataclasses.replace(
        data,
        user=user(data.user),
        merchants=tuple(user(m) or m for m in data.merchants),
        items=tuple(
            dataclasses.replace(
                item, merchant_account_id=protector.protect(item.merchant_account_id)
            )
            if item.merchant_account_id
            else item
            for item in data.items
        ),
    )


def protect_upstream(inner: Upstream, protector: AccountIdProtector) -> Upstream:
    """The decorated upstream, or `inner` itself when ids go as given (no cost in plain mode)."""
    if protector.mode is Protection.PLAIN:
        return inner
    return AccountIdProtectingUpstream(inner, protector)
