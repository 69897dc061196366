"""Lists longer than WhatsApp's 10 options, split into pages with ``More`` and ``Back``."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TypeVar

from ..buttons import Button, LabelContext
from ..i18n import N_
from ..replies import MAX_OPTIONS

T = TypeVar("T")
_TITLES = {"more": N_("More"), "back": N_("Back")}


@dataclass(frozen=True)
class PageButton(Button, kind="page"):
    """``page1.7:more:1``: show page 1 of the current list."""

    direction: str  # more | back
    page: int

    def label(self, ctx: LabelContext) -> str:
        return ctx.t(_TITLES[self.direction])


def _start(page: int) -> int:
    """First item of ``page``: page 0 holds 9 items and More; later pages 8, More and Back."""
    return 0 if page == 0 else (MAX_OPTIONS - 1) + (MAX_OPTIONS - 2) * (page - 1)


def last_page(count: int) -> int:
    if count <= MAX_OPTIONS:
        return 0
    page = 1
    while count - _start(page) > MAX_OPTIONS - 1:
        page += 1
    return page


def paginate(items: Sequence[T], page: int) -> tuple[list[T], list[PageButton]]:
    """The items of ``page`` (clamped to the pages there are) and its More/Back buttons."""
    if len(items) <= MAX_OPTIONS:
        return list(items), []
    page = max(0, min(page, last_page(len(items))))
    start = _start(page)
    if page == 0:
        return list(items[: MAX_OPTIONS - 1]), [PageButton("more", 1)]
    if page == last_page(len(items)):
        return list(items[start:]), [PageButton("back", page - 1)]
    return list(items[start : start + MAX_OPTIONS - 2]), [PageButton("more", page + 1), PageButton("back", page - 1)]
