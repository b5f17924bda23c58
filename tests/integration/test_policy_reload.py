"""Hot reload under traffic: a changed policy file (replaced atomically, or swapped by symlink as
Kubernetes updates a mounted ConfigMap) takes effect with no failed RPC; a bad file is refused
and the old policy keeps deciding; SIGHUP re-reads the file of a real sidecar process."""

from __future__ import annotations

import asyncio
import logging
import os
import shutil
import signal
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import grpc
import pytest
from recaptcha.sidecar.v1 import sidecar_pb2 as pb
from recaptcha.sidecar.v1 import sidecar_pb2_grpc

from sidecar.emulator import mint_token
from sidecar.policy.tools import load_policy_file
from tests.conftest import SidecarFactory, SidecarHandle
from tests.support.polling import eventually
from tests.support.processes import sidecar_process

WORKERS = 4
SCORE = 0.9


def config_text(threshold: object) -> str:
    return f"policy:\n  default: {{threshold: {threshold}}}\n"


def version_of(text: str, tmp_path: Path) -> str:
    scratch = tmp_path / "version-probe.yaml"
    scratch.write_text(text)
    return load_policy_file(scratch).version


def replace_atomically(path: Path, text: str) -> None:
    tmp = path.parent / f".{path.name}.tmp"
    tmp.write_text(text)
    os.replace(tmp, path)


@dataclass
class Traffic:
    """Workers sending Assess calls back to back until stopped; every answer is kept, in order
    per worker, and every failed RPC too."""

    stub: sidecar_pb2_grpc.VerificationServiceStub
    answers: list[list[pb.AssessResponse]] = field(default_factory=list)
    errors: list[grpc.StatusCode] = field(default_factory=list)
    _stop: asyncio.Event = field(default_factory=asyncio.Event)
    _tasks: list[asyncio.Task[None]] = field(default_factory=list)

    def start(self) -> None:
        for _ in range(WORKERS):
            mine: list[pb.AssessResponse] = []
            self.answers.append(mine)
            self._tasks.append(asyncio.create_task(self._work(mine)))

    async def _work(self, mine: list[pb.AssessResponse]) -> None:
        while not self._stop.is_set():
            try:
                answer = await self.stub.Assess(
                    pb.AssessRequest(token=mint_token(score=SCORE)), timeout=5
                )
            except grpc.aio.AioRpcError as error:
                self.errors.append(error.code())
            else:
                mine.append(answer)

    def count(self) -> int:
        return sum(len(a) for a in self.answers)

    def versions(self) -> set[str]:
        return {a.policy_version for answers in self.answers for a in answers}

    async def wait_for(self, what: Callable[[], bool], *, limit: float = 15.0) -> None:
        """Wait (bounded) until `what` holds; fail the test if it never does."""
        await eventually(what, timeout=limit)

    async def more(self, n: int) -> None:
        target = self.count() + n
        await self.wait_for(lambda: self.count() >= target)

    async def stop(self) -> None:
        self._stop.set()
        await asyncio.gather(*self._tasks)


def assert_switched_cleanly(traffic: Traffic, old: str, new: str, new_threshold: float) -> None:
    """No failed RPC; every answer decided by one of the two policies, consistent with it; and
    each worker, once it saw the new policy, never saw the old one again."""
    assert traffic.errors == []
    assert traffic.versions() == {old, new}
    for answers in traffic.answers:
        versions = [a.policy_version for a in answers]
        if new in versions:
            assert old not in versions[versions.index(new) :]
        for answer in answers:
            if answer.policy_version == new:
                assert answer.threshold == pytest.approx(new_threshold)
                assert answer.allowed is (new_threshold <= SCORE)
            else:
                assert answer.threshold == pytest.approx(0.5)
                assert answer.allowed


async def start(make_sidecar: SidecarFactory, config: Path) -> tuple[SidecarHandle, Traffic]:
    handle = await make_sidecar(config, policy_reload_interval=0.05)
    traffic = Traffic(handle.stub)
    traffic.start()
    await traffic.more(20)
    return handle, traffic


async def test_changed_file_takes_effect_under_traffic(
    make_sidecar: SidecarFactory, tmp_path: Path
) -> None:
    config = tmp_path / "sidecar.yaml"
    config.write_text(config_text(0.5))
    old, new = version_of(config_text(0.5), tmp_path), version_of(config_text(0.95), tmp_path)
    handle, traffic = await start(make_sidecar, config)
    assert traffic.versions() == {old}

    replace_atomically(config, config_text(0.95))
    await traffic.wait_for(lambda: new in traffic.versions())
    await traffic.more(20)
    await traffic.stop()

    assert_switched_cleanly(traffic, old, new, 0.95)
    assert handle.sidecar.policy is not None and handle.sidecar.policy.reloads == 1


