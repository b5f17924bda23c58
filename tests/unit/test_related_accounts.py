"""SearchRelatedAccounts as a use case, over the account-id decorator: the account id goes up
protected exactly as Assess protects it; the ids that come back are decrypted under
deterministic encryption (flagged `decrypted`), returned as the hashes under HMAC; the page
size is bounded; upstream failures are the caller's to see; each page is observed once."""

from __future__ import annotations

import asyncio
import dataclasses
import os
from typing import Any

import pytest
from opentelemetry.sdk.metrics import MeterProvider

from sidecar.accountid.protected import protect_upstream
from sidecar.accountid.protection import (
    DeterministicEncryptionProtector,
    HmacSha256Protector,
    PlainProtector,
)
from sidecar.core.errors import InvalidArgument, UpstreamRejected
from sidecar.core.model import (
    AnnotationRequest,
    AssessmentRequest,
    Decision,
    Delivery,
    RelatedAccount,
    RelatedAccountsPage,
    RelatedAccountsQuery,
    UpstreamAssessment,
)
from sidecar.core.ports import CallContext, FailureKind, UpstreamError, UpstreamFailure
from sidecar.core.related import RelatedAccounts
from sidecar.telemetry.metrics import ActionLabels, Instruments
from sidecar.telemetry.observer import CALL_FIELDS, TelemetryObserver
from sidecar.upstream.retry import ResilientUpstream
from tests.support.defaults import BREAKER, BUDGET, RETRY

CALL = CallContext("recaptcha.sidecar.v1.VerificationService", "SearchRelatedAccounts")
GROUP = "projects/1/relatedaccountgroups/g1"


class Upstream:
    """Answers with the accounts it is told to hold, as Google holds them (protected)."""

    def __init__(self, held: list[str], fail: list[UpstreamError] | None = None) -> None:
        self.held = held
        self.fail = fail or []
        self.queries: list[tuple[RelatedAccountsQuery, float]] = []

    async def create_assessment(
        self, request: AssessmentRequest, *, site_key: str, timeout: float
    ) -> UpstreamAssessment:
        raise AssertionError("not used")

    async def annotate(self, request: AnnotationRequest, *, timeout: float) -> None:
        raise AssertionError("not used")

    async def search_related_accounts(
        self, query: RelatedAccountsQuery, *, timeout: float
    ) -> RelatedAccountsPage:
        self.queries.append((query, timeout))
        if self.fail:
            raise self.fail.pop(0)
        accounts = tuple(RelatedAccount(account_id=held, group=GROUP) for held in self.held)
        return RelatedAccountsPage(accounts, next_page_token="next")

    async def close(self) -> None:
        return None


class Observer:
    def __init__(self) -> None:
        self.pages: list[tuple[CallContext, RelatedAccountsPage]] = []

    def assessed(self, call: CallContext, request: AssessmentRequest, decision: Decision) -> None:
        raise AssertionError("not used")

    def annotated(self, call: CallContext, request: AnnotationRequest, delivery: Delivery) -> None:
        raise AssertionError("not used")

    def searched(
        self, call: CallContext, query: RelatedAccountsQuery, page: RelatedAccountsPage
    ) -> None:
        self.pages.append((call, page))


def use_case(upstream: Any, protector: Any, observer: Observer | None = None) -> RelatedAccounts:
    return RelatedAccounts(
        protect_upstream(upstream, protector), upstream_timeout=2.0, observer=observer
    )


async def test_plain_ids_go_and_come_as_they_are() -> None:
    upstream, observer = Upstream(["bob"]), Observer()
    page = await use_case(upstream, PlainProtector(), observer).search(
        RelatedAccountsQuery("alice", 10, "tok"), 5.0, call=CALL
    )
    assert upstream.queries[0] == (RelatedAccountsQuery("alice", 10, "tok"), 2.0)
    assert page == RelatedAccountsPage((RelatedAccount("bob", GROUP, False),), "next")
    assert observer.pages == [(CALL, page)]


