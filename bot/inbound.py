"""The inbound webhook form, parsed with marshmallow into an :class:`InboundMessage`.

Twilio adds parameters without notice, so unknown fields are ignored (``EXCLUDE``);
the signature has already been checked over all of them.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from marshmallow import EXCLUDE, Schema, ValidationError, fields, post_load, validate
from werkzeug.datastructures import MultiDict

from .errors import MalformedMessage

E164 = re.compile(r"\+[1-9][0-9]{6,14}")
MESSAGE_SID = re.compile(r"[A-Z]{2}[0-9a-f]{32}")
MAX_BODY = 4096  # WhatsApp's limit for a text message (1600 is Twilio's for what it sends)


@dataclass(frozen=True)
class InboundMessage:
    """One customer message: a typed text or a tapped button."""

    message_sid: str
    phone: str  # +E164, without the "whatsapp:" channel prefix
    to: str = ""
    body: str = ""
    button_payload: str = ""
    button_text: str = ""
    list_id: str = ""
    profile_name: str = ""
    wa_id: str = ""
    message_type: str = ""
    original_replied_message_sid: str = ""


class WhatsAppAddress(fields.String):
    """``whatsapp:+E164`` → ``+E164``."""

    default_error_messages = {"invalid_address": "must be whatsapp:+<E.164 phone number>"}

    def _deserialize(self, value: Any, attr: str | None, data: Any, **kwargs: Any) -> str:
        text = super()._deserialize(value, attr, data, **kwargs)
        channel, _, number = text.partition(":")
        if channel != "whatsapp" or not E164.fullmatch(number):
            raise self.make_error("invalid_address")
        return number


def _text(limit: int, *, data_key: str) -> fields.String:
    return fields.String(load_default="", validate=validate.Length(max=limit), data_key=data_key)


class InboundMessageSchema(Schema):
    class Meta:
        unknown = EXCLUDE

    message_sid = fields.String(
        required=True,
        data_key="MessageSid",
        validate=validate.Regexp(MESSAGE_SID.pattern + r"\Z", error="must be a Twilio message SID"),
    )
    phone = WhatsAppAddress(required=True, data_key="From")
    to = _text(64, data_key="To")
    body = _text(MAX_BODY, data_key="Body")
    button_payload = _text(256, data_key="ButtonPayload")
    button_text = _text(256, data_key="ButtonText")
    list_id = _text(256, data_key="ListId")
    profile_name = _text(256, data_key="ProfileName")
    wa_id = fields.String(load_default="", data_key="WaId", validate=validate.Regexp(r"[0-9]{0,20}\Z"))
    message_type = _text(32, data_key="MessageType")
    original_replied_message_sid = _text(64, data_key="OriginalRepliedMessageSid")

    @post_load
    def make_message(self, data: dict[str, Any], **kwargs: Any) -> InboundMessage:
        return InboundMessage(**data)


_SCHEMA = InboundMessageSchema()
_KNOWN = frozenset(f.data_key for f in _SCHEMA.fields.values())


def parse_inbound(form: MultiDict[str, str] | Mapping[str, str]) -> InboundMessage:
    """The message in ``form``, or MalformedMessage with a short reason for the sender."""
    if isinstance(form, MultiDict):
        for key in _KNOWN:
            if key is not None and len(form.getlist(key)) > 1:
                raise MalformedMessage(f"{key}: given more than once", field=key)
        form = form.to_dict(flat=True)
    try:
        return _SCHEMA.load(form)
    except ValidationError as exc:
        key, problems = next(iter(sorted(exc.normalized_messages().items())))
        reason = problems[0] if isinstance(problems, list) else str(problems)
        raise MalformedMessage(f"{key}: {reason}", field=key) from None
