"""Replay entries as bytes: compact, exact, and lenient towards other versions' values."""

from __future__ import annotations

import json

import pytest

from sidecar.core.model import Decision, RecommendedAction, TokenStatus, Verdict
from sidecar.core.ports import ReplayEntry
from sidecar.replay.codec import UNREADABLE, decode_entry, encode_entry, pending_prefix

DECISION = Decision(
    allowed=False,
    verdict=Verdict.FAILED_ENFORCE,
    token_status=TokenStatus.INVALID,
    recommended_action=RecommendedAction.BLOCK,
    decided_by="token_invalid",
    invalid_reason="BROWSER_ERROR",
    assessment_name="projects/1/assessments/ab",
    reasons=("AUTOMATION",),
)


def test_pending_values_start_with_the_holders_prefix() -> None:
    value = encode_entry(ReplayEntry("idem", None, "c0ffee"))
    assert value.startswith(pending_prefix("c0ffee"))
    assert not value.startswith(pending_prefix("c0ff"))
    assert decode_entry(value) == ReplayEntry("idem", None, "c0ffee")


def test_settled_values_are_compact_and_never_replayed() -> None:
    from dataclasses import replace

    value = encode_entry(ReplayEntry("idem", replace(DECISION, replayed=True)))
    body = json.loads(value)
    assert set(body) == {"i", "d"}
    assert "replayed" not in body["d"] and "score" not in body["d"]  # defaults left out
    assert len(value) < 300
    assert decode_entry(value) == ReplayEntry("idem", DECISION)


def test_upstreams_whole_answer_is_never_stored() -> None:
    from dataclasses import replace

    value = encode_entry(ReplayEntry("idem", replace(DECISION, passthrough=b"token inside")))
    assert b"passthrough" not in value and b"token inside" not in value
    assert decode_entry(value) == ReplayEntry("idem", DECISION)


def test_unknown_fields_from_a_newer_version_are_ignored() -> None:
    body = json.loads(encode_entry(ReplayEntry("idem", DECISION)))
    body["d"]["from_the_future"] = {"x": 1}
    body["extra"] = True
    assert decode_entry(json.dumps(body).encode()) == ReplayEntry("idem", DECISION)


@pytest.mark.parametrize(
    "raw",
    [
        b"",
        b"not json",
        b"[1,2]",
        b'{"i": 5}',
        b'{"i": "x", "d": "nope"}',
        b'{"i": "x", "d": {"allowed": true}}',  # required fields missing
        b'{"i": "x", "d": {"allowed": "yes", "verdict": "PASSED", "token_status": "VALID",'
        b' "recommended_action": "ALLOW", "decided_by": "passed"}}',
        b'{"i": "x", "d": {"allowed": true, "verdict": "MAYBE", "token_status": "VALID",'
        b' "recommended_action": "ALLOW", "decided_by": "passed"}}',
        b"\xff\xfe",
    ],
)
def test_unreadable_values_count_as_seen_never_as_fresh(raw: bytes) -> None:
    entry = decode_entry(raw)
    assert entry == UNREADABLE
    assert entry.pending and entry.idempotency_digest == "" and entry.claim_id == ""
