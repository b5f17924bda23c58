"""A real `redis-server` for tests: loopback only, a free port, a private directory, no
persistence, and the faults a store must survive (stop, SIGKILL, SIGSTOP, restart on the
same port)."""

from __future__ import annotations

import os
import shutil
import signal
import socket
import ssl
import subprocess
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from tests.support.network import free_port


class RedisUnavailable(RuntimeError):
    """redis-server is not installed or would not start."""


@dataclass(frozen=True)
class TlsFiles:
    """A CA and a server certificate for 127.0.0.1 (see `make_tls_files`)."""

    ca: Path
    cert: Path
    key: Path


class RedisServer:
    """One redis-server child process. `url` is what a sidecar is given; the port stays the
    same across `restart`, so clients reconnect to the same address."""

    def __init__(
        self,
        directory: Path,
        *,
        password: str | None = None,
        tls: TlsFiles | None = None,
        startup_timeout: float = 10.0,
        extra_args: Sequence[str] = (),
        config_file: Path | None = None,
    ) -> None:
        binary = shutil.which("redis-server")
        if binary is None:
            raise RedisUnavailable("redis-server is not installed (make test installs it)")
        self.binary = binary
        self.directory = directory
        self.directory.mkdir(parents=True, exist_ok=True)
        self.password = password
        self.tls = tls
        self.startup_timeout = startup_timeout
        self.extra_args = list(extra_args)  # e.g. cluster or replication options
        self.config_file = config_file  # read first (a sentinel needs a writable one)
        self.port = 0
        self.popen: subprocess.Popen[bytes] | None = None
        self.frozen = False

    # ---- addresses --------------------------------------------------------------------

    @property
    def url(self) -> str:
        """The store URL without the password (give it through `replay_redis_password`)."""
        if self.tls is not None:
            return f"rediss://127.0.0.1:{self.port}/0?ssl_ca_certs={self.tls.ca}"
        return f"redis://127.0.0.1:{self.port}/0"

    @property
    def running(self) -> bool:
        return self.popen is not None and self.popen.poll() is None

    # ---- lifecycle --------------------------------------------------------------------

    def _args(self) -> list[str]:
        args = [
            self.binary,
            *([str(self.config_file)] if self.config_file is not None else []),
            "--bind",
            "127.0.0.1",
            "--save",
            "",
            "--appendonly",
            "no",
            "--dir",
            str(self.directory),
            "--logfile",
            str(self.directory / "redis.log"),
            "--daemonize",
            "no",
        ]
        if self.tls is None:
            args += ["--port", str(self.port)]
        else:
            args += [
                "--port",
                "0",
                "--tls-port",
                str(self.port),
                "--tls-cert-file",
                str(self.tls.cert),
                "--tls-key-file",
                str(self.tls.key),
                "--tls-ca-cert-file",
                str(self.tls.ca),
                "--tls-auth-clients",
                "no",
            ]
        if self.password is not None:
            args += ["--requirepass", self.password, "--masterauth", self.password]
        return [*args, *self.extra_args]

    def start(self) -> RedisServer:
        """Start on a free port (the first time) or on the same port again."""
        if self.running:
            return self
        attempts = 1 if self.port else 5
        for _ in range(attempts):
            if not self.port or attempts > 1:
                self.port = free_port()
            self.popen = subprocess.Popen(
                self._args(), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
            )
            self.frozen = False
            if self._wait_ready():
                return self
            self.kill()
        raise RedisUnavailable(f"redis-server did not start; log:\n{self.log()}")

    def _wait_ready(self) -> bool:
        deadline = time.monotonic() + self.startup_timeout
        while time.monotonic() < deadline:
            if not self.running:
                return False
            if self.answers():
                return True
            time.sleep(0.02)
        return False

    def answers(self) -> bool:
        """True when the server answers PING (or asks for the password) right now."""
        try:
            with socket.create_connection(("127.0.0.1", self.port), timeout=0.5) as raw:
                conn: socket.socket = raw
                if self.tls is not None:
                    context = ssl.create_default_context(cafile=str(self.tls.ca))
                    conn = context.wrap_socket(raw, server_hostname="127.0.0.1")
                conn.sendall(b"PING\r\n")
                reply = conn.recv(64)
        except OSError:
            return False
        return reply.startswith((b"+PONG", b"-NOAUTH"))

    def stop(self) -> None:
        """SIGTERM, as an orderly shutdown; nothing is saved (`--save ''`)."""
        if self.popen is None:
            return
        self.thaw()
        if self.popen.poll() is None:
            self.popen.terminate()
            try:
                self.popen.wait(10)
            except subprocess.TimeoutExpired:
                self.popen.kill()
                self.popen.wait(10)

    def kill(self) -> None:
        """SIGKILL: the server vanishes with every key."""
        if self.popen is None:
            return
        if self.popen.poll() is None:
            self.popen.kill()
        self.popen.wait(10)
        self.frozen = False

    def restart(self) -> RedisServer:
        """Stop (if running) and start again on the same port, empty."""
        self.stop()
        return self.start()

    def freeze(self) -> None:
        """SIGSTOP: connections are accepted by the kernel but nothing answers (a hung store)."""
        if self.running and not self.frozen:
            assert self.popen is not None
            os.kill(self.popen.pid, signal.SIGSTOP)
            self.frozen = True

    def thaw(self) -> None:
        """SIGCONT after `freeze`."""
        if self.frozen and self.popen is not None and self.popen.poll() is None:
            os.kill(self.popen.pid, signal.SIGCONT)
        self.frozen = False

    def close(self) -> None:
        self.thaw()
        self.kill()

    def log(self) -> str:
        path = self.directory / "redis.log"
        return path.read_text(errors="replace")[-4000:] if path.exists() else ""

    def cli(self, *args: str) -> str:
        """`redis-cli` against this server (for inspecting keys in tests)."""
        command = ["redis-cli", "-h", "127.0.0.1", "-p", str(self.port), "--no-auth-warning"]
        if self.password is not None:
            command += ["-a", self.password]
        if self.tls is not None:
            command += ["--tls", "--cacert", str(self.tls.ca)]
        done = subprocess.run(
            [*command, *args], capture_output=True, text=True, timeout=10, check=True
        )
        return done.stdout


def make_tls_files(directory: Path) -> TlsFiles:
    """A throwaway CA and a server certificate for 127.0.0.1, made with the openssl CLI."""
    directory.mkdir(parents=True, exist_ok=True)
    ca, ca_key = directory / "ca.pem", directory / "ca.key"
    cert, key, csr = directory / "server.pem", directory / "server.key", directory / "server.csr"
    ext = directory / "san.ext"
    ext.write_text("subjectAltName=IP:127.0.0.1\n")

    def openssl(*args: str) -> None:
        subprocess.run(["openssl", *args], capture_output=True, timeout=60, check=True)

    openssl(
        "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2",
        "-subj", "/CN=test-ca", "-keyout", str(ca_key), "-out", str(ca),
    )  # fmt: skip
    openssl(
        "req", "-newkey", "rsa:2048", "-nodes", "-subj", "/CN=127.0.0.1",
        "-keyout", str(key), "-out", str(csr),
    )  # fmt: skip
    openssl(
        "x509", "-req", "-in", str(csr), "-CA", str(ca), "-CAkey", str(ca_key),
        "-CAcreateserial", "-days", "2", "-extfile", str(ext), "-out", str(cert),
    )  # fmt: skip
    return TlsFiles(ca=ca, cert=cert, key=key)
