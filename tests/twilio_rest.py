"""What Twilio's REST API takes and answers, for both stand-ins of the network edge.

:class:`tests.twilio_fake.FakeTwilio` (an in-process ``twilio.http.HttpClient``) and
:class:`tests.twilio_server.TwilioServer` (a local HTTP server for other processes) check the
bot's requests and shape their answers with these functions, so the two accept and answer
exactly the same: the form of a message send, the content template definitions, the JSON
of a message, a page of templates, a template's WhatsApp approval request and an error.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from datetime import datetime
from email.utils import format_datetime
from typing import Any

ACCOUNT_SID = "AC" + "a" * 32
AUTH_TOKEN = "test-auth-token"
SENDER = "whatsapp:+14155238886"
API_VERSION = "2010-04-01"
MESSAGES_PATH = f"/{API_VERSION}/Accounts/{ACCOUNT_SID}/Messages.json"
CONTENT_PATH = "/v1/Content"
MESSAGES_URL = f"https://api.twilio.com{MESSAGES_PATH}"
CONTENT_URL = f"https://content.twilio.com{CONTENT_PATH}"
#: every form field the bot may send with a message
MESSAGE_FIELDS = {"To", "From", "MessagingServiceSid", "ContentSid", "ContentVariables", "Body", "StatusCallback"}
CONTENT_TYPES = {"twilio/quick-reply", "twilio/list-picker", "twilio/text"}
#: ``GET …/ApprovalRequests`` (WhatsApp's approval of a template) and ``POST …/ApprovalRequests/whatsapp``
#: (submit it): the content SID, and ``/whatsapp`` for a submission
APPROVAL_PATH = re.compile(rf"{CONTENT_PATH}/(HX[0-9a-f]{{32}})/ApprovalRequests(/whatsapp)?")
CATEGORIES = {"UTILITY", "MARKETING", "AUTHENTICATION"}
#: what WhatsApp takes as a template's name
APPROVAL_NAME = re.compile(r"[a-z0-9_]{1,512}")
#: the status of a template never submitted, and of one just submitted
UNSUBMITTED, RECEIVED = "unsubmitted", "received"


class Surprise(AssertionError):
    """A request the bot should never make."""


@dataclass(frozen=True)
class Answer:
    """One JSON answer of Twilio's: status, body, extra headers."""

    status: int
    payload: dict[str, Any]
    headers: dict[str, str] = field(default_factory=dict)
    content_type: str = "application/json"

    @property
    def text(self) -> str:
        return json.dumps(self.payload)

    def with_headers(self, **headers: str) -> Answer:
        return Answer(self.status, self.payload, {**self.headers, **headers}, self.content_type)


def error(status: int, code: int, message: str) -> Answer:
    """Twilio's usual error body (``code``, ``message``, ``more_info``, ``status``)."""
    more = f"https://www.twilio.com/docs/errors/{code}"
    return Answer(status, {"code": code, "message": message, "more_info": more, "status": status})


def problem(status: int, code: int, title: str, detail: str = "") -> Answer:
    """An RFC 9457 ``application/problem+json`` error: the ``twilio`` library raises
    ``TwilioServiceException`` (not ``TwilioRestException``) for a body with type, title, status and code."""
    payload: dict[str, Any] = {
        "type": f"https://www.twilio.com/docs/errors/{code}",
        "title": title,
        "status": status,
        "code": code,
    }
    if detail:
        payload["detail"] = detail
    return Answer(status, payload, content_type="application/problem+json")


#: Twilio's refusals of a message send, by the code a test plans them with
TOO_MANY_REQUESTS = error(429, 20429, "Too Many Requests")
REFUSALS = {
    429: TOO_MANY_REQUESTS,
    500: error(500, 20500, "Internal Server Error"),
    503: error(503, 20503, "Service Unavailable"),
    63016: error(400, 63016, "Failed to send freeform message because you are outside the allowed window."),
    63018: error(400, 63018, "Rate limit exceeded for Channel"),
    21211: error(400, 21211, "The 'To' number is not a valid phone number."),
}


