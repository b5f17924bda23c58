"""The decision as headers: one family (`x-recaptcha-*`) for every front door that has them
(forward-auth, ext_authz, the Google-compatible faces), so a proxy or an app reads the same
names whichever door the token came through.

Every name of the family is always present, empty when the decision has no such value: a
proxy that copies the headers onto the request it forwards then overwrites (or, for an empty
value, drops) whatever the end user sent under the same names, so the app can trust them.

A denial goes back towards the end user (Caddy and Envoy show it as it is), so it carries
only what a real user needs to try again (allowed, verdict, token status), never the score or
the rule that decided, which would tell a bot what to tune.
"""

from __future__ import annotations

from sidecar.core.model import Decision, TokenStatus

ALLOWED = "x-recaptcha-allowed"
VERDICT = "x-recaptcha-verdict"
TOKEN_STATUS = "x-recaptcha-token-status"  # noqa: S105 (a header name)
DECIDED_BY = "x-recaptcha-decided-by"
SCORE = "x-recaptcha-score"
ASSESSMENT = "x-recaptcha-assessment"
POLICY_VERSION = "x-recaptcha-policy-version"

NAMES = (ALLOWED, VERDICT, TOKEN_STATUS, DECIDED_BY, SCORE, ASSESSMENT, POLICY_VERSION)


def score_text(score: float) -> str:
    """Scores are float32 upstream (0.9 arrives as 0.8999999761…): six decimals give back the
    value Google meant, as its JSON does."""
    return repr(round(score, 6))


def _visible(value: str) -> str:
    """Header values are visible ASCII here: anything else (a CR/LF from a policy version,
    say) would let a value split the header block, so it is dropped instead."""
    return value if value.isascii() and value.isprintable() else ""


def decision_headers(decision: Decision) -> list[tuple[str, str]]:
    """(name, value) for every name of the family, in `NAMES` order.

    The score only when upstream gave one (a valid token); the assessment name only for an
    assessment made for this request (a replay answered with the original, `replayed`,
    keeps it; a DUPLICATE does not, so an app cannot annotate the original by mistake)."""
    scored = decision.token_status is TokenStatus.VALID
    named = decision.token_status is not TokenStatus.DUPLICATE or decision.replayed
    return [
        (ALLOWED, "true" if decision.allowed else "false"),
        (VERDICT, decision.verdict.value),
        (TOKEN_STATUS, decision.token_status.value),
        (DECIDED_BY, _visible(decision.decided_by)),
        (SCORE, score_text(decision.score) if scored else ""),
        (ASSESSMENT, _visible(decision.assessment_name) if named else ""),
        (POLICY_VERSION, _visible(decision.policy_version)),
    ]


DENIAL_NAMES = (ALLOWED, VERDICT, TOKEN_STATUS)


def denial_headers(decision: Decision) -> list[tuple[str, str]]:
    """The part of the family a denial shows the end user."""
    return [(n, v) for n, v in decision_headers(decision) if n in DENIAL_NAMES]


def denial_body(decision: Decision) -> dict[str, object]:
    """The small JSON body of a denial, with the same three facts."""
    return {
        "allowed": decision.allowed,
        "verdict": decision.verdict.value,
        "token_status": decision.token_status.value,
    }
