"""Two app instances under gunicorn sharing a 3-master Redis Cluster: the system suite's race
for the last slot and retry storm, delivered alternately to both instances, still end with
exactly one booking per winner; the keys are spread over the masters (figures printed).
"""

from __future__ import annotations

from ..system import test_races, test_retry_storm
from ..system.conftest import System
from .conftest import keys_per_master
from .servers import Cluster


def test_race_for_the_last_slot_across_instances(system: System, cluster: Cluster) -> None:
    test_races.test_race_for_the_last_slot(system, "Solo", 1)
    system.report.scenario("keys per master after the race", **keys_per_master(cluster))


def test_retry_storm_across_instances(system: System, cluster: Cluster) -> None:
    test_retry_storm.test_retry_storm_books_each_conversation_once(system)
    system.report.scenario("keys per master after the retry storm", **keys_per_master(cluster))


def test_double_tap_storm_across_instances(system: System) -> None:
    test_races.test_double_tap_storm_books_once(system)
