"""The command line is generated from the settings model: one flag per setting, whose help
names the default and the environment variable; the flags that existed keep their names."""

from __future__ import annotations

import argparse
from pathlib import Path

import pytest

from sidecar.accountid.protection import KEY_ENV
from sidecar.cli.main import build_parser
from sidecar.config import ENV_PREFIX, Settings, load_settings
from sidecar.config.flags import add_setting_flags, flag_of, setting_values
from sidecar.config.model import ACCOUNT_ID_KEY_ENV, NO_FLAG

# The flags `serve` had before they were generated: their names are a contract.
EXISTING = (
    "--listen", "--project", "--site-key", "--api-key", "--api-key-file", "--upstream-endpoint",
    "--upstream-plaintext", "--emulator", "--replay-store", "--log-level", "--outbox",
    "--log-format", "--metrics-listen", "--telemetry-console", "--health-listen",
    "--tls-cert-file", "--tls-key-file", "--tls-client-ca-file", "--auth-token-file",
    "--insecure-listen", "--secure-loopback", "--socket-mode",
)  # fmt: skip


def serve_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser()
    add_setting_flags(parser)
    return parser


def test_every_setting_but_documents_and_secrets_has_a_flag_with_its_default_and_variable() -> None:
    actions = {a.dest: a for a in serve_parser()._actions}
    for key in Settings.model_fields:
        if key in NO_FLAG:
            assert key not in actions
            continue
        action = actions[key]
        assert flag_of(key) in action.option_strings
        assert f"env {ENV_PREFIX}{key.upper()}" in (action.help or "")
        assert "default: " in (action.help or "")


def test_existing_flags_keep_their_names() -> None:
    for flag in EXISTING:  # each is accepted by `serve` (argparse exits on an unknown one)
        action = next(a for a in serve_parser()._actions if flag in a.option_strings)
        assert action.dest == flag[2:].replace("-", "_")
    assert build_parser().parse_args(["serve", "--emulator", "--listen", "x:1"]).listen == ["x:1"]


def test_help_shows_defaults_people_can_read() -> None:
    actions = {a.dest: a for a in serve_parser()._actions}
    assert "default: 127.0.0.1:50051;" in (actions["listen"].help or "")
    assert "default: 0.2;" in (actions["retry_budget_ratio"].help or "")
    assert "20%" in (actions["retry_budget_ratio"].help or "") % ()  # argparse's own %
    assert "default: false;" in (actions["emulator"].help or "")
    assert "default: unset;" in (actions["outbox"].help or "")


def test_flags_reach_the_settings_typed_and_win_over_the_environment(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv(ENV_PREFIX + "REPLAY_TTL", "200")
    monkeypatch.setenv(ENV_PREFIX + "UPSTREAM_PLAINTEXT", "true")
    args = serve_parser().parse_args(
        [
            "--emulator",
            "--listen", "127.0.0.1:0",
            "--listen", f"unix://{tmp_path}/s.sock",
            "--replay-ttl", "180",
            "--breaker-min-calls", "3",
            "--no-upstream-plaintext",
            "--outbox", str(tmp_path / "o.db"),
            "--log-level", "DEBUG",
        ]
    )  # fmt: skip
    settings = load_settings(None, **setting_values(args))
    assert settings.listen == ["127.0.0.1:0", f"unix://{tmp_path}/s.sock"]
    assert (settings.replay_ttl, settings.breaker_min_calls) == (180.0, 3)
    assert settings.upstream_plaintext is False  # --no-… beats the environment's true
    assert settings.outbox == tmp_path / "o.db" and settings.log_level == "DEBUG"
    untouched = load_settings(None, **setting_values(serve_parser().parse_args(["--emulator"])))
    assert untouched.replay_ttl == 200.0  # a flag not given leaves the environment's value
    with pytest.raises(SystemExit):
        serve_parser().parse_args(["--log-level", "LOUD"])


def test_the_account_id_key_variable_is_the_settings_one() -> None:
    assert KEY_ENV == ACCOUNT_ID_KEY_ENV == ENV_PREFIX + "ACCOUNT_ID_KEY"
