"""Replies as Twilio Content API messages: generic templates filled with content variables.

WhatsApp's interactive messages have a fixed shape per template, so the bot keeps one
generic template per option count (the friendly names below), created by
``flask --app wsgi templates sync``:

- ``tapbook_buttons<n>_v1`` (n = 1…3): ``twilio/quick-reply``, body ``{{1}}``, then per button
  a title and an id variable;
- ``tapbook_list<n>_v1`` (n = 4…10): ``twilio/list-picker``, body ``{{1}}``, the list's
  button label ``{{2}}``, then per item its title, id and description variables.

A reply without options is sent as plain ``Body`` text (in-session free-form text needs no
template). Every value is clipped to WhatsApp's limit, so a long translation can never
make Twilio refuse a message; the tests walk the conversation in every language and fail
if anything would be clipped. The ``_v1`` suffix is bumped whenever a template's shape
changes, so a sync creates the new shape next to the old one and running apps keep working.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from typing import Any

from ..i18n import N_, Translator
from ..replies import EMPTY_TWIML
from . import Outgoing, Rendered

log = logging.getLogger(__name__)

BODY_MAX = 1024  # quick-reply and list-picker body
TEXT_MAX = 1600  # free-form Body
BUTTON_TITLE_MAX = 20
LIST_BUTTON_MAX = 20
ITEM_MAX = 24
DESCRIPTION_MAX = 72
ID_MAX = 200
MAX_BUTTONS = 3
MAX_ITEMS = 10
VERSION = 1

#: the list picker's button, which opens the list
CHOOSE = N_("Choose")
#: an item's description: the typed alternative to tapping it
OR_TYPE = N_("or type {number}")


@dataclass(frozen=True)
class Template:
    """One generic content template, as ``POST /v1/Content`` takes it."""

    friendly_name: str
    content_type: str
    options: int

    def definition(self) -> dict[str, Any]:
        """The JSON body that creates this template (sample values for every variable)."""
        variables: dict[str, str] = {"1": "Which one would you like?"}
        if self.content_type == "twilio/quick-reply":
            actions = []
            for n in range(1, self.options + 1):
                title, ident = button_keys(n)
                variables[title], variables[ident] = f"Option {n}", f"opt{n}"
                actions.append({"title": slot(title), "id": slot(ident)})
            types: dict[str, Any] = {"body": "{{1}}", "actions": actions}
        else:
            variables["2"] = "Choose"
            items = []
            for n in range(1, self.options + 1):
                item, ident, description = item_keys(n)
                variables[item], variables[ident], variables[description] = f"Option {n}", f"opt{n}", f"or type {n}"
                items.append({"item": slot(item), "id": slot(ident), "description": slot(description)})
            types = {"body": "{{1}}", "button": "{{2}}", "items": items}
        return {
            "friendly_name": self.friendly_name,
            "language": "en",
            "variables": variables,
            "types": {self.content_type: types},
        }


def slot(key: str) -> str:
    """A content variable placeholder: ``{{key}}``."""
    return "{{" + key + "}}"


def button_keys(n: int) -> tuple[str, str]:
    """Variable names of quick-reply button ``n`` (1-based): title, id."""
    return str(2 * n), str(2 * n + 1)


def item_keys(n: int) -> tuple[str, str, str]:
    """Variable names of list item ``n`` (1-based): item, id, description."""
    return str(3 * n), str(3 * n + 1), str(3 * n + 2)


def template_for(options: int) -> Template:
    if 1 <= options <= MAX_BUTTONS:
        return Template(f"tapbook_buttons{options}_v{VERSION}", "twilio/quick-reply", options)
    if MAX_BUTTONS < options <= MAX_ITEMS:
        return Template(f"tapbook_list{options}_v{VERSION}", "twilio/list-picker", options)
    raise ValueError(f"no template for {options} options")


TEMPLATES: tuple[Template, ...] = tuple(template_for(n) for n in range(1, MAX_ITEMS + 1))


def clip(text: str, limit: int, what: str) -> str:
    """``text`` within ``limit`` characters; a clipped value ends with an ellipsis and is logged."""
    if len(text) <= limit:
        return text
    log.warning("%s longer than WhatsApp's %d characters, clipped: %r", what, limit, text[:40])
    return text[: limit - 1] + "…"


def content_message(reply: Outgoing, t: Translator) -> dict[str, Any]:
    """The outbox message for ``reply``: ``{"body"}`` or ``{"template", "variables"}``."""
    count = len(reply.options)
    if count == 0:
        return {"body": clip(reply.text, TEXT_MAX, "text")}
    template = template_for(count)
    variables = {"1": clip(reply.text, BODY_MAX, "body")}
    for n, option in enumerate(reply.options, start=1):
        if len(option.id) > ID_MAX:
            raise ValueError(f"button id longer than {ID_MAX} characters: {option.id[:40]}…")
        if template.content_type == "twilio/quick-reply":
            title, ident = button_keys(n)
            variables[title] = clip(option.title, BUTTON_TITLE_MAX, "button title")
        else:
            title, ident, description = item_keys(n)
            variables[title] = clip(option.title, ITEM_MAX, "list item")
            variables[description] = clip(t(OR_TYPE).format(number=n), DESCRIPTION_MAX, "description")
        variables[ident] = option.id
    if template.content_type == "twilio/list-picker":
        variables["2"] = clip(t(CHOOSE), LIST_BUTTON_MAX, "list button")
    return {"template": template.friendly_name, "variables": variables}


def preview(message: dict[str, Any]) -> str:
    """A content message as a terminal shows it: the body, then ``[Title]`` per button or item."""
    if "body" in message:
        return str(message["body"])
    template = next(t for t in TEMPLATES if t.friendly_name == message["template"])
    variables = message["variables"]
    keys = button_keys if template.content_type == "twilio/quick-reply" else item_keys
    titles = [variables[keys(n)[0]] for n in range(1, template.options + 1)]
    return variables["1"] + "\n\n" + "  ".join(f"[{title}]" for title in titles)


class ContentChannel:
    """The webhook answers ``<Response/>``; the reply goes to the outbox as a content message, with
    the sender it must leave from (``from``: the business's number or Messaging Service)."""

    out_of_band = True

    def render(self, reply: Outgoing, t: Translator, sender: str = "") -> Rendered:
        message = content_message(reply, t)
        if sender:
            message["from"] = sender
        return Rendered(EMPTY_TWIML, json.dumps(message, ensure_ascii=False, separators=(",", ":")))
