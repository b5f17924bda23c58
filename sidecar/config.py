"""One typed settings object: YAML file, then `RECAPTCHA_SIDECAR_*` environment, then flags.

Each knob is documented once, here, in its Field description; `recaptcha-sidecar config`
prints the reference. A bad value fails at start with the key named, never at the first request.
"""

from __future__ import annotations

import contextvars
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import Field, SecretStr, ValidationError, field_validator, model_validator
from pydantic_settings import (
    BaseSettings,
    NoDecode,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    YamlConfigSettingsSource,
)

from sidecar.core.policy import Policy
from sidecar.upstream.client import DEFAULT_ENDPOINT

ENV_PREFIX = "RECAPTCHA_SIDECAR_"
_config_file: contextvars.ContextVar[Path | None] = contextvars.ContextVar(
    "config_file", default=None
)
_HOST_PORT = re.compile(r"(\[[0-9a-fA-F:.]+\]|[A-Za-z0-9.\-]+):\d{1,5}")


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
    site_key: str = Field("", description="Default reCAPTCHA key id when a request names none.")
    api_key: SecretStr | None = Field(
        None, description="API key for upstream (instead of Application Default Credentials)."
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
        "memory://", description="Replay store URL: `memory://`, `redis://…`, `rediss://…`."
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
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = Field(
        "INFO", description="Lowest log level written."
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
        "with the standard `OTEL_*` variables.",
    )
    telemetry_console: bool = Field(
        False, description="Also print spans and metrics on stdout (debugging)."
    )
    policy: Policy = Field(
        default_factory=Policy, description="Decision rules; see the policy reference."
    )

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
        path = _config_file.get()
        if path is not None:
            sources.append(YamlConfigSettingsSource(settings_cls, yaml_file=path))
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
            if address.startswith("unix:"):
                if not address.removeprefix("unix://").removeprefix("unix:"):
                    raise ValueError(f"{address!r}: a Unix socket needs a path")
            elif not _HOST_PORT.fullmatch(address):
                raise ValueError(f"{address!r}: expected host:port or unix:///path")
        return value

    @field_validator("metrics_listen")
    @classmethod
    def _metrics_listen_syntax(cls, value: str) -> str:
        if value and not (_HOST_PORT.fullmatch(value) or re.fullmatch(r":\d{1,5}", value)):
            raise ValueError(f"{value!r}: expected host:port, e.g. 127.0.0.1:9464")
        return value

    @field_validator("replay_store")
    @classmethod
    def _replay_scheme(cls, value: str) -> str:
        if not re.match(r"(memory|redis|rediss|unix)://", value):
            raise ValueError("expected memory://, redis://host:port/db or rediss://…")
        return value

    @model_validator(mode="after")
    def _needs_project(self) -> Settings:
        if not self.emulator and not self.project:
            raise ValueError("project: required unless --emulator is given")
        return self

    def resolved_api_key(self) -> str | None:
        """The API key from its file (a mounted Secret) or the setting; never logged."""
        if self.api_key_file is not None:
            return self.api_key_file.read_text().strip() or None
        return self.api_key.get_secret_value() if self.api_key else None


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
    token = _config_file.set(config_file)
    try:
        settings = Settings(**overrides)
    except ValidationError as error:
        raise ConfigError(_describe(error)) from None
    except ValueError as error:  # YAML that does not parse, JSON env that does not parse
        raise ConfigError(f"invalid configuration:\n  {error}") from None
    finally:
        _config_file.reset(token)
    if settings.api_key_file is not None and not settings.api_key_file.is_file():
        raise ConfigError(
            f"invalid configuration:\n  api_key_file: no such file {settings.api_key_file}"
        )
    return settings


def reference(model: type[BaseSettings] = Settings) -> list[tuple[str, str, str, str]]:
    """(key, env var, default, description) rows for the README's config reference."""
    rows = []
    for name, field in model.model_fields.items():
        default = field.get_default(call_default_factory=True)
        shown = "see below" if isinstance(default, Mapping | Policy) else repr(default)
        rows.append((name, ENV_PREFIX + name.upper(), shown, field.description or ""))
    return rows
