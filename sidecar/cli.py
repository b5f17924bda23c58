"""The command line: `serve`, `emulator`, `mint-token`, `config`. Nothing else lives here."""

from __future__ import annotations

import argparse
import asyncio
import sys
from collections.abc import Sequence
from pathlib import Path

from sidecar.config import ConfigError, load_settings, reference
from sidecar.telemetry.logs import LogFormat, configure_logging


def _serve_parser(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    serve = commands.add_parser("serve", help="run the sidecar")
    serve.add_argument(
        "--listen",
        action="append",
        metavar="ADDR",
        help="address to serve on (repeatable): 127.0.0.1:50051 or unix:///path/to.sock",
    )
    serve.add_argument("--config", type=Path, metavar="FILE", help="YAML settings file")
    serve.add_argument("--project", help="Google Cloud project that owns the keys")
    serve.add_argument("--site-key", help="default reCAPTCHA key id")
    serve.add_argument("--api-key", help="API key (prefer --api-key-file or the environment)")
    serve.add_argument("--api-key-file", type=Path, help="file holding the API key")
    serve.add_argument("--upstream-endpoint", metavar="HOST:PORT", help="reCAPTCHA endpoint")
    serve.add_argument(
        "--upstream-plaintext",
        action="store_true",
        default=None,
        help="no TLS or credentials upstream (local emulators only)",
    )
    serve.add_argument(
        "--emulator",
        action="store_true",
        default=None,
        help="run the embedded emulator in-process and use it as upstream",
    )
    serve.add_argument("--replay-store", metavar="URL", help="memory:// or redis://host:port/db")
    serve.add_argument("--log-level", choices=["DEBUG", "INFO", "WARNING", "ERROR"])
    serve.add_argument("--log-format", choices=["json", "text"])
    serve.add_argument(
        "--metrics-listen", metavar="HOST:PORT", help="Prometheus scrape endpoint, e.g. :9464"
    )
    serve.add_argument(
        "--telemetry-console",
        action="store_true",
        default=None,
        help="also print spans and metrics on stdout (debugging)",
    )


def _emulator_parser(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    emulator = commands.add_parser("emulator", help="run the reCAPTCHA emulator on its own")
    emulator.add_argument(
        "--listen",
        action="append",
        metavar="ADDR",
        help="address (repeatable); default 127.0.0.1:50052",
    )
    emulator.add_argument("--project-number", default="123456789")
    emulator.add_argument("--seed", type=int, help="seed for the fault knobs' randomness")

    mint = commands.add_parser("mint-token", help="print an emulator token")
    mint.add_argument("--score", type=float, default=0.9)
    mint.add_argument("--action", default="")
    mint.add_argument("--hostname", default="localhost")
    mint.add_argument("--site-key")
    mint.add_argument("--invalid-reason", help="force an InvalidReason, e.g. BROWSER_ERROR")
    mint.add_argument("--reason", action="append", default=[], help="classification reason")
    mint.add_argument("--label", action="append", default=[], help="account defender label")
    mint.add_argument("--age", type=float, default=0.0, help="seconds since the token was issued")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="recaptcha-sidecar",
        description="Verify reCAPTCHA Enterprise tokens for apps in any language, over gRPC.",
    )
    commands = parser.add_subparsers(dest="command", required=True)
    _serve_parser(commands)
    _emulator_parser(commands)
    commands.add_parser("config", help="print the settings reference (Markdown)")
    return parser


def _configure_logging(level: str, fmt: LogFormat = "text", access_log: bool = True) -> None:
    configure_logging(level, fmt, access_log=access_log)


def _serve(args: argparse.Namespace) -> int:
    from sidecar.app import ListenError, run
    from sidecar.telemetry.providers import TelemetryError

    try:
        settings = load_settings(
            args.config,
            listen=args.listen,
            project=args.project,
            site_key=args.site_key,
            api_key=args.api_key,
            api_key_file=args.api_key_file,
            upstream_endpoint=args.upstream_endpoint,
            upstream_plaintext=args.upstream_plaintext,
            emulator=args.emulator,
            replay_store=args.replay_store,
            log_level=args.log_level,
            log_format=args.log_format,
            metrics_listen=args.metrics_listen,
            telemetry_console=args.telemetry_console,
        )
    except ConfigError as error:
        print(f"recaptcha-sidecar: {error}", file=sys.stderr)
        return 2
    _configure_logging(settings.log_level, settings.log_format, settings.access_log)
    try:
        return asyncio.run(run(settings))
    except (ListenError, TelemetryError) as error:
        print(f"recaptcha-sidecar: {error}", file=sys.stderr)
        return 1


def _emulator(args: argparse.Namespace) -> int:
    from sidecar.emulator import run_emulator

    _configure_logging("INFO")
    asyncio.run(
        run_emulator(
            args.listen or ["127.0.0.1:50052"], project_number=args.project_number, seed=args.seed
        )
    )
    return 0


def _mint(args: argparse.Namespace) -> int:
    import time

    from sidecar.emulator import mint_token

    print(
        mint_token(
            score=args.score,
            action=args.action,
            hostname=args.hostname,
            site_key=args.site_key,
            issued_at=time.time() - args.age,
            invalid_reason=args.invalid_reason,
            reasons=tuple(args.reason),
            labels=tuple(args.label),
        )
    )
    return 0


def _config() -> int:
    print("| key | environment | default | meaning |\n|---|---|---|---|")
    for key, env, default, description in reference():
        print(f"| `{key}` | `{env}` | `{default}` | {description} |")
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.command == "serve":
        return _serve(args)
    if args.command == "emulator":
        return _emulator(args)
    if args.command == "mint-token":
        return _mint(args)
    return _config()
