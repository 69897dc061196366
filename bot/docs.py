"""Tables of the documentation rendered from the code, so the two cannot drift apart.

``docs/settings.md`` shows :func:`settings_table` between ``<!-- settings-table -->`` markers
(``tests/test_docs.py`` checks it); the key table of ``docs/architecture.md`` is
:func:`bot.keys.key_table`.
"""

from __future__ import annotations

from dataclasses import MISSING, Field, fields
from typing import Any

from .config import Settings


def _default(f: Field[Any]) -> str:
    if "shown" in f.metadata:
        return str(f.metadata["shown"])
    value = f.default if f.default is not MISSING else None
    if value is None or value == () or value == {} or f.default_factory is not MISSING:
        return "unset"
    if isinstance(value, bool):
        return f"`{str(value).lower()}`"
    return f"`{value}`"


def _cell(text: str) -> str:
    return " ".join(text.split()).replace("|", "\\|")


def settings_table() -> str:
    """Every setting of :class:`bot.config.Settings` as a Markdown table: name, default, meaning."""
    rows = ["| Setting | Default | Meaning |", "|---|---|---|"]
    for f in fields(Settings):
        name = f"{f.metadata['prefix']}<ID>" if "prefix" in f.metadata else f.name.upper()
        rows.append(f"| `{name}` | {_default(f)} | {_cell(f.metadata['help'])} |")
    return "\n".join(rows)
