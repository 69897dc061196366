"""Distributed deployments on real servers: a 3-master Redis Cluster shared by two app instances
under gunicorn, and a Sentinel-watched master and replica.

Each deployment is started once (on 127.0.0.1 free ports, in pytest's temporary directory)
by the first test that needs it and stopped at the end. The figures are printed at the end
of the run like the system suite's, and saved to ``<pytest tmp dir>/deployments-report.txt``.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import redis

from bot.connections import Cluster

from ..conftest import REQUIRE_REAL, need_redis_server
from ..redis_server import free_port
from ..system.conftest import System
from ..system.harness import Gunicorn, Report, Twilio, app_environment, collect_figures
from .servers import REDIS_CLI, Sentinels, running
from .servers import Cluster as LocalCluster

REPORT = pytest.StashKey[Report]()
REPORT_FILE = pytest.StashKey[Path]()
INSTANCE_WORKERS = 2


@pytest.fixture(scope="session")
def deployments_report(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Report]:
    saved_to = tmp_path_factory.getbasetemp() / "deployments-report.txt"
    yield from collect_figures(request.config, saved_to, REPORT, REPORT_FILE)


@pytest.fixture(autouse=True)
def end_of_the_figures(request: pytest.FixtureRequest) -> Iterator[None]:
    """The figures' wall time runs to the end of the last test here (not of the whole run)."""
    yield
    report = request.config.stash.get(REPORT, None)
    if report is not None:
        report.finish()


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter, config: pytest.Config) -> None:
    report = config.stash.get(REPORT, None)
    if report is not None:
        title = "tapbook on Redis Cluster and Sentinel: figures"
        report.show(terminalreporter, title, config.stash.get(REPORT_FILE, None))


def need_redis_cli() -> None:
    need_redis_server()
    if REDIS_CLI is None:
        message = "redis-cli is not installed (apt-get install redis-tools)"
        if REQUIRE_REAL:
            pytest.fail(message + " but TAPBOOK_REQUIRE_REAL_REDIS=1")
        pytest.skip(message)


def environment(port: int, *, workers: int = INSTANCE_WORKERS, **redis_settings: str) -> dict[str, str]:
    """The system suite's app settings, reaching Redis through ``redis_settings`` instead of REDIS_URL."""
    environ = app_environment("", port, workers=workers)
    del environ["REDIS_URL"]
    environ.update(redis_settings)
    return environ


def start_instances(count: int, tmp: pytest.TempPathFactory, **redis_settings: str) -> list[Gunicorn]:
    """``count`` app instances (gunicorn masters) with the same settings; stopped by the caller."""
    instances = []
    try:
        for _ in range(count):
            port = free_port()
            instances.append(Gunicorn(tmp.mktemp("instance"), port, environment(port, **redis_settings)))
            instances[-1].start()
    except BaseException:
        for instance in instances:
            instance.stop()
        raise
    return instances


class Balancer:
    """Twilio behind a load balancer: deliveries take turns among the app instances."""

    def __init__(self, instances: list[Gunicorn], report: Report) -> None:
        self.twilios = [Twilio(instance, report) for instance in instances]
        self.report = report
        self._turn = itertools.count()

    def deliver(self, form: dict[str, str], **options: Any) -> Any:
        return self.twilios[next(self._turn) % len(self.twilios)].deliver(form, **options)


@pytest.fixture(scope="session")
def cluster(deployments_report: Report, tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalCluster]:
    need_redis_cli()
    with running(LocalCluster(tmp_path_factory.mktemp("cluster"))) as local:
        yield local


@pytest.fixture(scope="session")
def cluster_instances(cluster: LocalCluster, tmp_path_factory: pytest.TempPathFactory) -> Iterator[list[Gunicorn]]:
    instances = start_instances(2, tmp_path_factory, REDIS_CLUSTER_NODES=",".join(cluster.addresses))
    yield instances
    for instance in instances:
        instance.stop()


def cluster_client(cluster: LocalCluster) -> Cluster:
    host, port = cluster.addresses[0].split(":")
    return Cluster(host=host, port=int(port), decode_responses=True)


@pytest.fixture
def system(cluster: LocalCluster, cluster_instances: list[Gunicorn], deployments_report: Report) -> Iterator[System]:
    """The system suite's ``system``, with Twilio's deliveries shared by two instances on the cluster."""
    cluster.flush()
    db = cluster_client(cluster)
    offsets = [len(instance.log()) for instance in cluster_instances]
    balancer = Balancer(cluster_instances, deployments_report)
    yield System(cluster.nodes[0], cluster_instances[0], balancer, db, deployments_report)  # type: ignore[arg-type]
    db.close()
    for instance, offset in zip(cluster_instances, offsets, strict=True):
        instance.assert_clean_log_since(offset)


def keys_per_master(cluster: LocalCluster) -> dict[str, str]:
    """Per master: its keys, of which sessions and booking records, and the businesses they belong to."""
    figures = {}
    for address, node in zip(cluster.addresses, cluster.nodes, strict=True):
        with redis.Redis(port=node.port, decode_responses=True) as db:
            keys = list(db.scan_iter("system:*", count=1000))
            sessions = sum(":session:" in key for key in keys)
            booked = sum(":booking:" in key for key in keys)
            businesses = sorted({key.split("{", 1)[1].split("}", 1)[0] for key in keys if "{" in key})
            owners = ", ".join(businesses) or "-"
            figures[address] = f"{db.dbsize()} keys ({sessions} sessions, {booked} bookings; businesses: {owners})"
    return figures


@pytest.fixture(scope="module")
def sentinels(deployments_report: Report, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Sentinels]:
    """A master, its replica and three sentinels, for one module (whose last test may kill the master)."""
    need_redis_server()
    with running(Sentinels(tmp_path_factory.mktemp("sentinel"))) as setup:
        yield setup


@pytest.fixture
def sentinel_instance(sentinels: Sentinels, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Gunicorn]:
    """One app instance finding its master through the sentinels."""
    (instance,) = start_instances(
        1,
        tmp_path_factory,
        REDIS_SENTINELS=",".join(sentinels.addresses),
        REDIS_SENTINEL_SERVICE=Sentinels.SERVICE,
    )
    offset = len(instance.log())
    yield instance
    instance.stop()
    instance.assert_clean_log_since(offset)
