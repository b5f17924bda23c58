"""`recaptcha-sidecar emulator`: its flags and its run, kept beside the emulator so that the
main command line only delegates (one place to change when the emulator learns something)."""

from __future__ import annotations

import argparse
import asyncio
import sys
from pathlib import Path

DEFAULT_LISTEN = "127.0.0.1:50052"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The emulator's flags on ``parser``."""
    parser.add_argument(
        "--listen",
        action="append",
        metavar="ADDR",
        help=f"address (repeatable); default {DEFAULT_LISTEN}",
    )
    parser.add_argument("--project-number", default="123456789")
    parser.add_argument(
        "--project-id",
        metavar="ID",
        help="the project's id: parents and assessment names must then name it (or its number)",
    )
    parser.add_argument("--seed", type=int, help="seed for the fault knobs' randomness")
    parser.add_argument(
        "--tls", action="store_true", help="serve TLS with a CA minted at start (see --ca-file)"
    )
    parser.add_argument(
        "--ca-file",
        type=Path,
        metavar="PATH",
        help="where --tls writes its CA certificate (default: a temporary file, printed)",
    )
    parser.add_argument(
        "--api-key",
        action="append",
        default=[],
        metavar="KEY",
        help="an API key x-goog-api-key may carry (repeatable); credentials become required",
    )
    parser.add_argument(
        "--metadata-listen",
        metavar="HOST:PORT",
        help="serve a fake GCE metadata server handing out access tokens (e.g. 127.0.0.1:0); "
        "credentials become required",
    )
    parser.add_argument(
        "--site-key",
        action="append",
        metavar="SPEC",
        help="a key of the project, ID[=web|android|ios|express[:ALLOWED,...]] (repeatable); "
        "requests must then name one",
    )


def run(args: argparse.Namespace) -> int:
    """Serve until SIGTERM; 1 with one line on stderr when it cannot start."""
    from sidecar.emulator.server import EmulatorBindError, run_emulator

    try:
        asyncio.run(
            run_emulator(
                args.listen or [DEFAULT_LISTEN],
                project_number=args.project_number,
                project_id=args.project_id,
                seed=args.seed,
                tls=args.tls,
                ca_file=args.ca_file,
                api_keys=args.api_key,
                site_keys=args.site_key,
                metadata_listen=args.metadata_listen,
            )
        )
    except (EmulatorBindError, ValueError, OSError) as error:
        print(f"recaptcha-sidecar emulator: {error}", file=sys.stderr)
        return 1
    return 0
