"""One typed settings object: YAML file, then `RECAPTCHA_SIDECAR_*` environment, then flags.

Each knob is written once, here: its Field has the default, the bounds and the description;
the flag (`flags.py`), the environment variable, the reference (`recaptcha-sidecar config`)
and the per-module settings the composition root builds (`sidecar.server.components`) all
derive from it. No I/O and no adapter imports here (the loader, `load.py`, reads files), so
importing the model is cheap. A bad value fails at start with the key named.

Longer than the other modules on purpose: one flat model with one documented Field per
setting (as envoyproxy/ratelimit keeps one settings struct); splitting it by concern would
split the one source that the flags, the variables and the reference are generated from.
"""

from __future__ import annotations

import contextvars
import re
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import (
    Field,
    PrivateAttr,
    SecretStr,
    field_validator,
    model_validator,
)
from pydantic.fields import FieldInfo
from pydantic_settings import (
    BaseSettings,
    NoDecode,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    YamlConfigSettingsSource,
)

from sidecar.config import addresses
from sidecar.policy.schema import Policy, parse_rate
from sidecar.redisconn.url import parse_redis_url

ENV_PREFIX = "RECAPTCHA_SIDECAR_"
DEFAULT_ENDPOINT = "recaptchaenterprise.googleapis.com:443"
# The environment variable of `account_id_key` (the accountid tools read it too).
ACCOUNT_ID_KEY_ENV = ENV_PREFIX + "ACCOUNT_ID_KEY"
# Settings without a flag: the policy is a document (the config file's), and secrets on a
# command line are visible to every process on the node (`ps`); `api_key` keeps the flag it
# always had, with a warning in its description.
NO_FLAG = frozenset({"policy", "account_id_key", "replay_redis_password"})
# The file `load_settings` is reading, for `settings_customise_sources` (set only while it runs).
CONFIG_FILE: contextvars.ContextVar[Path | None] = contextvars.ContextVar(
    "config_file", default=None
)
_KEY_ID = re.compile(r"[A-Za-z0-9_\-]{1,100}")
_HOST_PORT = re.compile(r"(\[[0-9a-fA-F:.]+\]|[A-Za-z0-9.\-]+):\d{1,5}")


def _check_address(address: str) -> None:
    """gRPC target syntax for a listener: host:port or unix:///path."""
    if address.startswith("unix:"):
        if not address.removeprefix("unix://").removeprefix("unix:"):
            raise ValueError(f"{address!r}: a Unix socket needs a path")
    elif not _HOST_PORT.fullmatch(address):
        raise ValueError(f"{address!r}: expected host:port or unix:///path")


class ConfigError(Exception):
    """Settings that cannot be used; the message names every offending key."""


def _split_list(value: Any) -> Any:
    """Lists from the environment: comma-separated (`a,b`) or JSON (`["a","b"]`)."""
    if isinstance(value, str):
        value = value.strip()
        if value.startswith("["):
            import json

            return json.loads(value)
        return [item.strip() for item in value.split(",") if item.strip()]
    return value


