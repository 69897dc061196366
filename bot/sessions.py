"""A customer's conversation state (one Redis hash) and the upgrades of older layouts.

The code names a session's fields in words (``step``, ``language``, ``hold``…); the stored hash
names each with one letter (:data:`NAMES`), because every byte of an active session counts (see
the README's Benchmark). Fields: ``r`` write counter (``rev``, optimistic versioning), ``l``
language (left out when it is ``DEFAULT_LANGUAGE``), ``s`` step (a built-in one as a one-letter
code, :data:`STEP_CODES`), ``o`` the button IDs offered by the last reply (see below), ``t`` the
turn code those IDs carry, ``n`` the messages answered (``seen``, see ``bot.store``); flows add
their own. Fields this release does not know are kept as
they are. Layout 3 (this one) is the hash that has ``r`` and no ``v``; older layouts carry their
number in ``v`` (none at all: the seed service's); a later layout would write ``v`` again.

The offered IDs are stored compactly, because Redis keeps a small hash in one flat listpack
only while every value is at most 64 bytes (``hash-max-listpack-value``), and a hash past that
costs several times the memory: the turn code is left out (it is the ``t`` field), and each ID
after the first is coded against the one before, whichever is shorter: front-coded (one base-36
digit: how many leading characters it shares, then the rest) or, when only its trailing number
grew, ``+`` and the increase in base 36 (a bare ``+``: the same increase as the last one). The list
is cut into ``o``, ``o2``, ``o3``… of at most 64 characters each. ``day1.3:cut:20260114
day1.3:cut:20260115`` is stored as ``day1:cut:20260114 g5``, ``day1.3:cut:20260109
day1.3:cut:20260110 day1.3:cut:20260111`` as ``day1:cut:20260109 +1 +``.
"""

from __future__ import annotations

import re
from collections.abc import Callable

CURRENT_VERSION = 3
#: the longest value of a session field (Redis' default ``hash-max-listpack-value``)
FIELD_MAX = 64
_DIGITS = "0123456789abcdefghijklmnopqrstuvwxyz"
_BASE62 = _DIGITS + "ABCDEFGHIJKLMNOPQRSTUVWXYZ"
_TAIL = re.compile(r"(.*?)([0-9]+)")

#: the stored name of each field (layout 3 on); names not listed are stored as they are
NAMES = {
    "rev": "r",
    "language": "l",
    "step": "s",
    "turn": "t",
    "seen": "n",
    # the booking flows' fields (bot.flows.state)
    "svc": "c",
    "day": "d",
    "page": "p",
    "hold": "h",
    "hday": "y",
    "at": "a",
    "hexp": "x",
    "resched": "m",
    "rocc": "q",
    "ref": "f",
    "alt": "e",
    "prev": "b",
}
REV, SEEN = NAMES["rev"], NAMES["seen"]
#: the stored code of each built-in step (in ``step`` and ``prev``); other step names are stored as
#: they are, so a step may not be named like a code (``Registry.step`` refuses it)
STEP_CODES = {
    "menu": "M",
    "services": "S",
    "dates": "D",
    "times": "T",
    "summary": "Y",
    "alternatives": "A",
    "language": "L",
    "bookings": "B",
    "booking": "K",
    "cancel": "C",
}
_STEP_NAMES = {code: name for name, code in STEP_CODES.items()}
_STEP_FIELDS = frozenset({"step", "prev"})

Migration = Callable[[dict[str, str], str], dict[str, str]]


def _v0_to_v1(data: dict[str, str], default_language: str) -> dict[str, str]:
    """Sessions of the seed service: no ``v`` and no ``language``."""
    upgraded = dict(data)
    upgraded.setdefault("language", default_language)
    upgraded.setdefault("step", "menu")
    return upgraded


def _v1_to_v2(data: dict[str, str], default_language: str) -> dict[str, str]:
    """Offered IDs stored in full (``nav1.3:book nav1.3:bookings``) → the front-coded form."""
    upgraded = dict(data)
    ids = [_strip_turn(packed) for packed in upgraded.pop("opts", "").split()]
    _put_chunks(upgraded, _v2_chunk, " ".join(_front_code(ids)))
    return upgraded


