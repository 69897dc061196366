"""Real Redis deployments on 127.0.0.1 free ports: a 3-master Redis Cluster, and Sentinel.

Every process runs in its own working directory under a pytest temporary directory; every
wait is a bounded poll of a process we just started; ``stop`` ends exactly the processes
started here (by their Popen handle, never by name).
"""

from __future__ import annotations

import shutil
import subprocess
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, TypeVar

import redis

from ..redis_server import RedisServer, free_port

REDIS_CLI = shutil.which("redis-cli")
T = TypeVar("T", bound=Any)


@contextmanager
def running(setup: T) -> Iterator[T]:
    """``setup`` started, and stopped afterwards whatever happens (also when it fails to start)."""
    try:
        setup.start()
        yield setup
    finally:
        setup.stop()


def wait_until(check: Callable[[], bool], what: str, timeout: float = 20) -> None:
    """Poll ``check`` (which may raise a Redis error meaning "not yet") until true; bounded."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            if check():
                return
        except redis.RedisError:
            pass
        if time.monotonic() > deadline:
            raise RuntimeError(f"timed out after {timeout} s waiting for {what}")
        time.sleep(0.05)


class Cluster:
    """Three masters (no replicas) joined with ``redis-cli --cluster create``."""

    def __init__(self, workdir: Path, masters: int = 3) -> None:
        self.nodes = [
            RedisServer(
                workdir / f"node{i}",
                "--cluster-enabled",
                "yes",
                "--cluster-config-file",
                "nodes.conf",
                "--cluster-node-timeout",
                "2000",
                "--cluster-port",  # the bus port; by default port + 10000, past 65535 for a high free port
                str(free_port()),
                "--appendonly",
                "yes",
            )
            for i in range(masters)
        ]

    @property
    def addresses(self) -> list[str]:
        return [f"127.0.0.1:{node.port}" for node in self.nodes]

    def start(self) -> None:
        assert REDIS_CLI, "redis-cli is not installed"
        for node in self.nodes:
            node.start()
        subprocess.run(
            [REDIS_CLI, "--cluster", "create", *self.addresses, "--cluster-replicas", "0", "--cluster-yes"],
            check=True,
            capture_output=True,
            timeout=30,
        )
        clients = [redis.Redis(port=node.port, decode_responses=True) for node in self.nodes]
        try:
            wait_until(
                lambda: (
                    all(c.cluster("info")["cluster_state"] == "ok" for c in clients)
                    and all(len(c.cluster("nodes")) == len(clients) for c in clients)
                ),
                "the cluster to agree",
            )
        finally:
            for c in clients:
                c.close()

    def key_counts(self) -> dict[str, int]:
        """DBSIZE of each master."""
        counts = {}
        for address, node in zip(self.addresses, self.nodes, strict=True):
            with redis.Redis(port=node.port) as c:
                counts[address] = int(c.dbsize())
        return counts

    def flush(self) -> None:
        for node in self.nodes:
            with redis.Redis(port=node.port) as c:
                c.flushall()

    def stop(self) -> None:
        for node in self.nodes:
            node.stop()


class Sentinels:
    """One master, one replica and three sentinels (quorum 2) watching them as ``SERVICE``.

    Sentinels are told to act fast (``down-after-milliseconds`` 500, ``failover-timeout``
    3000), so a killed master is replaced within a few seconds.
    """

    SERVICE = "tapbook"

    def __init__(self, workdir: Path) -> None:
        self.workdir = workdir
        fast_sync = ("--appendonly", "yes", "--repl-diskless-sync-delay", "0")  # not 5 s waiting for more replicas
        self.master = RedisServer(workdir / "master", *fast_sync)
        self.replica = RedisServer(workdir / "replica", *fast_sync)
        self.ports = [free_port() for _ in range(3)]
        self.processes: list[subprocess.Popen[bytes]] = []

    @property
    def addresses(self) -> list[str]:
        return [f"127.0.0.1:{port}" for port in self.ports]

    def start(self) -> None:
        self.master.start()
        self.replica.extra_args = (*self.replica.extra_args, "--replicaof", "127.0.0.1", str(self.master.port))
        self.replica.start()
        with redis.Redis(port=self.master.port, decode_responses=True) as master:
            wait_until(
                lambda: master.info("replication").get("slave0", {}).get("state") == "online", "the replica to sync"
            )
        for index, port in enumerate(self.ports):
            folder = self.workdir / f"sentinel{index}"
            folder.mkdir(parents=True, exist_ok=True)
            conf = folder / "sentinel.conf"
            conf.write_text(
                f"port {port}\nbind 127.0.0.1\ndir {folder}\n"
                f"sentinel monitor {self.SERVICE} 127.0.0.1 {self.master.port} 2\n"
                f"sentinel down-after-milliseconds {self.SERVICE} 500\n"
                f"sentinel failover-timeout {self.SERVICE} 3000\n"
                f"sentinel parallel-syncs {self.SERVICE} 1\n"
            )
            assert RedisServer.binary is not None
            self.processes.append(
                subprocess.Popen(
                    [RedisServer.binary, str(conf), "--sentinel"],
                    stdout=subprocess.DEVNULL,
                    stderr=subprocess.DEVNULL,
                )
            )
        for port in self.ports:
            with redis.Redis(port=port, decode_responses=True, socket_timeout=1) as sentinel:
                wait_until(
                    lambda s=sentinel: (
                        (m := s.sentinel_master(self.SERVICE))["num-other-sentinels"] == 2 and m["num-slaves"] == 1
                    ),
                    "the sentinels to find each other and the replica",
                    timeout=30,
                )

    def master_port(self) -> int:
        """The master's port as the first sentinel sees it."""
        with redis.Redis(port=self.ports[0], decode_responses=True, socket_timeout=1) as sentinel:
            return int(sentinel.sentinel_get_master_addr_by_name(self.SERVICE)[1])

    def replica_client(self) -> redis.Redis:
        return redis.Redis(port=self.replica.port, decode_responses=True)

    def stop(self) -> None:
        for process in self.processes:
            if process.poll() is None:
                process.terminate()
                process.wait(timeout=10)
        self.processes = []
        self.replica.stop()
        self.master.stop()
