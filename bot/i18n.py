"""Translations: gettext catalogs (Babel ``.po`` files), compiled in memory at start-up.

English is the source language. Every other language is a folder
``bot/translations/<code>/LC_MESSAGES/messages.po``; adding one is described in docs/languages.md.
"""

from __future__ import annotations

import gettext as _gettext
import io
import unicodedata
from dataclasses import dataclass
from pathlib import Path

from babel import Locale
from babel.messages.mofile import write_mo
from babel.messages.pofile import read_po
from babel.support import Translations

SOURCE_LANGUAGE = "en"
TRANSLATIONS_DIR = Path(__file__).parent / "translations"


def N_(message: str) -> str:
    """Mark a string for extraction without translating it yet (translated at render time)."""
    return message


def normalize(text: str) -> str:
    """Fold typed text for matching: case, accents, surrounding punctuation and spaces."""
    decomposed = unicodedata.normalize("NFKD", text.casefold())
    bare = "".join(c for c in decomposed if not unicodedata.combining(c))
    kept = "".join(c if (c.isalnum() or c.isspace()) else " " for c in bare)
    return " ".join(kept.split())


@dataclass(frozen=True)
class Translator:
    """One language: gettext plus the Babel locale used for dates and times."""

    code: str
    locale: Locale
    translations: _gettext.NullTranslations
    #: the language's name in itself, capitalised: ``English``, ``Español``
    language_name: str

    @classmethod
    def build(cls, code: str, translations: _gettext.NullTranslations) -> Translator:
        locale = Locale.parse(code)
        name = locale.get_display_name(code) or code
        return cls(code, locale, translations, name[:1].upper() + name[1:])

    def gettext(self, message: str) -> str:
        return self.translations.gettext(message)

    __call__ = gettext


def _compile(po_path: Path) -> Translations:
    with po_path.open("rb") as handle:
        catalog = read_po(handle, locale=po_path.parts[-3])
    buffer = io.BytesIO()
    write_mo(buffer, catalog)
    buffer.seek(0)
    return Translations(buffer)


class Catalogs:
    """Every available language, loaded once."""

    def __init__(self, translators: dict[str, Translator]) -> None:
        self._translators = translators
        self.languages = frozenset(translators)

    @classmethod
    def load(cls, directory: Path = TRANSLATIONS_DIR) -> Catalogs:
        translators = {SOURCE_LANGUAGE: Translator.build(SOURCE_LANGUAGE, _gettext.NullTranslations())}
        for po_path in sorted(directory.glob("*/LC_MESSAGES/messages.po")):
            code = po_path.parts[-3]
            translators[code] = Translator.build(code, _compile(po_path))
        return cls(translators)

    def get(self, code: str) -> Translator:
        return self._translators[code]

    def pick(self, code: str | None) -> str | None:
        """The supported language for a requested code (``es-ES`` → ``es``), or None."""
        if not code:
            return None
        primary = code.strip().replace("_", "-").split("-")[0].lower()
        return primary if primary in self.languages else None

    def all(self) -> list[Translator]:
        return [self._translators[code] for code in sorted(self.languages)]
