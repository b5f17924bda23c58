"""Command-line flags generated from the settings model, so a setting is written once.

Every field of `Settings` becomes `--<key in kebab case>` (except those in `NO_FLAG`), with
its description, its default and its environment variable as the help text: adding a setting
is one `Field` in `model.py`, and its flag, variable and reference row follow. argparse rather
than pydantic-settings' own CLI source: that source wants to own the whole parser (our
subcommands `serve`, `emulator`, `policy`, … hold arguments that are no settings), and the
kebab-case flags and implicit booleans it would need arrived in releases newer than the
`pydantic-settings>=2.4` floor this project proves.
"""

from __future__ import annotations

import argparse
import types
import typing
from pathlib import Path
from typing import Any

from pydantic import SecretStr
from pydantic.fields import FieldInfo

from sidecar.config.model import ENV_PREFIX, NO_FLAG, Settings, shown_default

_METAVAR: dict[type, str] = {int: "N", float: "NUM", Path: "PATH"}


def flag_of(key: str) -> str:
    """`replay_store` → `--replay-store`."""
    return "--" + key.replace("_", "-")


def _shape(annotation: Any) -> tuple[type, tuple[str, ...] | None, bool]:
    """(the value's type, its choices, whether the flag repeats) for an annotation."""
    origin = typing.get_origin(annotation)
    if origin in (typing.Union, types.UnionType):
        inner = [arg for arg in typing.get_args(annotation) if arg is not type(None)]
        return _shape(inner[0])
    if origin is typing.Literal:
        return str, tuple(str(value) for value in typing.get_args(annotation)), False
    if origin is list:
        return typing.get_args(annotation)[0], None, True
    if annotation is SecretStr:
        return str, None, False
    return annotation, None, False


def _help(key: str, info: FieldInfo) -> str:
    """The description, then where the value comes from; `%` escaped for argparse."""
    text = (info.description or "").replace("`", "")
    default = shown_default(info)
    origin = f"default: {default}; env {ENV_PREFIX}{key.upper()}"
    return f"{text} ({origin})".replace("%", "%%")


def add_setting_flags(parser: argparse.ArgumentParser, model: type[Settings] = Settings) -> None:
    """One flag per setting; each defaults to None, meaning "not given" (the environment, the
    file and the model's default then decide, in that order)."""
    for key, info in model.model_fields.items():
        if key in NO_FLAG:
            continue
        kind, choices, repeats = _shape(info.annotation)
        options: dict[str, Any] = {"dest": key, "default": None, "help": _help(key, info)}
        if kind is bool:
            options["action"] = argparse.BooleanOptionalAction
        else:
            options["type"] = kind if kind in _METAVAR else str
            options["metavar"] = _METAVAR.get(kind, "VALUE") if choices is None else None
            if choices is not None:
                options["choices"] = choices
            if repeats:
                options["action"] = "append"
        parser.add_argument(flag_of(key), **options)


def setting_values(args: argparse.Namespace, model: type[Settings] = Settings) -> dict[str, Any]:
    """The settings given as flags (None where a flag was not given)."""
    return {key: getattr(args, key) for key in model.model_fields if key not in NO_FLAG}
