"""Operator commands for account ids: `account-id decrypt` turns ids that come back from
Google (related-account groups, the console, exports) into the app's ids again;
`account-id protect` computes what Google sees for an id (to search for it there).

The mode and key are read as the sidecar reads them: `--key-file`, else the settings file's
`account_id_key_file`, else the environment variable RECAPTCHA_SIDECAR_ACCOUNT_ID_KEY. Values
come from the arguments, or one per line on stdin, and results go to stdout one per line, in
order; a value that fails is reported on stderr by its position, and the exit code is 1.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import TextIO

import yaml

from sidecar.accountid.protection import (
    KEY_ENV,
    AccountIdDecryptError,
    AccountIdKeyError,
    AccountIdProtector,
    DeterministicEncryptionProtector,
    Protection,
    build_protector,
)


class AccountIdConfigError(Exception):
    """The mode or key cannot be found or used."""


def _file_settings(config: Path | None) -> tuple[str | None, Path | None]:
    """account_id_protection and account_id_key_file from a settings file, if given."""
    if config is None:
        return None, None
    try:
        data = yaml.safe_load(config.read_text()) or {}
    except OSError as error:
        raise AccountIdConfigError(f"{config}: {error.strerror or 'unreadable'}") from None
    except yaml.YAMLError:
        raise AccountIdConfigError(f"{config}: not YAML") from None
    if not isinstance(data, Mapping):
        raise AccountIdConfigError(f"{config}: expected a mapping of settings at the top")
    if "account_id_key" in data:
        raise AccountIdConfigError(
            f"{config}: account_id_key is not read from the config file; "
            f"use account_id_key_file or {KEY_ENV}"
        )
    mode = data.get("account_id_protection")
    key_file = data.get("account_id_key_file")
    return (
        str(mode) if mode is not None else None,
        Path(str(key_file)) if key_file is not None else None,
    )


def protector_for(
    *, config: Path | None, mode: str | None, key_file: Path | None
) -> AccountIdProtector:
    """The protector the flags, the settings file and the environment describe."""
    file_mode, file_key = _file_settings(config)
    chosen = mode or file_mode
    if chosen is None:
        raise AccountIdConfigError("which protection? give --mode or --config")
    try:
        protection = Protection(chosen)
    except ValueError:
        choices = ", ".join(p.value for p in Protection)
        raise AccountIdConfigError(f"account_id_protection {chosen!r}: one of {choices}") from None
    try:
        return build_protector(protection, key_file or file_key, os.environ.get(KEY_ENV))
    except AccountIdKeyError as error:
        raise AccountIdConfigError(f"account_id_protection {protection.value}: {error}") from None


def _values(values: list[str], stdin: TextIO) -> Iterable[str]:
    if values:
        yield from values
        return
    for line in stdin:
        value = line.rstrip("\r\n")
        if value:
            yield value


def account_id_command(
    action: str,
    values: list[str],
    *,
    config: Path | None,
    mode: str | None,
    key_file: Path | None,
    out: TextIO,
    err: TextIO,
    stdin: TextIO | None = None,
) -> int:
    """`account-id decrypt` / `account-id protect`: 0 all done, 1 some failed, 2 bad setup."""
    if action == "decrypt":
        mode = mode or Protection.DETERMINISTIC_ENCRYPTION.value
    try:
        protector = protector_for(config=config, mode=mode, key_file=key_file)
    except AccountIdConfigError as error:
        print(f"recaptcha-sidecar: {error}", file=err)
        return 2
    if action == "decrypt" and not isinstance(protector, DeterministicEncryptionProtector):
        print(
            f"recaptcha-sidecar: {protector.mode.value} ids cannot be decrypted: only "
            "deterministic-encryption is reversible (hmac-sha256 needs your own mapping)",
            file=err,
        )
        return 2
    failed = 0
    for position, value in enumerate(_values(values, stdin or sys.stdin), start=1):
        if action == "decrypt":
            assert isinstance(protector, DeterministicEncryptionProtector)
            try:
                print(protector.reveal(value), file=out)
            except AccountIdDecryptError as error:
                failed += 1
                print(f"recaptcha-sidecar: value {position}: {error}", file=err)
        else:
            print(protector.protect(value), file=out)
    return 1 if failed else 0
