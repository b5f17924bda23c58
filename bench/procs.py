"""Child processes of the benchmark and what /proc says about them.

The servers under test run as real processes so that the load generator, the hop and the
upstream never share an interpreter; their cost is read from /proc (CPU ticks, VmHWM) rather
than estimated.
"""

from __future__ import annotations

import os
import signal
import subprocess
import time
from collections.abc import Sequence
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
_TICKS = os.sysconf("SC_CLK_TCK")


class StartError(RuntimeError):
    """A child exited or stayed silent before printing its ready line."""

    def __init__(self, message: str, output: str) -> None:
        super().__init__(message)
        self.output = output


class Child:
    """A process whose output goes to a log file, ready once a line of it contains `ready`;
    stopped with SIGTERM (then SIGKILL) by `stop`. `env` is the whole environment."""

    def __init__(
        self,
        args: Sequence[str],
        *,
        ready: str,
        log: Path,
        env: dict[str, str] | None = None,
        timeout: float = 30.0,
    ) -> None:
        self.args = list(args)
        self.log = log
        self.ready_line = ""
        with log.open("wb") as out:
            self.popen = subprocess.Popen(
                self.args,
                cwd=ROOT,
                env={**(os.environ if env is None else env), "PYTHONUNBUFFERED": "1"},
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
            )
        give_up = time.monotonic() + timeout
        while time.monotonic() < give_up:
            for line in self.output().splitlines():
                if ready in line:
                    self.ready_line = line.strip()
                    return
            if self.popen.poll() is not None:
                break
            time.sleep(0.02)
        self.stop(kill_after=2.0)
        raise StartError(f"{' '.join(self.args[:4])} did not start", self.last_words())

    @property
    def pid(self) -> int:
        return self.popen.pid

    def output(self) -> str:
        try:
            return self.log.read_text(errors="replace")
        except FileNotFoundError:
            return ""

    def last_words(self) -> str:
        """The last meaningful output line, to explain a refusal to start."""
        lines = [line.strip() for line in self.output().splitlines() if line.strip()]
        return lines[-1] if lines else f"exit code {self.popen.poll()}"

    def addresses(self) -> list[str]:
        return self.ready_line.split(" on ", 1)[1].split()

    def pids(self) -> list[int]:
        """This process and its descendants (worker processes count as the server)."""
        return tree(self.pid)

    def stop(self, kill_after: float = 10.0) -> None:
        if self.popen.poll() is None:
            self.popen.send_signal(signal.SIGTERM)
            try:
                self.popen.wait(kill_after)
            except subprocess.TimeoutExpired:
                self.popen.kill()
                self.popen.wait(5)


def tree(pid: int) -> list[int]:
    """`pid` and every live descendant."""
    children: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            stat = Path(f"/proc/{entry}/stat").read_text()
        except OSError:
            continue
        ppid = int(stat.rsplit(")", 1)[1].split()[1])
        children.setdefault(ppid, []).append(int(entry))
    found, todo = [], [pid]
    while todo:
        current = todo.pop()
        found.append(current)
        todo.extend(children.get(current, ()))
    return found


def cpu_seconds(pids: Sequence[int]) -> float:
    """User + system CPU seconds used so far by these processes (dead ones count as 0)."""
    total = 0
    for pid in pids:
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        total += int(fields[11]) + int(fields[12])  # utime, stime
    return total / _TICKS


def _status_kib(pid: int, key: str) -> int:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith(key + ":"):
                return int(line.split()[1])
    except OSError:
        pass
    return 0


def peak_rss_mib(pids: Sequence[int]) -> float:
    """Sum of the processes' peak resident set (VmHWM), MiB."""
    return sum(_status_kib(pid, "VmHWM") for pid in pids) / 1024


def anon_mib(pids: Sequence[int]) -> float:
    """Sum of the processes' private anonymous memory (RssAnon), MiB: RSS without the pages
    of mapped files (shared libraries), which the kernel may count more or less of depending
    on how the files sit in its page cache."""
    return sum(_status_kib(pid, "RssAnon") for pid in pids) / 1024


def rss_mib(pids: Sequence[int]) -> float:
    """Sum of the processes' current resident set (VmRSS), MiB."""
    return sum(_status_kib(pid, "VmRSS") for pid in pids) / 1024


def settle(seconds: float) -> None:
    """Let background work (exporters, flushers, GC) finish before the next measurement."""
    time.sleep(seconds)
