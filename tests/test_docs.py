"""The documentation: a README that fits on two screens, pages whose relative links all lead
somewhere (a file, and a heading of it for a ``#anchor``), and tables that are the code's own:
the settings (``bot.docs.settings_table``), the catalog's fields, the test command CI runs."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import pytest

from bot.booking.catalog import _BusinessSchema, _ServiceSchema
from bot.docs import settings_table

ROOT = Path(__file__).parents[1]
README = ROOT / "README.md"
DOCS = ROOT / "docs"
PAGES = [README, *sorted(DOCS.glob("*.md"))]

FENCE = re.compile(r"^ *(```|~~~).*?^ *\1 *$", re.M | re.S)
COMMENT = re.compile(r"<!--.*?-->", re.S)
CODE_SPAN = re.compile(r"(`+)(?!`).*?(?<!`)\1(?!`)", re.S)
LINK = re.compile(r"!?\[(?:[^\[\]]|\[[^\]]*\])*\]\(\s*<?([^)\s>]+)>?(?:\s+\"[^\"]*\")?\s*\)")
HEADING = re.compile(r"^ {0,3}(#{1,6})\s+(.*?)\s*#*\s*$", re.M)


def slug(heading: str) -> str:
    """GitHub's anchor for a heading: its text lower-cased, punctuation other than '-' and '_'
    dropped, each space a '-'."""
    text = re.sub(r"!?\[([^\]]*)\]\([^)]*\)", r"\1", heading)  # a link's text only
    text = re.sub(r"<[^>]+>", "", text).replace("`", "").lower()
    return re.sub(r"[^\w\- ]", "", text).replace(" ", "-")


def anchors(page: Path) -> set[str]:
    """Every anchor the page's headings make; a repeated one gets -1, -2… as on GitHub."""
    found: set[str] = set()
    counts: dict[str, int] = {}
    for match in HEADING.finditer(FENCE.sub("", page.read_text())):
        base = slug(match.group(2))
        n = counts.get(base, 0)
        counts[base] = n + 1
        found.add(base if n == 0 else f"{base}-{n}")
    return found


def links(page: Path) -> list[str]:
    """The targets of the page's Markdown links and images, outside code and HTML comments."""
    text = CODE_SPAN.sub("", COMMENT.sub("", FENCE.sub("", page.read_text())))
    return [match.group(1) for match in LINK.finditer(text)]


def broken(page: Path) -> list[str]:
    problems = []
    for target in links(page):
        if re.match(r"[a-z][a-z0-9+.-]*:", target, re.I) or target.startswith("//"):
            continue  # https:, mailto:…: not a file of this repository
        path, _, anchor = target.partition("#")
        file = (page.parent / path).resolve() if path else page
        if not file.exists():
            problems.append(f"{target}: no such file")
        elif anchor and file.suffix == ".md" and anchor not in anchors(file):
            problems.append(f"{target}: no heading of {file.name} makes #{anchor}")
    return problems


def test_the_readme_fits_on_two_screens() -> None:
    assert len(README.read_text().splitlines()) <= 100


@pytest.mark.parametrize("page", PAGES, ids=[str(page.relative_to(ROOT)) for page in PAGES])
def test_every_relative_link_leads_to_a_file_and_heading(page: Path) -> None:
    assert not broken(page)


def test_the_link_check_finds_what_is_broken(tmp_path: Path) -> None:
    (tmp_path / "other.md").write_text("# The catalog (`BOT_CATALOG`)\n\n## Setup\n\n## Setup\n")
    page = tmp_path / "page.md"
    page.write_text(
        "# Here\n\n[ok](other.md#the-catalog-bot_catalog) [ok](other.md#setup-1) [ok](#here)\n"
        "[no file](missing.md) [no heading](other.md#nope) ![no image](img/try.png)\n"
        "[web](https://example.com/x.md) `[code](missing.md)`\n\n```\n[fenced](missing.md)\n```\n"
        "<!-- [commented](missing.md) -->\n"
    )
    assert broken(page) == [
        "missing.md: no such file",
        "other.md#nope: no heading of other.md makes #nope",
        "img/try.png: no such file",
    ]


@pytest.mark.parametrize(
    ("heading", "anchor"),
    [
        ("The catalog (`BOT_CATALOG`)", "the-catalog-bot_catalog"),
        ("What happens on a tap (`POST /webhook`)", "what-happens-on-a-tap-post-webhook"),
        ("The owner's page (`/admin`)", "the-owners-page-admin"),
        ("What a failover can lose, and `WAIT`", "what-a-failover-can-lose-and-wait"),
        ("The 24-hour rule", "the-24-hour-rule"),
    ],
)
def test_anchors_are_githubs(heading: str, anchor: str) -> None:
    assert slug(heading) == anchor


def test_the_settings_page_shows_the_table_of_the_code() -> None:
    page = (DOCS / "settings.md").read_text()
    shown = page.split("<!-- settings-table -->\n", 1)[1].split("\n<!-- /settings-table -->", 1)[0]
    assert shown == settings_table(), "docs/settings.md is out of date: paste bot.docs.settings_table()"


def test_the_catalog_page_documents_every_field() -> None:
    """Every field the catalog's schema reads is shown as a key of its table in the sample."""
    page = (DOCS / "catalog.md").read_text()
    sample = page.split("```toml\n", 1)[1].split("\n```", 1)[0]
    tables = dict(re.findall(r"^\[+(\w+)\]+[^\n]*\n(.*?)(?=^\[|\Z)", sample, re.M | re.S))
    for table, schema in (("business", _BusinessSchema), ("services", _ServiceSchema)):
        keys = [field.data_key or name for name, field in schema._declared_fields.items()]
        missing = [key for key in keys if not re.search(rf"^(# )?{key} = ", tables[table], re.M)]
        assert not missing, f"docs/catalog.md's [{table}] lacks {missing}"


def test_ci_finds_the_test_command_in_the_readme() -> None:
    """.ci/run reads the README's test command with sed; the README keeps it where sed looks."""
    block = subprocess.run(
        ["sed", "-n", "/<!-- test-command -->/,/^```$/p", str(README)], capture_output=True, text=True, check=True
    ).stdout
    command = [line for line in block.splitlines() if not line.startswith("```") and "<!--" not in line]
    assert command == [
        "python3 -m venv .venv && .venv/bin/pip install -r requirements-dev.txt && .venv/bin/python -m pytest"
    ]
    assert "sed -n '/<!-- test-command -->/,/^```$/p' README.md" in (ROOT / ".ci" / "run").read_text()
