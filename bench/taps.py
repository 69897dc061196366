"""The request files of benchmark runs, made by the conversations of the code on ``sys.path``.

``bench/run.py`` calls :func:`write_run` for this release, and runs this file as a script for the
previous release::

    PYTHONPATH=<checkout of release-1> python bench/taps.py SPEC.json

so that each release's button IDs are made by that release's own ``bench/conversations.py`` (and
its own buttons, turn codes and slot rules). Only what every release's ``bench/conversations.py``
has is used here: ``ConversationPlan(catalog, token=, url=, now=)``, ``.conversation(phone,
index)``, ``Tap.raw_http(host)``, ``interleave`` and ``phone``.

A run of several businesses (one plan each) splits its conversations evenly between them, and
alternates every ``threads`` conversations, so each wrk connection talks to every business in turn.
Each run's directory gets ``thread-<k>.req`` (see ``bench/replay.lua``) and ``phones.json``: the
phones that write to each business, in plan order, for checking where the bookings went.
"""

from __future__ import annotations

import json
import sys
from datetime import datetime
from pathlib import Path
from typing import Any

if __name__ == "__main__":  # as a script: import the checkout on PYTHONPATH, never this file's folder
    sys.path = [p for p in sys.path if Path(p or ".").resolve() != Path(__file__).resolve().parent]

from bench.conversations import ConversationPlan, Tap, interleave, phone  # noqa: E402

LANGUAGES = frozenset({"en", "es", "pt"})


def split(count: int, businesses: int, threads: int) -> list[int]:
    """The business (plan index) each of ``count`` conversations writes to."""
    return [(index // max(threads, 1)) % businesses for index in range(count)]


def conversations(plans: list[Any], first_phone: int, count: int, threads: int) -> list[tuple[int, list[Tap]]]:
    """``count`` conversations of distinct phones from ``first_phone`` on, each with its plan's index;
    each plan cycles over its own slots."""
    made = [0] * len(plans)
    found = []
    for index, business in enumerate(split(count, len(plans), threads)):
        found.append((business, plans[business].conversation(phone(first_phone + index), made[business])))
        made[business] += 1
    return found


def write_run(directory: Path, plans: list[Any], *, first_phone: int, count: int, threads: int, host: str) -> None:
    """The request files of one run (see the module docstring)."""
    directory.mkdir(parents=True, exist_ok=True)
    made = conversations(plans, first_phone, count, threads)
    for thread in range(threads):
        taps = interleave([taps for _, taps in made[thread::threads]], width=4)
        with (directory / f"thread-{thread}.req").open("wb") as out:
            for tap in taps:
                raw = tap.raw_http(host)
                out.write(b"%d\n" % len(raw) + raw)
    phones: list[list[str]] = [[] for _ in plans]
    for business, taps in made:
        phones[business].append(taps[0].form["From"].removeprefix("whatsapp:"))
    (directory / "phones.json").write_text(json.dumps(phones))


def main(spec_path: str) -> None:
    """Write the runs of a JSON spec: ``token``, ``url``, ``host``, ``now`` (ISO), ``catalogs`` (paths),
    ``runs`` (each ``directory``, ``first_phone``, ``count``, ``threads``)."""
    from bot.booking.catalog import load_catalog

    spec = json.loads(Path(spec_path).read_text())
    now = datetime.fromisoformat(spec["now"])
    plans = [
        ConversationPlan(load_catalog(path, languages=LANGUAGES), token=spec["token"], url=spec["url"], now=now)
        for path in spec["catalogs"]
    ]
    for run in spec["runs"]:
        write_run(
            Path(run["directory"]),
            plans,
            first_phone=run["first_phone"],
            count=run["count"],
            threads=run["threads"],
            host=spec["host"],
        )


if __name__ == "__main__":
    main(sys.argv[1])