class Settings(BaseSettings):
    """Everything the sidecar can be told."""

    model_config = SettingsConfigDict(
        env_prefix=ENV_PREFIX, extra="forbid", validate_default=True, frozen=True
    )

    listen: Annotated[list[str], NoDecode] = Field(
        default_factory=lambda: ["127.0.0.1:50051"],
        description="Addresses to serve on, in gRPC target syntax: `127.0.0.1:50051`, "
        "`[::1]:50051`, `unix:///run/recaptcha/sidecar.sock`. "
        "Repeatable flag; comma-separated env.",
    )
    project: str = Field(
        "", description="Google Cloud project id or number that owns the reCAPTCHA keys."
    )
    project_number: str | None = Field(
        None,
        pattern=r"^[0-9]{1,30}$",
        description="The project's number, when `project` is its id: the Google-compatible "
        "face then accepts `parent` by either. Unset, the number is learned from the names "
        "of upstream's assessments.",
    )
    site_key: str = Field(
        "",
        description="Default reCAPTCHA key id when a request names none (and site_keys does "
        "not choose one).",
    )
    site_keys: Annotated[dict[Literal["web", "android", "ios", "express"], str], NoDecode] = Field(
        default_factory=dict,
        description="A key id per client type, chosen by AssessRequest.client_type when a "
        "request names no site_key: `{web: KEY, android: KEY, ios: KEY, express: KEY}` (flag "
        "and env: `web=KEY,android=KEY` or JSON). With keys for two or more of web/android/ios, "
        "a request that says no client type is VERDICT_CLIENT_TYPE_MISSING; express "
        "assessments use `express`.",
    )
    api_key: SecretStr | None = Field(
        None,
        description="API key for upstream (instead of Application Default Credentials); "
        "prefer api_key_file or the environment, since a flag is visible to `ps`.",
    )
    api_key_file: Path | None = Field(
        None, description="File holding the API key (a mounted Secret); wins over api_key."
    )
    upstream_endpoint: str = Field(
        DEFAULT_ENDPOINT, description="reCAPTCHA Enterprise gRPC endpoint, `host:port`."
    )
    upstream_plaintext: bool = Field(
        False, description="Talk to upstream without TLS and credentials (local emulators only)."
    )
    upstream_ca_file: Path | None = Field(
        None,
        description="PEM CA bundle that upstream's TLS certificate must chain to, instead of the "
        "system roots (a TLS-inspecting proxy, a private endpoint, the emulator's --tls CA).",
    )
    emulator: bool = Field(
        False, description="Run the embedded emulator in-process and use it as upstream."
    )
    upstream_timeout: float = Field(
        5.0, gt=0, le=60, description="Longest wait for one upstream answer, in seconds."
    )
    deadline_margin: float = Field(
        0.02,
        ge=0,
        le=5,
        description="Seconds of the caller's deadline kept back to answer it after upstream.",
    )
    replay_store: str = Field(
        "memory://",
        description="Replay store URL: `memory://` (one sidecar), `redis://[user:pass@]host:port"
        "/db`, `rediss://…` (TLS; `?ssl_ca_certs=/path/ca.pem`), `unix:///path.sock`, "
        "`redis+cluster://host:port[,host:port…]` (`rediss+cluster://` with TLS), "
        "`redis+sentinel://host:port[,host:port…]/<service-name>[/db]`.",
    )
    replay_max_entries: int = Field(
        1_000_000, ge=1, description="Memory store: most tokens remembered at once."
    )
    replay_ttl: float = Field(
        150.0,
        ge=130,
        description="Seconds a token is remembered: its 120 s life plus a clock margin.",
    )
    replay_timeout: float = Field(
        0.25, gt=0, le=10, description="Longest wait for the replay store, in seconds."
    )
    replay_key_prefix: str = Field(
        "recaptcha-sidecar:replay:",
        max_length=200,
        description="Redis store: prefix of every key (then the token's SHA-256 in hex).",
    )
    replay_redis_password: SecretStr | None = Field(
        None, description="Redis store: password; wins over one in the URL, never logged."
    )
    replay_redis_pool_size: int = Field(
        50, ge=1, le=10_000, description="Redis store: most connections open at once."
    )
    replay_redis_timeout: float = Field(
        1.0,
        gt=0,
        le=30,
        description="Redis store: seconds to connect, per socket read/write, and to wait "
        "for a free pooled connection.",
    )
    replay_min_replicas: int = Field(
        0,
        ge=0,
        le=16,
        description="Redis store: replicas that must acknowledge a claim (`WAIT`, on the "
        "connection that wrote it) before it counts, so a failover cannot forget it; a claim "
        "not acknowledged within replay_replication_timeout is a store failure (UNCHECKED, "
        "closed by default, the token released). 0: the primary's word is enough.",
    )
    replay_replication_timeout: float = Field(
        0.1,
        gt=0,
        le=10,
        description="Redis store with replay_min_replicas: longest wait for the replicas' "
        "acknowledgement of a claim, in seconds; less than replay_timeout and "
        "replay_redis_timeout.",
    )
    replay_health_interval: float = Field(
        1.0,
        gt=0,
        le=60,
        description="Seconds between replay store pings; health is NOT_SERVING while "
        "the store is unreachable.",
    )
    upstream_rate_limit: str = Field(
        "",
        description="Global cap on the calls that reach upstream, e.g. `900/second`: shared "
        "by every replica on the Redis replay store (per replica with `memory://`); a call "
        "over it is UNCHECKED rate_limited:upstream, never allowed. Empty: no cap. Size it "
        "below project_quota_per_minute / 60 per second, with headroom for the project's "
        "other apps.",
    )
    project_quota_per_minute: int = Field(
        60_000,
        ge=1,
        le=100_000_000,
        description="The project's CreateAssessment quota (Google's default: 60,000 a "
        "minute, shared by every app and IP of the project): the share used is exported "
        "(quota_used_ratio) and a warning logged from 80%.",
    )
    rate_limit_key_file: Path | None = Field(
        None,
        description="File holding the base64 secret (16+ bytes; `openssl rand -base64 32`) "
        "that names rate limit counters by HMAC-SHA256, never by IP or account id. Required "
        "with a Redis replay_store and per-client rate_limits (every replica must name a "
        "client's counter alike); with `memory://` a random per-process key is used.",
    )
    rate_limit_key_prefix: str = Field(
        "recaptcha-sidecar:limit:",
        max_length=200,
        description="Redis: prefix of every rate limit and quota key.",
    )
    rate_limit_max_keys: int = Field(
        100_000,
        ge=1,
        le=10_000_000,
        description="Rate limit counters kept in memory at once (the memory store's, and "
        "each replica's own while Redis is unreachable); past it the least recently used go.",
    )
    retry_max_attempts: int = Field(
        3, ge=1, le=10, description="Most attempts per upstream call, the first included."
    )
    retry_initial_backoff: float = Field(
        0.05, gt=0, le=10, description="Back-off ceiling before the first retry, in seconds."
    )
    retry_max_backoff: float = Field(
        1.0, gt=0, le=60, description="Largest back-off between attempts, in seconds."
    )
    retry_backoff_multiplier: float = Field(
        2.0, ge=1, le=10, description="Growth of the back-off ceiling per retry (full jitter)."
    )
    retry_budget_ratio: float = Field(
        0.2, ge=0, le=10, description="Retries allowed per upstream request (0.2: 20%)."
    )
    retry_budget_min_per_second: float = Field(
        5.0,
        ge=0,
        le=1000,
        description="Retries always allowed per second, on top of the ratio; the budget "
        "banks up to 10 s of them.",
    )
    breaker_failure_ratio: float = Field(
        0.8,
        gt=0,
        le=1,
        description="Share of failed upstream attempts in the window that opens the breaker.",
    )
    breaker_min_calls: int = Field(
        10, ge=1, description="Attempts in the window before the breaker may open."
    )
    breaker_window: float = Field(
        10.0, gt=0, le=600, description="Seconds of attempts the breaker looks back on."
    )
    breaker_cooldown: float = Field(
        5.0, gt=0, le=600, description="Seconds an open breaker waits before one probe."
    )
    max_in_flight: int = Field(
        256, ge=1, description="Assess (and Annotate) calls handled at once; more wait."
    )
    max_queued: int = Field(
        256,
        ge=0,
        description="Calls waiting for a slot; past it RESOURCE_EXHAUSTED at once.",
    )
    max_connections: int = Field(
        1000,
        ge=1,
        le=1_000_000,
        description="Connections each gRPC server (the pod's listeners, the exposed ones, the "
        "probe listener) holds at once; more are closed at once. Keep it below the file "
        "descriptor limit.",
    )
    max_concurrent_streams: int = Field(
        4096,
        ge=1,
        le=1_000_000,
        description="Calls one connection may have open at once (HTTP/2 "
        "MAX_CONCURRENT_STREAMS; past it a call is refused, UNAVAILABLE). The default is what "
        "gRPC keeps pending for the sidecar at most: more could not be served anyway.",
    )
    max_connection_idle: float = Field(
        300.0,
        gt=0,
        le=86_400,
        description="Seconds a connection without calls stays open before it is closed "
        "(clients reconnect on their next call).",
    )
    max_connection_age: float = Field(
        600.0,
        gt=0,
        le=86_400,
        description="Seconds after which a connection is asked to go away (GOAWAY): this "
        "bounds connections holding calls that never send their message, which gRPC does not "
        "hand to the sidecar.",
    )
    max_connection_age_grace: float = Field(
        30.0,
        gt=0,
        le=3_600,
        description="Seconds a connection asked to go away has to finish its calls before "
        "it is closed.",
    )
    outbox: str | Path | None = Field(
        None,
        description="Where annotations queue durably: a SQLite file of this pod (WAL, "
        "synchronous=FULL), or a Redis URL (any form of replay_store) for a stream every "
        "replica shares, so a pod that dies for good loses none (needs outbox_key_file); "
        "unset: Annotate sends synchronously and queues nothing.",
    )
    outbox_key_file: Path | None = Field(
        None,
        description="File of base64 AES-256 keys (a mounted Secret, the same for every "
        "replica; `openssl rand -base64 32`, one per line, the first seals): outbox payloads "
        "are encrypted at rest (AES-256-GCM), opened with any line's key. Required for a Redis "
        "outbox. Unset: SQLite payloads rest in clear until delivered (deleted rows are zeroed).",
    )
    outbox_min_replicas: int = Field(
        0,
        ge=0,
        le=16,
        description="Redis outbox: replicas that must acknowledge a queued annotation "
        "(`WAIT`) before Annotate answers QUEUED; not acknowledged within "
        "outbox_replication_timeout: RESOURCE_EXHAUSTED, the app retries.",
    )
    outbox_replication_timeout: float = Field(
        1.0, gt=0, le=30, description="Redis outbox: longest wait for that acknowledgement."
    )
    outbox_claim_idle: float = Field(
        30.0,
        ge=1,
        le=3600,
        description="Redis outbox: seconds a replica's queued annotations may go without its "
        "heartbeat before the others take them over (a replica that died).",
    )
    outbox_stream: str = Field(
        "recaptcha-sidecar:outbox",
        min_length=1,
        max_length=200,
        description="Redis outbox: the stream's name; its dead letter (`…:dead`) shares its "
        "hash slot.",
    )
    outbox_wait_for_upstream: bool = Field(
        False, description="Treat every Annotate as wait_for_upstream (synchronous delivery)."
    )
    outbox_batch_size: int = Field(
        100, ge=1, le=10_000, description="Annotations per flush; this many queued flush at once."
    )
    outbox_flush_interval: float = Field(
        0.5, gt=0, le=60, description="Seconds between flushes of a partial batch."
    )
    outbox_concurrency: int = Field(
        8, ge=1, le=256, description="Annotations sent upstream at once by the flusher."
    )
    outbox_max_attempts: int = Field(
        10,
        ge=1,
        description="Rejections of one annotation (INVALID_ARGUMENT, NOT_FOUND) before it "
        "moves to the dead letter; transient failures are retried without limit.",
    )
    outbox_max_backoff: float = Field(
        60.0, gt=0, le=3600, description="Longest wait before a failed annotation is retried."
    )
    outbox_max_items: int = Field(
        100_000, ge=1, description="Most annotations queued; past it RESOURCE_EXHAUSTED."
    )
    workers: int = Field(
        1,
        ge=1,
        le=64,
        description="Worker processes serving the same TCP listeners (SO_REUSEPORT: the kernel "
        "spreads connections), forked before any gRPC object exists and restarted when one "
        "dies. Above 1: needs a Redis replay_store (N memory:// stores would accept a token "
        "once per worker) and TCP listeners only; each worker keeps its own breaker and retry "
        "budget, a SQLite outbox of its own (`<outbox>`, then `<stem>-worker<k><suffix>` "
        "beside it), Prometheus on metrics_listen's port + k, and the resource attribute "
        "`recaptcha_sidecar.worker`.",
    )
    shutdown_grace: float = Field(
        10.0,
        ge=0,
        le=300,
        description="Seconds after SIGTERM to finish calls in flight and flush the outbox.",
    )
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = Field(
        "INFO", description="Lowest log level written."
    )
    library_log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = Field(
        "WARNING",
        description="Lowest log level written for other libraries' loggers (grpc, asyncio, "
        "redis, OpenTelemetry): their noise stays out of a DEBUG log unless asked for here.",
    )
    health_listen: str | None = Field(
        None,
        description="Extra address serving only `grpc.health.v1.Health`, in the clear and "
        "without auth, for kubelet gRPC probes (e.g. `0.0.0.0:8086`). Off when unset.",
    )
    http_listen: Annotated[list[str], NoDecode] = Field(
        default_factory=list,
        description="Addresses of the HTTP listener (siteverify, forward-auth), e.g. "
        "`127.0.0.1:8080` or `unix:///run/recaptcha/http.sock`; the same security rules as "
        "`listen`. Off when empty. Repeatable flag; comma-separated env.",
    )
    siteverify_secrets_file: Path | None = Field(
        None,
        description="File (a mounted Secret) mapping legacy siteverify secrets to site keys: "
        "one `SECRET SITE_KEY` pair per line, `#` comments. Re-read when it changes. Without "
        "it every siteverify call is `invalid-input-secret`.",
    )
    forward_auth_token_header: str = Field(
        addresses.DEFAULT_TOKEN_HEADER,
        pattern=r"^[A-Za-z0-9!#$%&'*+.^_`|~-]{1,100}$",
        description="Request header that carries the token to forward-auth and ext_authz.",
    )
    forward_auth_trusted_proxies: Annotated[list[str], NoDecode] = Field(
        default_factory=lambda: list(addresses.DEFAULT_TRUSTED_PROXIES),
        description="Peers (CIDRs or addresses) whose X-Forwarded-For, X-Real-IP, "
        "X-Forwarded-Proto/Host/Uri and x-ja3/ja4-fingerprint headers forward-auth believes; "
        "from any other peer they are ignored. A Unix-socket peer counts as loopback. "
        "Repeatable flag; comma-separated env.",
    )
    tls_cert_file: Path | None = Field(
        None,
        description="PEM server certificate (chain) for listeners reachable from outside the "
        "pod; with tls_key_file. Re-read when the file changes.",
    )
    tls_key_file: Path | None = Field(None, description="PEM private key of tls_cert_file.")
    tls_client_ca_file: Path | None = Field(
        None,
        description="PEM CA bundle: when set, exposed listeners require a client certificate "
        "that chains to it (mTLS).",
    )
    auth_token_file: Path | None = Field(
        None,
        description="File holding the bearer token (16+ characters) that calls on exposed "
        "listeners must send as `authorization: Bearer …`. Re-read when the file changes.",
    )
    insecure_listen: bool = Field(
        False,
        description="Allow a listener reachable from outside the pod without TLS or a token.",
    )
    secure_loopback: bool = Field(
        False,
        description="Treat loopback TCP listeners as exposed too (hostNetwork pods share "
        "loopback with the node). Unix sockets stay guarded by socket_mode.",
    )
    socket_mode: str = Field(
        "0660",
        description="Permission bits of Unix socket files, octal (quote it in YAML).",
    )
    log_format: Literal["json", "text"] = Field(
        "json",
        description="`json`: one JSON object per line on stderr, with trace and span ids; "
        "`text`: plain lines for a terminal.",
    )
    access_log: bool = Field(
        True, description="One INFO line per RPC: method, status, verdict, duration."
    )
    metrics_listen: str = Field(
        "",
        description="`host:port` of the Prometheus scrape endpoint, e.g. `127.0.0.1:9464` "
        "(`:9464`: every interface); empty: none. Traces and OTLP metrics are configured "
        "with the standard `OTEL_*` variables. Beyond loopback it serves HTTPS with "
        "tls_cert_file / tls_key_file, or plain HTTP only with metrics_insecure.",
    )
    metrics_insecure: bool = Field(
        False,
        description="Allow a metrics_listen reachable from outside the pod over plain HTTP "
        "(a Prometheus scraping the pod IP); independent of insecure_listen.",
    )
    telemetry_console: bool = Field(
        False, description="Also print spans and metrics on stdout (debugging)."
    )
    policy: Policy = Field(
        default_factory=Policy, description="Decision rules; see the policy reference."
    )
    policy_reload_interval: float = Field(
        1.0,
        ge=0,
        le=3600,
        description="Seconds between looks at the config file for a changed policy (a "
        "mounted ConfigMap); 0: only on SIGHUP.",
    )
    account_id_protection: Literal["plain", "hmac-sha256", "deterministic-encryption"] = Field(
        "plain",
        description="What account_id becomes before it leaves the pod, in Assess and Annotate "
        "alike: as given, HMAC-SHA256 under a secret salt, or AES-SIV (decryptable with "
        "`recaptcha-sidecar account-id decrypt`).",
    )
    account_id_key_file: Path | None = Field(
        None,
        description="File holding the base64 key or salt for account_id_protection (a "
        "mounted Secret); wins over account_id_key.",
    )
    account_id_key: SecretStr | None = Field(
        None,
        description="The base64 key or salt for account_id_protection; environment only, "
        "refused in the config file.",
    )

    _source: tuple[Path | None, dict[str, Any]] = PrivateAttr(default=(None, {}))

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        """Flags (init) win over the environment, which wins over the file."""
        sources: list[PydanticBaseSettingsSource] = [init_settings, env_settings]
        path = CONFIG_FILE.get()
        if path is not None:
            sources.append(_ConfigFileSource(settings_cls, yaml_file=path))
        return tuple(sources)

    @field_validator("listen", mode="before")
    @classmethod
    def _listen_list(cls, value: Any) -> Any:
        return _split_list(value)

    @field_validator("listen")
    @classmethod
    def _listen_syntax(cls, value: list[str]) -> list[str]:
        if not value:
            raise ValueError("at least one address is needed")
        for address in value:
            _check_address(address)
        return value

    @field_validator("http_listen", "forward_auth_trusted_proxies", mode="before")
    @classmethod
    def _http_lists(cls, value: Any) -> Any:
        return _split_list(value)

    @field_validator("http_listen")
    @classmethod
    def _http_listen_syntax(cls, value: list[str]) -> list[str]:
        for address in value:
            _check_address(address)
        if len(set(value)) != len(value):
            raise ValueError("an address is listed twice")
        return value

    @field_validator("forward_auth_trusted_proxies")
    @classmethod
    def _trusted_proxies(cls, value: list[str]) -> list[str]:
        addresses.parse_networks(value)  # ValueError naming the first bad one
        return [item.strip() for item in value]

    @field_validator("health_listen", mode="before")
    @classmethod
    def _health_listen_empty(cls, value: Any) -> Any:
        return None if value == "" else value

    @field_validator("health_listen")
    @classmethod
    def _health_listen_syntax(cls, value: str | None) -> str | None:
        if value is not None:
            _check_address(value)
        return value

    @field_validator("socket_mode", mode="before")
    @classmethod
    def _socket_mode(cls, value: Any) -> str:
        return addresses.parse_socket_mode(value)

    @field_validator("metrics_listen")
    @classmethod
    def _metrics_listen_syntax(cls, value: str) -> str:
        if value and not (_HOST_PORT.fullmatch(value) or re.fullmatch(r":\d{1,5}", value)):
            raise ValueError(f"{value!r}: expected host:port, e.g. 127.0.0.1:9464")
        return value

    @field_validator("site_key")
    @classmethod
    def _site_key_syntax(cls, value: str) -> str:
        if value and not _KEY_ID.fullmatch(value):
            raise ValueError(f"{value!r}: a reCAPTCHA key id (letters, digits, '-', '_')")
        return value

    @field_validator("site_keys", mode="before")
    @classmethod
    def _site_keys_text(cls, value: Any) -> Any:
        """From a flag or the environment: `web=KEY,android=KEY`, or a JSON object."""
        if not isinstance(value, str):
            return value
        text = value.strip()
        if text.startswith("{"):
            import json

            return json.loads(text)
        pairs = {}
        for item in filter(None, (part.strip() for part in text.split(","))):
            name, sep, key = item.partition("=")
            if not sep:
                raise ValueError(f"{item!r}: expected CLIENT_TYPE=KEY (web, android, ios, express)")
            pairs[name.strip()] = key.strip()
        return pairs

    @field_validator("site_keys")
    @classmethod
    def _site_keys_syntax(cls, value: dict[str, str]) -> dict[str, str]:
        for name, key in value.items():
            if not _KEY_ID.fullmatch(key):
                raise ValueError(f"{name}: {key!r} is not a reCAPTCHA key id")
        return value

    @field_validator("outbox", mode="before")
    @classmethod
    def _outbox_target(cls, value: Any) -> Any:
        """A Redis URL stays a string (validated), anything else is a file path."""
        if isinstance(value, str) and "://" in value:
            try:
                parse_redis_url(value)
            except ValueError as error:  # names what is wrong, never the URL (a password)
                raise ValueError(f"{error} (or a file path for a SQLite outbox)") from None
            return value
        if isinstance(value, str):
            return Path(value) if value else None
        return value

    @model_validator(mode="after")
    def _redis_outbox(self) -> Settings:
        redis = isinstance(self.outbox, str)
        if redis and self.outbox_key_file is None:
            raise ValueError(
                "outbox_key_file: required for a Redis outbox (no account id rests in clear "
                "in a shared Redis)"
            )
        if self.outbox_min_replicas and not redis:
            raise ValueError("outbox_min_replicas: needs a Redis outbox")
        return self

    @field_validator("replay_store")
    @classmethod
    def _replay_url(cls, value: str) -> str:
        if value != "memory://":
            try:
                parse_redis_url(value)
            except ValueError as error:  # names what is wrong, never the URL (a password)
                raise ValueError(f"{error} (or memory:// for one sidecar)") from None
        return value

    @model_validator(mode="after")
    def _replication(self) -> Settings:
        if self.replay_min_replicas and self.replay_store.startswith("memory:"):
            raise ValueError("replay_min_replicas: needs a Redis replay_store")
        if self.replay_min_replicas and self.replay_replication_timeout >= min(
            self.replay_timeout, self.replay_redis_timeout
        ):
            raise ValueError(
                "replay_replication_timeout: must be less than replay_timeout and "
                "replay_redis_timeout (the claim's round trip comes on top)"
            )
        return self

    @field_validator("upstream_rate_limit")
    @classmethod
    def _cap_syntax(cls, value: str) -> str:
        if value.strip():
            parse_rate(value)
        return value.strip()

    @model_validator(mode="after")
    def _shared_limiter_keys(self) -> Settings:
        """Replicas sharing Redis must name a client's counter alike: a random key per
        process would give every replica its own counters, silently multiplying limits."""
        if self.replay_store.startswith("memory:") or self.rate_limit_key_file is not None:
            return self
        policy = self.policy
        entries = (policy.default, *policy.actions.values())
        if any(entry.rate_limits for entry in entries):
            raise ValueError(
                "rate_limit_key_file: required with a Redis replay_store and per-client "
                "rate_limits (the replicas' shared secret naming each client's counter)"
            )
        return self

    @model_validator(mode="after")
    def _workers_share(self) -> Settings:
        """Workers share the listeners through the kernel and single use through Redis: a
        memory store per worker, or a Unix socket (which cannot be shared), would not do."""
        if self.workers == 1:
            return self
        if self.replay_store.startswith("memory:"):
            raise ValueError(
                "workers: more than one needs a Redis replay_store (with memory:// each worker "
                "would accept a token once)"
            )
        unix = [a for a in (*self.listen, *self.http_listen, self.health_listen or "") if a]
        unix = [a for a in unix if a.startswith("unix:")]
        if unix:
            raise ValueError(
                f"workers: more than one serves TCP listeners only ({unix[0]} cannot be shared "
                "between processes)"
            )
        return self

    @model_validator(mode="after")
    def _backoff_order(self) -> Settings:
        if self.retry_max_backoff < self.retry_initial_backoff:
            raise ValueError("retry_max_backoff: must be at least retry_initial_backoff")
        return self

    @model_validator(mode="after")
    def _needs_project(self) -> Settings:
        if not self.emulator and not self.project:
            raise ValueError("project: required unless --emulator is given")
        return self

    @model_validator(mode="after")
    def _listener_security(self) -> Settings:
        if (self.tls_cert_file is None) != (self.tls_key_file is None):
            raise ValueError("tls_cert_file and tls_key_file: set both or neither")
        if self.tls_client_ca_file is not None and self.tls_cert_file is None:
            raise ValueError("tls_client_ca_file: mTLS needs tls_cert_file and tls_key_file")
        health = self.health_listen
        if health is not None and not health.endswith(":0") and health in self.listen:
            raise ValueError("health_listen: must differ from every listen address")
        clash = {a for a in self.http_listen if not a.endswith(":0")} & {
            *self.listen,
            *([health] if health else []),
        }
        if clash:
            raise ValueError(f"http_listen: {', '.join(sorted(clash))} is a gRPC listener too")
        for key, listeners in (("listen", self.listen), ("http_listen", self.http_listen)):
            problem = addresses.listen_problem(
                listeners,
                secure_loopback=self.secure_loopback,
                tls=self.tls_cert_file is not None,
                token=self.auth_token_file is not None,
                insecure_listen=self.insecure_listen,
                client_ca=self.tls_client_ca_file is not None,
                key=key,
            )
            if problem:
                raise ValueError(problem)
        problem = addresses.metrics_problem(
            self.metrics_listen,
            tls=self.tls_cert_file is not None,
            metrics_insecure=self.metrics_insecure,
        )
        if problem:
            raise ValueError(problem)
        return self

    @property
    def config_file(self) -> Path | None:
        """The YAML file these settings were read from, if any (hot reload watches it)."""
        return self._source[0]


