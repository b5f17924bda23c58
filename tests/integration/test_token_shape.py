"""Tokens that cannot be real cost no upstream call and no replay claim (issue 13 item 10).

Fewer than 20 characters after trimming, or any character outside `[A-Za-z0-9_.+/=-]`
(whitespace and control characters included): INVALID, answered locally, `decided_by` says
why. Above 10,000 bytes stays INVALID_ARGUMENT. Every token shape that can be real still goes
upstream: the emulator's own tokens and the shapes Google's tokens take.
"""

from __future__ import annotations

import secrets

import grpc
import pytest
from recaptcha.sidecar.v1 import sidecar_pb2 as pb

from sidecar.core.shape import MIN_TOKEN_CHARS, shape_problem
from sidecar.core.verify import token_digest
from sidecar.emulator import mint_token
from tests.conftest import EmulatorHandle, SidecarHandle

IMPOSSIBLE = {
    " ": "too_short",
    "\t": "too_short",
    ".": "too_short",
    "\n\n": "too_short",
    "x" * (MIN_TOKEN_CHARS - 1): "too_short",
    "  " + "x" * (MIN_TOKEN_CHARS - 1) + "  ": "too_short",
    "x" * 30 + " " + "y" * 30: "bad_character",
    "x" * 40 + "\n": "bad_character",
    "x" * 40 + "\x00": "bad_character",
    "x" * 40 + "\x7f": "bad_character",
    "03A" + "é" * 40: "bad_character",
    "03A" + "x" * 40 + "<script>": "bad_character",
    "03A" + "x" * 40 + "%2F": "bad_character",
    "03A" + "x" * 40 + '"': "bad_character",
}


def google_shaped() -> list[str]:
    """Shapes Google's tokens take: URL-safe base64 text (v3 / Enterprise `03A…`, hundreds to
    thousands of characters), standard base64 with `+`, `/` and `=` padding, dotted segments."""
    body = secrets.token_urlsafe(600)
    return [
        "03A" + body,
        "03AFcWeA" + secrets.token_urlsafe(1500)[:1800],
        "09" + secrets.token_hex(200) + "+/==",
        "0cAFcWeA" + body[:40] + "." + body[40:80] + "-_",
        "x" * MIN_TOKEN_CHARS,
    ]


@pytest.mark.parametrize("token", sorted(IMPOSSIBLE), ids=repr)
async def test_impossible_tokens_are_invalid_without_upstream_or_claim(
    sidecar: SidecarHandle, emulator: EmulatorHandle, token: str
) -> None:
    for _ in range(2):  # no claim: a second look is INVALID again, never DUPLICATE
        answer = await sidecar.stub.Assess(
            pb.AssessRequest(token=token, expected_action="login"), timeout=5
        )
        assert (answer.allowed, answer.token_status) == (False, pb.TOKEN_STATUS_INVALID)
        assert answer.decided_by == f"token_shape:{IMPOSSIBLE[token]}"
        assert answer.invalid_reason == "MALFORMED"
        assert answer.verdict == pb.VERDICT_FAILED_ENFORCE
    stats = await emulator.control.stats()
    assert stats["create_calls"] == 0, "a token that cannot be real cost an upstream call"
    assert await sidecar.sidecar.replay.get(token_digest(token)) is None  # no claim was taken


async def test_every_real_token_shape_goes_upstream(
    sidecar: SidecarHandle, emulator: EmulatorHandle
) -> None:
    emulated = [mint_token(action="login") for _ in range(3)]
    for token in emulated:
        assert shape_problem(token) is None
        answer = await sidecar.stub.Assess(
            pb.AssessRequest(token=token, expected_action="login"), timeout=5
        )
        assert answer.token_status == pb.TOKEN_STATUS_VALID and answer.allowed
    for token in google_shaped():
        assert shape_problem(token) is None, token
        answer = await sidecar.stub.Assess(
            pb.AssessRequest(token=token, expected_action="login"), timeout=5
        )
        # The emulator cannot read Google's tokens: upstream says MALFORMED, so it got them.
        assert answer.token_status == pb.TOKEN_STATUS_INVALID
        assert answer.decided_by == "token_invalid"
        assert await emulator.control.calls_for(token) == 1


async def test_a_token_above_the_limit_is_still_an_invalid_argument(
    sidecar: SidecarHandle, emulator: EmulatorHandle
) -> None:
    with pytest.raises(grpc.aio.AioRpcError) as raised:
        await sidecar.stub.Assess(pb.AssessRequest(token="x" * 10_001), timeout=5)
    assert raised.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "token" in (raised.value.details() or "")
    assert (await emulator.control.stats())["create_calls"] == 0