def message_form_problem(form: dict[str, Any]) -> str | None:
    """Why the bot should never have sent this message form; None when it is one the bot sends."""
    unknown = set(form) - MESSAGE_FIELDS
    if unknown or not str(form.get("To", "")).startswith("whatsapp:+"):
        return f"message form {sorted(form)}"
    if ("From" in form) == ("MessagingServiceSid" in form):
        return "exactly one of From and MessagingServiceSid"
    if ("ContentSid" in form) == ("Body" in form) or ("ContentSid" in form) != ("ContentVariables" in form):
        return "either ContentSid with ContentVariables, or Body"
    return None


def content_refusal(form: dict[str, Any], contents: dict[str, Any]) -> Answer | None:
    """Twilio's answer to a template send it cannot make (no such template, variables not an
    object); None when it takes it."""
    if "ContentSid" not in form:
        return None
    if form["ContentSid"] not in contents:
        return error(404, 20404, "The requested resource was not found")
    variables = form["ContentVariables"]
    try:
        valid = isinstance(variables, str) and isinstance(json.loads(variables), dict)
    except ValueError:
        valid = False
    return None if valid else error(400, 21656, "The Content Variables parameter is invalid")


def content_definition_problem(body: Any, content_type: str | None) -> str | None:
    """Why this ``POST /v1/Content`` is not one the bot makes; None when it is."""
    if content_type != "application/json" or not isinstance(body, dict):
        return f"content create with {content_type}"
    types = body.get("types", {})
    if set(body) - {"friendly_name", "language", "variables", "types"} or len(types) != 1:
        return f"content definition {sorted(body)} {sorted(types)}"
    if not set(types) <= CONTENT_TYPES:
        return f"content type {sorted(types)}"
    return None


def sid(prefix: str, number: int) -> str:
    """``SM``/``HX`` + 32 hex digits, as Twilio's SIDs look."""
    return f"{prefix}{number:032x}"


def rfc2822(moment: datetime | None) -> str | None:
    """Twilio's date format in JSON: ``Wed, 14 Jan 2026 09:00:00 +0000``."""
    return None if moment is None else format_datetime(moment.replace(microsecond=0))


def message_resource(
    message_sid: str,
    form: dict[str, Any],
    *,
    status: str,
    created: datetime,
    updated: datetime | None = None,
    sent: datetime | None = None,
    error_code: int | None = None,
    sender: str = SENDER,
) -> dict[str, Any]:
    """A Message as Twilio's JSON shows it (``from`` is null while a Messaging Service has not picked a sender)."""
    from_ = form.get("From") or (sender if status not in {"accepted", "queued"} else None)
    return {
        "account_sid": ACCOUNT_SID,
        "api_version": API_VERSION,
        "body": form.get("Body", ""),
        "date_created": rfc2822(created),
        "date_sent": rfc2822(sent),
        "date_updated": rfc2822(updated or created),
        "direction": "outbound-api",
        "error_code": error_code,
        "error_message": None,
        "from": from_,
        "messaging_service_sid": form.get("MessagingServiceSid"),
        "num_media": "0",
        "num_segments": "1",
        "price": None,
        "price_unit": "USD",
        "sid": message_sid,
        "status": status,
        "subresource_uris": {"media": f"/{API_VERSION}/Accounts/{ACCOUNT_SID}/Messages/{message_sid}/Media.json"},
        "to": form["To"],
        "uri": f"/{API_VERSION}/Accounts/{ACCOUNT_SID}/Messages/{message_sid}.json",
    }


def content_resource(content_sid: str, body: dict[str, Any]) -> dict[str, Any]:
    return {"sid": content_sid, "account_sid": ACCOUNT_SID, **body}


def content_page(contents: dict[str, dict[str, Any]], token: str, page_size: int) -> dict[str, Any]:
    """One page of ``GET /v1/Content`` from ``token`` (an offset) on; its next page as an absolute URL on
    Twilio's host, as the Content API answers."""
    start = int(token or 0)
    items = list(contents.items())
    following = start + page_size
    next_url = f"{CONTENT_URL}?PageSize={page_size}&PageToken={following}" if following < len(items) else None
    return {
        "contents": [content_resource(content_sid, body) for content_sid, body in items[start:following]],
        "meta": {"key": "contents", "page_size": page_size, "next_page_url": next_url},
    }


