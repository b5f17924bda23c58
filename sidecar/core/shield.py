"""The quota shield: the limits a call passes after its claim and before upstream.

Google's quota (60,000 CreateAssessment calls a minute per project, shared by every app and
IP of the project) is what a flood of junk tokens drains to switch protection off. So every
call that would reach upstream (the claim was a miss: replays, blank and locally impossible
tokens never get here and count nothing) passes the action's per-client rules (`rate_limits`:
per ip, account, site_key or action) and then the global cap (`upstream_rate_limit`). A call
over any of them is answered at once, UNCHECKED `rate_limited:<per>`, never allowed, its
claim released so the real user may retry once the window has room.

Counters are named by HMAC-SHA256 under a deployment secret, never by the IP or account id
itself (an unkeyed hash of an IPv4 address is reversed by trying all 2^32), and kept per
policy entry (an action configured in `policy.actions`, or the default for every other
name, so inventing action names opens no new counters). Inside Google's RetryInfo window
nothing is counted: upstream is not called then anyway, and the retry guard answers.
"""

from __future__ import annotations

import hashlib
import hmac
import ipaddress
import time
from collections.abc import Callable, Sequence

from sidecar.core.model import AssessmentRequest
from sidecar.core.ports import Clock, RateLimit, RateLimiter
from sidecar.policy.schema import ActionPolicy, RateLimitRule

UPSTREAM = "upstream"  # the `per` of the global cap, in decided_by and metrics
_DIGEST_HEX = 32  # 128 bits of the HMAC name a counter: collisions are out of reach


class LimiterKeys:
    """Counter names: `<prefix><per>:<calls>/<period>:<hmac>`. The rule's rate is part of the
    name, so two rules on one client (30/minute and 500/hour) never share a counter."""

    __slots__ = ("_prefix", "_secret")

    def __init__(self, secret: bytes, prefix: str) -> None:
        if len(secret) < 16:
            raise ValueError("a rate limit key needs at least 16 bytes")
        self._secret = secret
        self._prefix = prefix

    def client(self, scope: str, rule: RateLimitRule, value: str) -> str:
        message = f"{scope}\0{rule.per}\0{value}".encode("utf-8", "surrogatepass")
        mac = hmac.new(self._secret, message, hashlib.sha256).hexdigest()[:_DIGEST_HEX]
        calls, period = rule.rate
        return f"{self._prefix}{rule.per}:{calls}/{period:g}:{mac}"

    def cap(self, calls: int, period: float) -> str:
        """The global cap's counter: the same name on every replica (no client in it)."""
        return f"{self._prefix}{UPSTREAM}:{calls}/{period:g}"


def client_network(address: str, rule: RateLimitRule) -> str:
    """The network an IP counts in: its /ipv4_prefix or /ipv6_prefix (an IPv4-mapped IPv6
    address counts as the IPv4 one). Empty when there is no address."""
    if not address:
        return ""
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:  # validation refuses these; an opaque value still counts as itself
        return address
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    if isinstance(ip, ipaddress.IPv4Address):
        bits, prefix = 32, rule.ipv4_prefix
    else:
        bits, prefix = 128, rule.ipv6_prefix
    return f"{ip.version}:{int(ip) >> (bits - prefix):x}/{prefix}"


class QuotaShield:
    """Asks the rate limiter for each call that would reach upstream."""

    __slots__ = (
        "_cap",
        "_cap_shed_at",
        "_clock",
        "_keys",
        "_limiter",
        "_timeout",
        "_window",
    )

    def __init__(
        self,
        limiter: RateLimiter,
        keys: LimiterKeys,
        *,
        cap: tuple[int, float] | None = None,
        timeout: float = 0.25,
        quota_window: Callable[[], float] | None = None,
        clock: Clock = time.monotonic,
    ) -> None:
        self._limiter = limiter
        self._clock = clock
        self._cap_shed_at: float | None = None
        self._keys = keys
        self._cap = None if cap is None else RateLimit(keys.cap(*cap), *cap)
        self._timeout = timeout
        self._window = quota_window

    def limits(
        self,
        request: AssessmentRequest,
        scope: str,
        rules: Sequence[RateLimitRule],
        site_key: str = "",
    ) -> tuple[list[RateLimit], list[str]]:
        """The limits this call must pass, in order (the action's rules as listed, the global
        cap last), and the `per` of each. A rule whose key the request lacks is left out.
        `site_key` is the key the call goes upstream with."""
        limits: list[RateLimit] = []
        pers: list[str] = []
        for rule in rules:
            if rule.per == "ip":
                value = client_network(request.user_ip_address, rule)
            elif rule.per == "account":
                value = request.account_id
            elif rule.per == "site_key":
                value = site_key
            else:  # action: every call under this policy entry
                value = scope or "*"
            if value:
                calls, period = rule.rate
                limits.append(RateLimit(self._keys.client(scope, rule, value), calls, period))
                pers.append(rule.per)
        if self._cap is not None:
            limits.append(self._cap)
            pers.append(UPSTREAM)
        return limits, pers

    async def check(
        self,
        request: AssessmentRequest,
        scope: str,
        action_policy: ActionPolicy,
        site_key: str = "",
        timeout: float | None = None,
    ) -> str | None:
        """The `per` of the limit that sheds this call, or None to let it go upstream (and
        then it has been counted against every limit). `scope` is the policy entry's name,
        `site_key` the key the call would go upstream with."""
        rules = action_policy.rate_limits
        if not rules and self._cap is None:
            return None
        if self._window is not None and self._window() > 0:
            return None  # Google asked for quiet: no upstream call will be made to count
        limits, pers = self.limits(request, scope, rules, site_key)
        if not limits:
            return None
        wait = self._timeout if timeout is None else max(0.0, min(self._timeout, timeout))
        refused = await self._limiter.admit(limits, wait)
        if refused < 0:
            return None
        per = pers[refused]
        if per == UPSTREAM:
            self._cap_shed_at = self._clock()
        return per

    def cap_shedding(self) -> bool | None:
        """Whether the global cap shed a call in the last second; None without a cap."""
        if self._cap is None:
            return None
        shed = self._cap_shed_at
        return shed is not None and self._clock() - shed < 1.0
