"""The built image started as the chart starts the sidecar, from this host: the rendered
container's user, read-only root file system, capabilities, privilege escalation, volume
mounts, args and env become `podman run` options (docker's where a docker engine holds
the image).

podman, not `buildah run`: buildah 1.28's run has no read-only root, and cannot run one (it
writes /run/.containerenv into the root it is given). podman's `--read-only` is the runtime's
own. The container shares the host's network, so the test reaches health from here; fixed
ports would collide with other runs on the machine, so the listeners get port 0 through the
environment, as the chart's extraEnv would set them (RECAPTCHA_SIDECAR_* wins over the file).
"""

from __future__ import annotations

import json
import os
import resource
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from scripts import image
from tests.deploy.chart import Obj
from tests.support.processes import Process

OWNER_LABEL = "recaptcha-sidecar.test.owner"  # the pid of the test run that started it
PODMAN_NPROC = 32768


@dataclass(frozen=True)
class Engine:
    """The command line that reaches the store holding the image."""

    store: str  # "containers" (buildah's and podman's) or "docker"

    def cli(self, *args: str) -> list[str]:
        return ["docker", *args] if self.store == "docker" else image.podman(*args)

    def run_options(self) -> list[str]:
        if self.store == "docker":
            return []
        # podman asks for 1048576 open files by default; a limit above the runtime's own hard
        # one needs CAP_SYS_RESOURCE, which root here lacks. So: the host's open files, and
        # processes at most podman's default of 32768 (podman lowers its own limit to that).
        files = resource.getrlimit(resource.RLIMIT_NOFILE)[1]
        processes = resource.getrlimit(resource.RLIMIT_NPROC)[1]
        if processes == resource.RLIM_INFINITY or processes > PODMAN_NPROC:
            processes = PODMAN_NPROC
        return ["--ulimit", f"nofile={files}:{files}", "--ulimit", f"nproc={processes}:{processes}"]

    def inspect(self, name: str) -> Obj:
        out = subprocess.run(
            self.cli("inspect", name), capture_output=True, text=True, timeout=60, check=True
        ).stdout
        return json.loads(out)[0]  # type: ignore[no-any-return]

    def remove(self, name: str) -> None:
        subprocess.run(self.cli("rm", "-f", name), capture_output=True, timeout=120, check=False)

    def sweep(self) -> None:
        """Containers an earlier, killed test run left behind (its pid is gone)."""
        listed = subprocess.run(
            self.cli("ps", "-a", "--filter", f"label={OWNER_LABEL}", "--format", "json"),
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        ).stdout
        for entry in json.loads(listed or "[]") if listed.strip().startswith("[") else []:
            owner = str((entry.get("Labels") or {}).get(OWNER_LABEL, ""))
            if owner.isdigit() and not Path(f"/proc/{owner}").exists():
                self.remove(entry["Id"])


def run_args(
    engine: Engine,
    container: Obj,
    tag: str,
    mounts: dict[str, Path],
    *,
    name: str,
    env: dict[str, str],
) -> list[str]:
    """`run` options for the chart's container spec; mounts: volume name → host path."""
    context = container["securityContext"]
    args = [
        *engine.cli("run", "--rm", "--name", name, "--pull", "never", "--network", "host"),
        "--label",
        f"{OWNER_LABEL}={os.getpid()}",
        "--user",
        f"{context['runAsUser']}:{context['runAsGroup']}",
        *engine.run_options(),
    ]
    if context.get("readOnlyRootFilesystem"):
        args.append("--read-only")
        if engine.store != "docker":  # podman would mount tmpfs on /run, /tmp, /var/tmp
            args.append("--read-only-tmpfs=false")
    if "ALL" in context.get("capabilities", {}).get("drop", []):
        args += ["--cap-drop", "ALL"]
    if context.get("allowPrivilegeEscalation") is False:
        args += ["--security-opt", "no-new-privileges"]
    for mount in container["volumeMounts"]:
        mode = "ro" if mount.get("readOnly") else "rw"
        args += ["-v", f"{mounts[mount['name']]}:{mount['mountPath']}:{mode}"]
    values = {e["name"]: e["value"] for e in container.get("env", []) if "value" in e}
    for key, value in {**values, **env}.items():
        args += ["-e", f"{key}={value}"]
    return [*args, tag, *container.get("args", [])]


@contextmanager
def pod_volumes(names: list[str], group: int) -> Iterator[dict[str, Path]]:
    """Host directories standing in for the pod's emptyDirs, as kubelet makes them with
    fsGroup: mode 0777 plus setgid, owned by the group. Removed afterwards."""
    top = Path(tempfile.mkdtemp(prefix="rs-pod-"))
    top.chmod(0o755)  # so a host process as the app's user reaches the socket
    try:
        paths = {}
        for volume in names:
            path = top / volume
            path.mkdir()
            os.chown(path, 0, group)
            path.chmod(0o2777)
            paths[volume] = path
        yield paths
    finally:
        shutil.rmtree(top, ignore_errors=True)


@dataclass
class Started:
    """A running container: the runner process (podman or docker run) and what it printed."""

    engine: Engine
    name: str
    runner: Process
    volumes: dict[str, Path]

    def health_address(self) -> str:
        line = next(line for line in self.runner.lines if "health on" in line)
        return line.split(" on ", 1)[1].strip()

    def host_pid(self) -> int:
        """The sidecar's pid as this host sees it (the container's pid 1)."""
        return int(self.engine.inspect(self.name)["State"]["Pid"])

    def exec(self, *args: str, user: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            self.engine.cli("exec", "--user", user, self.name, *args),
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
