"""SearchRelatedAccounts: validate → (admission) → upstream (the account id protected on the
way, the ids that come back revealed, by the account-id decorator) → observe.

Account defender groups accounts that behave alike; Google answers the memberships of the
groups an account belongs to, a page at a time. Nothing is stored: it is a read, retried by the
upstream layer like any safe call, and a failure is the caller's to see (a gRPC status).
"""

from __future__ import annotations

from sidecar.core.limits import AdmissionLimiter, admitted
from sidecar.core.model import RelatedAccountsPage, RelatedAccountsQuery
from sidecar.core.ports import (
    CallContext,
    DecisionObserver,
    NullObserver,
    Upstream,
    UpstreamError,
    rejected,
)
from sidecar.core.validation import validate_related_accounts

# Google's largest page: "values above 1000 are coerced to 1000".
MAX_PAGE_SIZE = 1000


class RelatedAccounts:
    """The SearchRelatedAccounts use case."""

    def __init__(
        self,
        upstream: Upstream,
        *,
        upstream_timeout: float,
        limiter: AdmissionLimiter | None = None,
        observer: DecisionObserver | None = None,
    ) -> None:
        self._upstream = upstream
        self._upstream_timeout = upstream_timeout
        self._limiter = limiter
        self._observer = observer or NullObserver()

    async def search(
        self, query: RelatedAccountsQuery, timeout: float | None = None, *, call: CallContext
    ) -> RelatedAccountsPage:
        """One page. Raises InvalidArgument, Overloaded (past the limiter's bounds) or
        UpstreamRejected (upstream gave no answer)."""
        validate_related_accounts(query)
        if query.page_size > MAX_PAGE_SIZE:
            query = RelatedAccountsQuery(query.account_id, MAX_PAGE_SIZE, query.page_token)
        page = await admitted(self._limiter, timeout, lambda left: self._search(query, left))
        self._observer.searched(call, query, page)
        return page

    async def _search(
        self, query: RelatedAccountsQuery, timeout: float | None
    ) -> RelatedAccountsPage:
        budget = self._upstream_timeout if timeout is None else min(self._upstream_timeout, timeout)
        try:
            return await self._upstream.search_related_accounts(query, timeout=budget)
        except UpstreamError as error:
            raise rejected(error) from None  # the request's fault keeps its code
