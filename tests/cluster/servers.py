"""Real Redis deployments on 127.0.0.1 free ports: a 3-master Redis Cluster, and Sentinel.

Every process runs in its own working directory under a pytest temporary directory; every
wait is a bounded poll of a process we just started; ``stop`` ends exactly the processes
started here (by their Popen handle, never by name).
"""

from __future__ import annotations

import shutil
import subprocess
import time
from collections.abc import Callable
from pathlib import Path

import redis

from ..redis_server import RedisServer

REDIS_CLI = shutil.which("redis-cli")


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
