"""Builds the container image from the Dockerfile as written (`make image`), with or without a
container engine, and reports its size and installed packages.

With docker or podman when the engine answers (`docker info` / `podman info`) and the
Dockerfile's base image can be pulled. Otherwise (this project's CI machines: a docker CLI,
no engine, no registry) with buildah, which needs no daemon: vfs storage (no overlay mounts),
chroot isolation (no OCI runtime), and a base image made here as `python:3.11-slim-bookworm`
is made, from Debian's packages: `debootstrap --variant=minbase` of the Dockerfile's Debian
release, then python3, venv, pip and CA certificates. The base is kept in a containers
storage outside the clone (~/.cache/recaptcha-sidecar), so only a machine's first build
makes it. The build stage's pip reaches the package index the way this machine's pip does:
its settings and the files they name (CA bundle, wheel directories) are mounted read-only
into the build, never into the image.

Standard library only: `make image` runs it before any virtual environment exists.
  python3 scripts/image.py build [--tag T] [--file DOCKERFILE]
  python3 scripts/image.py report TAG           size and package listing of a built image
  python3 scripts/image.py remove TAG
  python3 scripts/image.py with-image -- CMD…   build a throwaway image, run CMD with
                                                RECAPTCHA_SIDECAR_IMAGE set, remove it
"""

from __future__ import annotations

import argparse
import contextlib
import fcntl
import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
DOCKERFILE = ROOT / "Dockerfile"
CACHE = Path(
    os.environ.get("RECAPTCHA_SIDECAR_CACHE")
    or Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "recaptcha-sidecar"
)
# One containers storage (buildah's and podman's) for the base, the builds and the test runs.
STORAGE = [
    "--root",
    str(CACHE / "containers/storage"),
    "--runroot",
    str(CACHE / "containers/run"),
    "--storage-driver",
    "vfs",
]
# What the base gets on top of debootstrap's minbase: what python:3.11-slim has that matters.
BASE_PACKAGES = ("python3", "python3-venv", "python3-pip", "ca-certificates")
BASE_SOURCES = (
    "deb {mirror} {suite} main\ndeb {mirror} {suite}-updates main\n"
    "deb {security} {suite}-security main\n"
)
# Run inside the debootstrapped tree; prints the Python version last.
BASE_INSTALL = (
    "set -e; export DEBIAN_FRONTEND=noninteractive; apt-get update -qq;"
    " apt-get -y -qq upgrade >/dev/null;"
    f" apt-get install -y -qq --no-install-recommends {' '.join(BASE_PACKAGES)} >/dev/null;"
    " apt-get clean; rm -rf /var/lib/apt/lists/* /var/log/apt/* /tmp/*;"
    " python3 -c 'import sys; print(\"%d.%d\" % sys.version_info[:2])'"
)
# pip settings that decide how pip reaches packages; any other host setting stays out.
PIP_NETWORK_KEYS = (
    "index-url",
    "extra-index-url",
    "find-links",
    "trusted-host",
    "cert",
    "client-cert",
    "proxy",
    "timeout",
    "default-timeout",
    "retries",
)
# The environment variables the image tests read (tests/deploy/test_image.py).
IMAGE_ENV = "RECAPTCHA_SIDECAR_IMAGE"
STORE_ENV = "RECAPTCHA_SIDECAR_IMAGE_STORE"


_STARTED = time.monotonic()


def log(message: str) -> None:
    print(f"== [{time.monotonic() - _STARTED:5.0f} s] {message}", flush=True)


def buildah(*args: str) -> list[str]:
    return ["buildah", *STORAGE, *args]


def podman(*args: str) -> list[str]:
    """podman on the same storage. runc, not crun: crun 1.8 (bookworm) refuses cgroup hybrid
    mode (v1 controllers with a v2 mount), which these machines have."""
    return ["podman", *STORAGE, "--runtime", "runc", *args]


def run(args: Sequence[str], **kwargs: object) -> subprocess.CompletedProcess[str]:
    """A command that must succeed; its output goes to ours unless captured."""
    return subprocess.run(list(args), check=True, text=True, **kwargs)  # type: ignore[call-overload, no-any-return]


def output(args: Sequence[str]) -> str:
    return run(args, capture_output=True).stdout.strip()


