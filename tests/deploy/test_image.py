"""The container image, built from the Dockerfile (scripts/image.py: docker or podman with an
engine and a registry, buildah and a locally made base without), started the way the chart
starts the sidecar (tests/deploy/container.py), and checked from this host over real
sockets: who it runs as, a read-only root, health, Assess over the shared Unix socket (and a
repeat refused), an Annotate queued in the state volume, SIGTERM through the runner, a
drained exit 0; and what the image holds.

`make image-test` (and `make test`, through scripts/test.sh) build a throwaway image first
and name it in RECAPTCHA_SIDECAR_IMAGE; without that this module builds one itself."""

from __future__ import annotations

import itertools
import os
import re
import signal
import sqlite3
import subprocess
import sys
from collections.abc import Iterator
from contextlib import closing, contextmanager
from dataclasses import dataclass
from pathlib import Path

import grpc
import pytest
import yaml
from grpc_health.v1 import health_pb2, health_pb2_grpc
from recaptcha.sidecar.v1 import sidecar_pb2 as pb
from recaptcha.sidecar.v1 import sidecar_pb2_grpc

from scripts import image
from sidecar.emulator import mint_token
from tests.deploy.chart import Obj, config_text, find, render, sidecar_of
from tests.deploy.conftest import INSTALL_TIMEOUT, DeployTools
from tests.deploy.container import Engine, Started, pod_volumes, run_args
from tests.support.processes import ROOT, Process

# A cold build (Debian base made from scratch) is a few minutes on a busy 2-core machine;
# pytest-timeout counts the fixture's set-up.
pytestmark = [pytest.mark.image, pytest.mark.timeout(INSTALL_TIMEOUT + 900)]

APP_USER = 10001  # the chart's example app: another user, in the pod's fsGroup
_names = itertools.count()


@pytest.fixture(scope="session")
def built() -> Iterator[tuple[Engine, str]]:
    """The image under test: the one `make image-test` built, or one built here."""
    tag = os.environ.get(image.IMAGE_ENV)
    if tag:
        engine = Engine(os.environ.get(image.STORE_ENV, "containers"))
        assert image.image_id(engine.store, tag), f"{image.IMAGE_ENV}={tag}: no such image"
        yield engine, tag
        return
    tag = f"localhost/recaptcha-sidecar:test-{os.getpid()}"
    try:
        store = image.build(tag)
    except (subprocess.CalledProcessError, SystemExit) as error:
        pytest.fail(f"the image does not build: {error}")
    try:
        yield Engine(store), tag
    finally:
        image.remove(store, tag)


@pytest.fixture(scope="session")
def engine(built: tuple[Engine, str]) -> Engine:
    if built[0].store == "containers":
        image.ensure_runner()
    built[0].sweep()
    return built[0]


@dataclass(frozen=True)
class ChartPod:
    """What the chart renders for the sidecar (ci/emulator-values.yaml: no Google)."""

    container: Obj
    volumes: list[Obj]
    fs_group: int
    config: Obj
    config_file: str


@pytest.fixture(scope="session")
def chart(tools: DeployTools) -> ChartPod:
    objects = render(tools, "emulator-values.yaml")
    pod = find(objects, "Deployment")["spec"]["template"]["spec"]
    text = config_text(objects)
    return ChartPod(
        sidecar_of(find(objects, "Deployment")),
        pod["volumes"],
        pod["securityContext"]["fsGroup"],
        yaml.safe_load(text),
        text,
    )


def _port_zero(address: str) -> str:
    return address if address.startswith("unix:") else address.rsplit(":", 1)[0] + ":0"


@contextmanager
def start(engine: Engine, tag: str, chart: ChartPod, **env: str) -> Iterator[Started]:
    """The image in a container as the chart describes it; removed afterwards, whatever
    happened."""
    names = [m["name"] for m in chart.container["volumeMounts"]]
    with pod_volumes(names, chart.fs_group) as volumes:
        for volume in chart.volumes:  # the ConfigMap volume: the rendered config file
            if "configMap" in volume:
                (volumes[volume["name"]] / "config.yaml").write_text(chart.config_file)
        overrides = {
            "RECAPTCHA_SIDECAR_LISTEN": ",".join(_port_zero(a) for a in chart.config["listen"]),
            "RECAPTCHA_SIDECAR_HEALTH_LISTEN": "127.0.0.1:0",
            **env,
        }
        name = f"rs-test-{os.getpid()}-{next(_names)}"
        argv = run_args(engine, chart.container, tag, volumes, name=name, env=overrides)
        try:
            runner = Process(argv, ready="recaptcha-sidecar serving on", timeout=180)
        except RuntimeError:
            engine.remove(name)
            raise
        try:
            yield Started(engine, name, runner, volumes)
        finally:
            if runner.popen.poll() is None:
                runner.terminate(60)
            engine.remove(name)


