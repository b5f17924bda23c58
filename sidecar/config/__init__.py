"""The settings: `model` (the one typed object, no I/O), `load` (file, environment, flags),
`flags` (the command line, generated from the model), `addresses` (listener address rules)."""

from sidecar.config.load import load_settings, reload_settings
from sidecar.config.model import ENV_PREFIX, ConfigError, Settings, reference

__all__ = ["ENV_PREFIX", "ConfigError", "Settings", "load_settings", "reference", "reload_settings"]
