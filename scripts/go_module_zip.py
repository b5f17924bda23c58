"""A Go module zip and the file-proxy layout around it, so `GOPROXY=file://DIR` serves the
module at a version without a tag on a public host:

    python scripts/go_module_zip.py clients/go DIST/goproxy v0.1.0

DIR/<module>/@v/{list, vX.info, vX.mod, vX.zip}, as `go help goproxy` describes. The zip
follows the module zip rules (golang.org/x/mod/zip): every file under the module root, each
path prefixed `<module>@<version>/`, leaving out nested modules (directories with their own
go.mod), vendor/ and version-control directories.
"""

from __future__ import annotations

import json
import re
import sys
import time
import zipfile
from pathlib import Path

SKIPPED_DIRS = {".git", ".hg", ".svn", ".bzr", "vendor", "node_modules"}


def module_path(root: Path) -> str:
    match = re.search(r"(?m)^module\s+(\S+)", (root / "go.mod").read_text())
    if not match:
        raise SystemExit(f"{root}/go.mod names no module")
    return match.group(1)


def escape(path: str) -> str:
    """The proxy's case encoding: an upper-case letter becomes '!' and its lower case."""
    return re.sub(r"[A-Z]", lambda m: "!" + m.group(0).lower(), path)


def files(root: Path) -> list[Path]:
    found = []
    for path in sorted(root.rglob("*")):
        relative = path.relative_to(root)
        parents = [root / Path(*relative.parts[:i]) for i in range(1, len(relative.parts))]
        if any(p.name in SKIPPED_DIRS or (p / "go.mod").exists() for p in parents):
            continue
        if path.is_file() and not path.is_symlink():
            found.append(path)
    return found


def write(root: Path, out: Path, version: str) -> Path:
    module = module_path(root)
    where = out / escape(module) / "@v"
    where.mkdir(parents=True, exist_ok=True)
    archive = where / f"{version}.zip"
    with zipfile.ZipFile(archive, "w", compression=zipfile.ZIP_DEFLATED) as zf:
        for path in files(root):
            zf.write(path, f"{module}@{version}/{path.relative_to(root).as_posix()}")
    (where / f"{version}.mod").write_text((root / "go.mod").read_text())
    stamp = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    (where / f"{version}.info").write_text(json.dumps({"Version": version, "Time": stamp}))
    listed = where / "list"
    versions = set(listed.read_text().split()) if listed.exists() else set()
    listed.write_text("".join(f"{v}\n" for v in sorted(versions | {version})))
    return archive


if __name__ == "__main__":
    if len(sys.argv) != 4 or not sys.argv[3].startswith("v"):
        raise SystemExit(__doc__)
    print(write(Path(sys.argv[1]), Path(sys.argv[2]), sys.argv[3]))
