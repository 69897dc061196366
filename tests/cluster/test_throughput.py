"""Taps per second: one instance on one Redis, one and two instances on the 3-master cluster.

A small, bounded load (the same conversations, a fixed number of client threads) and numbers
in the figures, never a timed assertion: this machine's cores are shared, so the figures say
what the cluster costs per tap more than how far it scales.
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis
from redis.crc import key_slot

from ..redis_server import RedisServer
from ..system.harness import POLITE, Gunicorn, Report, Twilio, customers, in_parallel
from ..system.test_retry_storm import SCRIPT
from .conftest import Balancer, start_instances
from .servers import Cluster

CUSTOMERS = 40
THREADS = 8
TAPS = SCRIPT[:5]  # hi, Book, Group class, a day, a time (a hold): every kind of read and write but a booking


@pytest.fixture
def single(tmp_path: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Gunicorn]:
    """One instance on one redis-server (as durable as the cluster's nodes)."""
    server = RedisServer(tmp_path / "redis", "--appendonly", "yes")
    server.start()
    try:
        (instance,) = start_instances(1, tmp_path_factory, REDIS_URL=server.url)
        yield instance
        instance.stop()
    finally:
        server.stop()


def measure(twilio: Twilio | Balancer, area: str) -> tuple[float, float]:
    """Taps per second and the median tap (ms) of CUSTOMERS conversations on THREADS threads."""
    people = customers(twilio, CUSTOMERS, area=area)  # type: ignore[arg-type]
    in_parallel(people[:THREADS], lambda person: person.send("hi"), threads=THREADS)  # warm the connections
    started = time.monotonic()
    replies = in_parallel(people, lambda person: [person.send(text) for text in TAPS], threads=THREADS)
    wall = time.monotonic() - started
    flat = [reply for conversation in replies for reply in conversation]
    assert {reply.status for reply in flat} == {200} and not [r for r in flat if r.text == POLITE]
    return len(flat) / wall, statistics.median(reply.ms for reply in flat)


def test_taps_per_second(
    single: Gunicorn, cluster: Cluster, cluster_instances: list[Gunicorn], deployments_report: Report
) -> None:
    report = deployments_report
    cluster.flush()
    runs = {
        "one instance, one Redis": Twilio(single, report),
        "one instance, cluster": Balancer(cluster_instances[:1], report),
        "two instances, cluster": Balancer(cluster_instances, report),
    }
    figures = {}
    for area, (name, twilio) in enumerate(runs.items(), start=3):
        rate, median = measure(twilio, str(area))
        figures[name] = f"{rate:.0f} taps/s (median {median:.1f} ms)"
    report.scenario(
        f"throughput ({CUSTOMERS} conversations of {len(TAPS)} taps, {THREADS} client threads, "
        f"{len(cluster_instances[0].workers())} gunicorn workers per instance)",
        **figures,
    )


def master_of(cluster: Cluster, business: str) -> redis.Redis:
    """A plain client of the master serving every key of ``business`` (its hash tag's slot)."""
    slot = key_slot(f"{{{business}}}".encode())
    with redis.Redis(port=cluster.nodes[0].port, decode_responses=True) as db:
        for start, end, (host, port, *_), *_ in db.execute_command("CLUSTER", "SLOTS"):
            if int(start) <= slot <= int(end):
                return redis.Redis(host=host, port=int(port), decode_responses=True)
    raise AssertionError(f"no master serves slot {slot}")


def cpu_and_calls(db: redis.Redis) -> tuple[float, int, float]:
    """Seconds of CPU the server's main thread used (user + system: commands, network I/O, the event
    loop), commands it ran (scripts' included), and seconds spent executing commands."""
    cpu = db.info("cpu")
    stats = db.info("commandstats").values()
    calls = sum(int(v["calls"]) for v in stats)
    executing = sum(float(v["usec"]) for v in stats if "calls" in v) / 1e6
    return float(cpu["used_cpu_user_main_thread"]) + float(cpu["used_cpu_sys_main_thread"]), calls, executing


def test_what_one_master_sustains_for_one_business(
    cluster: Cluster, cluster_instances: list[Gunicorn], deployments_report: Report
) -> None:
    """All of a business's keys sit on one master. The app instances here are the limit (2 cores), so the
    figure is the master's CPU per tap: what one core of it sustains for one business is 1 / that."""
    cluster.flush()
    master = master_of(cluster, "system")
    balancer = Balancer(cluster_instances, deployments_report)
    measure(balancer, "8")  # warm: connections, slot maps and scripts loaded on every instance
    before = cpu_and_calls(master)
    rate, median = measure(balancer, "9")
    after = cpu_and_calls(master)
    taps = CUSTOMERS * (len(TAPS) + 1)  # the conversations and the warm-up "hi"s
    cpu_per_tap = (after[0] - before[0]) / taps
    executing_per_tap = (after[2] - before[2]) / taps
    master.close()
    deployments_report.scenario(
        "one business on one master",
        taps_per_s_measured=f"{rate:.0f} (median {median:.1f} ms; the app's 2 cores are the limit)",
        master_cpu_per_tap_us=f"{cpu_per_tap * 1e6:.0f}",
        executing_commands_per_tap_us=f"{executing_per_tap * 1e6:.0f}",
        commands_per_tap=f"{(after[1] - before[1]) / taps:.1f}",
        one_master_core_sustains_taps_per_s=f"{1 / cpu_per_tap:.0f}" if cpu_per_tap else "n/a",
    )