def _v2_to_v3(data: dict[str, str], default_language: str) -> dict[str, str]:
    """Fields named in words → one letter; offered IDs front-coded only → also coded by increase."""
    ids = _decode(_get_chunks(data, _v2_chunk))
    upgraded = {name: value for name, value in data.items() if not _is_chunk(name, _v2_chunk)}
    for word, letter in NAMES.items():
        if word in upgraded:
            value = upgraded.pop(word)
            upgraded[letter] = STEP_CODES.get(value, value) if word in _STEP_FIELDS else value
    upgraded.pop("v", None)
    if SEEN in upgraded:
        upgraded[SEEN] = " ".join(seen_id(old) for old in upgraded[SEEN].split())
    if upgraded.get(NAMES["language"]) == default_language:
        del upgraded[NAMES["language"]]
    _store_offered(upgraded, ids)
    return upgraded


#: ``MIGRATIONS[n]`` turns a version-n session into version n+1.
MIGRATIONS: dict[int, Migration] = {0: _v0_to_v1, 1: _v1_to_v2, 2: _v2_to_v3}


def _strip_turn(packed: str) -> str:
    head, sep, rest = packed.partition(":")
    return head.partition(".")[0] + sep + rest


def _with_turn(packed: str, turn: str) -> str:
    head, sep, rest = packed.partition(":")
    return f"{head}.{turn}{sep}{rest}"


def _v2_chunk(index: int) -> str:
    return "opts" if index == 0 else f"opts{index + 1}"


def _chunk(index: int) -> str:
    return "o" if index == 0 else f"o{index + 1}"


def _is_chunk(name: str, chunk: Callable[[int], str]) -> bool:
    return name == chunk(0) or (name.startswith(chunk(0)) and name[len(chunk(0)) :].isdigit())


def _in_base(value: int, alphabet: str) -> str:
    digits = ""
    while True:
        value, digit = divmod(value, len(alphabet))
        digits = alphabet[digit] + digits
        if not value:
            return digits


def _is_number(value: str) -> bool:
    """Digits of base 36 (``isalnum`` also passes ``é`` and ``²``, which ``int`` refuses)."""
    return bool(value) and all(c in _DIGITS for c in value.lower())


def _base36(value: int) -> str:
    return _in_base(value, _DIGITS)


def _front_code(ids: list[str]) -> list[str]:
    coded, previous = [], ""
    for packed in ids:
        coded.append(packed if not previous else _front(previous, packed))
        previous = packed
    return coded


def _front(previous: str, packed: str) -> str:
    shared = 0
    while shared < min(len(packed), len(previous), len(_DIGITS) - 1) and packed[shared] == previous[shared]:
        shared += 1
    return _DIGITS[shared] + packed[shared:]


def _increase(previous: str, packed: str) -> int:
    """How much the trailing number grew from ``previous`` to ``packed`` (0: not that kind of step)."""
    before, after = _TAIL.fullmatch(previous), _TAIL.fullmatch(packed)
    if not before or not after or before[1] != after[1] or after[2] != str(int(after[2])):
        return 0
    return max(int(after[2]) - int(before[2]), 0)


def _encode(ids: list[str]) -> list[str]:
    coded, previous, last = [], "", 0
    for packed in ids:
        if not previous:
            coded.append(packed)
        else:
            item, grown = _front(previous, packed), _increase(previous, packed)
            by_increase = "+" if grown == last else "+" + _base36(grown)
            if grown and len(by_increase) < len(item):
                item, last = by_increase, grown
            coded.append(item)
        previous = packed
    return coded


def _decode(items: list[str]) -> list[str]:
    """The IDs :func:`_encode` coded; none at all from a damaged or hand-edited hash (a tap on one of
    them is then out of date, never an error)."""
    try:
        return _decode_items(items)
    except ValueError:
        return []


def _decode_items(items: list[str]) -> list[str]:
    ids: list[str] = []
    last = 0
    for item in items:
        if not ids:
            ids.append(item)
        elif item.startswith("+"):
            last = int(item[1:], 36) if len(item) > 1 else last
            match = _TAIL.fullmatch(ids[-1])
            ids.append(f"{match[1]}{int(match[2]) + last}" if match else ids[-1])
        else:
            ids.append(ids[-1][: _DIGITS.index(item[0])] + item[1:])
    return ids


def _put_chunks(data: dict[str, str], chunk: Callable[[int], str], text: str) -> None:
    """Replace the chunks of ``text`` (at most FIELD_MAX characters each, cut between items)."""
    for name in [name for name in data if _is_chunk(name, chunk)]:
        del data[name]
    chunks: list[str] = []
    for item in text.split():
        if chunks and len(chunks[-1]) + 1 + len(item) <= FIELD_MAX:
            chunks[-1] += " " + item
        else:
            chunks.append(item)
    for index, value in enumerate(chunks):
        data[chunk(index)] = value


