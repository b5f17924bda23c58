"""Real Redis topologies for tests: a Cluster (3 primaries + 3 replicas, made by
`redis-cli --cluster create`) and a Sentinel group (a primary, 2 replicas, 3 sentinels), on
loopback, free ports, private directories, no persistence; plus the faults they must survive
(SIGKILL a primary and wait for the promotion, make a replica lag).

Each topology is a context manager: every process it started is killed on exit, whatever
happened inside (a failed assertion, a timeout, a start-up that never completed). Start-up is
bounded: `RedisUnavailable` after `startup_timeout` seconds.
"""

from __future__ import annotations

import atexit
import contextlib
import socket
import subprocess
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType

from tests.support.network import free_port
from tests.support.redis_server import RedisServer, RedisUnavailable, TlsFiles

# Failure detection in about a second: a node is marked failed after `cluster-node-timeout`
# (and a primary down after `down-after-milliseconds`); promotions then take a second or two.
NODE_TIMEOUT_MS = 1000

_live: set[RedisServer] = set()
_live_lock = threading.Lock()


@atexit.register
def _kill_leftovers() -> None:
    """A backstop for an interpreter that stops without unwinding (KeyboardInterrupt in a
    fixture, an internal pytest error): no redis-server outlives the test run."""
    with _live_lock:
        servers = list(_live)
    for server in servers:
        with contextlib.suppress(Exception):
            server.close()


def _track(server: RedisServer) -> RedisServer:
    with _live_lock:
        _live.add(server)
    return server


def _untrack(server: RedisServer) -> None:
    with _live_lock:
        _live.discard(server)


def _start(server: RedisServer, attempts: int = 5) -> None:
    """Start on fresh free ports: a port found free can be taken by another process before
    the server binds it (the machine is shared), so a failed start tries new ones."""
    _track(server)
    for attempt in range(attempts):
        server.port = free_port()
        server.extra_args = [
            str(free_port()) if previous == "--cluster-port" else arg
            for previous, arg in zip(["", *server.extra_args], server.extra_args, strict=False)
        ]
        try:
            server.start()
            return
        except RedisUnavailable:
            if attempt == attempts - 1:
                raise


def _wait(predicate: Callable[[], bool], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if predicate():
                return
        except (subprocess.SubprocessError, OSError):
            pass  # not answering yet
        time.sleep(0.05)
    raise RedisUnavailable(f"{what}: not reached in {timeout:.0f}s")


def info(server: RedisServer, section: str = "replication") -> dict[str, str]:
    """`INFO <section>` as a dict."""
    out: dict[str, str] = {}
    for line in server.cli("INFO", section).splitlines():
        if ":" in line and not line.startswith("#"):
            name, _, value = line.partition(":")
            out[name] = value.strip()
    return out


class ReplicaLag:
    """A replica that does not answer for a while (`DEBUG SLEEP` on it): the primary's writes
    reach it only afterwards, so nothing is acknowledged to `WAIT` in the meantime. The
    replication stream, heartbeats and clients all wait, as with a replica stuck on a slow disk
    or a congested link. `stop()` ends the lag early (by waiting for it).

    The lag counts as started once the primary proves it: a write there (`probe_key`, a key
    it serves) is not acknowledged by all of its `replicas` replicas within 100 ms. A busy
    machine can slow a PING, never fake a missing acknowledgement."""

    def __init__(
        self,
        replica: RedisServer,
        seconds: float,
        *,
        primary: RedisServer,
        replicas: int,
        probe_key: str = "recaptcha-test:lag-probe",
    ) -> None:
        self.replica = replica
        self.seconds = seconds
        self._sleeper = subprocess.Popen(
            [*_cli(replica), "DEBUG", "SLEEP", f"{seconds:.3f}"],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )

        def lagging() -> bool:
            done = subprocess.run(
                _cli(primary),
                input=f"SET {probe_key} x\nWAIT {replicas} 100\n",
                capture_output=True,
                text=True,
                timeout=10,
            )
            acked = done.stdout.split()[-1] if done.stdout.split() else ""
            return acked.isdigit() and int(acked) < replicas

        try:
            _wait(lagging, min(5.0, seconds), "replica lag")
        except BaseException:
            self.stop()
            raise

    def stop(self) -> None:
        self._sleeper.wait(self.seconds + 10)

    def __enter__(self) -> ReplicaLag:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


def _cli(server: RedisServer) -> list[str]:
    command = ["redis-cli", "-h", "127.0.0.1", "-p", str(server.port), "--no-auth-warning"]
    if server.password is not None:
        command += ["-a", server.password]
    if server.tls is not None:
        command += ["--tls", "--cacert", str(server.tls.ca)]
    return command


# ---- Cluster -------------------------------------------------------------------------------


@dataclass
class ClusterNode:
    """One redis-server of the cluster and what the cluster says it is."""

    server: RedisServer
    node_id: str = ""
    primary_id: str = ""  # for a replica: the id of its primary

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.server.port}"