def answers(args: Sequence[str], timeout: float = 30) -> bool:
    """The command exists and exits 0 in time (an engine that answers, a pull that works)."""
    if shutil.which(args[0]) is None:
        return False
    try:
        done = subprocess.run(list(args), capture_output=True, timeout=timeout, check=False)
    except subprocess.TimeoutExpired:
        return False
    return done.returncode == 0


def ensure_packages(commands: dict[str, str]) -> None:
    """Debian packages for missing commands ({command: package}), as scripts/test.sh installs
    redis-server: apt-get, as root or through sudo."""
    missing = sorted({pkg for cmd, pkg in commands.items() if shutil.which(cmd) is None})
    if not missing:
        return
    if shutil.which("apt-get") is None:
        sys.exit(f"image: install {' '.join(missing)} (no apt-get here)")
    sudo = [] if os.geteuid() == 0 else ["sudo"]
    log(f"installing {' '.join(missing)} (apt-get)")
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    run([*sudo, "apt-get", "update", "-qq"], env=env)
    run(
        [*sudo, "apt-get", "install", "-y", "-qq", "--no-install-recommends", *missing],
        env=env,
        stdout=subprocess.DEVNULL,
    )


def ensure_runner() -> None:
    """What the image tests start containers with when no docker engine answers."""
    ensure_packages({"podman": "podman", "runc": "runc"})


# --- what the Dockerfile says ---------------------------------------------------------------


@dataclass(frozen=True)
class DefaultBase:
    """The Dockerfile's default base image, and the Python and Debian release it implies."""

    image: str  # python:3.11-slim-bookworm
    python: str  # 3.11
    suite: str  # bookworm


def default_base(dockerfile: Path = DOCKERFILE) -> DefaultBase:
    found = re.search(r"^ARG PYTHON_IMAGE=(\S+)$", dockerfile.read_text(), flags=re.MULTILINE)
    if not found:
        sys.exit(f"image: {dockerfile} has no `ARG PYTHON_IMAGE=python:X.Y-slim-SUITE`")
    image = found.group(1)
    tag = re.fullmatch(r"(?:.*/)?python:(\d+\.\d+)[.\d]*-(?:slim-)?([a-z]+)", image)
    if not tag:
        sys.exit(f"image: cannot tell the Python version and Debian release of {image}")
    return DefaultBase(image, tag.group(1), tag.group(2))


def version() -> str:
    """The project's one version (VERSION; scripts/version.py keeps the manifests equal)."""
    return (ROOT / "VERSION").read_text().strip()


def default_tag() -> str:
    return f"localhost/recaptcha-sidecar:{version()}"


# --- the locally made base --------------------------------------------------------------------


def debian_mirrors() -> tuple[str, str]:
    """The Debian mirror and security mirror this machine's apt uses (the archive must be
    reachable the way apt reaches it), else Debian's own."""
    mirror, security = "http://deb.debian.org/debian", "http://deb.debian.org/debian-security"
    sources = [Path("/etc/apt/sources.list"), *sorted(Path("/etc/apt/sources.list.d").glob("*"))]
    for path in sources:
        if not path.is_file() or not path.name.endswith((".list", ".sources")):
            continue
        text = path.read_text()
        # One-line format (`deb URI SUITE …`) and deb822 stanzas (`URIs:` with `Suites:`).
        pairs = re.findall(r"^deb\s+(?:\[[^]]*\]\s+)?(\S+)\s+(\S+)", text, flags=re.MULTILINE)
        for stanza in re.split(r"\n\s*\n", text):
            uris = re.search(r"^URIs:\s*(\S+)", stanza, flags=re.MULTILINE)
            suites = re.search(r"^Suites:\s*(.+)$", stanza, flags=re.MULTILINE)
            if uris and suites:
                pairs += [(uris.group(1), suite) for suite in suites.group(1).split()]
        for uri, suite in pairs:
            if "debian" not in uri:
                continue
            if suite.endswith("-security"):
                security = uri
            elif "-" not in suite:
                mirror = uri
    return mirror.rstrip("/"), security.rstrip("/")


def base_tag(base: DefaultBase) -> str:
    """Named by its recipe: a change to the recipe makes a new base; the same recipe reuses."""
    recipe = json.dumps([base.suite, BASE_SOURCES, BASE_INSTALL])
    digest = hashlib.sha256(recipe.encode()).hexdigest()[:12]
    return f"localhost/recaptcha-sidecar-base:{base.suite}-{digest}"