def _get_chunks(data: dict[str, str], chunk: Callable[[int], str]) -> list[str]:
    items: list[str] = []
    index = 0
    while chunk(index) in data:
        items += data[chunk(index)].split()
        index += 1
    return items


def _store_offered(data: dict[str, str], ids: list[str]) -> None:
    """Code ``ids`` (without turn codes) into ``o``, ``o2``… of at most FIELD_MAX characters."""
    _put_chunks(data, _chunk, " ".join(_encode(ids)))


def _load_offered(data: dict[str, str]) -> list[str]:
    """The IDs :func:`_store_offered` stored (still without turn codes)."""
    return _decode(_get_chunks(data, _chunk))


def stored_version(data: dict[str, str]) -> int:
    """The layout of a stored session (see the module's docstring)."""
    if "v" not in data:
        return 3 if REV in data else 0
    try:
        return max(int(data["v"]), 0)
    except ValueError:
        return 0


def stored_rev(data: dict[str, str]) -> str:
    """The write counter of a stored session in any layout (what the scripts compare)."""
    return data.get(REV, data.get("rev", ""))


def seen_id(last7: str) -> str:
    """A message's id in ``seen``: the last 7 characters of its MessageSid, 7 hex digits (28 bits) as
    at most 5 base-62 digits; anything else (never a Twilio MessageSid) as it is."""
    try:
        value = int(last7, 16)
    except ValueError:
        return last7
    return _in_base(value, _BASE62) if len(last7) == 7 and last7.isalnum() else last7


def stored_seen(data: dict[str, str]) -> list[str]:
    """The short ids of the messages a stored session (any layout) has answered."""
    return data.get(SEEN, data.get("seen", "")).split()


def migrate(data: dict[str, str], default_language: str) -> tuple[dict[str, str], bool]:
    """The session in the current layout, and whether it had to be upgraded."""
    if not data:
        return data, False
    version = stored_version(data)
    migrated = version < CURRENT_VERSION
    while version < CURRENT_VERSION:
        data = MIGRATIONS[version](data, default_language)
        version += 1
    return data, migrated


class Session:
    """A mutable view of the stored hash (current layout); ``fields()`` is what gets written back."""

    def __init__(self, data: dict[str, str]) -> None:
        self.is_new = not data
        self.rev = data.get(REV, "")
        self._data = dict(data)

    def get(self, name: str, default: str = "") -> str:
        value = self._data.get(NAMES.get(name, name), default)
        return _STEP_NAMES.get(value, value) if name in _STEP_FIELDS else value

    def set(self, name: str, value: str | None) -> None:
        if value is None:
            self._data.pop(NAMES.get(name, name), None)
        else:
            self._data[NAMES.get(name, name)] = STEP_CODES.get(value, value) if name in _STEP_FIELDS else value

    @property
    def step(self) -> str:
        return self.get("step")

    @step.setter
    def step(self, name: str) -> None:
        self.set("step", name)

    @property
    def language(self) -> str:
        """The language spoken; empty (not stored): ``DEFAULT_LANGUAGE``."""
        return self.get("language")

    @language.setter
    def language(self, code: str) -> None:
        self.set("language", code or None)

    @property
    def turn(self) -> str:
        """The code carried by the buttons of the last reply (base 36, wraps at 4 digits)."""
        return self.get("turn", "0")

    def next_turn(self) -> str:
        value = (int(self.turn, 36) + 1) % 36**4 if _is_number(self.turn) else 1
        self.set("turn", _base36(value))
        return self.turn

    @property
    def offered(self) -> list[str]:
        """The IDs the last reply offered, each carrying the current turn code."""
        return [_with_turn(packed, self.turn) for packed in _load_offered(self._data)]

    @offered.setter
    def offered(self, button_ids: list[str]) -> None:
        """Store ``button_ids``; they must carry the current turn code (it is stored once, as ``turn``)."""
        _store_offered(self._data, [_strip_turn(packed) for packed in button_ids])

    def fields(self) -> dict[str, str]:
        """The hash to store: current layout, next ``rev``."""
        next_rev = str(int(self.rev) + 1) if _is_number(self.rev) and self.rev.isdigit() else "1"
        return {**self._data, REV: next_rev}