class RedisCluster:
    """Six cluster-enabled redis-servers joined by `redis-cli --cluster create --cluster-replicas
    1`. `url` is what a sidecar is given (`redis+cluster://` with every node as a seed)."""

    def __init__(
        self,
        directory: Path,
        *,
        primaries: int = 3,
        replicas_per_primary: int = 1,
        password: str | None = None,
        tls: TlsFiles | None = None,
        startup_timeout: float = 60.0,
    ) -> None:
        self.directory = directory
        self.password = password
        self.tls = tls
        self.startup_timeout = startup_timeout
        self.replicas_per_primary = replicas_per_primary
        self.nodes: list[ClusterNode] = []
        for index in range(primaries * (1 + replicas_per_primary)):
            tls_args = ["--tls-cluster", "yes", "--tls-replication", "yes"] if tls else []
            server = RedisServer(
                directory / f"node-{index}",
                password=password,
                tls=tls,
                extra_args=[
                    *tls_args,
                    "--cluster-enabled", "yes",
                    "--cluster-config-file", "nodes.conf",
                    "--cluster-node-timeout", str(NODE_TIMEOUT_MS),
                    # Any replica may be promoted, however long it was cut off (tests kill
                    # primaries on purpose; the default refuses a long-disconnected replica).
                    "--cluster-replica-validity-factor", "0",
                    "--cluster-port", "0",  # chosen at start
                    "--enable-debug-command", "local",
                ],
            )  # fmt: skip
            self.nodes.append(ClusterNode(server))

    # ---- addresses -----------------------------------------------------------------------

    @property
    def seeds(self) -> str:
        return ",".join(node.address for node in self.nodes)

    @property
    def url(self) -> str:
        if self.tls is not None:
            return f"rediss+cluster://{self.seeds}?ssl_ca_certs={self.tls.ca}"
        return f"redis+cluster://{self.seeds}"

    # ---- lifecycle -----------------------------------------------------------------------

    def start(self) -> RedisCluster:
        give_up = time.monotonic() + self.startup_timeout
        for node in self.nodes:
            _start(node.server)
        command = ["redis-cli", "--cluster", "create", *(n.address for n in self.nodes)]
        command += ["--cluster-replicas", str(self.replicas_per_primary), "--cluster-yes"]
        if self.password is not None:
            command += ["-a", self.password, "--no-auth-warning"]
        if self.tls is not None:
            command += ["--tls", "--cacert", str(self.tls.ca)]
        created = subprocess.run(
            command, capture_output=True, text=True, timeout=max(1.0, give_up - time.monotonic())
        )
        if created.returncode != 0 or "[OK] All 16384 slots covered" not in created.stdout:
            raise RedisUnavailable(f"redis-cli --cluster create failed:\n{created.stdout[-3000:]}")
        self.wait_healthy(max(1.0, give_up - time.monotonic()))
        return self

    def wait_healthy(self, timeout: float = 30.0) -> None:
        """Every running node says `cluster_state:ok`, agrees on the slots, and every replica's
        link to its primary is up."""

        def healthy() -> bool:
            running = [n for n in self.nodes if n.server.running]
            for node in running:
                if info(node.server, "cluster").get("cluster_enabled") != "1":
                    return False
                if "cluster_state:ok" not in node.server.cli("CLUSTER", "INFO"):
                    return False
            self.refresh()
            for node in running:
                replication = info(node.server)
                role, link = replication.get("role"), replication.get("master_link_status")
                if role == "slave" and link != "up":
                    return False
            return all(p.server.running for p in self.primaries())

        _wait(healthy, timeout, "cluster healthy")

    def refresh(self) -> None:
        """Read roles from `CLUSTER NODES` (of any running node)."""
        for node in self.nodes:
            if node.server.running:
                text = node.server.cli("CLUSTER", "NODES")
                break
        else:
            return
        by_port = {n.server.port: n for n in self.nodes}
        for line in text.splitlines():
            fields = line.split()
            if len(fields) < 8:
                continue
            port = int(fields[1].split("@")[0].rsplit(":", 1)[1] or 0)
            node = by_port.get(port)
            if node is None:
                continue
            node.node_id = fields[0]
            node.primary_id = "" if "master" in fields[2].split(",") else fields[3]

    def close(self) -> None:
        for node in self.nodes:
            node.server.close()
            _untrack(node.server)

    def __enter__(self) -> RedisCluster:
        try:
            return self.start()
        except BaseException:
            self.close()
            raise

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    # ---- topology ------------------------------------------------------------------------

    def primaries(self) -> list[ClusterNode]:
        return [n for n in self.nodes if n.node_id and not n.primary_id]

    def replicas_of(self, primary: ClusterNode) -> list[ClusterNode]:
        return [n for n in self.nodes if n.primary_id == primary.node_id]

    def owner_of(self, slot: int) -> ClusterNode:
        """The primary serving `slot` now (as the first running node sees it)."""
        self.refresh()
        for node in self.nodes:
            if node.server.running:
                return self.node_by_port(_owner_port(node.server, slot))
        raise LookupError("no node running")

    def node_by_port(self, port: int) -> ClusterNode:
        return next(n for n in self.nodes if n.server.port == port)

    # ---- resharding ----------------------------------------------------------------------

    def move_empty_slot(self, slot: int, target: ClusterNode) -> None:
        """Hand an empty slot to another primary as `redis-cli --cluster reshard` does (mark it
        importing and migrating, then assign it: target first, so that it takes a new config
        epoch and wins over any stale view, then the old owner, then the other primaries),
        and wait until every node agrees. Clients that cached the old owner get MOVED."""
        source = self.owner_of(slot)
        if source is target:
            return
        if source.server.cli("CLUSTER", "COUNTKEYSINSLOT", str(slot)).strip() != "0":
            raise ValueError(f"slot {slot} is not empty")
        self.start_migration(slot, target)
        others = [n for n in self.primaries() if n not in (target, source)]
        for node in [target, source, *others]:
            if node.server.running:
                node.server.cli("CLUSTER", "SETSLOT", str(slot), "NODE", target.node_id)
        _wait(
            lambda: all(
                _owner_port(n.server, slot) == target.server.port
                for n in self.nodes
                if n.server.running
            ),
            20,
            f"slot {slot} moved",
        )

    def start_migration(self, slot: int, target: ClusterNode) -> ClusterNode:
        """Mark `slot` as migrating from its owner to `target` (importing): the owner answers
        ASK for keys it does not hold. The owner."""
        source = self.owner_of(slot)
        target.server.cli("CLUSTER", "SETSLOT", str(slot), "IMPORTING", source.node_id)
        source.server.cli("CLUSTER", "SETSLOT", str(slot), "MIGRATING", target.node_id)
        return source

    # ---- faults --------------------------------------------------------------------------

    def kill(self, node: ClusterNode) -> None:
        """SIGKILL one node: it vanishes mid-write, with whatever it had not replicated."""
        node.server.kill()

    def wait_promoted(self, dead: ClusterNode, timeout: float = 30.0) -> ClusterNode:
        """After `kill(dead)` of a primary: wait until one of its replicas serves its slots and
        the cluster is `ok` again; that replica (now a primary)."""
        old_replicas = {n.server.port for n in self.replicas_of(dead)}
        promoted: list[ClusterNode] = []

        def done() -> bool:
            for node in self.nodes:
                promotable = node.server.port in old_replicas and node.server.running
                if promotable and info(node.server).get("role") == "master":
                    states = [
                        "cluster_state:ok" in n.server.cli("CLUSTER", "INFO")
                        for n in self.nodes
                        if n.server.running
                    ]
                    if all(states):
                        promoted[:] = [node]
                        return True
            return False

        _wait(done, timeout, "replica promoted")
        self.refresh()
        return promoted[0]

    def restart(self, node: ClusterNode, timeout: float = 30.0) -> None:
        """Start a killed node again on its port with its nodes.conf: it rejoins (a killed
        primary comes back as a replica of the one promoted in its place)."""
        node.server.start()
        self.wait_healthy(timeout)

    def backlog(self, primary: ClusterNode, megabytes: int) -> None:
        """Write one value of `megabytes` MB on `primary`: while its replica lags, that fills
        the socket buffers between them, so the writes after it wait in the primary's own
        memory (where a SIGKILL loses them) instead of in the kernel (where the replica would
        still read them after its primary died)."""
        payload = b"x" * (megabytes << 20)
        key = b"{" + _key_served_by(self, primary).encode() + b"}:backlog"  # the same slot
        command = b"*3\r\n$3\r\nSET\r\n$%d\r\n%s\r\n$%d\r\n" % (len(key), key, len(payload))
        with socket.create_connection(("127.0.0.1", primary.server.port), timeout=30) as conn:
            conn.sendall(command + payload + b"\r\n")
            reply = conn.recv(200)
            if not reply.startswith(b"+OK"):
                raise RedisUnavailable(f"backlog write refused: {reply!r}")

    def lag(self, replica: ClusterNode, seconds: float) -> ReplicaLag:
        primary = next(n for n in self.nodes if n.node_id == replica.primary_id)
        probe = _key_served_by(self, primary)
        return ReplicaLag(
            replica.server,
            seconds,
            primary=primary.server,
            replicas=len(self.replicas_of(primary)),
            probe_key=probe,
        )