# -- WhatsApp's approval of a content template -------------------------------------------------
def approval_submission_problem(body: Any, content_type: str | None) -> str | None:
    """Why this ``POST …/ApprovalRequests/whatsapp`` is not one the bot makes (not JSON, a field
    other than ``name`` and ``category``, a null); None when it is."""
    if content_type != "application/json" or not isinstance(body, dict):
        return f"approval request with {content_type}"
    if set(body) - {"name", "category"} or any(value is None for value in body.values()):
        return f"approval request {json.dumps(body, sort_keys=True)}"
    return None


def approval_refusal(
    content_sid: str, body: dict[str, Any], contents: dict[str, Any], submissions: dict[str, Any]
) -> Answer | None:
    """Twilio's answer to a submission it refuses (no such template, already submitted, a name
    WhatsApp does not take, no or an unknown category); None when it takes it. The codes are
    Twilio's generic ones: its documentation names none for these."""
    if content_sid not in contents:
        return error(404, 20404, f"The requested resource /Content/{content_sid} was not found")
    if content_sid in submissions:
        return error(400, 20001, "Content has already been submitted for WhatsApp approval")
    if not APPROVAL_NAME.fullmatch(str(body.get("name", ""))):
        return error(400, 20001, "Invalid name: lowercase alphanumeric characters and underscores only")
    if body.get("category") not in CATEGORIES:
        return error(400, 20001, f"Invalid category: {body.get('category')!r}")
    return None


def _whatsapp(content: dict[str, Any], submission: dict[str, str], status: str, reason: str) -> dict[str, Any]:
    types = content.get("types") or {}
    return {
        "type": "whatsapp",
        "name": submission.get("name", ""),
        "category": submission.get("category", ""),
        "content_type": next(iter(types), ""),
        "status": status,
        "rejection_reason": reason,
        "allow_category_change": True,
    }


def approval_created(content: dict[str, Any], submission: dict[str, str]) -> dict[str, Any]:
    """Twilio's answer to a submission it took: the WhatsApp approval request, ``received``."""
    whatsapp = _whatsapp(content, submission, RECEIVED, "")
    return {key: value for key, value in whatsapp.items() if key != "type"}


def approval_resource(
    content_sid: str, content: dict[str, Any], submission: dict[str, str] | None, status: tuple[str, str] | None
) -> dict[str, Any]:
    """``GET …/ApprovalRequests``: WhatsApp's approval of the template (``unsubmitted`` until submitted)."""
    state, reason = status or ((RECEIVED, "") if submission else (UNSUBMITTED, ""))
    return {
        "sid": content_sid,
        "account_sid": ACCOUNT_SID,
        "whatsapp": _whatsapp(content, submission or {}, state, reason),
        "url": f"https://content.twilio.com{CONTENT_PATH}/{content_sid}/ApprovalRequests",
    }


# -- the account, its phone numbers and Messaging Services (what ``flask doctor`` reads) -------------
ACCOUNT_URL = f"https://api.twilio.com/{API_VERSION}/Accounts/{ACCOUNT_SID}.json"
NUMBERS_PATH = f"/{API_VERSION}/Accounts/{ACCOUNT_SID}/IncomingPhoneNumbers.json"
NUMBERS_URL = f"https://api.twilio.com{NUMBERS_PATH}"
SERVICES_URL = "https://messaging.twilio.com/v1/Services"
#: ``/v1/Services/MG…`` (fetch a service) and ``/v1/Services/MG…/PhoneNumbers`` (list its numbers)
SERVICE_PATH = re.compile(r"/v1/Services/(MG[0-9a-f]{32})(/PhoneNumbers)?")
#: what Twilio answers for the wrong credentials
UNAUTHENTICATED = error(401, 20003, "Authenticate")


