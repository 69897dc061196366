"""Two app instances under gunicorn sharing a 3-master Redis Cluster, serving two businesses: the
system suite's races, retry storm, two options tapped together and a worker kill storm, delivered
alternately to both instances, end as on one server; each business's keys sit on one master, and
the two businesses on different ones (figures printed).
"""

from __future__ import annotations

from ..system import test_atomic_taps, test_races, test_retry_storm
from ..system.conftest import System
from ..system.test_atomic_taps import killer  # noqa: F401 - the fixture, for the kill storm here
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


def test_the_same_phones_race_at_both_businesses_across_instances(system: System, cluster: Cluster) -> None:
    test_atomic_taps.test_the_same_phones_race_for_the_same_slot_at_both_businesses(system)
    system.report.scenario("keys per master after the two-business race", **keys_per_master(cluster))


def test_confirm_and_cancel_together_across_instances(system: System) -> None:
    test_atomic_taps.test_confirm_and_cancel_tapped_together_say_what_was_stored(system)


def test_workers_killed_while_both_businesses_book_across_instances(system: System, killer) -> None:  # noqa: F811
    test_atomic_taps.test_workers_killed_at_random_while_both_businesses_book(system, killer)
