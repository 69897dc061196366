"""The handler registry: steps that render prompts, and handlers keyed by button kind.

As in python-telegram-bot, a handler has a check and a handle step; the first handler
of a button's kind whose check passes wins, and an explicit fallback takes the rest
(typed text nothing understood, stale or tampered buttons).
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Literal, TypeVar

from .booking.store import Read
from .buttons import Button
from .i18n import Catalogs, normalize
from .replies import Reply

if TYPE_CHECKING:
    from .tenants import Tenant
    from .turn import Turn

B = TypeVar("B", bound=Button)


@dataclass(frozen=True)
class Unmatched:
    """Input that names no usable button. ``reason`` says why."""

    reason: Literal["unrecognized", "long", "stale", "invalid", "media"]


Action = Button | Unmatched
Render = Callable[["Turn"], Reply]
Handle = Callable[["Turn", B], Reply]
Check = Callable[["Turn", B], bool]
Fallback = Callable[["Turn", Unmatched], Reply]
#: what a tap of a button will read, known from the button alone: (business, button, phone, now) → reads
ReadAheadPlan = Callable[["Tenant", B, str, datetime], list[Read]]


@dataclass(frozen=True)
class Handler:
    name: str
    handle: Handle
    check: Check | None = None

    def matches(self, turn: Turn, button: Button) -> bool:
        return self.check is None or bool(self.check(turn, button))


class Registry:
    """Steps, handlers and keywords of the conversation, assembled once at start-up."""

    def __init__(self, start_step: str) -> None:
        self.start_step = start_step
        self._steps: dict[str, Render] = {}
        self._back: dict[str, str | Render] = {}
        self._handlers: dict[str, list[Handler]] = defaultdict(list)
        self._fallback: Fallback | None = None
        self._keywords: list[tuple[str, Button]] = []
        self._read_ahead: dict[str, ReadAheadPlan] = {}
        self.start_button: Button | None = None

    # -- registration ---------------------------------------------------------------
    def step(self, name: str, *, back: str | Render | None = None) -> Callable[[Render], Render]:
        """Register a step's prompt; ``back`` is where "back" leads: a step, or a handler."""

        def register(render: Render) -> Render:
            if name in self._steps:
                raise ValueError(f"step {name!r} registered twice")
            self._steps[name] = render
            if back is not None:
                self._back[name] = back
            return render

        return register

    def on(self, button_type: type[B], *, check: Check | None = None) -> Callable[[Handle], Handle]:
        def register(handle: Handle) -> Handle:
            self._handlers[button_type.kind].append(Handler(handle.__name__, handle, check))
            return handle

        return register

    def read_ahead(self, button_type: type[B]) -> Callable[[ReadAheadPlan], ReadAheadPlan]:
        """Register what a tap of ``button_type`` will read, so the engine's load fetches it too."""

        def register(plan: ReadAheadPlan) -> ReadAheadPlan:
            self._read_ahead[button_type.kind] = plan
            return plan

        return register

    def fallback(self, handle: Fallback) -> Fallback:
        self._fallback = handle
        return handle

    def keyword(self, words: str, button: Button) -> None:
        """Typed words (a gettext msgid: comma-separated, translated per language) → a button."""
        self._keywords.append((words, button))

    def keyword_languages(self, catalogs: Catalogs) -> dict[str, frozenset[str]]:
        """Each keyword (normalized) → the languages it is a word of (``hola`` → es; ``menu`` → en,
        es: ``menú`` folds to it); built once at start-up."""
        found: dict[str, set[str]] = {}
        for words, _ in self._keywords:
            for translator in catalogs.all():
                for word in translator.gettext(words).split(","):
                    if normalize(word):
                        found.setdefault(normalize(word), set()).add(translator.code)
        return {word: frozenset(codes) for word, codes in found.items()}

    def compile_keywords(self, catalogs: Catalogs) -> dict[str, Button]:
        """Every keyword in every language, normalized; built once at start-up."""
        compiled: dict[str, Button] = {}
        for words, button in self._keywords:
            for translator in catalogs.all():
                for word in translator.gettext(words).split(","):
                    if normalize(word):
                        compiled.setdefault(normalize(word), button)
        return compiled

    def validate(self) -> None:
        if self.start_step not in self._steps:
            raise ValueError(f"start step {self.start_step!r} is not registered")
        if self._fallback is None or self.start_button is None:
            raise ValueError("the registry needs a fallback and a start button")

    # -- use ------------------------------------------------------------------------
    def has_step(self, name: str) -> bool:
        return name in self._steps

    def plan_reads(self, button: Button, shop: Tenant, phone: str, now: datetime) -> list[Read]:
        plan = self._read_ahead.get(button.kind)
        return plan(shop, button, phone, now) if plan else []

    def render(self, step: str, turn: Turn) -> Reply:
        return self._steps[step](turn)

    def go_back(self, turn: Turn) -> Reply:
        """One screen back from the current step (the start step has nowhere further to go)."""
        target = self._back.get(turn.session.step, self.start_step)
        return target(turn) if callable(target) else turn.goto(target)

    def dispatch(self, turn: Turn, action: Action) -> tuple[str, Reply, Unmatched | None]:
        """The handler that ran, its reply, and what the fallback was given (None if no fallback)."""
        if isinstance(action, Button):
            for handler in self._handlers.get(action.kind, ()):
                if handler.matches(turn, action):
                    return handler.name, handler.handle(turn, action), None
            action = Unmatched("invalid")
        assert self._fallback is not None
        return self._fallback.__name__, self._fallback(turn, action), action