def account_resource(status: str = "active", friendly_name: str = "Test Salon's account") -> dict[str, Any]:
    """``GET /2010-04-01/Accounts/AC….json``."""
    return {
        "sid": ACCOUNT_SID,
        "owner_account_sid": ACCOUNT_SID,
        "friendly_name": friendly_name,
        "status": status,
        "type": "Full",
        "date_created": "Wed, 01 Jan 2025 10:00:00 +0000",
        "date_updated": "Wed, 01 Jan 2025 10:00:00 +0000",
        "uri": f"/{API_VERSION}/Accounts/{ACCOUNT_SID}.json",
        "subresource_uris": {"incoming_phone_numbers": NUMBERS_PATH},
    }


def number_resource(number_sid: str, phone: str, settings: dict[str, Any]) -> dict[str, Any]:
    """An IncomingPhoneNumber; ``settings`` (``sms_url``, ``sms_method``…) over the defaults."""
    return {
        "sid": number_sid,
        "account_sid": ACCOUNT_SID,
        "api_version": API_VERSION,
        "phone_number": phone,
        "friendly_name": phone,
        "capabilities": {"voice": True, "sms": True, "mms": False, "fax": False},
        "sms_url": "",
        "sms_method": "POST",
        "sms_fallback_url": "",
        "sms_fallback_method": "POST",
        "sms_application_sid": "",
        "status_callback": "",
        "status": "in-use",
        "uri": f"/{API_VERSION}/Accounts/{ACCOUNT_SID}/IncomingPhoneNumbers/{number_sid}.json",
        **settings,
    }


def numbers_page(numbers: list[dict[str, Any]], page_size: int) -> dict[str, Any]:
    """One (the only) page of ``GET …/IncomingPhoneNumbers.json``, in the 2010 API's paging shape."""
    return {
        "incoming_phone_numbers": numbers,
        "start": 0,
        "end": max(0, len(numbers) - 1),
        "page": 0,
        "page_size": page_size,
        "first_page_uri": f"{NUMBERS_PATH}?PageSize={page_size}&Page=0",
        "next_page_uri": None,
        "previous_page_uri": None,
        "uri": f"{NUMBERS_PATH}?PageSize={page_size}&Page=0",
    }


def service_resource(service_sid: str, settings: dict[str, Any]) -> dict[str, Any]:
    """A Messaging Service; ``settings`` (``inbound_request_url``, ``status_callback``,
    ``use_inbound_webhook_on_number``…) over the defaults (``phone_numbers`` left out)."""
    url = f"{SERVICES_URL}/{service_sid}"
    return {
        "sid": service_sid,
        "account_sid": ACCOUNT_SID,
        "friendly_name": "Test Salon",
        "inbound_request_url": None,
        "inbound_method": "POST",
        "fallback_url": None,
        "fallback_method": "POST",
        "status_callback": None,
        "sticky_sender": True,
        "use_inbound_webhook_on_number": False,
        "usecase": "notifications",
        "date_created": "2025-01-01T10:00:00Z",
        "date_updated": "2025-01-01T10:00:00Z",
        "url": url,
        "links": {"phone_numbers": f"{url}/PhoneNumbers"},
        **{key: value for key, value in settings.items() if key != "phone_numbers"},
    }


def service_numbers_page(service_sid: str, phones: list[str], page_size: int) -> dict[str, Any]:
    """One (the only) page of ``GET /v1/Services/MG…/PhoneNumbers``."""
    url = f"{SERVICES_URL}/{service_sid}/PhoneNumbers"
    listed = [
        {
            "sid": sid("PN", index + 1),
            "account_sid": ACCOUNT_SID,
            "service_sid": service_sid,
            "phone_number": phone,
            "country_code": "ES",
            "capabilities": ["SMS"],
            "url": f"{url}/{sid('PN', index + 1)}",
        }
        for index, phone in enumerate(phones)
    ]
    meta = {
        "page": 0,
        "page_size": page_size,
        "first_page_url": f"{url}?PageSize={page_size}&Page=0",
        "previous_page_url": None,
        "next_page_url": None,
        "url": f"{url}?PageSize={page_size}&Page=0",
        "key": "phone_numbers",
    }
    return {"phone_numbers": listed, "meta": meta}
