"""The Lua scripts the bot runs in Redis, kept as ``.lua`` files next to this module.

``booking.lua`` is a library of the rules every booking write re-checks; each script that uses it
is registered as the library followed by its own body (Redis runs a script as one chunk).
"""

from __future__ import annotations

from functools import cache
from pathlib import Path
from typing import Any

_HERE = Path(__file__).parent


@cache
def source(name: str) -> str:
    """The text of ``<name>.lua``."""
    return (_HERE / f"{name}.lua").read_text()


def with_booking_rules(name: str) -> str:
    """Script ``name`` preceded by the booking library it calls."""
    return source("booking") + "\n" + source(name)


class Scripts:
    """Every script of the bot, registered once per Redis client (redis-py's ``Script``: EVALSHA,
    loading the body again when a restarted or new server does not know it)."""

    def __init__(self, client: Any) -> None:
        self.tap = client.register_script(with_booking_rules("tap"))
        self.write = client.register_script(with_booking_rules("write"))
        self.adopt = client.register_script(with_booking_rules("adopt"))
        self.upcoming = client.register_script(source("upcoming"))
