"""Every customer-facing string is translated in every language we ship."""

from __future__ import annotations

from pathlib import Path

import pytest
from babel.messages.extract import extract_from_dir
from babel.messages.pofile import read_po

from bot.i18n import TRANSLATIONS_DIR, Catalogs

ROOT = Path(__file__).resolve().parent.parent
KEYWORDS = {"N_": None, "t": None, "gettext": None}


def source_messages() -> set[str]:
    found = extract_from_dir(ROOT / "bot", method_map=[("**.py", "python")], keywords=KEYWORDS, comment_tags=())
    return {message for _file, _line, message, _comments, _context in found if isinstance(message, str)}


def test_english_spanish_and_portuguese_are_shipped() -> None:
    assert {"en", "es", "pt"} <= Catalogs.load().languages


@pytest.mark.parametrize(
    "po_path", sorted(TRANSLATIONS_DIR.glob("*/LC_MESSAGES/messages.po")), ids=lambda p: p.parts[-3]
)
def test_every_message_has_a_translation(po_path: Path) -> None:
    with po_path.open("rb") as handle:
        catalog = read_po(handle)
    translated = {m.id for m in catalog if m.id and m.string and not m.fuzzy}
    missing = source_messages() - translated
    assert not missing, f"{po_path.parts[-3]} lacks: {sorted(missing)}"


def test_placeholders_survive_translation() -> None:
    catalogs = Catalogs.load()
    for translator in catalogs.all():
        assert "{name}" in translator.gettext("Hi {name}! 👋")
