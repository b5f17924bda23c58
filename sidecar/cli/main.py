"""The command line: `serve`, `emulator`, `mint-token`, `config`, `policy`, `account-id`.
Nothing else lives here: each command's logic is in its own module."""

from __future__ import annotations

import argparse
import asyncio
import sys
from collections.abc import Sequence
from pathlib import Path

from sidecar import __version__
from sidecar.cli import client
from sidecar.config import ConfigError, load_settings, reference
from sidecar.config.flags import add_setting_flags, setting_values
from sidecar.telemetry.logs import LogFormat, configure_logging


def _serve_parser(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    serve = commands.add_parser(
        "serve",
        help="run the sidecar",
        description="Run the sidecar. Every setting is a flag (below), an environment "
        "variable and a config file key; flags win over the environment, which wins over "
        "the file.",
    )
    serve.add_argument("--config", type=Path, metavar="FILE", help="YAML settings file")
    add_setting_flags(serve)


def _emulator_parser(
    commands: argparse._SubParsersAction[argparse.ArgumentParser], *, full: bool
) -> None:
    """`full`: with the emulator's own options, which means importing the emulator (its
    TLS, metadata server and Google's types: several MiB a `serve` without `--emulator`
    never needs)."""
    emulator = commands.add_parser("emulator", help="run the reCAPTCHA emulator on its own")
    if full:
        from sidecar.emulator import cli as emulator_cli

        emulator_cli.add_arguments(emulator)

    mint = commands.add_parser("mint-token", help="print an emulator token")
    mint.add_argument("--score", type=float, default=0.9)
    mint.add_argument("--action", default="")
    mint.add_argument("--hostname", default="localhost")
    mint.add_argument("--site-key")
    mint.add_argument("--invalid-reason", help="force an InvalidReason, e.g. BROWSER_ERROR")
    mint.add_argument("--reason", action="append", default=[], help="classification reason")
    mint.add_argument("--label", action="append", default=[], help="account defender label")
    mint.add_argument("--age", type=float, default=0.0, help="seconds since the token was issued")
    mint.add_argument("--android-package", help="token from this Android app (not a web page)")
    mint.add_argument("--ios-bundle", help="token from this iOS app (not a web page)")


def _policy_parser(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    policy = commands.add_parser("policy", help="check a policy, or replay assessments through it")
    sub = policy.add_subparsers(dest="policy_command", required=True)
    check = sub.add_parser("check", help="validate a file and print the effective rules per action")
    check.add_argument("--config", type=Path, metavar="FILE", required=True)
    check.add_argument("--json", action="store_true", help="machine-readable output")
    dry = sub.add_parser(
        "dry-run", help="count what a policy would decide for recorded assessments (JSONL)"
    )
    dry.add_argument("--config", type=Path, metavar="FILE", required=True)
    dry.add_argument("--input", type=Path, metavar="FILE", required=True, help="JSONL, or -")
    dry.add_argument("--json", action="store_true", help="machine-readable output")


def _account_id_parser(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    account = commands.add_parser("account-id", help="decrypt or protect account ids")
    sub = account.add_subparsers(dest="account_id_command", required=True)
    for name, text in (
        ("decrypt", "decrypt ids that came back from Google (deterministic-encryption)"),
        ("protect", "print what Google sees for an id"),
    ):
        command = sub.add_parser(name, help=text)
        command.add_argument("values", nargs="*", metavar="ID", help="default: one per stdin line")
        command.add_argument("--config", type=Path, metavar="FILE", help="settings file")
        command.add_argument("--key-file", type=Path, metavar="FILE", help="base64 key file")
        command.add_argument("--mode", choices=["plain", "hmac-sha256", "deterministic-encryption"])


def build_parser(command: str | None = None) -> argparse.ArgumentParser:
    """The whole command line; knowing the `command` asked for lets the others' heavy
    option sets stay unbuilt (None: everything, as `--help` shows it)."""
    parser = argparse.ArgumentParser(
        prog="recaptcha-sidecar",
        description="Verify reCAPTCHA Enterprise tokens for apps in any language, over gRPC.",
    )
    parser.add_argument("--version", action="version", version=f"recaptcha-sidecar {__version__}")
    commands = parser.add_subparsers(dest="command", required=True)
    _serve_parser(commands)
    _emulator_parser(commands, full=command in (None, "emulator"))
    commands.add_parser("config", help="print the settings reference (Markdown)")
    _policy_parser(commands)
    _account_id_parser(commands)
    client.add_parsers(commands)
    return parser


def _configure_logging(
    level: str, fmt: LogFormat = "text", access_log: bool = True, library_level: str = "WARNING"
) -> None:
    configure_logging(level, fmt, access_log=access_log, library_level=library_level)


def _serve(args: argparse.Namespace) -> int:
    try:
        settings = load_settings(args.config, **setting_values(args))
    except ConfigError as error:
        print(f"recaptcha-sidecar: {error}", file=sys.stderr)
        return 2
    _configure_logging(
        settings.log_level, settings.log_format, settings.access_log, settings.library_log_level
    )
    if settings.workers > 1:
        from sidecar.server.supervisor import supervise  # forks before grpc is imported

        return supervise(settings)
    from sidecar.server.app import StartupError, run

    try:
        return asyncio.run(run(settings))
    except StartupError as error:  # every startup failure, as one line
        print(f"recaptcha-sidecar: {error}", file=sys.stderr)
        return 2


def _emulator(args: argparse.Namespace) -> int:
    from sidecar.emulator import cli as emulator_cli

    _configure_logging("INFO")
    return emulator_cli.run(args)


def _mint(args: argparse.Namespace) -> int:
    import time

    from sidecar.emulator import mint_token

    try:
        token = mint_token(
            score=args.score,
            action=args.action,
            hostname=args.hostname,
            site_key=args.site_key,
            issued_at=time.time() - args.age,
            invalid_reason=args.invalid_reason,
            reasons=tuple(args.reason),
            labels=tuple(args.label),
            android_package_name=args.android_package,
            ios_bundle_id=args.ios_bundle,
        )
    except ValueError as error:
        print(f"recaptcha-sidecar mint-token: {error}", file=sys.stderr)
        return 2
    print(token)
    return 0


def _config() -> int:
    print("| key | environment | default | meaning |\n|---|---|---|---|")
    for key, env, default, description in reference():
        print(f"| `{key}` | `{env}` | `{default}` | {description} |")
    return 0


def _command(argv: Sequence[str]) -> str | None:
    """The sub-command named on the command line, if it comes first (as it must)."""
    return argv[0] if argv and not argv[0].startswith("-") else None


def main(argv: Sequence[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    args = build_parser(_command(argv)).parse_args(argv)
    if args.command == "serve":
        return _serve(args)
    if args.command == "emulator":
        return _emulator(args)
    if args.command == "mint-token":
        return _mint(args)
    if args.command in ("assess", "annotate"):
        return client.run(args)
    if args.command == "policy":
        from sidecar.policy import dryrun, tools

        if args.policy_command == "check":
            return tools.policy_check(
                args.config, as_json=args.json, out=sys.stdout, err=sys.stderr
            )
        return dryrun.policy_dry_run(
            args.config, args.input, as_json=args.json, out=sys.stdout, err=sys.stderr
        )
    if args.command == "account-id":
        from sidecar.accountid.tools import account_id_command

        return account_id_command(
            args.account_id_command,
            args.values,
            config=args.config,
            mode=args.mode,
            key_file=args.key_file,
            out=sys.stdout,
            err=sys.stderr,
        )
    return _config()