def _key_served_by(cluster: RedisCluster, primary: ClusterNode) -> str:
    """A key whose slot `primary` serves (for probes written on it)."""
    from redis.crc import key_slot

    ranges = _slot_ranges_of(primary.server, primary.node_id)
    for index in range(100_000):
        key = f"recaptcha-test:probe:{index}"
        if any(low <= key_slot(key.encode()) <= high for low, high in ranges):
            return key
    raise LookupError("no probe key")


def _slot_ranges_of(server: RedisServer, node_id: str) -> list[tuple[int, int]]:
    for line in server.cli("CLUSTER", "NODES").splitlines():
        fields = line.split()
        if fields and fields[0] == node_id:
            out = []
            for item in fields[8:]:
                if not item.startswith("["):
                    low, _, high = item.partition("-")
                    out.append((int(low), int(high or low)))
            return out
    return []


def _owner_port(server: RedisServer, slot: int) -> int:
    """The port of the primary that `server` believes serves `slot` (from `CLUSTER NODES`,
    whose primary lines end with the slot ranges they serve: `0-5460 5461 …`)."""
    for line in server.cli("CLUSTER", "NODES").splitlines():
        fields = line.split()
        if len(fields) < 9 or "master" not in fields[2].split(","):
            continue
        for item in fields[8:]:
            if item.startswith("["):
                continue  # a migration in progress: `[slot->-id]`
            low, _, high = item.partition("-")
            if int(low) <= slot <= int(high or low):
                return int(fields[1].split("@")[0].rsplit(":", 1)[1])
    raise LookupError(f"slot {slot}: no owner")