def host_path(started: Started, chart: ChartPod, path: str) -> Path:
    """Where a path inside the container lives on this host (it must be on a volume)."""
    for mount in chart.container["volumeMounts"]:
        inside = Path(mount["mountPath"])
        if Path(path).is_relative_to(inside):
            return started.volumes[mount["name"]] / Path(path).relative_to(inside)
    raise AssertionError(f"{path} is on no volume")


def socket_path(started: Started, chart: ChartPod) -> Path:
    (socket,) = [a for a in chart.config["listen"] if a.startswith("unix:")]
    return host_path(started, chart, socket.removeprefix("unix://"))


@pytest.fixture(scope="module")
def sidecar(engine: Engine, built: tuple[Engine, str], chart: ChartPod) -> Iterator[Started]:
    with start(engine, built[1], chart) as started:
        yield started


def stub(
    started: Started, chart: ChartPod
) -> tuple[grpc.Channel, sidecar_pb2_grpc.VerificationServiceStub]:
    channel = grpc.insecure_channel(f"unix://{socket_path(started, chart)}")
    return channel, sidecar_pb2_grpc.VerificationServiceStub(channel)


def assess(verifier: sidecar_pb2_grpc.VerificationServiceStub, token: str) -> pb.AssessResponse:
    request = pb.AssessRequest(token=token, expected_action="login")
    return verifier.Assess(request, timeout=30)  # type: ignore[no-any-return]


# --- as the chart runs it ---------------------------------------------------------------------


def _mounts(pid: int) -> dict[str, set[str]]:
    """Mount point → per-mount options, from /proc/PID/mountinfo (the container's view)."""
    mounts = {}
    for line in Path(f"/proc/{pid}/mountinfo").read_text().splitlines():
        fields = line.split()
        mounts[fields[4]] = set(fields[5].split(","))
    return mounts


def test_runs_as_the_chart_says(sidecar: Started, chart: ChartPod) -> None:
    context = chart.container["securityContext"]
    pid = sidecar.host_pid()
    status = dict(
        line.split(":\t", 1) for line in Path(f"/proc/{pid}/status").read_text().splitlines()
    )
    assert status["Uid"].split() == [str(context["runAsUser"])] * 4
    assert status["Gid"].split() == [str(context["runAsGroup"])] * 4
    assert status["NSpid"].split()[-1] == "1", "the sidecar is pid 1, as in a pod"
    assert int(status["CapEff"], 16) == 0 and int(status["CapBnd"], 16) == 0, "drop: ALL"
    assert status["NoNewPrivs"].strip() == "1", "allowPrivilegeEscalation: false"
    mounts = _mounts(pid)
    assert "ro" in mounts["/"], "readOnlyRootFilesystem"
    for mount in chart.container["volumeMounts"]:
        want = "ro" if mount.get("readOnly") else "rw"
        assert want in mounts[mount["mountPath"]], mount
    # The effect, not only the flag: even root in the container cannot write the image; the
    # same exec writes /tmp (a volume), so it is the file system that refuses.
    write = "import sys; open(sys.argv[1], 'w').write('x')"
    python = "/opt/recaptcha-sidecar/bin/python"
    refused = sidecar.exec(python, "-c", write, "/opt/recaptcha-sidecar/probe", user="0:0")
    assert refused.returncode != 0 and "Read-only file system" in refused.stderr, refused
    user = f"{context['runAsUser']}:{context['runAsGroup']}"
    written = sidecar.exec(python, "-c", write, "/tmp/probe", user=user)
    assert written.returncode == 0, written
    assert (host_path(sidecar, chart, "/tmp/probe")).read_text() == "x"


def test_health_serving_on_the_health_port(sidecar: Started) -> None:
    with grpc.insecure_channel(sidecar.health_address()) as channel:
        health = health_pb2_grpc.HealthStub(channel)
        for service in ("", "recaptcha.sidecar.v1.VerificationService"):  # liveness, readiness
            answer = health.Check(health_pb2.HealthCheckRequest(service=service), timeout=30)
            assert answer.status == health_pb2.HealthCheckResponse.SERVING, service


def test_assess_over_the_shared_socket_passes_once(sidecar: Started, chart: ChartPod) -> None:
    channel, verifier = stub(sidecar, chart)
    with closing(channel):
        token = mint_token(score=0.9, action="login")
        first = assess(verifier, token)
        assert first.allowed and first.verdict == pb.VERDICT_PASSED, first
        assert first.token_status == pb.TOKEN_STATUS_VALID
        again = assess(verifier, token)
        assert not again.allowed and again.token_status == pb.TOKEN_STATUS_DUPLICATE, again