async def test_under_deterministic_encryption_ids_go_encrypted_and_come_back_decrypted() -> None:
    protector = DeterministicEncryptionProtector(os.urandom(64))
    foreign = DeterministicEncryptionProtector(os.urandom(64)).protect("mallory")
    upstream = Upstream([protector.protect("alice"), protector.protect("bob"), foreign, "plain-1"])
    page = await use_case(upstream, protector).search(RelatedAccountsQuery("alice"), call=CALL)
    sent = upstream.queries[0][0].account_id
    assert sent == protector.protect("alice") and sent != "alice"
    assert [(a.account_id, a.decrypted) for a in page.accounts] == [
        ("alice", True),
        ("bob", True),
        (foreign, False),  # another key's ciphertext: not ours to read, returned as held
        ("plain-1", False),  # sent before encryption was on
    ]


async def test_under_hmac_the_hashes_come_back_for_the_app_to_map() -> None:
    protector = HmacSha256Protector(b"0123456789abcdef")
    upstream = Upstream([protector.protect("bob")])
    page = await use_case(upstream, protector).search(RelatedAccountsQuery("alice"), call=CALL)
    assert upstream.queries[0][0].account_id == protector.protect("alice")
    assert page.accounts == (RelatedAccount(protector.protect("bob"), GROUP, False),)


@pytest.mark.parametrize(
    ("query", "field"),
    [
        (RelatedAccountsQuery(""), "account_id"),
        (RelatedAccountsQuery("a" * 8193), "account_id"),
        (RelatedAccountsQuery("alice", -1), "page_size"),
        (RelatedAccountsQuery("alice", 5, "t" * 8193), "page_token"),
    ],
)
async def test_bad_queries_never_reach_upstream(query: RelatedAccountsQuery, field: str) -> None:
    upstream = Upstream([])
    with pytest.raises(InvalidArgument) as caught:
        await use_case(upstream, PlainProtector()).search(query, call=CALL)
    assert caught.value.field == field
    assert upstream.queries == []


async def test_a_page_larger_than_googles_largest_is_googles_largest() -> None:
    upstream = Upstream([])
    await use_case(upstream, PlainProtector()).search(
        RelatedAccountsQuery("alice", 5000), call=CALL
    )
    assert upstream.queries[0][0].page_size == 1000


async def test_an_upstream_failure_is_rejected_with_its_code() -> None:
    failure = UpstreamError(UpstreamFailure(FailureKind.CONFIG, "PERMISSION_DENIED", reached=False))
    upstream = Upstream([], fail=[failure])
    with pytest.raises(UpstreamRejected) as caught:
        await use_case(upstream, PlainProtector()).search(RelatedAccountsQuery("a"), call=CALL)
    assert caught.value.code == "PERMISSION_DENIED"


async def test_a_transient_failure_is_retried_like_any_safe_call() -> None:
    flaky = UpstreamError(
        UpstreamFailure(FailureKind.TRANSIENT, "UNAVAILABLE", reached=None, retryable=True)
    )
    upstream = Upstream(["bob"], fail=[flaky])

    async def no_sleep(_: float) -> None:
        await asyncio.sleep(0)

    resilient = ResilientUpstream(
        upstream,
        retry=dataclasses.replace(RETRY, max_attempts=2),
        budget=BUDGET,
        breaker=BREAKER,
        sleep=no_sleep,
    )
    page = await use_case(resilient, PlainProtector()).search(RelatedAccountsQuery("a"), call=CALL)
    assert [a.account_id for a in page.accounts] == ["bob"]
    assert len(upstream.queries) == 2


def test_the_observer_reports_counts_never_ids() -> None:
    provider = MeterProvider()
    observer = TelemetryObserver(
        Instruments(provider.get_meter("t"), ActionLabels(lambda: set())), tracing=False
    )
    fields: dict[str, Any] = {}
    token = CALL_FIELDS.set(fields)
    try:
        page = RelatedAccountsPage((RelatedAccount("bob", GROUP),), "next")
        observer.searched(CALL, RelatedAccountsQuery("alice"), page)
    finally:
        CALL_FIELDS.reset(token)
    assert fields == {"related_accounts": 1, "more_pages": True}
    provider.shutdown()
