"""`serve` builds only its own command line: the emulator (its TLS, metadata server and
Google's types) is imported for `emulator`, `--help` and `serve --emulator` only."""

from __future__ import annotations

import subprocess
import sys

PROBE = """
import sys
from sidecar.cli.main import build_parser
args = build_parser({command!r}).parse_args({argv!r})
print(sorted(m for m in sys.modules if m.startswith("sidecar.emulator")))
"""


def loaded(command: str | None, argv: list[str]) -> str:
    code = PROBE.format(command=command, argv=argv)
    return subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    ).stdout.strip()


def test_serve_does_not_import_the_emulator() -> None:
    assert loaded("serve", ["serve", "--listen", "127.0.0.1:0"]) == "[]"


def test_the_emulator_command_still_has_its_options() -> None:
    assert "sidecar.emulator.cli" in loaded("emulator", ["emulator", "--listen", "127.0.0.1:0"])
    assert "sidecar.emulator.cli" in loaded(None, ["emulator", "--tls"])
