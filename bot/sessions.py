"""A customer's conversation state (one Redis hash) and the upgrades of older layouts.

Fields: ``v`` schema version, ``rev`` write counter (optimistic versioning), ``language``,
``step``, ``opts`` (the button IDs offered by the last reply, space-separated), ``turn``
(the turn code those IDs carry); flows add their own. Fields this release does not know
are kept as they are.
"""

from __future__ import annotations

from collections.abc import Callable

CURRENT_VERSION = 1

Migration = Callable[[dict[str, str], str], dict[str, str]]


def _v0_to_v1(data: dict[str, str], default_language: str) -> dict[str, str]:
    """Sessions of the seed service: no ``v`` and no ``language``."""
    upgraded = dict(data)
    upgraded.setdefault("language", default_language)
    upgraded.setdefault("step", "menu")
    return upgraded


#: ``MIGRATIONS[n]`` turns a version-n session into version n+1.
MIGRATIONS: dict[int, Migration] = {0: _v0_to_v1}


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
        return self._data.get("opts", "").split()

    @offered.setter
    def offered(self, button_ids: list[str]) -> None:
        self._data["opts"] = " ".join(button_ids)

    def fields(self) -> dict[str, str]:
        """The hash to store: current version, next ``rev``."""
        next_rev = str(int(self.rev) + 1) if self.rev.isdigit() else "1"
        return {**self._data, "v": str(CURRENT_VERSION), "rev": next_rev}
