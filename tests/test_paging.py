"""Long lists split into pages of at most 10 options, walked with More and Back."""

from __future__ import annotations

import pytest

from bot.flows.paging import PageButton, last_page, paginate
from bot.replies import MAX_OPTIONS

COUNTS = [0, 1, 3, 9, 10, 11, 30]


def walk(items: list[int]) -> list[tuple[list[int], list[PageButton]]]:
    """Every page reached from page 0 by pressing More, in order."""
    pages = [paginate(items, 0)]
    while True:
        more = [b for b in pages[-1][1] if b.direction == "more"]
        if not more:
            return pages
        assert len(more) == 1
        assert more[0].page == len(pages), "More leads to the next page"
        pages.append(paginate(items, more[0].page))
        assert len(pages) <= len(items), "More never stops"


@pytest.mark.parametrize("count", COUNTS)
def test_every_page_fits_in_one_list(count: int) -> None:
    items = list(range(count))
    for page in range(last_page(count) + 2):
        shown, buttons = paginate(items, page)
        assert len(shown) + len(buttons) <= MAX_OPTIONS


@pytest.mark.parametrize("count", COUNTS)
def test_more_visits_every_item_once_in_order(count: int) -> None:
    items = [f"item{i}" for i in range(count)]
    pages = walk(items)
    assert [item for shown, _ in pages for item in shown] == items
    assert len(pages) == last_page(count) + 1


@pytest.mark.parametrize("count", COUNTS)
def test_back_leads_to_the_previous_page(count: int) -> None:
    items = list(range(count))
    pages = walk(items)
    assert not [b for b in pages[0][1] if b.direction == "back"]  # nothing before page 0
    for k, (_, buttons) in enumerate(pages[1:], start=1):
        back = [b for b in buttons if b.direction == "back"]
        assert back == [PageButton("back", k - 1)]
        assert paginate(items, back[0].page) == pages[k - 1]


@pytest.mark.parametrize("count", [c for c in COUNTS if c <= MAX_OPTIONS])
def test_short_lists_have_no_paging_buttons(count: int) -> None:
    items = list(range(count))
    assert paginate(items, 0) == (items, [])
    assert paginate(items, 3) == (items, [])


@pytest.mark.parametrize("count", COUNTS)
def test_an_out_of_range_page_is_the_last_page(count: int) -> None:
    items = list(range(count))
    last = paginate(items, last_page(count))
    assert paginate(items, last_page(count) + 1) == last
    assert paginate(items, 999) == last
    assert walk(items)[-1] == last


@pytest.mark.parametrize("count", COUNTS)
def test_a_negative_page_is_the_first_page(count: int) -> None:
    items = list(range(count))
    assert paginate(items, -1) == paginate(items, 0)


def test_page_0_of_11_is_9_items_and_more() -> None:
    items = list(range(11))
    assert paginate(items, 0) == (list(range(9)), [PageButton("more", 1)])
    assert paginate(items, 1) == ([9, 10], [PageButton("back", 0)])


def test_a_middle_page_has_8_items_more_and_back() -> None:
    items = list(range(30))
    assert paginate(items, 1) == (list(range(9, 17)), [PageButton("more", 2), PageButton("back", 0)])
    assert [len(shown) for shown, _ in walk(items)] == [9, 8, 8, 5]


def test_the_input_is_not_changed() -> None:
    items = tuple(range(30))
    shown, _ = paginate(items, 1)
    shown.clear()
    assert items == tuple(range(30))