# ---- Sentinel ------------------------------------------------------------------------------


class RedisSentinel:
    """A primary, `replicas` replicas and `sentinels` sentinels watching it under `service`
    (quorum 2). `url` is `redis+sentinel://` with every sentinel and the service name."""

    def __init__(
        self,
        directory: Path,
        *,
        service: str = "mymaster",
        replicas: int = 2,
        sentinels: int = 3,
        password: str | None = None,
        startup_timeout: float = 60.0,
    ) -> None:
        self.directory = directory
        self.service = service
        self.password = password
        self.startup_timeout = startup_timeout
        self.data: list[RedisServer] = []
        for index in range(1 + replicas):
            server = RedisServer(
                directory / f"data-{index}",
                password=password,
                extra_args=["--enable-debug-command", "local"],
            )
            self.data.append(server)
        self.sentinels: list[RedisServer] = []
        for index in range(sentinels):
            folder = directory / f"sentinel-{index}"
            folder.mkdir(parents=True, exist_ok=True)
            server = RedisServer(
                folder, config_file=folder / "sentinel.conf", extra_args=["--sentinel"]
            )
            self.sentinels.append(server)

    @property
    def url(self) -> str:
        seeds = ",".join(f"127.0.0.1:{s.port}" for s in self.sentinels)
        return f"redis+sentinel://{seeds}/{self.service}"

    def start(self) -> RedisSentinel:
        give_up = time.monotonic() + self.startup_timeout
        primary, *replicas = self.data
        _start(primary)
        for replica in replicas:
            replica.extra_args += ["--replicaof", "127.0.0.1", str(primary.port)]
            _start(replica)
        for sentinel in self.sentinels:
            assert sentinel.config_file is not None
            conf = sentinel.config_file
            auth = f"sentinel auth-pass {self.service} {self.password}\n" if self.password else ""
            conf.write_text(  # the port is given on the command line
                f"sentinel monitor {self.service} 127.0.0.1 {primary.port} 2\n"
                f"sentinel down-after-milliseconds {self.service} {NODE_TIMEOUT_MS}\n"
                f"sentinel failover-timeout {self.service} 10000\n"
                f"sentinel parallel-syncs {self.service} 2\n" + auth
            )
            _start(sentinel)
        self.wait_healthy(max(1.0, give_up - time.monotonic()))
        return self

    def wait_healthy(self, timeout: float = 30.0) -> None:
        """Every running sentinel knows the primary, every replica and the other sentinels;
        every running replica's link is up."""
        live_data = [s for s in self.data if s.running]
        live_sentinels = [s for s in self.sentinels if s.running]

        def healthy() -> bool:
            primary = self.primary()
            for sentinel in live_sentinels:
                fields = sentinel.cli("SENTINEL", "MASTER", self.service).split()
                master = dict(zip(fields[::2], fields[1::2], strict=False))
                if master.get("port") != str(primary.port) or "o_down" in master.get("flags", ""):
                    return False
                if int(master.get("num-slaves", "0")) < len(live_data) - 1:
                    return False
                if int(master.get("num-other-sentinels", "0")) < len(live_sentinels) - 1:
                    return False
            for server in live_data:
                if server is not primary and info(server).get("master_link_status") != "up":
                    return False
            return info(primary).get("role") == "master"

        _wait(healthy, timeout, "sentinel group healthy")

    def primary(self) -> RedisServer:
        """The data server the sentinels name as primary now."""
        for sentinel in self.sentinels:
            if sentinel.running:
                out = sentinel.cli("SENTINEL", "GET-MASTER-ADDR-BY-NAME", self.service).split()
                port = int(out[1])
                return next(s for s in self.data if s.port == port)
        raise LookupError("no sentinel running")

    def replicas(self) -> list[RedisServer]:
        primary = self.primary()
        return [s for s in self.data if s is not primary]

    def kill_primary(self) -> RedisServer:
        """SIGKILL the primary; the server killed."""
        primary = self.primary()
        primary.kill()
        return primary

    def wait_failover(self, dead: RedisServer, timeout: float = 30.0) -> RedisServer:
        """Wait until the sentinels name a new primary that says it is one; that server."""
        found: list[RedisServer] = []

        def promoted() -> bool:
            primary = self.primary()
            if primary is dead or not primary.running:
                return False
            if info(primary).get("role") != "master":
                return False
            found[:] = [primary]
            return True

        _wait(promoted, timeout, "sentinel failover")
        return found[0]

    def lag(self, replica: RedisServer, seconds: float) -> ReplicaLag:
        primary = self.primary()
        replicas = sum(1 for s in self.data if s is not primary and s.running)
        return ReplicaLag(replica, seconds, primary=primary, replicas=replicas)

    def close(self) -> None:
        for server in [*self.sentinels, *self.data]:
            server.close()
            _untrack(server)

    def __enter__(self) -> RedisSentinel:
        try:
            return self.start()
        except BaseException:
            self.close()
            raise

    def __exit__(self, *exc: object) -> None:
        self.close()
