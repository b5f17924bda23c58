"""The metric instruments, created once per meter, and the catalog docs/telemetry.md is built from.

Every label value is either a fixed enum name or an action name the operator configured, so no
client input can grow the number of series (and no user data can reach a label). The three
decision metrics mirror the ones Identity Platform publishes for its own reCAPTCHA integration.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Generic, Protocol, TypeVar

from opentelemetry.metrics import CallbackOptions, Meter, Observation

# Risk scores are 0.0 … 1.0; Google documents 11 levels, so ten buckets of 0.1 lose nothing.
SCORE_BUCKETS: tuple[float, ...] = tuple(round(i / 10, 1) for i in range(11))
# Seconds: from an in-memory replay lookup (~µs) to a slow upstream (the 5 s default timeout).
LATENCY_BUCKETS: tuple[float, ...] = (
    0.0005,
    0.001,
    0.0025,
    0.005,
    0.01,
    0.025,
    0.05,
    0.1,
    0.25,
    0.5,
    1.0,
    2.5,
    5.0,
    10.0,
)
OTHER_ACTION = "other"
NO_ACTION = "none"
BREAKER_STATES = {"closed": 0, "half_open": 1, "open": 2}


@dataclass(frozen=True, slots=True)
class MetricSpec:
    """One documented metric: its OpenTelemetry name, Prometheus name, kind and labels."""

    name: str
    prometheus: str
    kind: str
    labels: tuple[str, ...]
    description: str


CATALOG: tuple[MetricSpec, ...] = (
    MetricSpec(
        "verdict_count",
        "verdict_count_total",
        "counter",
        ("verdict", "action"),
        "Assess answers by verdict: PASSED, FAILED_AUDIT, FAILED_ENFORCE, CLIENT_TYPE_MISSING, "
        "KEYS_MISSING.",
    ),
    MetricSpec(
        "token_count",
        "token_count_total",
        "counter",
        ("status", "action"),
        "Assess answers by token status: VALID, INVALID, EXPIRED, DUPLICATE, MISSING, UNCHECKED "
        "(also after CLIENT_TYPE_MISSING and KEYS_MISSING); express for express assessments "
        "(no token).",
    ),
    MetricSpec(
        "risk_scores",
        "risk_scores",
        "histogram",
        ("action",),
        "Scores of fresh VALID and express assessments (buckets 0.0, 0.1 … 1.0); replays are "
        "not re-counted.",
    ),
    MetricSpec(
        "sms_tf_risk_scores",
        "sms_tf_risk_scores",
        "histogram",
        ("action",),
        "SMS defense toll-fraud risks of fresh assessments that had one (a phone number in "
        "user_ids; buckets 0.0, 0.1 … 1.0, higher is worse): to choose max_sms_toll_fraud_risk.",
    ),
    MetricSpec(
        "transaction_risk_scores",
        "transaction_risk_scores",
        "histogram",
        ("action",),
        "Fraud prevention transaction risks of fresh assessments that had one (transaction_data "
        "given; buckets 0.0, 0.1 … 1.0, higher is worse): to choose max_transaction_risk.",
    ),
    MetricSpec(
        "rpc.server.call.duration",
        "rpc_server_call_duration_seconds",
        "histogram",
        ("rpc_service", "rpc_method", "rpc_grpc_status_code"),
        "Time to answer each RPC (health checks excluded), in seconds.",
    ),
    MetricSpec(
        "http.server.request.duration",
        "http_server_request_duration_seconds",
        "histogram",
        ("http_request_method", "http_route", "http_response_status_code"),
        "Time to answer each request of the HTTP listener (siteverify, forward-auth, Google's REST "
        "API), in seconds.",
    ),
    MetricSpec(
        "rpc.server.active_requests",
        "rpc_server_active_requests",
        "gauge",
        ("rpc_service", "rpc_method"),
        "RPCs in flight.",
    ),
    MetricSpec(
        "upstream.duration",
        "upstream_duration_seconds",
        "histogram",
        ("method", "code"),
        "Time of each upstream attempt, in seconds; code is the gRPC status name (OK, …).",
    ),
    MetricSpec(
        "upstream.attempts",
        "upstream_attempts_total",
        "counter",
        ("method", "code", "retry"),
        "Upstream attempts; retry is true for the second and later attempt of one call.",
    ),
    MetricSpec(
        "upstream.errors",
        "upstream_errors_total",
        "counter",
        ("method", "code"),
        "Upstream attempts that failed, by gRPC status name.",
    ),
    MetricSpec(
        "upstream.breaker.state",
        "upstream_breaker_state",
        "gauge",
        ("breaker",),
        "Circuit breaker: 0 closed, 1 half-open, 2 open.",
    ),
    MetricSpec(
        "upstream.retry_budget",
        "upstream_retry_budget",
        "gauge",
        ("budget",),
        "Retry budget left, 0.0 (exhausted: no retries) … 1.0 (full).",
    ),
    MetricSpec(
        "replay.lookups",
        "replay_lookups_total",
        "counter",
        ("result",),
        "Replay store claims: miss (first sight), hit (seen before), error (store failed).",
    ),
    MetricSpec(
        "replay.duration",
        "replay_duration_seconds",
        "histogram",
        ("operation", "outcome"),
        "Time of each replay store operation (claim, settle, release, get), in seconds.",
    ),
    MetricSpec(
        "process.open_file_descriptor.count",
        "process_open_file_descriptor_count",
        "gauge",
        (),
        "File descriptors the sidecar has open (from /proc, every 5 s); a warning is logged "
        "from 80% of the limit.",
    ),
    MetricSpec(
        "process.file_descriptor.limit",
        "process_file_descriptor_limit",
        "gauge",
        (),
        "The process's file descriptor limit (RLIMIT_NOFILE, soft).",
    ),
    MetricSpec(
        "rpc.server.connections",
        "rpc_server_connections",
        "gauge",
        ("listener",),
        "Established connections per listen address (from /proc, every 5 s); each gRPC "
        "server holds at most max_connections.",
    ),
    MetricSpec(
        "replay.evictions",
        "replay_evictions_total",
        "counter",
        ("kind",),
        "Memory store, when full: live entries forgotten to make room, by kind: not_allowed "
        "(settled, not allowed: first) or allowed (a capacity alarm: raise replay_max_entries).",
    ),
    MetricSpec(
        "rate_limited",
        "rate_limited_total",
        "counter",
        ("action", "per"),
        "Assess calls shed by a rate limit before upstream: per ip, account, site_key, "
        "action, or upstream (the global cap, upstream_rate_limit).",
    ),
    MetricSpec(
        "upstream.rate_limit.shedding",
        "upstream_rate_limit_shedding",
        "gauge",
        (),
        "The global cap (upstream_rate_limit): 1 while it sheds calls (one in the last "
        "second), 0 under it; not exported without a cap.",
    ),
    MetricSpec(
        "rate_limit.fallback",
        "rate_limit_fallback",
        "gauge",
        (),
        "1 while rate limits are this replica's own because Redis cannot answer (logged), "
        "0 while shared; not exported with the memory store.",
    ),
    MetricSpec(
        "rate_limit.store_errors",
        "rate_limit_store_errors_total",
        "counter",
        (),
        "Calls to the shared rate limit store that failed (each then decided locally).",
    ),
    MetricSpec(
        "quota.used_ratio",
        "quota_used_ratio",
        "gauge",
        (),
        "Upstream CreateAssessment calls in the last minute / project_quota_per_minute "
        "(fleet-wide with the Redis store, this replica's with memory); a warning is logged "
        "from 0.8.",
    ),
    MetricSpec(
        "outbox.depth",
        "outbox_depth",
        "gauge",
        (),
        "Annotations waiting in the outbox.",
    ),
    MetricSpec(
        "outbox.oldest_age",
        "outbox_oldest_age_seconds",
        "gauge",
        (),
        "Age of the oldest waiting annotation, in seconds (0 when empty).",
    ),
    MetricSpec(
        "outbox.dead_letters",
        "outbox_dead_letters",
        "gauge",
        (),
        "Annotations given up on and kept in the dead-letter table.",
    ),
    MetricSpec(
        "outbox.paused",
        "outbox_paused",
        "gauge",
        (),
        "1 while delivery is paused by a sidecar-wide upstream refusal (credentials, "
        "permission, project, quota), else 0.",
    ),
    MetricSpec(
        "outbox.damaged_files",
        "outbox_damaged_files_total",
        "counter",
        (),
        "Damaged outbox files moved aside at start (outbox.db.corrupt-<time>), replaced by an "
        "empty queue; see the annotations reference to recover their rows.",
    ),
    MetricSpec(
        "outbox.dead_lettered",
        "outbox_dead_lettered_total",
        "counter",
        ("reason",),
        "Annotations this process moved to the dead letter, by why: rejected (by upstream, "
        "outbox_max_attempts times), unreadable, invalid (no request can be built), failed.",
    ),
)


class BreakerStats(Protocol):
    """What the retry layer exposes about its circuit breaker. Read from the metrics exporter's
    thread at each collection: it must be cheap and must not block (read a field)."""

    def breaker_state(self) -> str:
        """`closed`, `half_open` or `open`."""
        ...


class RetryBudgetStats(Protocol):
    """What the retry layer exposes about its retry budget (same threading rule)."""

    def retry_budget_level(self) -> float:
        """Budget left, 0.0 … 1.0."""
        ...


class OutboxStats(Protocol):
    """What the annotation outbox exposes (same threading rule: cached numbers, no I/O)."""

    def outbox_depth(self) -> int:
        """Items waiting."""
        ...

    def outbox_oldest_age(self) -> float:
        """Seconds since the oldest waiting item was accepted; 0 when empty."""
        ...

    def outbox_dead_letters(self) -> int:
        """Items in the dead-letter table."""
        ...

    def outbox_paused(self) -> bool:
        """Whether delivery waits out a sidecar-wide upstream problem."""
        ...

    def outbox_damaged_files(self) -> int:
        """Damaged files moved aside at start."""
        ...


class ConnectionStats(Protocol):
    """What the connection watch exposes (same threading rule: numbers it cached)."""

    def open_fds(self) -> int: ...

    def max_fds(self) -> int: ...

    def connections(self) -> Mapping[str, int]:
        """Established connections by listen address."""
        ...


class DeadLetterStats(Protocol):
    """What the outbox flusher exposes about the rows it gave up on (same threading rule)."""

    def dead_letter_counts(self) -> Mapping[str, int]:
        """Rows moved to the dead letter so far, by reason."""
        ...


class EvictionStats(Protocol):
    """What the memory replay store exposes about its evictions (same threading rule)."""

    def replay_evictions(self) -> Mapping[str, int]:
        """Entries evicted so far, by kind."""
        ...


class RateLimitStats(Protocol):
    """What the quota shield exposes (same threading rule: read fields, no I/O)."""

    def cap_shedding(self) -> bool | None:
        """Whether the global cap shed a call in the last second; None without a cap."""
        ...

    def limiter_degraded(self) -> bool | None:
        """Whether limits fell back to this replica's own; None with the memory store."""
        ...

    def store_errors(self) -> int:
        """Failed calls to the shared store so far."""
        ...

    def quota_used(self) -> float:
        """Share of project_quota_per_minute used in the last minute."""
        ...


