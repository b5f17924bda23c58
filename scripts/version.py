"""The project's one version: VERSION, and every manifest that must repeat it.

    python scripts/version.py            print the version
    python scripts/version.py check      exit 1 naming each place that differs from VERSION
    python scripts/version.py set 0.2.0  write VERSION and every place below

The Python packages read VERSION at build time (the sidecar through hatch's version source);
npm, Maven, the chart, the image and the docs cannot, so they are written here and checked by
tests/unit/test_version.py. The Go module's version is its tag (clients/go/vX.Y.Z), taken from
VERSION by `make dist` for the module zip.
"""

from __future__ import annotations

import re
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SEMVER = r"[0-9]+\.[0-9]+\.[0-9]+(?:[-+.][0-9A-Za-z.-]+)?"

# (file, pattern): the version is the pattern's group "v"; each pattern must match at least once.
PLACES: list[tuple[str, str]] = [
    ("clients/python/pyproject.toml", rf'(?m)^version = "(?P<v>{SEMVER})"'),
    ("clients/node/package.json", rf'(?m)^  "version": "(?P<v>{SEMVER})"'),
    ("clients/node/package-lock.json", rf'(?m)^  "version": "(?P<v>{SEMVER})"'),
    (
        "clients/node/package-lock.json",
        rf'"": \{{\s*"name": "@recaptcha-sidecar/client",\s*"version": "(?P<v>{SEMVER})"',
    ),
    (
        "clients/java/pom.xml",
        rf"<artifactId>recaptcha-sidecar-client</artifactId>\s*<version>(?P<v>{SEMVER})</version>",
    ),
    ("deploy/helm/recaptcha-sidecar/Chart.yaml", rf"(?m)^version: (?P<v>{SEMVER})$"),
    ("deploy/helm/recaptcha-sidecar/Chart.yaml", rf'(?m)^appVersion: "(?P<v>{SEMVER})"$'),
    (
        "deploy/helm/examples/inject/Chart.yaml",
        rf"- name: recaptcha-sidecar\s*version: (?P<v>{SEMVER})",
    ),
    ("Dockerfile", rf"(?m)^ARG VERSION=(?P<v>{SEMVER})$"),
    ("Dockerfile", rf"recaptcha-sidecar:(?P<v>{SEMVER})"),
    ("deploy/kubernetes/deployment.yaml", rf"/recaptcha-sidecar:(?P<v>{SEMVER})"),
    ("deploy/kubernetes/shared-redis/deployment.yaml", rf"/recaptcha-sidecar:(?P<v>{SEMVER})"),
    ("docs/deployment.md", rf"/recaptcha-sidecar:(?P<v>{SEMVER})"),
    (
        "docs/clients.md",
        rf"<artifactId>recaptcha-sidecar-client</artifactId>\s*<version>(?P<v>{SEMVER})</version>",
    ),
]


def version(root: Path = ROOT) -> str:
    return (root / "VERSION").read_text().strip()


def mismatches(expected: str, root: Path = ROOT) -> list[str]:
    """'file: found X' for every place that does not say `expected` (or no longer matches)."""
    wrong = []
    for name, pattern in PLACES:
        found = [m.group("v") for m in re.finditer(pattern, (root / name).read_text())]
        if not found:
            wrong.append(f"{name}: pattern {pattern!r} no longer matches")
        wrong += [f"{name}: {v}" for v in found if v != expected]
    return wrong


def set_version(new: str, root: Path = ROOT) -> None:
    if not re.fullmatch(SEMVER, new):
        raise SystemExit(f"not a version: {new!r}")
    (root / "VERSION").write_text(new + "\n")
    for name, pattern in PLACES:
        path = root / name
        text = path.read_text()

        def put(match: re.Match[str]) -> str:
            start, end = match.span("v")
            whole = match.group(0)
            offset = match.start()
            return whole[: start - offset] + new + whole[end - offset :]

        path.write_text(re.sub(pattern, put, text))


def main(argv: list[str]) -> int:
    if not argv:
        print(version())
        return 0
    if argv[0] == "check":
        wrong = mismatches(version())
        for line in wrong:
            print(f"version differs from VERSION ({version()}): {line}", file=sys.stderr)
        return 1 if wrong else 0
    if argv[0] == "set" and len(argv) == 2:
        set_version(argv[1])
        return 0
    print(__doc__, file=sys.stderr)
    return 2


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
