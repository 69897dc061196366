"""Reading release 1's conversations (session layout 3) into this release's layout.

Release 1 stored a session under ``<prefix>:session:{+E164}`` with one-letter field names, built-in
steps as one-letter codes, and the offered button IDs front-coded or coded by increase (see the
release-1 README). A tap that finds no session of this release but one of release 1 reads it with
:func:`from_layout3` and writes the result under the new key (see :mod:`bot.store`);
``flask bookings migrate`` does the same for every session at once. Layouts older than 3 (release
1 itself upgraded them on read) are not read: such a customer starts again at the menu.
"""

from __future__ import annotations

import re

from .sessions import put_offered

#: layout-3 field name → this release's
FIELD_NAMES = {
    "r": "rev",
    "l": "lang",
    "s": "step",
    "t": "turn",
    "n": "seen",
    "c": "service",
    "d": "day",
    "p": "page",
    "h": "hold",
    "y": "hold_day",
    "a": "at",
    "x": "hold_until",
    "m": "moving",
    "q": "moving_place",
    "f": "ref",
    "e": "near",
    "b": "came_from",
}
#: layout-3 codes of the built-in steps (in ``s`` and ``b``)
STEP_NAMES = {
    "M": "menu",
    "S": "services",
    "D": "dates",
    "T": "times",
    "Y": "summary",
    "A": "alternatives",
    "L": "language",
    "B": "bookings",
    "K": "booking",
    "C": "cancel",
}
_DIGITS = "0123456789abcdefghijklmnopqrstuvwxyz"
_TAIL = re.compile(r"(.*?)([0-9]+)")


def is_layout3(data: dict[str, str]) -> bool:
    return "r" in data and "v" not in data


def from_layout3(data: dict[str, str]) -> dict[str, str]:
    """A release-1 session (layout 3) in this release's layout; ``{}`` for anything else."""
    if not is_layout3(data):
        return {}
    converted: dict[str, str] = {}
    for name, value in data.items():
        if name == "o" or (name.startswith("o") and name[1:].isdigit()):
            continue
        new = FIELD_NAMES.get(name, name)
        converted[new] = STEP_NAMES.get(value, value) if name in ("s", "b") else value
    put_offered(converted, _decode(_chunks(data)))
    return converted


def _chunks(data: dict[str, str]) -> list[str]:
    items: list[str] = []
    index = 0
    while (name := "o" if index == 0 else f"o{index + 1}") in data:
        items += data[name].split()
        index += 1
    return items


def _decode(items: list[str]) -> list[str]:
    """The IDs release 1 coded (front-coded, or ``+n``: the trailing number grew by n); none at all
    from a damaged hash (a tap on one of them is then out of date, never an error)."""
    ids: list[str] = []
    last = 0
    try:
        for item in items:
            if not ids:
                ids.append(item)
            elif item.startswith("+"):
                last = int(item[1:], 36) if len(item) > 1 else last
                match = _TAIL.fullmatch(ids[-1])
                ids.append(f"{match[1]}{int(match[2]) + last}" if match else ids[-1])
            else:
                ids.append(ids[-1][: _DIGITS.index(item[0])] + item[1:])
    except ValueError:
        return []
    return ids