class ActionLabels:
    """Maps an app-supplied action name to a bounded label: the name itself only when the
    operator configured it (a `policy.actions` entry), `none` when empty, else `other`."""

    def __init__(self, known: Callable[[], Collection[str]]) -> None:
        self._known = known

    def __call__(self, action: str) -> str:
        if not action:
            return NO_ACTION
        name = action.lower()
        return name if name in self._known() else OTHER_ACTION


T = TypeVar("T")


class Tally:
    """A counter kept in a plain dict and reported at collection time (an observable counter).

    The SDK's synchronous `add` costs ~5 µs (attribute checks, hashing, a lock, per reader);
    this costs a dict update, and the hot path makes about ten of them per Assess. Adds come
    from the event loop thread; the exporter thread reads a copy.
    """

    __slots__ = ("_counts", "_keys")

    def __init__(self, keys: tuple[str, ...]) -> None:
        self._keys = keys
        self._counts: dict[tuple[str, ...], int] = {}

    def add(self, *values: str, amount: int = 1) -> None:
        """Count `amount` for the series with these label values (in `keys` order)."""
        self._counts[values] = self._counts.get(values, 0) + amount

    def value(self, *values: str) -> int:
        return self._counts.get(values, 0)

    def observe(self, _: CallbackOptions) -> Iterable[Observation]:
        for values, count in self._counts.copy().items():
            yield Observation(count, dict(zip(self._keys, values, strict=True)))