class _ConfigFileSource(YamlConfigSettingsSource):
    """The YAML file, which may not hold secrets meant for the environment or a file."""

    _FORBIDDEN = ("account_id_key",)

    def __call__(self) -> dict[str, Any]:
        data = super().__call__()
        for key, instead in refused_in_file().items():
            if key in data:
                raise ValueError(f"{key}: not read from the config file; {instead}")
        return data


def shown_default(info: FieldInfo) -> str:
    """A field's default as a person would write it (for flag help)."""
    default = info.get_default(call_default_factory=True)
    if isinstance(default, Policy):
        return "see the policy reference"
    if isinstance(default, dict) and not default:
        return "{}"
    if default is None:
        return "unset"
    if isinstance(default, bool):
        return str(default).lower()
    if isinstance(default, list):
        return ",".join(str(item) for item in default)
    if default == "":
        return '""'
    return str(default)


def refused_in_file() -> dict[str, str]:
    """The settings a config file may not hold, each with where it goes instead."""
    return {key: f"use {key}_file or {ACCOUNT_ID_KEY_ENV}" for key in _ConfigFileSource._FORBIDDEN}


def reference(model: type[BaseSettings] = Settings) -> list[tuple[str, str, str, str]]:
    """(key, env var, default, description) rows for docs/configuration.md."""
    rows = []
    for name, field in model.model_fields.items():
        default = field.get_default(call_default_factory=True)
        shown = "see below" if isinstance(default, Policy) else repr(default)
        rows.append((name, ENV_PREFIX + name.upper(), shown, field.description or ""))
    return rows
