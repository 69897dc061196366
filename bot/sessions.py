"""A customer's conversation state (one Redis hash) and the upgrades of older layouts.

Fields: ``v`` schema version, ``rev`` write counter (optimistic versioning), ``language``,
``step``, ``opts`` (the button IDs offered by the last reply, see below), ``turn`` (the turn
code those IDs carry), ``seen`` (the messages answered, see ``bot.store``); flows add their
own. Fields this release does not know are kept as they are.

The offered IDs are stored compactly, because Redis keeps a small hash in one flat listpack
only while every value is at most 64 bytes (``hash-max-listpack-value``), and a hash past that
costs several times the memory: the turn code is left out (it is the ``turn`` field), each ID
after the first is front-coded against the one before (one base-36 digit: how many leading
characters it shares), and the list is cut into ``opts``, ``opts2``, ``opts3``… of at most 64
characters each. ``day1.3:cut:20260114 day1.3:cut:20260115`` is stored as
``day1:cut:20260114 g5``.
"""

from __future__ import annotations

from collections.abc import Callable

CURRENT_VERSION = 2
#: the longest value of a session field (Redis' default ``hash-max-listpack-value``)
FIELD_MAX = 64
_DIGITS = "0123456789abcdefghijklmnopqrstuvwxyz"

Migration = Callable[[dict[str, str], str], dict[str, str]]


def _v0_to_v1(data: dict[str, str], default_language: str) -> dict[str, str]:
    """Sessions of the seed service: no ``v`` and no ``language``."""
    upgraded = dict(data)
    upgraded.setdefault("language", default_language)
    upgraded.setdefault("step", "menu")
    return upgraded


def _v1_to_v2(data: dict[str, str], default_language: str) -> dict[str, str]:
    """Offered IDs stored in full (``nav1.3:book nav1.3:bookings``) → the compact form."""
    upgraded = dict(data)
    _store_offered(upgraded, [_strip_turn(packed) for packed in upgraded.pop("opts", "").split()])
    return upgraded


#: ``MIGRATIONS[n]`` turns a version-n session into version n+1.
MIGRATIONS: dict[int, Migration] = {0: _v0_to_v1, 1: _v1_to_v2}


def _strip_turn(packed: str) -> str:
    head, sep, rest = packed.partition(":")
    return head.partition(".")[0] + sep + rest


def _with_turn(packed: str, turn: str) -> str:
    head, sep, rest = packed.partition(":")
    return f"{head}.{turn}{sep}{rest}"


def _opts_field(index: int) -> str:
    return "opts" if index == 0 else f"opts{index + 1}"


def _store_offered(data: dict[str, str], ids: list[str]) -> None:
    """Front-code ``ids`` (without turn codes) into ``opts``, ``opts2``… of at most FIELD_MAX characters."""
    index = 0
    while _opts_field(index) in data:
        del data[_opts_field(index)]
        index += 1
    coded, previous = [], ""
    for packed in ids:
        shared = 0
        while shared < min(len(packed), len(previous), len(_DIGITS) - 1) and packed[shared] == previous[shared]:
            shared += 1
        coded.append(packed if not previous else _DIGITS[shared] + packed[shared:])
        previous = packed
    chunks: list[str] = []
    for item in coded:
        if chunks and len(chunks[-1]) + 1 + len(item) <= FIELD_MAX:
            chunks[-1] += " " + item
        else:
            chunks.append(item)
    for index, chunk in enumerate(chunks):
        data[_opts_field(index)] = chunk


def _load_offered(data: dict[str, str]) -> list[str]:
    """The IDs :func:`_store_offered` stored (still without turn codes)."""
    items: list[str] = []
    index = 0
    while _opts_field(index) in data:
        items += data[_opts_field(index)].split()
        index += 1
    ids: list[str] = []
    for item in items:
        ids.append(ids[-1][: _DIGITS.index(item[0])] + item[1:] if ids else item)
    return ids


def _stored_version(data: dict[str, str]) -> int:
    try:
        return int(data.get("v", "0"))
    except ValueError:
        return 0


def migrate(data: dict[str, str], default_language: str) -> tuple[dict[str, str], bool]:
    """The session in the current layout, and whether it had to be upgraded."""
    if not data:
        return data, False
    version = _stored_version(data)
    migrated = version < CURRENT_VERSION
    while version < CURRENT_VERSION:
        data = MIGRATIONS[version](data, default_language)
        version += 1
    if migrated:
        data["v"] = str(CURRENT_VERSION)
    return data, migrated


class Session:
    """A mutable view of the stored hash; ``fields()`` is what gets written back."""

    def __init__(self, data: dict[str, str]) -> None:
        self.is_new = not data
        self.rev = data.get("rev", "")
        self._data = dict(data)

    def get(self, name: str, default: str = "") -> str:
        return self._data.get(name, default)

    def set(self, name: str, value: str | None) -> None:
        if value is None:
            self._data.pop(name, None)
        else:
            self._data[name] = value

    @property
    def step(self) -> str:
        return self._data.get("step", "")

    @step.setter
    def step(self, name: str) -> None:
        self._data["step"] = name

    @property
    def language(self) -> str:
        return self._data.get("language", "")

    @language.setter
    def language(self, code: str) -> None:
        self._data["language"] = code

    @property
    def turn(self) -> str:
        """The code carried by the buttons of the last reply (base 36, wraps at 4 digits)."""
        return self._data.get("turn", "0")

    def next_turn(self) -> str:
        value = (int(self.turn, 36) + 1) % 36**4 if self.turn.isalnum() else 1
        digits = ""
        while True:
            value, digit = divmod(value, 36)
            digits = "0123456789abcdefghijklmnopqrstuvwxyz"[digit] + digits
            if not value:
                break
        self._data["turn"] = digits
        return digits

    @property
    def offered(self) -> list[str]:
        """The IDs the last reply offered, each carrying the current turn code."""
        return [_with_turn(packed, self.turn) for packed in _load_offered(self._data)]

    @offered.setter
    def offered(self, button_ids: list[str]) -> None:
        """Store ``button_ids``; they must carry the current turn code (it is stored once, as ``turn``)."""
        _store_offered(self._data, [_strip_turn(packed) for packed in button_ids])

    def fields(self) -> dict[str, str]:
        """The hash to store: current version, next ``rev``."""
        next_rev = str(int(self.rev) + 1) if self.rev.isdigit() else "1"
        return {**self._data, "v": str(CURRENT_VERSION), "rev": next_rev}
