"""Each module's own settings, built from the one `Settings` model.

The modules (core, upstream, outbox, telemetry) take small frozen values and never import the
settings; their fields that mirror a setting have no default of their own, so every default
is written once, in `sidecar.config.model`. Knobs that are no setting (the retry budget's
window, the outbox's first back-off, …) keep their default where they are used.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from sidecar.accountid.protection import AccountIdProtector, build_protector
from sidecar.config import Settings
from sidecar.config.addresses import is_loopback
from sidecar.core.verify import VerifySettings
from sidecar.outbox import FlushSettings
from sidecar.telemetry.providers import TelemetryOptions
from sidecar.upstream.breaker import BreakerSettings
from sidecar.upstream.budget import BudgetSettings
from sidecar.upstream.retry import RetrySettings

# The default key of `serve --emulator` when none is configured: the embedded emulator accepts
# any key, and a sidecar with no key at all answers VERDICT_KEYS_MISSING.
EMULATOR_SITE_KEY = "emulator-site-key"


def verify_settings(settings: Settings) -> VerifySettings:
    return VerifySettings(
        default_site_key=settings.site_key or (EMULATOR_SITE_KEY if settings.emulator else ""),
        site_keys={str(name): key for name, key in settings.site_keys.items()},
        upstream_timeout=settings.upstream_timeout,
        deadline_margin=settings.deadline_margin,
        replay_ttl=settings.replay_ttl,
        replay_timeout=settings.replay_timeout,
    )


def retry_settings(settings: Settings) -> RetrySettings:
    return RetrySettings(
        max_attempts=settings.retry_max_attempts,
        initial_backoff=settings.retry_initial_backoff,
        max_backoff=settings.retry_max_backoff,
        multiplier=settings.retry_backoff_multiplier,
    )


def budget_settings(settings: Settings) -> BudgetSettings:
    return BudgetSettings(
        ratio=settings.retry_budget_ratio, min_per_second=settings.retry_budget_min_per_second
    )


def breaker_settings(settings: Settings) -> BreakerSettings:
    return BreakerSettings(
        failure_ratio=settings.breaker_failure_ratio,
        min_calls=settings.breaker_min_calls,
        window=settings.breaker_window,
        cooldown=settings.breaker_cooldown,
    )


def flush_settings(settings: Settings) -> FlushSettings:
    return FlushSettings(
        batch_size=settings.outbox_batch_size,
        flush_interval=settings.outbox_flush_interval,
        concurrency=settings.outbox_concurrency,
        max_attempts=settings.outbox_max_attempts,
        send_timeout=settings.upstream_timeout,
        max_backoff=settings.outbox_max_backoff,
    )


def redis_outbox_options(settings: Settings) -> dict[str, Any]:
    """`RedisOutbox` options; a replica holds at most ten batches of the shared queue."""
    return {
        "stream": settings.outbox_stream,
        "max_items": settings.outbox_max_items,
        "min_replicas": settings.outbox_min_replicas,
        "replication_timeout": settings.outbox_replication_timeout,
        "claim_idle": settings.outbox_claim_idle,
        "hold_limit": 10 * settings.outbox_batch_size,
    }


def telemetry_options(settings: Settings) -> TelemetryOptions:
    return TelemetryOptions(
        metrics_listen=settings.metrics_listen,
        console=settings.telemetry_console,
        metrics_tls=metrics_tls(settings),
    )


def metrics_tls(settings: Settings) -> tuple[Path, Path, Path | None] | None:
    """HTTPS for a Prometheus endpoint beyond loopback, with the listeners' certificate;
    plain HTTP on loopback or when `metrics_insecure` says so (`addresses.metrics_problem`
    refuses every other case at load)."""
    address = settings.metrics_listen
    if not address or settings.metrics_insecure or settings.tls_cert_file is None:
        return None
    if not address.startswith(":") and is_loopback(address):
        return None
    assert settings.tls_key_file is not None  # the settings require both or neither
    return settings.tls_cert_file, settings.tls_key_file, settings.tls_client_ca_file


def account_id_protector(settings: Settings) -> AccountIdProtector:
    """The configured protection, with its key read now; AccountIdKeyError if unusable."""
    key = settings.account_id_key.get_secret_value() if settings.account_id_key else None
    return build_protector(settings.account_id_protection, settings.account_id_key_file, key)


def api_key(settings: Settings) -> str | None:
    """The API key from its file (a mounted Secret) or the setting; never logged."""
    if settings.api_key_file is not None:
        return settings.api_key_file.read_text().strip() or None
    return settings.api_key.get_secret_value() if settings.api_key else None
