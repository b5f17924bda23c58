"""Each module's settings at the sidecar's defaults, built as the composition root builds them
(`sidecar.server.module_settings`), so tests never write a default down a second time.
`dataclasses.replace(RETRY, max_attempts=2)` changes one knob."""

from __future__ import annotations

from sidecar.config import Settings
from sidecar.server import module_settings

DEFAULTS = Settings.model_construct()  # the model's defaults, no file, no environment
VERIFY = module_settings.verify_settings(DEFAULTS)
RETRY = module_settings.retry_settings(DEFAULTS)
BUDGET = module_settings.budget_settings(DEFAULTS)
BREAKER = module_settings.breaker_settings(DEFAULTS)
FLUSH = module_settings.flush_settings(DEFAULTS)
TELEMETRY = module_settings.telemetry_options(DEFAULTS)
