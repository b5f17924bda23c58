"""One version for every artifact: VERSION, repeated by the manifests that cannot read it."""

from __future__ import annotations

import importlib.util
import shutil
import sys
from pathlib import Path

import sidecar

ROOT = Path(__file__).resolve().parents[2]
_spec = importlib.util.spec_from_file_location("version_tool", ROOT / "scripts" / "version.py")
assert _spec and _spec.loader
version_tool = importlib.util.module_from_spec(_spec)
sys.modules["version_tool"] = version_tool
_spec.loader.exec_module(version_tool)


def test_every_manifest_says_the_version_in_VERSION() -> None:
    assert version_tool.mismatches(version_tool.version()) == []


def test_installed_package_reports_VERSION() -> None:
    assert sidecar.__version__ == version_tool.version()


def test_set_writes_every_place(tmp_path: Path) -> None:
    names = {"VERSION"} | {name for name, _ in version_tool.PLACES}
    for name in names:
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(ROOT / name, tmp_path / name)
    old = version_tool.version(tmp_path)
    version_tool.set_version("7.8.9", tmp_path)
    assert version_tool.version(tmp_path) == "7.8.9"
    assert version_tool.mismatches("7.8.9", tmp_path) == []
    # every place moved: checking against the old version names each of them
    assert len(version_tool.mismatches(old, tmp_path)) >= len(version_tool.PLACES)
