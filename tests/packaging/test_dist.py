"""`make dist`'s artifacts work where a user puts them: each one is installed into a fresh
consumer project (a new venv, npm project, Go module, Maven project) that knows nothing of this
repository, and its example runs against a sidecar that was itself installed from the wheel.

The sidecar is also installed the three other ways the README promises: from the sdist, with
`pip install git+file://…` (the committed HEAD) and with `pipx install .`. Dependencies come
from the package registries as a user's would; caches are shared, the installs are not: the Go
module cache and the Maven local repository are fresh per run (the shared ones serve only as
read-through mirrors), so a stale copy of the same version can never stand in for the new one.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import grpc
import pytest
from recaptcha.sidecar.v1 import sidecar_pb2 as pb
from recaptcha.sidecar.v1 import sidecar_pb2_grpc

from sidecar.emulator import mint_token
from tests.support.processes import ROOT, Process

pytestmark = [pytest.mark.dist, pytest.mark.timeout(900)]

VERSION = (ROOT / "VERSION").read_text().strip()
GO_MODULE = "github.com/recaptcha-sidecar/recaptcha-sidecar/clients/go"


def run(argv: list[str], *, cwd: Path, env: dict[str, str] | None = None, timeout: float = 600):
    done = subprocess.run(
        [str(a) for a in argv],
        cwd=cwd,
        env=env if env is not None else user_env(),
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )
    command = " ".join(map(str, argv))
    assert done.returncode == 0, (
        f"{command[:300]} exited {done.returncode}:\n"
        f"--- stderr\n{done.stderr[-4000:]}\n--- stdout\n{done.stdout[-2000:]}"
    )
    return done


def run_example(
    argv: Callable[[str], list[Any]], *, cwd: Path, env: dict[str, str] | None = None
) -> str:
    """An example's output for a fresh token. The examples give their call a 2 s deadline, which
    a cold JVM on a loaded 2-core machine can miss while it connects: such a miss, and only that,
    is tried again (with a new token, as a user would), at most five times in all."""
    attempts = 5
    for attempt in range(attempts):
        done = subprocess.run(
            [str(a) for a in argv(mint_token(score=0.9, action="login"))],
            cwd=cwd,
            env=env if env is not None else user_env(),
            stdin=subprocess.DEVNULL,
            capture_output=True,
            text=True,
            timeout=600,
            check=False,
        )
        missed = "DEADLINE_EXCEEDED" in done.stderr.upper()
        if done.returncode == 0 or not missed or attempt == attempts - 1:
            break
    assert done.returncode == 0, f"example exited {done.returncode}:\n{done.stderr[-4000:]}"
    return done.stdout


def user_env(**extra: str) -> dict[str, str]:
    """The environment of a user's shell: nothing of this test run's Python or venv."""
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("PYTHON", "VIRTUAL_ENV", "PIP_REQUIRE", "PYTEST"))
    }
    env["PATH"] = os.pathsep.join(
        p for p in env.get("PATH", "").split(os.pathsep) if not p.startswith(str(ROOT / ".venv"))
    )
    return {**env, **extra}


def need(tool: str) -> str:
    found = shutil.which(tool, path=user_env()["PATH"])
    if found is None:
        if os.environ.get("CI"):
            pytest.fail(f"{tool} is not on PATH (make test installs it)")
        pytest.skip(f"{tool} is not on PATH")
    return found


def fresh_venv(where: Path) -> Path:
    """A new venv without pip of its own (this run's pip installs into it: faster)."""
    run([sys.executable, "-m", "venv", "--without-pip", where], cwd=where.parent)
    return where / "bin"


def pip(bin_dir: Path, *args: str | Path, cwd: Path) -> str:
    """pip acting on the venv of bin_dir; installs skip byte-compiling (a user's would not)."""
    argv: list[str | Path] = [sys.executable, "-m", "pip", "--python", bin_dir / "python", *args]
    if args[0] == "install":
        argv[6:6] = ["-q", "--no-compile"]
    return run(argv, cwd=cwd).stdout


def one(directory: Path, pattern: str) -> Path:
    found = sorted(directory.glob(pattern))
    assert len(found) == 1, f"{pattern} in {directory}: {found}"
    return found[0]


def serve(command: Path, workdir: Path) -> Process:
    """The installed `recaptcha-sidecar serve --emulator` on a free port and a Unix socket, run
    from a directory outside the repository so that nothing is imported from the source tree."""
    return Process(
        [
            str(command),
            "serve",
            "--emulator",
            "--listen",
            "127.0.0.1:0",
            "--listen",
            f"unix://{workdir}/sidecar.sock",
        ],
        ready="recaptcha-sidecar serving on",
        env=user_env(PYTHONUNBUFFERED="1"),
        cwd=workdir,
    )


def assess_twice(address: str) -> None:
    with grpc.insecure_channel(address) as channel:
        stub = sidecar_pb2_grpc.VerificationServiceStub(channel)
        request = pb.AssessRequest(
            token=mint_token(score=0.9, action="login"), expected_action="login"
        )
        first = stub.Assess(request, timeout=10)
        second = stub.Assess(request, timeout=10)
    assert (first.allowed, first.token_status) == (True, pb.TOKEN_STATUS_VALID)
    assert (second.allowed, second.token_status) == (False, pb.TOKEN_STATUS_DUPLICATE)


def assert_installed_sidecar_works(bin_dir: Path, workdir: Path) -> None:
    """The command exists, imports its stubs from its own environment, and serves."""
    python = bin_dir / "python"
    where = run(
        [
            python,
            "-c",
            "import sidecar, recaptcha.sidecar.v1 as v; print(sidecar.__file__, v.__file__)",
        ],
        cwd=workdir,
    ).stdout.split()
    assert all(p.startswith(str(bin_dir.parent)) for p in where), f"imported from {where}"
    pip(bin_dir, "check", cwd=workdir)
    listed = pip(bin_dir, "list", "--format=json", cwd=workdir)
    names = {p["name"].lower() for p in json.loads(listed)}
    assert "recaptcha-sidecar-proto" not in names, "the sidecar's wheel must carry its stubs"
    process = serve(bin_dir / "recaptcha-sidecar", workdir)
    try:
        for address in process.addresses():  # loopback TCP and the Unix socket
            assess_twice(address)
    finally:
        assert process.terminate() == 0, process.output()


@pytest.fixture(scope="module")
def work() -> Iterator[Path]:
    # Short: a Unix socket path must fit in 108 bytes.
    path = Path(tempfile.mkdtemp(prefix="rs-dist-"))
    yield path
    shutil.rmtree(path, ignore_errors=True)


@pytest.fixture(scope="module")
def dist(work: Path) -> Path:
    out = work / "dist"
    run(["bash", "scripts/dist.sh", out], cwd=ROOT, env={**os.environ})
    return out


@pytest.fixture(scope="module")
def sidecar(dist: Path, work: Path) -> Iterator[str]:
    """The sidecar from its wheel, in a fresh venv: what the client consumers below call."""
    where = work / "sidecar-wheel"
    where.mkdir()
    bin_dir = fresh_venv(where / "venv")
    pip(bin_dir, "install", one(dist, "recaptcha_sidecar-*.whl"), cwd=where)
    assert_installed_sidecar_works(bin_dir, where)
    process = serve(bin_dir / "recaptcha-sidecar", where)
    try:
        yield next(a for a in process.addresses() if not a.startswith("unix:"))
    finally:
        process.terminate()


def test_artifacts_carry_the_one_version(dist: Path) -> None:
    expected = {
        f"recaptcha_sidecar-{VERSION}-py3-none-any.whl",
        f"recaptcha_sidecar-{VERSION}.tar.gz",
        f"recaptcha_sidecar_proto-{VERSION}-py3-none-any.whl",
        f"recaptcha_sidecar_proto-{VERSION}.tar.gz",
        f"recaptcha-sidecar-client-{VERSION}.tgz",
    }
    assert expected <= {p.name for p in dist.iterdir()}
    maven = dist / f"maven/dev/recaptchasidecar/recaptcha-sidecar-client/{VERSION}"
    for suffix in (".jar", "-sources.jar", ".pom"):
        assert (maven / f"recaptcha-sidecar-client-{VERSION}{suffix}").is_file()
    assert (dist / f"goproxy/{GO_MODULE}/@v/v{VERSION}.zip").is_file()


def test_sidecar_wheel_installs_and_serves(sidecar: str) -> None:
    assess_twice(sidecar)


def test_sidecar_sdist_installs_and_serves(dist: Path, work: Path) -> None:
    where = work / "sidecar-sdist"
    where.mkdir()
    bin_dir = fresh_venv(where / "venv")
    pip(bin_dir, "install", one(dist, "recaptcha_sidecar-*.tar.gz"), cwd=where)
    assert_installed_sidecar_works(bin_dir, where)


def test_pip_install_from_a_git_url(work: Path) -> None:
    """`pip install git+file://…`: what pip gets from a clone of the committed HEAD."""
    need("git")
    where = work / "sidecar-git"
    where.mkdir()
    bin_dir = fresh_venv(where / "venv")
    pip(bin_dir, "install", f"git+file://{ROOT}", cwd=where)
    assert_installed_sidecar_works(bin_dir, where)


def test_pipx_install(work: Path) -> None:
    where = work / "sidecar-pipx"
    where.mkdir()
    env = user_env(PIPX_HOME=str(where / "pipx"), PIPX_BIN_DIR=str(where / "bin"))
    pipx = ROOT / ".venv" / "bin" / "pipx"
    run(
        [pipx, "install", "--pip-args=--no-compile", "--python", sys.executable, ROOT],
        cwd=where,
        env=env,
    )
    command = where / "bin" / "recaptcha-sidecar"
    assert command.exists()
    venv_bin = where / "pipx" / "venvs" / "recaptcha-sidecar" / "bin"
    assert command.resolve() == (venv_bin / "recaptcha-sidecar").resolve()
    assert_installed_sidecar_works(venv_bin, where)


@pytest.mark.parametrize(
    "artifact", ["recaptcha_sidecar_proto-*.whl", "recaptcha_sidecar_proto-*.tar.gz"]
)
def test_python_stubs_run_the_example(artifact: str, dist: Path, work: Path, sidecar: str) -> None:
    where = work / ("stubs-" + artifact.rsplit(".", 1)[-1])
    where.mkdir()
    bin_dir = fresh_venv(where / "venv")
    pip(bin_dir, "install", one(dist, artifact), cwd=where)
    shutil.copy(ROOT / "clients/python/examples/assess.py", where / "assess.py")
    out = run_example(lambda token: [bin_dir / "python", "assess.py", sidecar, token], cwd=where)
    assert "allowed=True verdict=VERDICT_PASSED token_status=TOKEN_STATUS_VALID" in out, out


def test_npm_tarball_runs_the_example(dist: Path, work: Path, sidecar: str) -> None:
    npm = need("npm")
    where = work / "node-consumer"
    where.mkdir()
    dev = json.loads((ROOT / "clients/node/package.json").read_text())["devDependencies"]
    (where / "package.json").write_text(json.dumps({"name": "consumer", "private": True}))
    tarball = one(dist, "recaptcha-sidecar-client-*.tgz")
    run(
        [
            npm,
            "install",
            "--no-audit",
            "--no-fund",
            "--loglevel=error",
            tarball,
            f"typescript@{dev['typescript']}",
            f"@types/node@{dev['@types/node']}",
        ],
        cwd=where,
    )
    # The example as an app writes it: the import names the package instead of ../src.
    example = (ROOT / "clients/node/examples/assess.ts").read_text()
    assert 'from "../src";' in example
    (where / "assess.ts").write_text(
        example.replace('from "../src";', 'from "@recaptcha-sidecar/client";')
    )
    (where / "tsconfig.json").write_text(
        json.dumps(
            {
                "compilerOptions": {
                    "target": "ES2022",
                    "module": "node16",
                    "strict": True,
                    "types": ["node"],
                    "outDir": "out",
                },
                "files": ["assess.ts"],
            }
        )
    )
    run([where / "node_modules/.bin/tsc", "-p", "tsconfig.json"], cwd=where)
    node = need("node")
    out = run_example(lambda token: [node, "out/assess.js", sidecar, token], cwd=where)
    assert "allowed=true verdict=VERDICT_PASSED tokenStatus=TOKEN_STATUS_VALID" in out, out


def test_go_module_zip_runs_the_example(dist: Path, work: Path, sidecar: str) -> None:
    go = need("go")
    where = work / "go-consumer"
    where.mkdir()
    shared = run([go, "env", "GOMODCACHE", "GOPROXY"], cwd=where).stdout.split()
    proxy = ",".join([f"file://{dist}/goproxy", f"file://{shared[0]}/cache/download", shared[1]])
    env = user_env(
        GOPROXY=proxy,
        GOMODCACHE=str(where / "modcache"),
        GONOSUMDB=GO_MODULE,
        GOFLAGS="-modcacherw -buildvcs=false",
    )
    go_directive = re.search(r"(?m)^go (\S+)", (ROOT / "clients/go/go.mod").read_text())
    assert go_directive
    (where / "go.mod").write_text(f"module consumer\n\ngo {go_directive.group(1)}\n")
    shutil.copy(ROOT / "clients/go/example/main.go", where / "main.go")
    run([go, "get", f"{GO_MODULE}@v{VERSION}"], cwd=where, env=env)
    run([go, "mod", "tidy"], cwd=where, env=env)
    run([go, "build", "-o", "assess", "."], cwd=where, env=env)
    out = run_example(lambda token: ["./assess", "-target", sidecar, "-token", token], cwd=where)
    assert "allowed=true verdict=VERDICT_PASSED token_status=TOKEN_STATUS_VALID" in out, out


def test_maven_jar_runs_the_example(dist: Path, work: Path, sidecar: str) -> None:
    mvn = need("mvn")
    java = need("java")
    where = work / "java-consumer"
    source = where / "src/main/java/dev/recaptchasidecar/example"
    source.mkdir(parents=True)
    shutil.copy(
        ROOT / "clients/java/src/test/java/dev/recaptchasidecar/example/AssessExample.java", source
    )
    (where / "pom.xml").write_text(CONSUMER_POM.format(version=VERSION))
    # A fresh local repository: our jar from dist/maven, everything else read through the
    # shared one (as a file:// mirror), so nothing is downloaded twice and nothing stale is used.
    shared = Path.home() / ".m2" / "repository"
    (where / "settings.xml").write_text(
        CONSUMER_SETTINGS.format(dist=(dist / "maven").as_uri(), shared=shared.as_uri())
    )
    common = [
        mvn,
        "-B",
        "-q",
        "--no-transfer-progress",
        "-s",
        "settings.xml",
        f"-Dmaven.repo.local={where / 'repository'}",
    ]
    run([*common, "compile", "dependency:build-classpath", "-Dmdep.outputFile=cp.txt"], cwd=where)
    classpath = f"{where / 'target/classes'}:{(where / 'cp.txt').read_text().strip()}"
    assert f"recaptcha-sidecar-client-{VERSION}.jar" in classpath
    example = "dev.recaptchasidecar.example.AssessExample"
    # C1 only: a JVM that starts faster, so the first call's connect fits its deadline sooner.
    env = user_env(JAVA_TOOL_OPTIONS="-XX:TieredStopAtLevel=1")
    argv = [java, "-cp", classpath, example, sidecar]
    out = run_example(lambda token: [*argv, token], cwd=where, env=env)
    assert "allowed=true verdict=VERDICT_PASSED token_status=TOKEN_STATUS_VALID" in out, out


CONSUMER_POM = """<?xml version="1.0" encoding="UTF-8"?>
<project xmlns="http://maven.apache.org/POM/4.0.0">
  <modelVersion>4.0.0</modelVersion>
  <groupId>example</groupId>
  <artifactId>consumer</artifactId>
  <version>1.0.0</version>
  <properties>
    <maven.compiler.release>17</maven.compiler.release>
    <project.build.sourceEncoding>UTF-8</project.build.sourceEncoding>
  </properties>
  <dependencies>
    <dependency>
      <groupId>dev.recaptchasidecar</groupId>
      <artifactId>recaptcha-sidecar-client</artifactId>
      <version>{version}</version>
    </dependency>
  </dependencies>
  <build>
    <plugins>
      <plugin>
        <groupId>org.apache.maven.plugins</groupId>
        <artifactId>maven-compiler-plugin</artifactId>
        <version>3.16.0</version>
      </plugin>
      <plugin>
        <groupId>org.apache.maven.plugins</groupId>
        <artifactId>maven-resources-plugin</artifactId>
        <version>3.5.0</version>
      </plugin>
      <plugin>
        <groupId>org.apache.maven.plugins</groupId>
        <artifactId>maven-dependency-plugin</artifactId>
        <version>3.11.0</version>
      </plugin>
    </plugins>
  </build>
</project>
"""

CONSUMER_SETTINGS = """<settings>
  <profiles>
    <profile>
      <id>consumer</id>
      <repositories>
        <repository><id>dist</id><url>{dist}</url></repository>
        <repository><id>shared</id><url>{shared}</url></repository>
      </repositories>
      <pluginRepositories>
        <pluginRepository><id>shared</id><url>{shared}</url></pluginRepository>
      </pluginRepositories>
    </profile>
  </profiles>
  <activeProfiles><activeProfile>consumer</activeProfile></activeProfiles>
</settings>
"""
