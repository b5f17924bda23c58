"""`serve --workers N`: one supervisor process and N forked workers on the same TCP ports.

Python serves one core per process (the GIL); N workers serve N. The supervisor is forked
from before any gRPC object exists, and never makes one, since gRPC's core does not survive
a fork it did not prepare for: it imports neither grpc nor the server, only the settings. It
holds the ports (`sidecar.server.reservation`), starts the shared emulator when asked,
forks the workers, prints the ready lines once every worker serves, forwards SIGTERM/SIGINT
(stop in order) and SIGHUP (policy reload), and forks a new worker in the place of one that
died (at once after a long life, with a growing pause when it keeps dying). A worker dies
with its supervisor (PR_SET_PDEATHSIG), so a SIGKILLed supervisor leaves no orphans serving.
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import logging
import math
import os
import selectors
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from types import FrameType
from typing import NoReturn

from sidecar.config import Settings
from sidecar.server.reservation import ReservationError, Reservations, reserve
from sidecar.server.workers import WORKER_ATTRIBUTE, WorkerSlot, shared_addresses, worker_settings

log = logging.getLogger(__name__)

EMULATOR_READY = "recaptcha-emulator listening on"  # sidecar.emulator.server.READY_PREFIX
LONG_LIFE = 10.0  # seconds: a worker that lived this long is replaced at once
FIRST_PAUSE = 0.5  # seconds: the pause before replacing a worker that died young
MAX_PAUSE = 30.0  # seconds: the longest pause before replacing a worker that keeps dying
KILL_AFTER = 15.0  # seconds past shutdown_grace: then a worker still running is killed
_PR_SET_PDEATHSIG = 1


class EmulatorStartError(Exception):
    """The shared emulator exited before it served."""


@dataclass
class _Worker:
    index: int
    pid: int
    ready: int  # the read end of the pipe its ready lines come through
    started: float
    lines: list[str] = field(default_factory=list)
    serving: bool = False


class Supervisor:
    """Runs `settings.workers` workers until SIGTERM/SIGINT; `run` is the exit code."""

    def __init__(self, settings: Settings) -> None:
        self._settings = settings
        self._workers: dict[int, _Worker] = {}  # pid → worker
        self._pauses: dict[int, float] = {}  # index → the pause before its next replacement
        self._due: dict[int, float] = {}  # index → when to fork its replacement
        self._held = Reservations()
        self._emulator: subprocess.Popen[str] | None = None
        self._emulator_address: str | None = None
        self._stopping = False
        self._announced = False
        self._stop_deadline = 0.0
        self._exit_codes: list[int] = []
        self._selector = selectors.DefaultSelector()
        self._wake_read, self._wake_write = os.pipe()

    def run(self) -> int:
        try:
            self._held = reserve(shared_addresses(self._settings))
        except ReservationError as error:
            print(f"recaptcha-sidecar: {error}", file=sys.stderr)
            return 2
        previous = self._install_signals()
        try:
            if self._settings.emulator:
                try:
                    self._emulator_address = self._start_emulator()
                except EmulatorStartError as error:
                    print(f"recaptcha-sidecar: {error}", file=sys.stderr)
                    return 2
            for index in range(self._settings.workers):
                self._fork(index)
            if not self._await_ready():
                self._stop_workers()
                self._watch()
                return 2
            self._announce()
            self._watch()
            return 0 if all(code == 0 for code in self._exit_codes) else 1
        finally:
            self._stop_emulator()
            self._held.close()
            self._restore_signals(previous)

    # -- signals ---------------------------------------------------------------------------

    def _install_signals(self) -> dict[int, object]:
        os.set_blocking(self._wake_write, False)
        os.set_blocking(self._wake_read, False)
        signal.set_wakeup_fd(self._wake_write)
        self._selector.register(self._wake_read, selectors.EVENT_READ)
        handlers: dict[int, Callable[[int, FrameType | None], None]] = {
            signal.SIGTERM: self._on_stop,
            signal.SIGINT: self._on_stop,
            signal.SIGHUP: self._on_reload,
            signal.SIGCHLD: lambda signum, frame: None,  # the wake-up byte is what counts
        }
        return {signum: signal.signal(signum, handler) for signum, handler in handlers.items()}

    @staticmethod
    def _restore_signals(previous: dict[int, object]) -> None:
        signal.set_wakeup_fd(-1)
        for signum, handler in previous.items():
            signal.signal(signum, handler)  # type: ignore[arg-type]

    def _on_stop(self, signum: int, frame: FrameType | None) -> None:
        if not self._stopping:
            log.info("stopping workers", extra={"workers": len(self._workers)})
        self._stop_workers()

    def _on_reload(self, signum: int, frame: FrameType | None) -> None:
        self._signal_workers(signal.SIGHUP)

    def _stop_workers(self) -> None:
        if not self._stopping:
            self._stopping = True
            self._stop_deadline = time.monotonic() + self._settings.shutdown_grace + KILL_AFTER
        self._due.clear()
        self._signal_workers(signal.SIGTERM)

    def _signal_workers(self, signum: int) -> None:
        for pid in list(self._workers):
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signum)

    # -- workers ---------------------------------------------------------------------------

    def _fork(self, index: int) -> None:
        slot = WorkerSlot(index, self._emulator_address)
        settings = worker_settings(self._settings, slot, self._held)
        ready_read, ready_write = os.pipe()
        sys.stdout.flush()
        sys.stderr.flush()
        pid = os.fork()
        if pid == 0:  # the worker
            os.close(ready_read)
            self._become_worker()
            _exit_worker(lambda: _serve_worker(settings, slot, ready_write))
        os.close(ready_write)
        os.set_blocking(ready_read, False)
        self._selector.register(ready_read, selectors.EVENT_READ, pid)
        self._workers[pid] = _Worker(index, pid, ready_read, time.monotonic())
        log.debug("worker forked", extra={"worker": index, "pid": pid})

    def _become_worker(self) -> None:
        """In the child: nothing of the supervisor's left but the settings."""
        signal.set_wakeup_fd(-1)
        for signum in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP, signal.SIGCHLD):
            signal.signal(signum, signal.SIG_DFL)
        for worker in self._workers.values():
            with contextlib.suppress(OSError):
                os.close(worker.ready)
        self._selector.close()
        os.close(self._wake_read)
        os.close(self._wake_write)
        self._held.close()
        _die_with(os.getppid())

    def _await_ready(self) -> bool:
        """Until every first worker serves (True), or one exits before it does (False)."""
        while not all(worker.serving for worker in self._workers.values()):
            if self._stopping or self._exit_codes:
                return False
            self._step()
        return not self._stopping and not self._exit_codes

    def _announce(self) -> None:
        first = min(self._workers.values(), key=lambda worker: worker.index)
        pids = sorted(worker.pid for worker in self._workers.values())
        log.info("workers serving", extra={"workers": len(pids), "pids": pids})
        for line in first.lines:
            print(line, flush=True)
        self._announced = True

    def _watch(self) -> None:
        """Until every worker has exited after a stop; replacing those that die before."""
        while self._workers or (self._due and not self._stopping):
            self._step()
            now = time.monotonic()
            if self._stopping and self._workers and now > self._stop_deadline:
                log.error("workers still running past the grace: killed")
                for pid in list(self._workers):
                    with contextlib.suppress(ProcessLookupError):
                        os.kill(pid, signal.SIGKILL)
                self._stop_deadline = math.inf  # killed once
            for index, when in list(self._due.items()):
                if when <= now and not self._stopping:
                    del self._due[index]
                    self._fork(index)
            emulator_gone = self._emulator is not None and self._emulator.poll() is not None
            if emulator_gone and not self._stopping:
                log.error("the shared emulator exited: stopping the workers")
                self._exit_codes.append(1)
                self._stop_workers()

    def _step(self) -> None:
        """Wait for a signal, a ready line or a due replacement (at most a second), then
        read what came and reap the workers that exited."""
        timeout = 1.0
        if self._due:
            timeout = max(0.0, min(timeout, min(self._due.values()) - time.monotonic()))
        for key, _ in self._selector.select(timeout):
            if key.fd == self._wake_read:
                with contextlib.suppress(BlockingIOError):
                    os.read(self._wake_read, 512)
            else:
                self._read_ready(key.fd, key.data)
        self._reap()

    def _read_ready(self, fd: int, pid: int) -> None:
        worker = self._workers[pid]  # a reaped worker's pipe is unregistered with it
        try:
            chunk = os.read(fd, 65536)
        except BlockingIOError:
            return
        if chunk:
            worker.lines += chunk.decode(errors="replace").splitlines()
            return
        self._selector.unregister(fd)  # end of file: the worker said all it will say
        os.close(fd)
        worker.ready = -1
        worker.serving = bool(worker.lines)
        if worker.serving and self._announced:
            log.info("worker serving", extra={"worker": worker.index, "pid": pid})

    def _reap(self) -> None:
        for pid, worker in list(self._workers.items()):
            done, status = os.waitpid(pid, os.WNOHANG)
            if done == 0:
                continue
            del self._workers[pid]
            if worker.ready >= 0:
                self._selector.unregister(worker.ready)
                os.close(worker.ready)
            code = os.waitstatus_to_exitcode(status)
            if self._stopping or not self._announced:
                self._exit_codes.append(code)  # a stop, or a first start that failed
                continue
            lived = time.monotonic() - worker.started
            last = self._pauses.get(worker.index, 0.0)
            pause = 0.0 if lived >= LONG_LIFE else min(MAX_PAUSE, max(FIRST_PAUSE, 2 * last))
            self._pauses[worker.index] = pause
            self._due[worker.index] = time.monotonic() + pause
            log.warning(
                "worker exited: replacing it",
                extra={"worker": worker.index, "pid": pid, "exit_code": code, "pause": pause},
            )

    # -- the shared emulator ---------------------------------------------------------------

    def _start_emulator(self) -> str:
        """`recaptcha-sidecar emulator` as the supervisor's child, in its own process group
        (a terminal's ^C stops the workers first, and it after them): its address."""
        process = subprocess.Popen(
            [sys.executable, "-m", "sidecar", "emulator", "--listen", "127.0.0.1:0"],
            stdout=subprocess.PIPE,
            text=True,
            start_new_session=True,
            preexec_fn=lambda: _die_with(os.getppid()),
        )
        self._emulator = process
        assert process.stdout is not None
        for line in process.stdout:
            if line.startswith(EMULATOR_READY):
                return line.split(" on ", 1)[1].split()[0]
        raise EmulatorStartError(f"the shared emulator exited ({process.wait()}) before serving")

    def _stop_emulator(self) -> None:
        if self._emulator is None or self._emulator.poll() is not None:
            return
        self._emulator.terminate()
        try:
            self._emulator.wait(10)
        except subprocess.TimeoutExpired:
            self._emulator.kill()
            self._emulator.wait()


