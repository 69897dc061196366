"""Typed button IDs, packed into the ``id`` of a WhatsApp quick-reply button or list item.

Grammar (documented in docs/architecture.md, "Button IDs")::

    button-id = kind version [ "." turn ] *( ":" field )   ; at most 128 characters
    kind      = 1*8 ( "a"-"z" )                          ; names the handler family
    version   = 1*2 DIGIT                                ; bumped when the fields change
    turn      = 1*4 ( DIGIT / "a"-"z" )                  ; which reply offered it
    field     = *64 ( ALPHA / DIGIT / "_" / "-" / "+" / "." )

Examples: ``nav1.3:menu``, ``lang1.3:es``, ``svc1.4:cut``. A subclass declares its kind and
fields, like aiogram's ``CallbackData``; ``pack()`` fails loudly on a value that would not
round-trip. The turn code ties a button to the reply that offered it: the engine accepts a
step-bound button only if the current step offered exactly that ID.
"""

from __future__ import annotations

import dataclasses
import re
import typing
from typing import Any, ClassVar, Protocol

from .errors import BadButtonId

MAX_ID_LENGTH = 128
MAX_TITLE_LENGTH = 20
SEPARATOR = ":"
_HEAD = re.compile(r"([a-z]{1,8})([0-9]{1,2})(?:\.[0-9a-z]{1,4})?")
_TURN = re.compile(r"[0-9a-z]{1,4}")
_FIELD = re.compile(r"[A-Za-z0-9_+.\-]{0,64}")

_KINDS: dict[str, type[Button]] = {}


class LabelContext(Protocol):
    """What a button needs to name itself: the customer's translator, the catalogs, the business."""

    @property
    def t(self) -> Any: ...

    @property
    def catalogs(self) -> Any: ...

    @property
    def shop(self) -> Any: ...


class Button:
    """Base of every button ID. Subclasses are frozen dataclasses of ``str``/``int`` fields.

    ``step_bound`` buttons are accepted only while the current step offers them; the
    others (menu, help, language) work from any old message.
    """

    kind: ClassVar[str]
    version: ClassVar[int]
    step_bound: ClassVar[bool]
    _fields: ClassVar[tuple[tuple[str, type], ...]]

    def __init_subclass__(cls, *, kind: str, version: int = 1, step_bound: bool = True) -> None:
        super().__init_subclass__()
        if not re.fullmatch(r"[a-z]{1,8}", kind) or not 0 <= version <= 99:
            raise ValueError(f"bad button kind/version: {kind!r} {version!r}")
        if kind in _KINDS:
            raise ValueError(f"button kind {kind!r} is already used by {_KINDS[kind].__name__}")
        cls.kind, cls.version, cls.step_bound = kind, version, step_bound
        _KINDS[kind] = cls

    @classmethod
    def _field_types(cls) -> tuple[tuple[str, type], ...]:
        if "_fields" not in cls.__dict__:
            hints = typing.get_type_hints(cls)
            cls._fields = tuple((f.name, hints[f.name]) for f in dataclasses.fields(cls))  # type: ignore[arg-type]
        return cls._fields

    def pack(self, turn: str = "") -> str:
        """The ID, carrying ``turn`` (the code of the reply that offers it) when given."""
        if turn and not _TURN.fullmatch(turn):
            raise ValueError(f"bad turn code {turn!r}")
        parts = [f"{self.kind}{self.version}" + (f".{turn}" if turn else "")]
        for name, _ in self._field_types():
            value = str(getattr(self, name))
            if not _FIELD.fullmatch(value):
                raise ValueError(f"{type(self).__name__}.{name}={value!r} cannot be packed")
            parts.append(value)
        packed = SEPARATOR.join(parts)
        if len(packed) > MAX_ID_LENGTH:
            raise ValueError(f"button id longer than {MAX_ID_LENGTH} characters: {packed[:40]}…")
        return packed

    @staticmethod
    def unpack(payload: str) -> Button:
        """The button a packed ID names; BadButtonId for anything this release did not pack."""
        if len(payload) > MAX_ID_LENGTH:
            raise BadButtonId("too long", payload=payload)
        head, *values = payload.split(SEPARATOR)
        match = _HEAD.fullmatch(head)
        if match is None:
            raise BadButtonId("malformed", payload=payload)
        cls = _KINDS.get(match[1])
        if cls is None:
            raise BadButtonId("unknown kind", payload=payload)
        if int(match[2]) != cls.version:
            raise BadButtonId("outdated version", payload=payload)
        spec = cls._field_types()
        if len(values) != len(spec) or not all(_FIELD.fullmatch(v) for v in values):
            raise BadButtonId("wrong fields", payload=payload)
        try:
            return cls(**{name: kind(value) for (name, kind), value in zip(spec, values, strict=True)})
        except (TypeError, ValueError):
            raise BadButtonId("wrong field type", payload=payload) from None

    def label(self, ctx: LabelContext) -> str:
        """The button's title in the customer's language (≤ 20 characters)."""
        raise NotImplementedError


def without_turn(payload: str) -> str:
    """``svc1.4:cut`` → ``svc1:cut``: what the button does, whichever reply offered it."""
    head, sep, rest = payload.partition(SEPARATOR)
    return head.partition(".")[0] + sep + rest


def known_kinds() -> dict[str, type[Button]]:
    return dict(_KINDS)