def _curl_health(socket: Path, *, groups: list[int]) -> subprocess.CompletedProcess[str]:
    """A gRPC Health/Check over the socket by a process of the app's user (not root)."""
    curl = "/usr/bin/curl"
    assert Path(curl).exists(), "curl (Debian's) speaks gRPC's HTTP/2 over a Unix socket"
    return subprocess.run(
        [
            curl,
            *("-sS", "--http2-prior-knowledge", "--unix-socket", str(socket)),
            *("-H", "content-type: application/grpc", "-H", "te: trailers"),
            *("--data-binary", "@-", "-o", "/dev/null", "-w", "%{http_code}"),
            "http://localhost/grpc.health.v1.Health/Check",
        ],
        input="\0\0\0\0\0",  # one empty, uncompressed message
        user=APP_USER,
        group=APP_USER,
        extra_groups=groups,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def test_socket_admits_the_pods_group_only(sidecar: Started, chart: ChartPod) -> None:
    socket = socket_path(sidecar, chart)
    info = socket.stat()
    context = chart.container["securityContext"]
    assert (info.st_uid, info.st_gid) == (context["runAsUser"], chart.fs_group)
    assert oct(info.st_mode & 0o777) == oct(int(chart.config["socket_mode"], 8))
    member = _curl_health(socket, groups=[chart.fs_group])
    assert member.returncode == 0 and member.stdout == "200", member
    stranger = _curl_health(socket, groups=[])
    assert stranger.returncode == 7, stranger  # curl: could not connect (permission denied)


# --- an annotation queued, then SIGTERM through the runner --------------------------------------


def _rows(outbox: Path, table: str) -> int:
    with closing(sqlite3.connect(f"file:{outbox}?mode=ro", uri=True)) as db:
        return int(db.execute(f"SELECT count(*) FROM {table}").fetchone()[0])


def test_annotate_queues_in_the_state_volume_and_sigterm_drains_it(
    engine: Engine, built: tuple[Engine, str], chart: ChartPod
) -> None:
    # Flushing partial batches only each minute keeps the row in the file until the drain.
    with start(engine, built[1], chart, RECAPTCHA_SIDECAR_OUTBOX_FLUSH_INTERVAL="60") as started:
        channel, verifier = stub(started, chart)
        with closing(channel):
            assessed = assess(verifier, mint_token(score=0.9, action="login"))
            request = pb.AnnotateRequest(
                assessment_name=assessed.assessment_name, annotation=pb.ANNOTATION_LEGITIMATE
            )
            annotated = verifier.Annotate(request, timeout=30)
        assert annotated.delivery == pb.ANNOTATION_DELIVERY_QUEUED
        outbox = host_path(started, chart, chart.config["outbox"])
        assert _rows(outbox, "outbox") == 1, "queued in the state volume, on this host's disk"
        socket = socket_path(started, chart)
        assert socket.exists()

        # To the runner (podman/docker run), not to the container: it must forward it.
        started.runner.popen.send_signal(signal.SIGTERM)
        assert started.runner.popen.wait(60) == 0, started.runner.output()
        output = started.runner.output()
        assert re.search(r'"message":\s*"shutting down"', output), output
        # The drain's last outbox pass delivered the row (rows go only once upstream took
        # them), and nothing was dead-lettered; the socket is cleaned up.
        assert _rows(outbox, "outbox") == 0 and _rows(outbox, "dead_letter") == 0
        assert not socket.exists()


# --- what the image holds -----------------------------------------------------------------------


def _canonical(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def test_image_holds_the_lock_and_nothing_to_build_with(built: tuple[Engine, str]) -> None:
    engine, tag = built
    with image.rootfs(engine.store, tag) as root:
        held = image.contents(root)
        assert not list((root / "opt/recaptcha-sidecar/bin").glob("pip*")), "no pip in the env"
    locked = dict(
        re.findall(r"^([A-Za-z0-9._-]+)==(\S+)", (ROOT / "requirements.lock").read_text(), re.M)
    )
    project = {"recaptcha-sidecar": image.version()}  # the stubs are inside its wheel
    want = {_canonical(k): v for k, v in {**locked, **project}.items()}
    assert {_canonical(k): v for k, v in held.python.items()} == want
    python = image.default_base().python
    assert f"python{python}" in held.debian, f"the Dockerfile's default base has Python {python}"
    for tool in ("gcc", "g++", "make", "build-essential", "cpp"):
        assert tool not in held.debian, f"{tool}: no compilers in the runtime image"
    assert 0 < held.environment_bytes < held.total_bytes


def test_a_broken_dockerfile_fails_the_build(built: tuple[Engine, str], tmp_path: Path) -> None:
    """What CI relies on: a Dockerfile that cannot build makes `make image` fail."""
    dockerfile = (ROOT / "Dockerfile").read_text()
    assert "COPY sidecar sidecar" in dockerfile
    broken = tmp_path / "Dockerfile"
    broken.write_text(dockerfile.replace("COPY sidecar sidecar", "COPY sidecar-gone sidecar"))
    tag = f"localhost/recaptcha-sidecar:broken-{os.getpid()}"
    done = subprocess.run(
        [sys.executable, "scripts/image.py", "build", "--tag", tag, "--file", str(broken)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=900,
        check=False,
    )
    assert done.returncode != 0, done.stdout
    assert "sidecar-gone" in done.stdout + done.stderr
    assert image.image_id(built[0].store, tag) is None
