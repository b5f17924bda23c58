"""What each worker of `serve --workers N` is given: the held ports, its own outbox file and
Prometheus port, its telemetry tag; and the ports held by the supervisor (real sockets)."""

from __future__ import annotations

import os
import socket
from pathlib import Path

import pytest

from sidecar.config import load_settings
from sidecar.server.reservation import ReservationError, reserve
from sidecar.server.supervisor import _tag_telemetry
from sidecar.server.workers import (
    WorkerSlot,
    metrics_address,
    outbox_path,
    shared_addresses,
    worker_settings,
)

REDIS = "redis://127.0.0.1:6379/0"


def test_worker_zero_keeps_the_outbox_file_and_the_others_get_one_beside_it() -> None:
    path = Path("/var/lib/sidecar/outbox.sqlite3")
    assert outbox_path(path, 0) == path
    assert outbox_path(path, 1) == Path("/var/lib/sidecar/outbox-worker1.sqlite3")
    assert outbox_path(path, 12) == Path("/var/lib/sidecar/outbox-worker12.sqlite3")


def test_each_worker_serves_metrics_on_the_port_plus_its_index() -> None:
    assert metrics_address("127.0.0.1:9464", 0) == "127.0.0.1:9464"
    assert metrics_address("127.0.0.1:9464", 3) == "127.0.0.1:9467"
    assert metrics_address(":9464", 1) == ":9465"
    assert metrics_address("127.0.0.1:0", 2) == "127.0.0.1:0"
    assert metrics_address("", 2) == ""


def test_every_zero_port_is_held_on_a_port_of_its_own_and_a_repeat_once(tmp_path: Path) -> None:
    settings = load_settings(
        None,
        emulator=True,
        workers=2,
        replay_store=REDIS,
        listen=["127.0.0.1:0", "127.0.0.1:0"],
        http_listen=["127.0.0.1:0"],
        health_listen="127.0.0.1:0",
        metrics_listen="127.0.0.1:9464",
        outbox=tmp_path / "outbox.sqlite3",
    )
    held = reserve(shared_addresses(settings))
    try:
        ports = [int(address.rsplit(":", 1)[1]) for address in held.addresses["listen"]]
        http = int(held.addresses["http_listen"][0].rsplit(":", 1)[1])
        health = int(held.addresses["health_listen"][0].rsplit(":", 1)[1])
        assert len({*ports, http, health}) == 4 and 0 not in ports
        one = worker_settings(settings, WorkerSlot(1), held)
        assert one.listen == held.addresses["listen"]
        assert one.http_listen == held.addresses["http_listen"]
        assert one.health_listen == held.addresses["health_listen"][0]
        assert one.metrics_listen == "127.0.0.1:9465"
        assert one.outbox == tmp_path / "outbox-worker1.sqlite3"
        assert worker_settings(settings, WorkerSlot(0), held).outbox == settings.outbox

        # Held: a plain bind fails, one with SO_REUSEPORT (a worker's) succeeds.
        with socket.socket() as plain, pytest.raises(OSError):
            plain.bind(("127.0.0.1", ports[0]))
        with socket.socket() as shared:
            shared.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
            shared.bind(("127.0.0.1", ports[0]))
    finally:
        held.close()
    with socket.socket() as again:
        again.bind(("127.0.0.1", ports[0]))  # released


def test_the_same_fixed_address_is_held_once() -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    address = f"127.0.0.1:{port}"
    held = reserve({"listen": [address, address]})
    try:
        assert held.addresses["listen"] == [address, address]
        assert len(held.sockets) == 1
    finally:
        held.close()


def test_a_port_in_use_is_refused_with_nothing_left_held() -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            free = probe.getsockname()[1]
        with pytest.raises(ReservationError, match=f"127.0.0.1:{port}: Address already in use"):
            reserve({"listen": [f"127.0.0.1:{free}", f"127.0.0.1:{port}"]})
    with socket.socket() as again:
        again.bind(("127.0.0.1", free))  # the first one was let go


def test_a_workers_telemetry_carries_its_index(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OTEL_RESOURCE_ATTRIBUTES", "deployment.environment=prod")
    monkeypatch.setenv("OTEL_EXPORTER_PROMETHEUS_PORT", "9464")
    _tag_telemetry(WorkerSlot(2))
    assert os.environ["OTEL_RESOURCE_ATTRIBUTES"] == (
        "deployment.environment=prod,recaptcha_sidecar.worker=2"
    )
    assert os.environ["OTEL_EXPORTER_PROMETHEUS_PORT"] == "9466"
    monkeypatch.delenv("OTEL_RESOURCE_ATTRIBUTES")
    _tag_telemetry(WorkerSlot(0))
    assert os.environ["OTEL_RESOURCE_ATTRIBUTES"] == "recaptcha_sidecar.worker=0"
