"""A customer's conversation with one business: one Redis hash, with readable field names (layout 4).

Fields: ``rev`` (write counter: a tap's write succeeds only if it is still the one loaded),
``step``, ``lang`` (the language spoken), ``turn`` (the code the last reply's button IDs carry),
``offered`` (those IDs), and the flows' own fields (:mod:`bot.flows.state`). The messages
already answered are remembered apart, longer than a session lives (:mod:`bot.store`). Fields
this release does not know are kept as they are.

The offered IDs are stored without their turn code (it is ``turn``), separated by spaces; an ID
whose head (everything up to its last ``:``) is the previous one's is written ``~`` and its last
part, so the service is not repeated along a list of its days or times:
``day1:cut:20260114 ~20260115 ~20260116 page1:more:1``. The list is cut into ``offered``,
``offered2``, … of at most 64 characters each, because Redis keeps a small hash in one compact
listpack only while every value is at most 64 bytes (``hash-max-listpack-value``); a hash past
that costs several times the memory.

Release 1's sessions (layout 3: one-letter names, coded offers) are read by :mod:`bot.legacy`.
"""

from __future__ import annotations

#: the longest value of a session field (Redis' default ``hash-max-listpack-value``)
FIELD_MAX = 64
REV = "rev"
_DIGITS = "0123456789abcdefghijklmnopqrstuvwxyz"
_OFFERED = "offered"
#: marks an ID written as its last part only: its head is the previous ID's (``~`` is never in an ID)
SAME_HEAD = "~"


def _is_number(value: str) -> bool:
    """Digits of base 36 (``isalnum`` also passes ``é`` and ``²``, which ``int`` refuses)."""
    return bool(value) and all(c in _DIGITS for c in value.lower())


def in_base(value: int, alphabet: str) -> str:
    """``value`` written with the digits of ``alphabet`` (base ``len(alphabet)``)."""
    digits = ""
    while True:
        value, digit = divmod(value, len(alphabet))
        digits = alphabet[digit] + digits
        if not value:
            return digits


def strip_turn(packed: str) -> str:
    """``svc1.4:cut`` → ``svc1:cut``."""
    head, sep, rest = packed.partition(":")
    return head.partition(".")[0] + sep + rest


def with_turn(packed: str, turn: str) -> str:
    head, sep, rest = packed.partition(":")
    return f"{head}.{turn}{sep}{rest}"


def _chunk(index: int) -> str:
    return _OFFERED if index == 0 else f"{_OFFERED}{index + 1}"


def _is_chunk(name: str) -> bool:
    return name == _OFFERED or (name.startswith(_OFFERED) and name[len(_OFFERED) :].isdigit())


def _head(packed: str) -> str:
    return packed[: packed.rfind(":") + 1]


def _shorten(ids: list[str]) -> list[str]:
    """``day1:cut:20260115`` after ``day1:cut:20260114`` → ``~20260115``."""
    items, previous = [], ""
    for packed in ids:
        head = _head(packed)
        items.append(SAME_HEAD + packed[len(head) :] if head and head == _head(previous) else packed)
        previous = packed
    return items


def put_offered(data: dict[str, str], ids: list[str]) -> None:
    """Store ``ids`` (without turn codes) in ``offered``, ``offered2``… of at most FIELD_MAX characters."""
    for name in [name for name in data if _is_chunk(name)]:
        del data[name]
    chunks: list[str] = []
    for item in _shorten(ids):
        if chunks and len(chunks[-1]) + 1 + len(item) <= FIELD_MAX:
            chunks[-1] += " " + item
        else:
            chunks.append(item)
    for index, value in enumerate(chunks):
        data[_chunk(index)] = value


def get_offered(data: dict[str, str]) -> list[str]:
    ids: list[str] = []
    index = 0
    while _chunk(index) in data:
        for item in data[_chunk(index)].split():
            if item.startswith(SAME_HEAD):  # a damaged list (nothing before it) just offers nonsense
                item = (_head(ids[-1]) if ids else "") + item[len(SAME_HEAD) :]
            ids.append(item)
        index += 1
    return ids


class Session:
    """A mutable view of the stored hash; :meth:`fields` is what gets written back."""

    def __init__(self, data: dict[str, str]) -> None:
        self.is_new = not data
        self.rev = data.get(REV, "")
        self._data = dict(data)
        self._loaded = data
        self._offered: list[str] | None = None  # decoded once, until set again

    def get(self, name: str, default: str = "") -> str:
        return self._data.get(name, default)

    def set(self, name: str, value: str | None) -> None:
        if value is None:
            self._data.pop(name, None)
        else:
            self._data[name] = value

    def loaded(self, name: str) -> str:
        """The value ``name`` had when the session was loaded (before this tap changed it)."""
        return self._loaded.get(name, "")

    @property
    def step(self) -> str:
        return self.get("step")

    @step.setter
    def step(self, name: str) -> None:
        self.set("step", name)

    @property
    def language(self) -> str:
        return self.get("lang")

    @language.setter
    def language(self, code: str) -> None:
        self.set("lang", code or None)

    @property
    def turn(self) -> str:
        """The code carried by the buttons of the last reply (base 36, wraps at 4 digits)."""
        return self.get("turn", "0")

    def next_turn(self) -> str:
        value = (int(self.turn, 36) + 1) % 36**4 if _is_number(self.turn) else 1
        self.set("turn", in_base(value, _DIGITS))
        return self.turn

    @property
    def offered(self) -> list[str]:
        """The IDs the last reply offered, each carrying the current turn code."""
        if self._offered is None:
            self._offered = get_offered(self._data)
        return [with_turn(packed, self.turn) for packed in self._offered]

    @offered.setter
    def offered(self, button_ids: list[str]) -> None:
        """Store ``button_ids``; they must carry the current turn code (it is stored once, as ``turn``)."""
        self._offered = [strip_turn(packed) for packed in button_ids]
        put_offered(self._data, self._offered)

    def fields(self) -> dict[str, str]:
        """The hash to store, with the next ``rev``."""
        next_rev = str(int(self.rev) + 1) if self.rev.isascii() and self.rev.isdigit() else "1"
        return {**self._data, REV: next_rev}
