"""Loading the settings: the YAML file, then the environment, then the flags, checked as a
whole (files that must exist, a key that must decode) so that a bad value fails at start with
the key named, never at the first request. The model itself is `model.py`."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError

from sidecar.config.model import CONFIG_FILE, ConfigError, Settings

_FILES = (
    "api_key_file",
    "tls_cert_file",
    "tls_key_file",
    "tls_client_ca_file",
    "auth_token_file",
    "siteverify_secrets_file",
    "upstream_ca_file",
    "outbox_key_file",
    "rate_limit_key_file",
)


def _describe(error: ValidationError) -> str:
    lines = []
    for item in error.errors():
        key = ".".join(str(part) for part in item["loc"]) or "(top level)"
        lines.append(f"  {key}: {item['msg']}")
    return "invalid configuration:\n" + "\n".join(lines)


def load_settings(config_file: Path | None = None, **flags: Any) -> Settings:
    """Build settings from the file, the environment and the flags that were given."""
    if config_file is not None and not config_file.is_file():
        raise ConfigError(f"invalid configuration:\n  config: no such file {config_file}")
    overrides = {key: value for key, value in flags.items() if value is not None}
    token = CONFIG_FILE.set(config_file)
    try:
        settings = Settings(**overrides)
    except ValidationError as error:
        raise ConfigError(_describe(error)) from None
    except ValueError as error:  # JSON env that does not parse
        raise ConfigError(f"invalid configuration:\n  {error}") from None
    except yaml.YAMLError as error:  # a config file that is not YAML
        mark = getattr(error, "problem_mark", None)
        where = f" (line {mark.line + 1}, column {mark.column + 1})" if mark else ""
        problem = getattr(error, "problem", None) or "not YAML"
        raise ConfigError(f"invalid configuration:\n  config: {problem}{where}") from None
    finally:
        CONFIG_FILE.reset(token)
    for key in _FILES:
        path = getattr(settings, key)
        if path is not None and not path.is_file():
            raise ConfigError(f"invalid configuration:\n  {key}: no such file {path}")
    _check_account_id_key(settings)
    _check_outbox_key(settings)
    _check_rate_limit_key(settings)
    settings._source = (config_file, overrides)
    return settings


def reload_settings(settings: Settings) -> Settings:
    """Settings read again from the same file, environment and flags (hot reload)."""
    return load_settings(settings.config_file, **settings._source[1])


def _check_account_id_key(settings: Settings) -> None:
    """The key of `account_id_protection` must be there and decode, now rather than later."""
    from sidecar.accountid.protection import AccountIdKeyError, build_protector

    key = settings.account_id_key.get_secret_value() if settings.account_id_key else None
    try:
        build_protector(settings.account_id_protection, settings.account_id_key_file, key)
    except AccountIdKeyError as error:
        raise ConfigError(
            f"invalid configuration:\n  account_id_protection {settings.account_id_protection}: "
            f"{error}"
        ) from None


def _check_outbox_key(settings: Settings) -> None:
    """The keys of `outbox_key_file` must decode, now rather than at the first Annotate."""
    from sidecar.outbox.sealing import SealingKeyError, load_sealer

    try:
        load_sealer(settings.outbox_key_file)
    except SealingKeyError as error:
        raise ConfigError(f"invalid configuration:\n  {error}") from None


def _check_rate_limit_key(settings: Settings) -> None:
    """The rate limit secret must decode to 16 bytes or more, now rather than at the first
    limited call."""
    if settings.rate_limit_key_file is None:
        return
    from sidecar.ratelimit.secret import RateLimitKeyError, load_secret

    try:
        load_secret(settings.rate_limit_key_file)
    except RateLimitKeyError as error:
        raise ConfigError(f"invalid configuration:\n  {error}") from None