def image_exists(tag: str) -> bool:
    return answers(buildah("inspect", "--type", "image", tag))


@contextlib.contextmanager
def locked(name: str) -> Iterator[None]:
    """Builds on one machine share the cache; one of them makes the base, the others wait."""
    CACHE.mkdir(parents=True, exist_ok=True)
    with open(CACHE / f"{name}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        yield


def ensure_base(base: DefaultBase, *, refresh: bool = False) -> str:
    """The local stand-in for the Dockerfile's default base; made once per machine."""
    tag = base_tag(base)
    with locked("base"):
        if image_exists(tag) and not refresh:
            log(f"base {tag} (cached in {CACHE})")
            return tag
        ensure_packages({"debootstrap": "debootstrap"})
        mirror, security = debian_mirrors()
        log(f"making base {tag}: debootstrap --variant=minbase {base.suite} {mirror}")
        container = output(buildah("from", "--name", f"rs-base-{os.getpid()}", "scratch"))
        try:
            rootfs = output(buildah("mount", container))
            run(
                ["debootstrap", "--variant=minbase", base.suite, rootfs, mirror],
                stdout=subprocess.DEVNULL,
            )
            sources = BASE_SOURCES.format(mirror=mirror, security=security, suite=base.suite)
            (Path(rootfs) / "etc/apt/sources.list").write_text(sources)
            run(buildah("umount", container), stdout=subprocess.DEVNULL)
            installed = buildah(
                "run", "--isolation", "chroot", container, "--", "sh", "-c", BASE_INSTALL
            )
            python = output(installed).splitlines()[-1]
            if python != base.python:
                sys.exit(
                    f"image: Debian {base.suite} has Python {python}, the Dockerfile's default"
                    f" base {base.image} has {base.python}: they must agree"
                )
            run(
                buildah(
                    "config",
                    "--env",
                    "LANG=C.UTF-8",
                    "--cmd",
                    "python3",
                    "--label",
                    f"org.opencontainers.image.description=debootstrap {base.suite} minbase "
                    f"+ {' '.join(BASE_PACKAGES)} (stand-in for {base.image})",
                    container,
                )
            )
            run(buildah("commit", "--quiet", "--rm", container, tag), stdout=subprocess.DEVNULL)
        except BaseException:
            subprocess.run(buildah("rm", container), capture_output=True, check=False)
            raise
        log(f"base {tag}: Python {python}")
        return tag


# --- the host's pip, for the build stage ------------------------------------------------------


def pip_mounts(workdir: Path) -> list[str]:
    """`-v` options giving the build stage this machine's pip settings: the network-related
    ones (from its config files and PIP_* variables alike) as /etc/pip.conf, and every local
    file or directory they name at the same path; all read-only, none committed."""
    listed = subprocess.run(
        [sys.executable, "-m", "pip", "config", "list"],
        capture_output=True,
        text=True,
        check=False,
    ).stdout
    settings: dict[str, str] = {}
    for line in listed.splitlines():  # `global.cert='/etc/…'`, `:env:.default-timeout='180'`
        found = re.fullmatch(r"[^.]*\.([a-z-]+)='(.*)'", line.strip())
        if found and found.group(1) in PIP_NETWORK_KEYS:
            # A local path that is not there (a wheel directory this machine lacks) stays out.
            values = [
                v for v in found.group(2).split() if not v.startswith("/") or Path(v).exists()
            ]
            if values:
                settings[found.group(1)] = " ".join(values)
    if not settings:
        return []
    conf = workdir / "pip.conf"
    conf.write_text("[global]\n" + "".join(f"{k} = {v}\n" for k, v in sorted(settings.items())))
    mounts = ["-v", f"{conf}:/etc/pip.conf:ro"]
    for key in ("cert", "client-cert", "find-links"):
        for value in settings.get(key, "").split():
            if value.startswith("/") and Path(value).exists():
                mounts += ["-v", f"{Path(value).resolve()}:{value}:ro"]
    return mounts


# --- building ---------------------------------------------------------------------------------


def engine_for(base: DefaultBase) -> str:
    """docker or podman when one answers and can pull the default base; else buildah."""
    if answers(["docker", "info"]) and answers(["docker", "pull", base.image], timeout=600):
        return "docker"
    if answers(podman("info")) and answers(podman("pull", qualified(base.image)), timeout=600):
        return "podman"
    return "buildah"


def qualified(name: str) -> str:
    """Docker Hub's full name: podman refuses short names it cannot resolve unasked."""
    first = name.split("/", 1)[0]
    if "/" in name and ("." in first or ":" in first or first == "localhost"):
        return name
    return f"docker.io/{name}" if "/" in name else f"docker.io/library/{name}"


def store_of(engine: str) -> str:
    return "docker" if engine == "docker" else "containers"


def build(tag: str, dockerfile: Path = DOCKERFILE, *, refresh_base: bool = False) -> str:
    """Build `tag` from `dockerfile` with the repository as context; the store it is in."""
    base = default_base()
    engine = engine_for(base)
    args = ["--build-arg", f"VERSION={version()}", "-t", tag, "-f", str(dockerfile)]
    with tempfile.TemporaryDirectory(prefix="rs-image-") as tmp:
        if engine == "docker":
            log(f"building {tag} with docker on {base.image}")
            run(["docker", "build", *args, str(ROOT)])
        else:
            # buildah also reads the result (report) when podman built it.
            ensure_packages({"buildah": "buildah"})
            if engine == "buildah":
                if os.geteuid() != 0:
                    sys.exit("image: without an engine, buildah (vfs, chroot) needs root here")
                args += ["--build-arg", f"PYTHON_IMAGE={ensure_base(base, refresh=refresh_base)}"]
                command = buildah("bud", "--isolation", "chroot", "--pull=never")
            else:
                args += ["--build-arg", f"PYTHON_IMAGE={qualified(base.image)}"]
                command = podman("build", "--pull=missing")
            log(f"building {tag} with {engine} from {dockerfile}")
            previous = image_id("containers", tag)
            run(
                [*command, "--force-rm", "--layers=false", *pip_mounts(Path(tmp)), *args, str(ROOT)]
            )
            if previous and previous != image_id("containers", tag):
                # The image this tag named before is left nameless: it goes, unless in use.
                subprocess.run(buildah("rmi", previous), capture_output=True, check=False)
    report(store_of(engine), tag)
    return store_of(engine)


def image_id(store: str, tag: str) -> str | None:
    if store == "docker":
        command = ["docker", "image", "inspect", "--format", "{{.Id}}", tag]
    else:
        command = buildah("inspect", "--type", "image", "--format", "{{.FromImageID}}", tag)
    done = subprocess.run(command, capture_output=True, text=True, check=False)
    return done.stdout.strip() or None if done.returncode == 0 else None


def remove(store: str, tag: str) -> None:
    command = ["docker", "rmi", tag] if store == "docker" else buildah("rmi", tag)
    subprocess.run(command, capture_output=True, check=False)


# --- what is in it ----------------------------------------------------------------------------


@contextlib.contextmanager
def rootfs(store: str, tag: str) -> Iterator[Path]:
    """The image's files, to read from here (nothing in the image is run)."""
    if store == "docker":
        created = output(["docker", "create", tag])
        try:
            with tempfile.TemporaryDirectory(prefix="rs-rootfs-") as tmp:
                export = subprocess.Popen(["docker", "export", created], stdout=subprocess.PIPE)
                run(["tar", "-x", "-C", tmp], stdin=export.stdout)
                export.wait()
                yield Path(tmp)
        finally:
            subprocess.run(["docker", "rm", created], capture_output=True, check=False)
        return
    layer = _vfs_top_layer(tag)
    if layer is not None:
        yield layer
        return
    container = output(buildah("from", "--pull=never", "--name", f"rs-report-{os.getpid()}", tag))
    try:
        yield Path(output(buildah("mount", container)))
    finally:
        subprocess.run(buildah("umount", container), capture_output=True, check=False)
        subprocess.run(buildah("rm", container), capture_output=True, check=False)


def _vfs_top_layer(tag: str) -> Path | None:
    """With vfs every layer is a whole tree, so the image's top layer is its file system:
    read in place instead of copied into a container (a copy costs 10-25 s here)."""
    image = image_id("containers", tag)
    storage = Path(STORAGE[1])
    with contextlib.suppress(OSError, ValueError, KeyError):
        for entry in json.loads((storage / "vfs-images/images.json").read_text()):
            if entry["id"] == image:
                layer = storage / "vfs/dir" / entry["layer"]
                return layer if (layer / "var/lib/dpkg/status").is_file() else None
    return None


@dataclass(frozen=True)
class Contents:
    """An SBOM-like listing: every Debian package and every Python distribution, and sizes."""

    debian: dict[str, str]
    python: dict[str, str]  # the sidecar's environment, /opt/recaptcha-sidecar
    total_bytes: int
    environment_bytes: int


def _tree_bytes(path: Path) -> int:
    total = 0
    for dirpath, _, names in os.walk(path):
        for name in names:
            with contextlib.suppress(OSError):
                total += os.lstat(os.path.join(dirpath, name)).st_size
    return total


def contents(root: Path) -> Contents:
    debian = {}
    status = root / "var/lib/dpkg/status"
    for stanza in status.read_text().split("\n\n") if status.exists() else []:
        fields = dict(re.findall(r"^([A-Za-z-]+): (.*)$", stanza, flags=re.MULTILINE))
        if fields.get("Status") == "install ok installed":
            debian[fields["Package"]] = fields["Version"]
    python = {}
    environment = root / "opt/recaptcha-sidecar"
    for metadata in environment.glob("lib/python3*/site-packages/*.dist-info/METADATA"):
        head = metadata.read_text(errors="replace").split("\n\n", 1)[0]
        fields = dict(re.findall(r"^(Name|Version): (.*)$", head, flags=re.MULTILINE))
        python[fields["Name"]] = fields["Version"]
    return Contents(debian, python, _tree_bytes(root), _tree_bytes(environment))


def report(store: str, tag: str) -> Contents:
    """Print the image's size and package listing (the build output's SBOM); return them."""
    with rootfs(store, tag) as root:
        found = contents(root)
    mb = 1_000_000
    log(
        f"image {tag}: {found.total_bytes / mb:.0f} MB of files,"
        f" {found.environment_bytes / mb:.0f} MB of them the sidecar's environment"
        f" /opt/recaptcha-sidecar ({len(found.debian)} Debian packages,"
        f" {len(found.python)} Python distributions)"
    )
    print("-- Debian packages (dpkg status)")
    for name, ver in sorted(found.debian.items()):
        print(f"deb {name} {ver}")
    print("-- Python distributions in /opt/recaptcha-sidecar")
    for name, ver in sorted(found.python.items(), key=lambda item: item[0].lower()):
        print(f"pypi {name} {ver}")
    return found


# --- command line -----------------------------------------------------------------------------


def with_image(command: Sequence[str], tag: str | None) -> int:
    """Build a throwaway image, run `command` with its name in the environment, remove it."""
    tag = tag or f"localhost/recaptcha-sidecar:test-{os.getpid()}"
    if not answers(["docker", "info"]):  # what the build and the runner need, in one apt run
        ensure_packages({c: c for c in ("buildah", "debootstrap", "podman", "runc")})
    store = build(tag)
    if store == "containers":
        ensure_runner()
    try:
        env = {**os.environ, IMAGE_ENV: tag, STORE_ENV: store}
        return subprocess.run(list(command), env=env, check=False).returncode
    finally:
        remove(store, tag)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    p_build = sub.add_parser("build", help="build the image")
    p_build.add_argument("--tag", default=default_tag())
    p_build.add_argument("--file", type=Path, default=DOCKERFILE)
    p_build.add_argument("--refresh-base", action="store_true", help="make the base anew")
    for name in ("report", "remove"):
        p = sub.add_parser(name)
        p.add_argument("tag")
        p.add_argument("--store", choices=("containers", "docker"), default="containers")
    p_with = sub.add_parser("with-image", help="build a throwaway image, run a command, remove it")
    p_with.add_argument("--tag")
    p_with.add_argument("cmd", nargs=argparse.REMAINDER)
    args = parser.parse_args(argv)
    try:
        if args.command == "build":
            store = build(args.tag, args.file.resolve(), refresh_base=args.refresh_base)
            if store == "containers":
                log(
                    f"push: buildah {' '.join(STORAGE)} push {args.tag} docker://REGISTRY/IMAGE:TAG"
                )
        elif args.command == "report":
            report(args.store, args.tag)
        elif args.command == "remove":
            remove(args.store, args.tag)
        else:
            cmd = args.cmd[1:] if args.cmd[:1] == ["--"] else args.cmd
            if not cmd:
                parser.error("with-image needs a command after --")
            return with_image(cmd, args.tag)
    except subprocess.CalledProcessError as error:
        print(f"image: {' '.join(map(str, error.cmd))} exited {error.returncode}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
