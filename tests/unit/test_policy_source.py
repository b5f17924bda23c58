"""PolicySource on real files with the real settings loader: what it swaps in, what it refuses."""

from __future__ import annotations

import logging
import os
from pathlib import Path

import pytest

from sidecar.config import load_settings, reload_settings
from sidecar.policy.source import PolicySource


def write(path: Path, threshold: object) -> None:
    """Write a settings file the way a careful tool does: a new file renamed over the old."""
    tmp = path.with_suffix(".tmp")
    tmp.write_text(f"emulator: true\npolicy:\n  default: {{threshold: {threshold}}}\n")
    os.replace(tmp, path)


async def source_for(path: Path) -> PolicySource:
    settings = load_settings(path)
    source = PolicySource(
        settings.policy,
        path=settings.config_file,
        load=lambda: reload_settings(settings).policy,
        interval=0,  # the tests call reload() themselves
    )
    await source.start()
    return source


async def test_reload_swaps_good_files_and_keeps_the_old_policy_for_bad_ones(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    path = tmp_path / "sidecar.yaml"
    write(path, 0.5)
    source = await source_for(path)
    first = source.current()
    assert first.default.threshold == 0.5

    assert await source.reload() is False  # nothing changed on disk
    assert source.current() is first

    write(path, 0.7)
    assert await source.reload() is True
    second = source.current()
    assert (second.default.threshold, source.reloads) == (0.7, 1)
    assert second.version != first.version

    caplog.set_level(logging.INFO, logger="sidecar.policy.source")
    write(path, 2)  # out of range
    assert await source.reload() is False
    assert source.current() is second and source.rejections == 1
    assert "rejected" in caplog.text and "policy.default.threshold" in caplog.text
    assert await source.reload() is False  # the same bad content is not re-reported
    assert source.rejections == 1

    path.write_text("policy: {default: [\n")  # not YAML at all, written in place
    assert await source.reload() is False
    assert source.current() is second and source.rejections == 2

    write(path, 0.7)  # back to good content equal to what is in force: no swap, no new version
    assert await source.reload() is False
    assert source.current() is second

    path.unlink()
    assert await source.reload() is False
    assert source.current() is second
    assert "gone" in caplog.text
    write(path, 0.8)
    assert await source.reload() is True
    assert source.current().default.threshold == 0.8
    await source.close()


async def test_force_reload_reads_even_unchanged_files(tmp_path: Path) -> None:
    path = tmp_path / "sidecar.yaml"
    write(path, 0.5)
    source = await source_for(path)
    checks = source.checks
    assert await source.reload(force=True) is False  # read, found equal
    assert source.checks == checks + 1
    await source.close()


async def test_kubernetes_configmap_symlink_swap(tmp_path: Path) -> None:
    """Kubernetes mounts `config.yaml -> ..data/config.yaml`, `..data -> ..<timestamp>` and
    updates by renaming a new `..data` symlink over the old one."""
    mount = tmp_path / "mount"
    mount.mkdir()
    (mount / "..2024_01").mkdir()
    write(mount / "..2024_01" / "sidecar.yaml", 0.5)
    (mount / "..data").symlink_to("..2024_01")
    (mount / "sidecar.yaml").symlink_to("..data/sidecar.yaml")
    source = await source_for(mount / "sidecar.yaml")
    assert source.current().default.threshold == 0.5

    (mount / "..2024_02").mkdir()
    write(mount / "..2024_02" / "sidecar.yaml", 0.9)
    (mount / "..data_tmp").symlink_to("..2024_02")
    os.replace(mount / "..data_tmp", mount / "..data")
    for leftover in (mount / "..2024_01").iterdir():
        leftover.unlink()
    (mount / "..2024_01").rmdir()

    assert await source.reload() is True
    assert source.current().default.threshold == 0.9
    await source.close()


async def test_without_a_file_there_is_nothing_to_reload() -> None:
    settings = load_settings(emulator=True)
    source = PolicySource(settings.policy, path=settings.config_file, load=None, interval=0)
    await source.start()
    assert not source.reloadable
    assert await source.reload(force=True) is False
    source.request_reload()  # a SIGHUP without a file: logged, harmless
    await source.close()
