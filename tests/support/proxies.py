"""Real proxies for the interop tests: nginx and Caddy started on free loopback ports with the
configurations shipped in deploy/examples/ (rendered: only addresses are substituted), and a
tiny backend that echoes what reached it.

The binaries come from Debian, installed by `make test` (scripts/test.sh); a missing one is an
error naming that, never a skip.
"""

from __future__ import annotations

import http.server
import json
import os
import shutil
import socket
import subprocess
import threading
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

from tests.support.network import free_port

ROOT = Path(__file__).resolve().parents[2]
EXAMPLES = ROOT / "deploy" / "examples"


class ToolMissing(RuntimeError):
    """A third-party program the interop tests need is not installed."""


def binary(name: str) -> str:
    """The path of a program scripts/test.sh installs (sbin included: nginx lives there)."""
    path = shutil.which(name, path=f"{os.environ.get('PATH', '')}:/usr/sbin:/sbin")
    if path is None:
        raise ToolMissing(f"{name} is not installed (make test installs it with apt-get)")
    return path


def render(example: str, replacements: Mapping[str, str]) -> str:
    """The text of deploy/examples/EXAMPLE with each key replaced. Every key must occur, so
    the example cannot drift away from what the tests run."""
    text = (EXAMPLES / example).read_text()
    for old, new in replacements.items():
        if old not in text:
            raise AssertionError(f"{example} no longer contains {old!r}")
        text = text.replace(old, new)
    return text


def wait_for_port(port: int, popen: subprocess.Popen[bytes], timeout: float = 15.0) -> None:
    """Until something accepts on 127.0.0.1:PORT; raises with the output if the process died."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if popen.poll() is not None:
            raise RuntimeError(f"{popen.args} exited {popen.returncode}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return
        except OSError:
            time.sleep(0.05)
    raise RuntimeError(f"{popen.args} not listening on {port} within {timeout}s")


@dataclass
class ProxyProcess:
    """A proxy listening on `port`; `log` is where its output went."""

    port: int
    popen: subprocess.Popen[bytes]
    log: Path

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def output(self) -> str:
        return self.log.read_text(errors="replace")


@contextmanager
def _running(args: list[str], port: int, log: Path, env: dict[str, str]) -> Iterator[ProxyProcess]:
    with log.open("wb") as sink:
        popen = subprocess.Popen(
            args, stdout=sink, stderr=subprocess.STDOUT, env=env, cwd=log.parent
        )
    try:
        try:
            wait_for_port(port, popen)
        except RuntimeError as error:
            raise RuntimeError(f"{error}\n{log.read_text(errors='replace')}") from None
        yield ProxyProcess(port, popen, log)
    finally:
        if popen.poll() is None:
            popen.terminate()
            try:
                popen.wait(10)
            except subprocess.TimeoutExpired:
                popen.kill()
                popen.wait(10)


NGINX_MAIN = """\
daemon off;
master_process off;
worker_processes 1;
pid {dir}/nginx.pid;
error_log stderr warn;
events {{ worker_connections 64; }}
http {{
    access_log off;
    client_body_temp_path {dir}/client_body;
    proxy_temp_path {dir}/proxy;
    fastcgi_temp_path {dir}/fastcgi;
    uwsgi_temp_path {dir}/uwsgi;
    scgi_temp_path {dir}/scgi;
    include {dir}/site.conf;
}}
"""


@contextmanager
def nginx(directory: Path, site: str, port: int) -> Iterator[ProxyProcess]:
    """nginx in the foreground, one worker, everything under `directory`, serving `site` (a
    rendered `server {}` block from deploy/examples) on `port`."""
    program = binary("nginx")
    directory.mkdir(parents=True, exist_ok=True)
    (directory / "site.conf").write_text(site)
    (directory / "nginx.conf").write_text(NGINX_MAIN.format(dir=directory))
    args = [program, "-p", str(directory), "-c", str(directory / "nginx.conf"), "-e", "stderr"]
    with _running(args, port, directory / "nginx.log", dict(os.environ)) as proxy:
        yield proxy


@contextmanager
def caddy(directory: Path, caddyfile: str, port: int) -> Iterator[ProxyProcess]:
    """`caddy run` with a rendered Caddyfile from deploy/examples; its data and autosaved
    config go under `directory`, not the home directory."""
    program = binary("caddy")
    directory.mkdir(parents=True, exist_ok=True)
    (directory / "Caddyfile").write_text(caddyfile)
    env = {
        **os.environ,
        "HOME": str(directory),
        "XDG_DATA_HOME": str(directory / "data"),
        "XDG_CONFIG_HOME": str(directory / "config"),
    }
    args = [program, "run", "--config", str(directory / "Caddyfile"), "--adapter", "caddyfile"]
    with _running(args, port, directory / "caddy.log", env) as proxy:
        yield proxy


@dataclass
class Backend:
    """The app behind the proxy: answers 200 with a JSON echo of the request it got."""

    port: int
    requests: list[dict[str, object]] = field(default_factory=list)

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"


@contextmanager
def backend() -> Iterator[Backend]:
    """A threaded HTTP server on a free loopback port: what a proxy let through is recorded in
    `requests` and echoed back (path and headers), so a test sees what the app would see."""
    state = Backend(free_port())

    class Echo(http.server.BaseHTTPRequestHandler):
        def _answer(self) -> None:
            seen = {
                "method": self.command,
                "path": self.path,
                "headers": list(self.headers.items()),
            }
            state.requests.append(seen)
            body = json.dumps(seen).encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        do_GET = do_POST = do_PUT = do_DELETE = _answer

        def log_message(self, format: str, *args: object) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", state.port), Echo)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield state
    finally:
        server.shutdown()
        server.server_close()
        thread.join(5)
