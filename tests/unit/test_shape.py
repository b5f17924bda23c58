"""The shape filter and the rules that answer what it refuses (issue 13 item 10)."""

from __future__ import annotations

import pytest

from sidecar.core.model import TokenStatus, Verdict
from sidecar.core.ports import FailureKind
from sidecar.core.shape import BAD_CHARACTER, MIN_TOKEN_CHARS, TOO_SHORT, shape_problem
from sidecar.policy.rules import decide_impossible, decide_unchecked
from sidecar.policy.schema import ActionPolicy, Mode


@pytest.mark.parametrize(
    ("token", "problem"),
    [
        ("x" * MIN_TOKEN_CHARS, None),
        ("A-z_0.9+/=" * 3, None),
        ("x" * (MIN_TOKEN_CHARS - 1), TOO_SHORT),
        (" " * 40, TOO_SHORT),
        ("x" * MIN_TOKEN_CHARS + " ", BAD_CHARACTER),
        ("x" * MIN_TOKEN_CHARS + "\u200b", BAD_CHARACTER),
        ("x" * MIN_TOKEN_CHARS + "~", BAD_CHARACTER),
    ],
)
def test_shape_problem(token: str, problem: str | None) -> None:
    assert shape_problem(token) == problem


def test_an_impossible_token_is_invalid_in_enforce_and_counted_in_audit() -> None:
    enforced = decide_impossible(ActionPolicy(), TOO_SHORT, "v1")
    assert (enforced.allowed, enforced.verdict) == (False, Verdict.FAILED_ENFORCE)
    assert enforced.token_status is TokenStatus.INVALID
    assert enforced.decided_by == "token_shape:too_short"
    audited = decide_impossible(ActionPolicy(mode=Mode.AUDIT), BAD_CHARACTER)
    assert (audited.allowed, audited.verdict) == (True, Verdict.FAILED_AUDIT)


def test_a_closed_unchecked_answer_ignores_an_open_failure_policy() -> None:
    policy = ActionPolicy(on_upstream_failure="open")  # type: ignore[arg-type]
    assert decide_unchecked(policy, FailureKind.TRANSIENT, "deadline").allowed
    closed = decide_unchecked(policy, FailureKind.TRANSIENT, "deadline", closed=True)
    assert (closed.allowed, closed.verdict) == (False, Verdict.FAILED_ENFORCE)
    assert closed.token_status is TokenStatus.UNCHECKED
