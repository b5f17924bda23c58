"""deploy/config/sidecar.example.yaml: current, loadable, and listing every setting."""

from __future__ import annotations

import importlib.util
import re
import sys
from pathlib import Path

import yaml

from sidecar.config import Settings, load_settings
from sidecar.config.model import refused_in_file
from sidecar.policy.schema import ActionPolicy

ROOT = Path(__file__).resolve().parents[2]
EXAMPLE = ROOT / "deploy" / "config" / "sidecar.example.yaml"
_spec = importlib.util.spec_from_file_location("config_example", ROOT / "scripts/config_example.py")
assert _spec and _spec.loader
config_example = importlib.util.module_from_spec(_spec)
sys.modules["config_example"] = config_example
_spec.loader.exec_module(config_example)


def test_example_is_what_the_settings_model_renders() -> None:
    assert EXAMPLE.read_text() == config_example.render(), "run scripts/config_example.py"


def test_example_loads_and_holds_the_defaults() -> None:
    """As `make run ARGS="--config …"` loads it: with --emulator, nothing else to add."""
    loaded = load_settings(EXAMPLE, emulator=True)
    assert loaded.model_dump() == load_settings(None, emulator=True).model_dump()


def test_example_lists_every_setting_and_every_policy_key() -> None:
    text = EXAMPLE.read_text()
    active = set(yaml.safe_load(text))
    refused = refused_in_file()
    assert refused, "account_id_key at least is refused in a file"
    assert active == set(Settings.model_fields) - set(refused)
    for key, instead in refused.items():
        # commented out, with where it goes
        assert re.search(rf"^# {key}: ", text, flags=re.M), key
        assert f"# Not read from this file: {instead}." in text
    default = yaml.safe_load(text)["policy"]["default"]
    assert set(default) == set(ActionPolicy.model_fields)


def test_every_setting_is_explained_with_its_environment_variable() -> None:
    lines = EXAMPLE.read_text().splitlines()
    for name in Settings.model_fields:
        at = next(i for i, line in enumerate(lines) if re.match(rf"^(# )?{name}:( |$)", line))
        comments = []
        for line in reversed(lines[:at]):
            if not line.startswith("#"):
                break
            comments.append(line)
        assert any(f"RECAPTCHA_SIDECAR_{name.upper()}" in c for c in comments), name
        assert len(comments) >= 2, f"{name}: no description"
