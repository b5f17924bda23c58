"""The x-recaptcha-* family: every name always present, values only where they mean something."""

from __future__ import annotations

from sidecar.core.model import Decision, RecommendedAction, TokenStatus, Verdict
from sidecar.server.decision_headers import NAMES, decision_headers, score_text


def _decision(status: TokenStatus, **fields: object) -> Decision:
    base: dict[str, object] = {
        "allowed": True,
        "verdict": Verdict.PASSED,
        "token_status": status,
        "recommended_action": RecommendedAction.ALLOW,
        "decided_by": "passed",
        "score": 0.8999999761581421,
        "assessment_name": "projects/1/assessments/a",
        "policy_version": "v7",
    }
    base.update(fields)
    return Decision(**base)  # type: ignore[arg-type]


def test_valid_decision() -> None:
    assert decision_headers(_decision(TokenStatus.VALID)) == [
        ("x-recaptcha-allowed", "true"),
        ("x-recaptcha-verdict", "PASSED"),
        ("x-recaptcha-token-status", "VALID"),
        ("x-recaptcha-decided-by", "passed"),
        ("x-recaptcha-score", "0.9"),
        ("x-recaptcha-assessment", "projects/1/assessments/a"),
        ("x-recaptcha-policy-version", "v7"),
    ]


def test_duplicate_has_neither_score_nor_the_originals_name() -> None:
    headers = dict(
        decision_headers(
            _decision(
                TokenStatus.DUPLICATE,
                allowed=False,
                verdict=Verdict.FAILED_ENFORCE,
                decided_by="token_duplicate",
            )
        )
    )
    assert list(headers) == list(NAMES)
    assert headers["x-recaptcha-allowed"] == "false"
    assert headers["x-recaptcha-score"] == ""
    assert headers["x-recaptcha-assessment"] == ""


def test_an_idempotent_replay_keeps_the_original_name() -> None:
    headers = dict(decision_headers(_decision(TokenStatus.VALID, replayed=True)))
    assert headers["x-recaptcha-assessment"] == "projects/1/assessments/a"


def test_values_that_could_split_a_header_are_dropped() -> None:
    headers = dict(decision_headers(_decision(TokenStatus.VALID, policy_version="v\r\nx: y")))
    assert headers["x-recaptcha-policy-version"] == ""


def test_score_text() -> None:
    assert [score_text(s) for s in (0.0, 0.1000000014901161, 1.0)] == ["0.0", "0.1", "1.0"]