class _Registry(Generic[T]):
    """Providers registered after the instruments were made (the outbox starts later)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._items: list[tuple[str, T]] = []

    def add(self, name: str, item: T) -> None:
        with self._lock:
            self._items.append((name, item))

    def items(self) -> list[tuple[str, T]]:
        with self._lock:
            return list(self._items)


class Instruments:
    """Every instrument the sidecar records into. With the API's no-op meter each record call
    is a cheap no-op, so callers never check whether metrics are on."""

    def __init__(self, meter: Meter, actions: ActionLabels) -> None:
        self.actions = actions
        self.verdicts = self._tally(meter, "verdict_count", ("verdict", "action"), "{answer}")
        self.tokens = self._tally(meter, "token_count", ("status", "action"), "{answer}")
        self.risk_scores = meter.create_histogram(
            "risk_scores",
            "",
            "Scores of fresh VALID assessments.",
            explicit_bucket_boundaries_advisory=SCORE_BUCKETS,
        )
        self.sms_tf_risk_scores = meter.create_histogram(
            "sms_tf_risk_scores",
            "",
            "SMS defense toll-fraud risks of fresh assessments.",
            explicit_bucket_boundaries_advisory=SCORE_BUCKETS,
        )
        self.transaction_risk_scores = meter.create_histogram(
            "transaction_risk_scores",
            "",
            "Fraud prevention transaction risks of fresh assessments.",
            explicit_bucket_boundaries_advisory=SCORE_BUCKETS,
        )
        self.rpc_duration = meter.create_histogram(
            "rpc.server.call.duration",
            "s",
            "Time to answer each RPC.",
            explicit_bucket_boundaries_advisory=LATENCY_BUCKETS,
        )
        self.http_duration = meter.create_histogram(
            "http.server.request.duration",
            "s",
            "Time to answer each request of the HTTP listener.",
            explicit_bucket_boundaries_advisory=LATENCY_BUCKETS,
        )
        self.rpc_active = Tally(("rpc.service", "rpc.method"))
        meter.create_observable_up_down_counter(
            "rpc.server.active_requests",
            [self.rpc_active.observe],
            "{request}",
            _description("rpc.server.active_requests"),
        )
        self.upstream_duration = meter.create_histogram(
            "upstream.duration",
            "s",
            "Time of each upstream attempt.",
            explicit_bucket_boundaries_advisory=LATENCY_BUCKETS,
        )
        self.upstream_attempts = self._tally(
            meter, "upstream.attempts", ("method", "code", "retry"), "{attempt}"
        )
        self.upstream_errors = self._tally(
            meter, "upstream.errors", ("method", "code"), "{attempt}"
        )
        self.replay_lookups = self._tally(meter, "replay.lookups", ("result",), "{lookup}")
        self.replay_duration = meter.create_histogram(
            "replay.duration",
            "s",
            "Time of each replay store operation.",
            explicit_bucket_boundaries_advisory=LATENCY_BUCKETS,
        )
        self.rate_limited = self._tally(meter, "rate_limited", ("action", "per"), "{call}")
        self._shields: _Registry[RateLimitStats] = _Registry()
        meter.create_observable_gauge(
            "upstream.rate_limit.shedding",
            [self._shield(lambda s: s.cap_shedding())],
            "",
            "The global cap: 1 while it sheds calls.",
        )
        meter.create_observable_gauge(
            "rate_limit.fallback",
            [self._shield(lambda s: s.limiter_degraded())],
            "",
            "1 while rate limits are this replica's own.",
        )
        meter.create_observable_counter(
            "rate_limit.store_errors",
            [self._shield(lambda s: s.store_errors())],
            "{call}",
            _description("rate_limit.store_errors"),
        )
        meter.create_observable_gauge(
            "quota.used_ratio",
            [self._shield(lambda s: s.quota_used())],
            "",
            "Share of the project's quota used in the last minute.",
        )
        self._breakers: _Registry[BreakerStats] = _Registry()
        self._budgets: _Registry[RetryBudgetStats] = _Registry()
        self._outboxes: _Registry[OutboxStats] = _Registry()
        self._evictions: _Registry[EvictionStats] = _Registry()
        self._dead: _Registry[DeadLetterStats] = _Registry()
        self._connections: _Registry[ConnectionStats] = _Registry()
        meter.create_observable_gauge(
            "process.open_file_descriptor.count",
            [self._process(lambda c: c.open_fds())],
            "{file_descriptor}",
            _description("process.open_file_descriptor.count"),
        )
        meter.create_observable_gauge(
            "process.file_descriptor.limit",
            [self._process(lambda c: c.max_fds())],
            "{file_descriptor}",
            _description("process.file_descriptor.limit"),
        )
        meter.create_observable_gauge(
            "rpc.server.connections",
            [self._observe_connections],
            "{connection}",
            _description("rpc.server.connections"),
        )
        meter.create_observable_counter(
            "outbox.damaged_files",
            [self._outbox(lambda o: o.outbox_damaged_files())],
            "{file}",
            _description("outbox.damaged_files"),
        )
        meter.create_observable_counter(
            "outbox.dead_lettered",
            [self._observe_dead],
            "{item}",
            _description("outbox.dead_lettered"),
        )
        meter.create_observable_counter(
            "replay.evictions",
            [self._observe_evictions],
            "{entry}",
            _description("replay.evictions"),
        )
        meter.create_observable_gauge(
            "upstream.breaker.state",
            [self._observe_breakers],
            "",
            "Circuit breaker: 0 closed, 1 half-open, 2 open.",
        )
        meter.create_observable_gauge(
            "upstream.retry_budget", [self._observe_budgets], "", "Retry budget left, 0 … 1."
        )
        meter.create_observable_gauge(
            "outbox.depth", [self._outbox(lambda o: o.outbox_depth())], "{item}", "Waiting."
        )
        meter.create_observable_gauge(
            "outbox.oldest_age",
            [self._outbox(lambda o: o.outbox_oldest_age())],
            "s",
            "Age of the oldest waiting annotation.",
        )
        meter.create_observable_gauge(
            "outbox.dead_letters",
            [self._outbox(lambda o: o.outbox_dead_letters())],
            "{item}",
            "Annotations in the dead-letter table.",
        )
        meter.create_observable_gauge(
            "outbox.paused",
            [self._outbox(lambda o: float(o.outbox_paused()))],
            "",
            "1 while annotation delivery is paused by a sidecar-wide upstream refusal.",
        )

    @staticmethod
    def _tally(meter: Meter, name: str, keys: tuple[str, ...], unit: str) -> Tally:
        tally = Tally(keys)
        meter.create_observable_counter(name, [tally.observe], unit, _description(name))
        return tally

    # Decisions: recorded in exactly one place per front door (the gRPC interceptor).
    def record_decision(
        self,
        *,
        verdict: str,
        token_status: str,
        action: str,
        score: float | None,
        sms_risk: float | None = None,
        transaction_risk: float | None = None,
    ) -> None:
        """Count one Assess answer. `action` is already a bounded label (see ActionLabels);
        `score` and the risks only for a fresh assessment, so each upstream value is counted
        once (and a risk only when upstream assessed it)."""
        self.verdicts.add(verdict, action)
        self.tokens.add(token_status, action)
        labels = {"action": action}
        if score is not None:
            # Upstream scores are float32 (0.3 arrives as 0.30000001): round them back so each
            # lands in its own bucket (le="0.3"), not the next one.
            self.risk_scores.record(round(score, 6), labels)
        if sms_risk is not None:
            self.sms_tf_risk_scores.record(round(sms_risk, 6), labels)
        if transaction_risk is not None:
            self.transaction_risk_scores.record(round(transaction_risk, 6), labels)

    # Observable gauges read from providers registered later (the lead wires them at merge).
    def register_breaker(self, stats: BreakerStats, name: str = "upstream") -> None:
        """Export `stats.breaker_state()` as `upstream.breaker.state{breaker=name}`."""
        self._breakers.add(name, stats)

    def register_retry_budget(self, stats: RetryBudgetStats, name: str = "upstream") -> None:
        """Export `stats.retry_budget_level()` as `upstream.retry_budget{budget=name}`."""
        self._budgets.add(name, stats)

    def register_connections(self, stats: ConnectionStats) -> None:
        """Export descriptors and connections per listener."""
        self._connections.add("process", stats)

    def _process(
        self, read: Callable[[ConnectionStats], int]
    ) -> Callable[[CallbackOptions], Iterable[Observation]]:
        def observe(_: CallbackOptions) -> Iterable[Observation]:
            for _name, stats in self._connections.items():
                yield Observation(read(stats))

        return observe

    def _observe_connections(self, _: CallbackOptions) -> Iterable[Observation]:
        for _name, stats in self._connections.items():
            for listener, count in dict(stats.connections()).items():
                yield Observation(count, {"listener": listener})

    def register_dead_letters(self, stats: DeadLetterStats) -> None:
        """Export `stats.dead_letter_counts()` as `outbox.dead_lettered{reason}`."""
        self._dead.add("outbox", stats)

    def _observe_dead(self, _: CallbackOptions) -> Iterable[Observation]:
        for _name, stats in self._dead.items():
            for reason, count in dict(stats.dead_letter_counts()).items():
                yield Observation(count, {"reason": reason})

    def register_replay_evictions(self, stats: EvictionStats) -> None:
        """Export `stats.replay_evictions()` as `replay.evictions{kind}`."""
        self._evictions.add("replay", stats)

    def _observe_evictions(self, _: CallbackOptions) -> Iterable[Observation]:
        for _name, stats in self._evictions.items():
            for kind, count in dict(stats.replay_evictions()).items():
                yield Observation(count, {"kind": kind})

    def register_outbox(self, stats: OutboxStats) -> None:
        """Export the outbox depth, oldest age, dead letters and whether delivery is paused."""
        self._outboxes.add("outbox", stats)

    def register_rate_limits(self, stats: RateLimitStats) -> None:
        """Export the global cap's state, the fallback, store errors and the quota used."""
        self._shields.add("shield", stats)

    def _shield(
        self, read: Callable[[RateLimitStats], float | bool | None]
    ) -> Callable[[CallbackOptions], Iterable[Observation]]:
        def observe(_: CallbackOptions) -> Iterable[Observation]:
            for _name, stats in self._shields.items():
                value = read(stats)
                if value is not None:
                    yield Observation(float(value) if isinstance(value, float) else int(value))

        return observe

    def _observe_breakers(self, _: CallbackOptions) -> Iterable[Observation]:
        for name, stats in self._breakers.items():
            state = BREAKER_STATES.get(stats.breaker_state())
            if state is not None:
                yield Observation(state, {"breaker": name})

    def _observe_budgets(self, _: CallbackOptions) -> Iterable[Observation]:
        for name, stats in self._budgets.items():
            yield Observation(float(stats.retry_budget_level()), {"budget": name})

    def _outbox(
        self, read: Callable[[OutboxStats], float]
    ) -> Callable[[CallbackOptions], Iterable[Observation]]:
        def observe(_: CallbackOptions) -> Iterable[Observation]:
            for _name, stats in self._outboxes.items():
                yield Observation(read(stats))

        return observe


def _description(name: str) -> str:
    return next(spec.description for spec in CATALOG if spec.name == name)


def reference_table(specs: Sequence[MetricSpec] = CATALOG) -> str:
    """The metric table of docs/telemetry.md (a test keeps the two equal)."""
    lines = [
        "| Prometheus series | OpenTelemetry name | kind | labels | meaning |",
        "|---|---|---|---|---|",
    ]
    for spec in specs:
        labels = ", ".join(f"`{label}`" for label in spec.labels) or "-"
        lines.append(
            f"| `{spec.prometheus}` | `{spec.name}` | {spec.kind} | {labels} | {spec.description} |"
        )
    return "\n".join(lines) + "\n"
