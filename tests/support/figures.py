"""Figures a reliability test measured: printed (pytest -s shows them) and, when
`SIDECAR_FIGURES` names a file, appended to it, for the note and the reference docs."""

from __future__ import annotations

import os


def record(line: str) -> None:
    print("\n" + line)
    target = os.environ.get("SIDECAR_FIGURES")
    if target:
        with open(target, "a") as out:
            out.write(line + "\n")
