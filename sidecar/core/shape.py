"""The shape filter: tokens that cannot be real are refused before they cost anything.

Every token reCAPTCHA issues is URL-safe base64-like text, hundreds to a few thousand
characters long (`03A…`, or the emulator's `emu1.…`). A token shorter than `MIN_TOKEN_CHARS`
after trimming, or with any character outside `[A-Za-z0-9_.+/=-]` (whitespace and control
characters included), cannot be one: it is answered INVALID here, with no replay claim and no
upstream call, so junk costs neither quota nor replay-store room. It runs in the core's
pipeline after validation and before the replay claim (validate → shape filter → claim →
rate limits → upstream): the rate limits of the quota shield sit beside it, after the claim.
Express assessments carry no token and are not subject to it.
"""

from __future__ import annotations

import re

MIN_TOKEN_CHARS = 20
_TOKEN_ALPHABET = re.compile(r"[A-Za-z0-9_.+/=\-]*")

# `decided_by` values (after `token_shape:`), so apps and dashboards can tell why.
TOO_SHORT = "too_short"
BAD_CHARACTER = "bad_character"


def shape_problem(token: str) -> str | None:
    """Why `token` cannot be a reCAPTCHA token (`too_short`, `bad_character`), or None when
    it may be one. The empty token is not judged here: it is MISSING, answered before."""
    if len(token.strip()) < MIN_TOKEN_CHARS:
        return TOO_SHORT
    if not _TOKEN_ALPHABET.fullmatch(token):
        return BAD_CHARACTER
    return None
