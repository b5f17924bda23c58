"""Each direct dependency of pyproject.toml (runtime and the dev extra) is installed at exactly
its declared lower bound: run in the venv `scripts/lowest-deps.sh` builds with
`--resolution lowest-direct`. A floor the resolver could not reach (another bound forced a
higher version) is as false as one the tests fail on: raise it to what was installed."""

from __future__ import annotations

import sys
import tomllib
from importlib import metadata
from pathlib import Path

from packaging.requirements import Requirement
from packaging.version import Version

ROOT = Path(__file__).resolve().parents[1]


def floors() -> list[Requirement]:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    return [
        Requirement(r) for r in [*project["dependencies"], *project["optional-dependencies"]["dev"]]
    ]


def main() -> int:
    wrong = []
    for requirement in floors():
        floor = next((s.version for s in requirement.specifier if s.operator == ">="), None)
        if floor is None:
            wrong.append(f"{requirement.name}: no lower bound")
            continue
        installed = metadata.version(requirement.name)
        if Version(installed) != Version(floor):
            wrong.append(f"{requirement.name}: floor {floor}, installed {installed}")
    for line in wrong:
        print(f"false lower bound: {line}", file=sys.stderr)
    return 1 if wrong else 0


if __name__ == "__main__":
    sys.exit(main())