async def test_bad_file_is_refused_and_the_old_policy_stays(
    make_sidecar: SidecarFactory, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="sidecar.policy.source")
    config = tmp_path / "sidecar.yaml"
    config.write_text(config_text(0.5))
    old, new = version_of(config_text(0.5), tmp_path), version_of(config_text(0.95), tmp_path)
    handle, traffic = await start(make_sidecar, config)
    source = handle.sidecar.policy
    assert source is not None

    for bad in (config_text(2), "policy:\n  default: {threshold: [\n", "policy: {bogus: 1}\n"):
        rejected = source.rejections
        replace_atomically(config, bad)
        await traffic.wait_for(lambda r=rejected: source.rejections > r)
        await traffic.more(10)
    assert traffic.versions() == {old}
    assert source.rejections == 3 and source.reloads == 0
    assert caplog.text.count("rejected, keeping policy " + old) == 3
    assert "policy.default.threshold" in caplog.text

    replace_atomically(config, config_text(0.95))  # a good file after bad ones still works
    await traffic.wait_for(lambda: new in traffic.versions())
    await traffic.more(10)
    await traffic.stop()
    assert_switched_cleanly(traffic, old, new, 0.95)


async def test_kubernetes_configmap_symlink_swap_under_traffic(
    make_sidecar: SidecarFactory, tmp_path: Path
) -> None:
    """kubelet's atomic writer: `sidecar.yaml -> ..data/sidecar.yaml`, `..data -> ..<ts>`;
    an update writes a new `..<ts>` directory, renames a new `..data` link over the old one,
    then deletes the old directory."""
    mount = tmp_path / "configmap"
    first = mount / "..2024_06_01_10_00_00.000000001"
    first.mkdir(parents=True)
    (first / "sidecar.yaml").write_text(config_text(0.5))
    (mount / "..data").symlink_to(first.name)
    (mount / "sidecar.yaml").symlink_to("..data/sidecar.yaml")
    old, new = version_of(config_text(0.5), tmp_path), version_of(config_text(0.95), tmp_path)
    _, traffic = await start(make_sidecar, mount / "sidecar.yaml")
    assert traffic.versions() == {old}

    second = mount / "..2024_06_01_10_05_00.000000002"
    second.mkdir()
    (second / "sidecar.yaml").write_text(config_text(0.95))
    (mount / "..data_tmp").symlink_to(second.name)
    os.replace(mount / "..data_tmp", mount / "..data")
    shutil.rmtree(first)

    await traffic.wait_for(lambda: new in traffic.versions())
    await traffic.more(20)
    await traffic.stop()
    assert_switched_cleanly(traffic, old, new, 0.95)


async def test_sighup_rereads_the_file_of_a_real_process(tmp_path: Path) -> None:
    config = tmp_path / "sidecar.yaml"
    config.write_text(config_text(0.5))
    old, new = version_of(config_text(0.5), tmp_path), version_of(config_text(0.95), tmp_path)
    process = await asyncio.to_thread(
        sidecar_process,
        "--emulator",
        "--config",
        str(config),
        "--listen",
        "127.0.0.1:0",
        env={"RECAPTCHA_SIDECAR_POLICY_RELOAD_INTERVAL": "0"},  # SIGHUP only
    )
    channel = grpc.aio.insecure_channel(process.addresses()[0])
    try:
        traffic = Traffic(sidecar_pb2_grpc.VerificationServiceStub(channel))
        traffic.start()
        await traffic.more(20)
        replace_atomically(config, config_text(0.95))
        await traffic.more(20)
        assert traffic.versions() == {old}  # no watcher: the change waits for SIGHUP

        process.popen.send_signal(signal.SIGHUP)
        await traffic.wait_for(lambda: new in traffic.versions())
        await traffic.more(20)
        await traffic.stop()
        assert_switched_cleanly(traffic, old, new, 0.95)
        assert process.popen.poll() is None  # SIGHUP did not stop it
    finally:
        await channel.close()
        assert await asyncio.to_thread(process.terminate) == 0
    assert f"policy {new} in force (was {old})" in process.output()