def supervise(settings: Settings) -> int:
    """`serve` with `workers` > 1: the exit code."""
    return Supervisor(settings).run()


def _die_with(parent: int) -> None:
    """SIGTERM this process when `parent` dies (Linux); exit at once if it already has."""
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL(None, use_errno=True).prctl(_PR_SET_PDEATHSIG, signal.SIGTERM)
    if os.getppid() != parent:
        os._exit(1)


def _exit_worker(body: Callable[[], int]) -> NoReturn:
    """Run a worker's body and leave the process with its code, never returning into the
    supervisor's frames (nor running its cleanup)."""
    code = 1
    try:
        code = body()
    except BaseException:
        log.exception("worker failed")
    finally:
        with contextlib.suppress(Exception):
            logging.shutdown()
            sys.stdout.flush()
            sys.stderr.flush()
        os._exit(code)


def _serve_worker(settings: Settings, slot: WorkerSlot, ready: int) -> int:
    """A worker: the sidecar as one process would run it, its ready lines sent to the
    supervisor instead of printed."""
    _tag_telemetry(slot)
    from sidecar.server.app import StartupError, run  # grpc: only ever imported here

    def announce(lines: Sequence[str]) -> None:
        with contextlib.suppress(OSError):
            os.write(ready, "".join(line + "\n" for line in lines).encode())
            os.close(ready)

    try:
        return asyncio.run(run(settings, slot=slot, announce=announce))
    except StartupError as error:
        print(f"recaptcha-sidecar: {error}", file=sys.stderr, flush=True)
        return 2


def _tag_telemetry(slot: WorkerSlot) -> None:
    """Worker k's telemetry is told apart from its siblings' (the OTel resource), and the
    Prometheus port an OTEL_* variable names is shifted by k as metrics_listen's is."""
    attributes = os.environ.get("OTEL_RESOURCE_ATTRIBUTES", "")
    tag = f"{WORKER_ATTRIBUTE}={slot.index}"
    os.environ["OTEL_RESOURCE_ATTRIBUTES"] = f"{attributes},{tag}" if attributes else tag
    port = os.environ.get("OTEL_EXPORTER_PROMETHEUS_PORT")
    if port and port.isdigit() and int(port) != 0:
        os.environ["OTEL_EXPORTER_PROMETHEUS_PORT"] = str(int(port) + slot.index)
