"""deploy/config/sidecar.example.yaml: every setting, with its meaning, environment variable and
default, rendered from the settings model (the one place each setting is described).

    .venv/bin/python scripts/config_example.py          rewrite the file
    .venv/bin/python scripts/config_example.py --check  exit 1 when the file is not current

Keys the config file refuses (secrets that belong in the environment or a mounted file) are
written commented out, with where they go instead. tests/unit/test_config_example.py loads the
file and checks it lists every key.
"""

from __future__ import annotations

import sys
import textwrap
from enum import Enum
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, SecretStr
from pydantic.fields import FieldInfo

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from sidecar.config.model import ENV_PREFIX, Settings, refused_in_file  # noqa: E402
from sidecar.policy.schema import ActionPolicy, Policy  # noqa: E402

EXAMPLE = ROOT / "deploy" / "config" / "sidecar.example.yaml"
WIDTH = 99

HEADER = """\
# recaptcha-sidecar: every setting, with its default (generated from the settings model by
# scripts/config_example.py; a test keeps it current). Copy what you change, not the whole file:
# a key left out keeps its default, and later defaults then reach you.
#   recaptcha-sidecar serve --config sidecar.yaml
#   recaptcha-sidecar policy check --config sidecar.yaml
# Precedence: this file, then RECAPTCHA_SIDECAR_<KEY> environment variables, then flags.
# As it stands it needs --emulator:
#   make run ARGS="--config deploy/config/sidecar.example.yaml --emulator"
# against Google, set project (and credentials: docs/deployment.md).
# The reference: docs/configuration.md; the policy: docs/policy.md.
"""


def plain(value: Any) -> Any:
    """A default as YAML can write it."""
    if isinstance(value, SecretStr):
        return None
    if isinstance(value, Enum):
        return value.value
    if isinstance(value, BaseModel):
        return plain(value.model_dump(mode="json"))
    if isinstance(value, Path):
        return str(value)
    if isinstance(value, dict):
        return {k: plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [plain(v) for v in value]
    return value


def scalar(value: Any) -> str:
    """One value in flow style, on the key's line."""
    text = yaml.safe_dump(value, default_flow_style=True, width=10_000, sort_keys=False)
    return text.removesuffix("\n...\n").strip()


def comment(text: str, indent: str = "") -> list[str]:
    return textwrap.wrap(
        text, WIDTH - len(indent) - 2, initial_indent=indent + "# ", subsequent_indent=indent + "# "
    )


def setting(name: str, field: FieldInfo, refused: dict[str, str]) -> list[str]:
    lines = comment(field.description or "")
    lines.append(f"# env: {ENV_PREFIX}{name.upper()}")
    if name in refused:
        lines.append(f"# Not read from this file: {refused[name]}.")
        lines.append(f"# {name}: …")
        return lines
    value = plain(field.get_default(call_default_factory=True))
    lines.append(f"{name}: {scalar(value)}")
    return lines


def action_policy(indent: str) -> list[str]:
    lines = []
    defaults = ActionPolicy()
    for name, field in ActionPolicy.model_fields.items():
        lines += comment(field.description or "", indent)
        lines.append(f"{indent}{name}: {scalar(plain(getattr(defaults, name)))}")
    return lines


def policy(field: FieldInfo) -> list[str]:
    lines = comment(field.description or "")
    lines.append(f"# env: {ENV_PREFIX}POLICY (JSON)")
    lines.append("policy:")
    lines += comment(Policy.model_fields["version"].description or "", "  ")
    lines.append(f"  version: {scalar(Policy.model_fields['version'].default)}")
    lines += comment("Rules for every action not listed under actions.", "  ")
    lines.append("  default:")
    lines += action_policy("    ")
    lines += comment(
        "Per action (names ignore case): an entry overrides only the keys it names and "
        "inherits the rest from default. For example:",
        "  ",
    )
    lines += [
        "  actions: {}",
        "  #   login: {threshold: 0.7}",
        "  #   signup: {mode: audit}",
        "  #   checkout: {on_upstream_failure: open}",
    ]
    return lines


def render() -> str:
    refused = refused_in_file()
    blocks = []
    for name, field in Settings.model_fields.items():
        blocks.append(policy(field) if name == "policy" else setting(name, field, refused))
    return HEADER + "\n" + "\n\n".join("\n".join(b) for b in blocks) + "\n"


def main(argv: list[str]) -> int:
    text = render()
    if argv == ["--check"]:
        if EXAMPLE.read_text() != text:
            print(
                f"{EXAMPLE.relative_to(ROOT)} is stale: run scripts/config_example.py",
                file=sys.stderr,
            )
            return 1
        return 0
    EXAMPLE.write_text(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
