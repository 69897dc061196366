"""``flask templates sync|list`` through the real twilio client, and the Content API settings."""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Iterator
from typing import Any

import pytest
import redis
import requests
from flask import Flask
from twilio.base.exceptions import TwilioRestException
from twilio.rest import Client

from bot import create_app, get_services
from bot.channels.approvals import Approval, Approvals
from bot.channels.cli import _Definition, seek_approval, sync_templates
from bot.channels.content import TEMPLATES
from bot.channels.endpoint import EndpointHttpClient
from bot.channels.proactive import all_templates
from bot.channels.twilio import TemplateSids
from bot.errors import ConfigError
from bot.i18n import Catalogs

from .catalogs import salon
from .conftest import app_config
from .content_phone import content_config
from .redis_server import RedisServer
from .twilio_fake import ACCOUNT_SID, AUTH_TOKEN, CONTENT_URL, FakeTwilio, Surprise, error_response
from .twilio_server import TwilioServer

#: every proactive template of every language the bot speaks
PROACTIVE = all_templates(Catalogs.load())


@pytest.fixture
def fake() -> FakeTwilio:
    fake = FakeTwilio()
    fake.contents["HX" + "9" * 32] = {"friendly_name": "someone_elses_template", "types": {"twilio/text": {}}}
    return fake


@pytest.fixture
def app(backend: dict[str, Any], fake: FakeTwilio) -> Iterator[Flask]:
    app = create_app(content_config(fake, **backend))
    yield app
    get_services(app).redis.close()


def test_sync_creates_the_templates_once_and_a_second_sync_changes_nothing(app: Flask, fake: FakeTwilio) -> None:
    runner = app.test_cli_runner()
    first = runner.invoke(args=["templates", "sync"])
    assert first.exit_code == 0, first.output
    assert first.output.count("created") == len(TEMPLATES) + len(PROACTIVE) == 10 + 12
    creates = [r for r in fake.requests if r.method == "POST" and r.url == CONTENT_URL]
    assert [r.data["friendly_name"] for r in creates] == [t.friendly_name for t in (*TEMPLATES, *PROACTIVE)]
    quick = creates[1].data
    assert quick["types"] == {
        "twilio/quick-reply": {
            "body": "{{1}}",
            "actions": [{"title": "{{2}}", "id": "{{3}}"}, {"title": "{{4}}", "id": "{{5}}"}],
        }
    }
    assert set(quick["variables"]) == {"1", "2", "3", "4", "5"}  # a sample for every variable
    listed = creates[9].data["types"]["twilio/list-picker"]
    assert listed["button"] == "{{2}}" and len(listed["items"]) == 10
    assert listed["items"][9] == {"item": "{{30}}", "id": "{{31}}", "description": "{{32}}"}

    fake.requests.clear()
    second = runner.invoke(args=["templates", "sync"])
    assert second.exit_code == 0 and second.output.count("unchanged") == 22
    assert not [r for r in fake.requests if r.method != "GET"]  # nothing created, nothing submitted
    pages = {r.url.split("?")[0] for r in fake.requests if "ApprovalRequests" not in r.url}
    assert pages == {CONTENT_URL}
    assert len(fake.contents) == 23

    shown = runner.invoke(args=["templates", "list"])
    sids = {line.split()[0]: line.split()[1] for line in shown.output.splitlines()}
    assert sids == {body["friendly_name"]: sid for sid, body in fake.contents.items() if body["friendly_name"] in sids}
    assert len(sids) == 22
    assert not fake.surprises


def test_sync_records_templates_another_deployment_already_created(app: Flask, fake: FakeTwilio) -> None:
    for template in TEMPLATES[:4]:
        fake.contents[f"HX{len(fake.contents):032x}"] = template.definition()
    output = app.test_cli_runner().invoke(args=["templates", "sync"]).output
    assert output.count("found") == 4 and output.count("created") == 6 + 12


def test_list_before_sync_says_not_synced(app: Flask) -> None:
    result = app.test_cli_runner().invoke(args=["templates", "list"])
    assert result.exit_code == 0 and result.output.count("not synced") == 10 + 12


def test_a_twilio_error_during_sync_is_one_line(app: Flask, fake: FakeTwilio, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(fake, "_create_content", lambda body, headers: error_response(401, 20003, "Authenticate"))
    result = app.test_cli_runner().invoke(args=["templates", "sync"])
    assert result.exit_code == 1
    assert result.output == "Error: Twilio answered 401 (20003): Unable to create record: Authenticate\n"


def test_without_credentials_templates_and_worker_explain_what_is_missing(backend: dict[str, Any]) -> None:
    runner = create_app(app_config(**backend)).test_cli_runner()
    assert "TWILIO_ACCOUNT_SID" in runner.invoke(args=["templates", "sync"]).output
    assert "TWILIO_ACCOUNT_SID" in runner.invoke(args=["worker"]).output


@pytest.mark.parametrize(
    ("key", "value"),
    [("TWILIO_FROM", "+14155238886"), ("TWILIO_ACCOUNT_SID", "XY123"), ("TWILIO_MESSAGING_SERVICE_SID", "AC1")],
)
def test_content_api_settings_are_checked(key: str, value: str) -> None:
    with pytest.raises(ConfigError, match=key):
        create_app(app_config(**{key: value}))


def buttons(config: dict[str, Any]) -> bool:
    """Whether the (only) business's replies go out as Content API buttons."""
    return get_services(create_app(config)).business().channel.out_of_band


def test_the_content_api_is_on_only_with_an_account_a_token_and_a_sender() -> None:
    assert buttons(content_config(FakeTwilio()))
    partial = app_config(TWILIO_ACCOUNT_SID="AC" + "a" * 32)
    assert not buttons(partial)
    service = app_config(TWILIO_ACCOUNT_SID="AC" + "a" * 32, TWILIO_MESSAGING_SERVICE_SID="MG" + "c" * 32)
    assert buttons(service)
    numbered = app_config(TWILIO_ACCOUNT_SID="AC" + "a" * 32, CATALOG=salon(numbers=("+34910000001",)))
    assert buttons(numbered)  # the number customers write to sends the replies


def test_templates_say_when_redis_is_down(own_redis_server: RedisServer, fake: FakeTwilio) -> None:
    app = create_app(content_config(fake, REDIS_URL=own_redis_server.url))
    own_redis_server.stop()
    for args in (["templates", "list"], ["templates", "sync"]):
        result = app.test_cli_runner().invoke(args=args)
        assert result.exit_code == 1, args
        assert result.exception is None or isinstance(result.exception, SystemExit), result.exception
        assert result.output.splitlines()[-1].startswith("Error: Redis cannot be reached or failed: ConnectionError")


def test_twilio_out_of_reach_during_sync_is_one_line(
    app: Flask, fake: FakeTwilio, monkeypatch: pytest.MonkeyPatch
) -> None:
    def unreachable(*args: Any, **kwargs: Any) -> Any:
        raise requests.exceptions.ConnectionError("HTTPSConnectionPool(host='content.twilio.com'): Name not known")

    monkeypatch.setattr(fake, "request", unreachable)  # the network edge: no answer at all
    result = app.test_cli_runner().invoke(args=["templates", "sync"])
    assert result.exit_code == 1
    assert isinstance(result.exception, SystemExit), result.exception
    assert result.output == (
        "Error: Twilio cannot be reached: ConnectionError: "
        "HTTPSConnectionPool(host='content.twilio.com'): Name not known\n"
    )


# -- the proactive templates and WhatsApp's approval --------------------------------------------
VARIABLE = re.compile(r"\{\{(\w+)\}\}")


def template_problems(definition: dict[str, Any]) -> list[str]:
    """What WhatsApp would refuse in a proactive template's definition: a body that starts or ends
    with a variable (no word before the first or after the last: "Hello {{1}}." ends with one), two
    variables with nothing but spaces between them ("{{1}} {{2}}"), variables not numbered 1…n in
    order, a variable without a sample, a body over 1,024 characters, a button title over 20."""
    problems = []
    ((content_type, types),) = definition["types"].items()
    body: str = types["body"]
    parts = VARIABLE.split(body)  # text, variable, text, variable, …, text
    texts, keys = parts[0::2], parts[1::2]
    if not re.search(r"\w", texts[0]) or not re.search(r"\w", texts[-1]):
        problems.append(f"body starts or ends with a variable: {body!r}")
    if any(not between.strip() for between in texts[1:-1]):
        problems.append(f"adjacent variables: {body!r}")
    if keys != [str(n) for n in range(1, len(keys) + 1)]:
        problems.append(f"variables not 1…n in order: {keys}")
    if len(body) > 1024:
        problems.append("body over 1,024 characters")
    used = set(keys)
    for action in types.get("actions", []):
        used.update(VARIABLE.findall(action["id"]))
        if len(action["title"]) > 20 or VARIABLE.search(action["title"]):
            problems.append(f"button title {action['title']!r}")
    missing = used - {key for key, value in definition["variables"].items() if value}
    if missing:
        problems.append(f"no sample for {sorted(missing)}")
    if content_type == "twilio/quick-reply" and [a["id"] for a in types["actions"]] != ["{{6}}", "{{7}}", "{{8}}"]:
        problems.append(f"button ids {[a['id'] for a in types['actions']]}")
    return problems


def test_the_checker_catches_what_whatsapp_refuses() -> None:
    def text(body: str, **variables: str) -> dict[str, Any]:
        return {"types": {"twilio/text": {"body": body}}, "variables": variables}

    assert template_problems(text("Hi {{1}}, see you at {{2}}, thanks.", **{"1": "Ana", "2": "10:30"})) == []
    assert template_problems(text("{{1}}, hello", **{"1": "Ana"}))
    assert template_problems(text("Hello {{1}}.", **{"1": "Ana"}))  # nothing but punctuation after it
    assert template_problems(text("Hi {{1}} {{2}} there", **{"1": "a", "2": "b"}))
    assert template_problems(text("Hi {{1}}{{2}} there", **{"1": "a", "2": "b"}))
    assert template_problems(text("Hi {{2}} there", **{"2": "a"}))
    assert template_problems(text("Hi {{1}} there"))


def sync_output(app: Flask) -> dict[str, str]:
    result = app.test_cli_runner().invoke(args=["templates", "sync"])
    assert result.exit_code == 0, result.output
    return {line.split()[0]: line for line in result.output.splitlines()}


def test_every_proactive_template_of_every_language_is_one_whatsapp_takes(app: Flask, fake: FakeTwilio) -> None:
    sync_output(app)
    created = {r.data["friendly_name"]: r.data for r in fake.requests if r.method == "POST" and r.url == CONTENT_URL}
    reminder = created["tapbook_reminder_en_v1"]
    assert reminder == {
        "friendly_name": "tapbook_reminder_en_v1",
        "language": "en",
        "variables": {
            "1": "Ana",
            "2": "Haircut",
            "3": "Tue 14 Jan",
            "4": "10:30",
            "5": "Bella Hair Studio",
            "6": "rem1:c:K7Q2MX:1768386600",
            "7": "rem1:m:K7Q2MX:1768386600",
            "8": "rem1:x:K7Q2MX:1768386600",
        },
        "types": {
            "twilio/quick-reply": {
                "body": "Hi {{1}}, this is a reminder of your {{2}} on {{3}} at {{4}}, at {{5}}. Will you come?",
                "actions": [
                    {"title": "Confirm", "id": "{{6}}"},
                    {"title": "Reschedule", "id": "{{7}}"},
                    {"title": "Cancel", "id": "{{8}}"},
                ],
            }
        },
    }
    languages = {t.language for t in PROACTIVE}
    assert languages >= {"en", "es", "pt"} and len(PROACTIVE) == 4 * len(languages)
    for template in PROACTIVE:
        sent = created[template.friendly_name]
        assert sent == template.definition() and sent["language"] == template.language
        assert template_problems(sent) == [], template.friendly_name
        if template.kind == "reminder":
            body = sent["types"]["twilio/quick-reply"]["body"]
            assert VARIABLE.findall(body) == ["1", "2", "3", "4", "5"], template.friendly_name


def test_sync_submits_each_proactive_template_once_as_utility(app: Flask, fake: FakeTwilio) -> None:
    lines = sync_output(app)
    submissions = [r for r in fake.requests if r.method == "POST" and r.url.endswith("/ApprovalRequests/whatsapp")]
    assert [(r.data, r.headers["Content-Type"]) for r in submissions] == [
        ({"name": t.friendly_name, "category": "UTILITY"}, "application/json") for t in PROACTIVE
    ]
    sids = {body["friendly_name"]: sid for sid, body in fake.contents.items()}
    assert fake.submissions == {
        sids[t.friendly_name]: {"name": t.friendly_name, "category": "UTILITY"} for t in PROACTIVE
    }
    assert lines["tapbook_reminder_en_v1"].endswith("created, submitted for WhatsApp approval")
    assert lines["tapbook_buttons1_v1"].endswith("created")  # the generic ones need no approval
    approvals = Approvals(get_services(app).redis, get_services(app).shared_keys.template_approvals)
    assert {name: a.status for name, a in approvals.all().items()} == {t.friendly_name: "received" for t in PROACTIVE}

    fake.requests.clear()
    fake.approvals[sids["tapbook_reminder_en_v1"]] = ("approved", "")
    fake.approvals[sids["tapbook_moved_pt_v1"]] = ("rejected", "INVALID_FORMAT")
    again = sync_output(app)
    assert not [r for r in fake.requests if r.method == "POST"]
    assert again["tapbook_reminder_en_v1"].endswith("unchanged, approved")
    assert again["tapbook_moved_pt_v1"].endswith("unchanged, rejected: INVALID_FORMAT")
    assert again["tapbook_owner_es_v1"].endswith("unchanged, received")
    moved = approvals.get("tapbook_moved_pt_v1")
    assert moved is not None and (moved.status, moved.reason) == ("rejected", "INVALID_FORMAT")
    assert not fake.surprises


def test_sync_submits_a_template_found_unsubmitted_and_not_one_already_submitted(app: Flask, fake: FakeTwilio) -> None:
    reminder, cancelled = PROACTIVE[0], PROACTIVE[1]
    fake.contents["HX" + "1" * 32] = reminder.definition()  # created, never submitted (a sync cut short)
    fake.contents["HX" + "2" * 32] = cancelled.definition()  # another deployment submitted it
    fake.submissions["HX" + "2" * 32] = {"name": cancelled.friendly_name, "category": "UTILITY"}
    fake.approvals["HX" + "2" * 32] = ("pending", "")
    lines = sync_output(app)
    assert lines[reminder.friendly_name].endswith("found, submitted for WhatsApp approval")
    assert lines[cancelled.friendly_name].endswith("found, pending")
    submitted = [r.url for r in fake.requests if r.url.endswith("/whatsapp")]
    assert len(submitted) == 11 and not any("2" * 32 in url for url in submitted)


def test_a_refused_submission_is_said_on_its_line_and_the_next_sync_submits_it(
    app: Flask, fake: FakeTwilio, monkeypatch: pytest.MonkeyPatch
) -> None:
    submit = fake._submit_approval

    def refuse_the_first(content_sid: str, body: Any, headers: dict[str, str]) -> Any:
        if body["name"] == "tapbook_reminder_en_v1":
            return error_response(400, 20001, "Invalid name")
        return submit(content_sid, body, headers)

    monkeypatch.setattr(fake, "_submit_approval", refuse_the_first)
    result = app.test_cli_runner().invoke(args=["templates", "sync"])
    assert result.exit_code == 1
    lines = result.output.splitlines()
    assert "approval not read or submitted: Twilio answered 400 (20001)" in lines[10]
    assert lines[11].endswith("created, submitted for WhatsApp approval")
    assert lines[-1] == "Error: 1 template(s) not submitted for WhatsApp's approval; run sync again"
    monkeypatch.setattr(fake, "_submit_approval", submit)
    assert sync_output(app)["tapbook_reminder_en_v1"].endswith("unchanged, submitted for WhatsApp approval")
    assert len(fake.submissions) == 12


def test_list_shows_whatsapps_approval_live_and_records_it(app: Flask, fake: FakeTwilio) -> None:
    sync_output(app)
    sids = {body["friendly_name"]: sid for sid, body in fake.contents.items()}
    fake.approvals[sids["tapbook_reminder_en_v1"]] = ("approved", "")
    fake.approvals[sids["tapbook_cancelled_en_v1"]] = ("pending", "")
    fake.approvals[sids["tapbook_moved_en_v1"]] = ("rejected", "INVALID_FORMAT")
    result = app.test_cli_runner().invoke(args=["templates", "list"])
    assert result.exit_code == 0, result.output
    lines = {line.split()[0]: line.split(maxsplit=2)[2] for line in result.output.splitlines()}
    assert lines["tapbook_buttons1_v1"] == "twilio/quick-reply"
    assert lines["tapbook_reminder_en_v1"].split() == ["twilio/quick-reply", "approved"]
    assert lines["tapbook_cancelled_en_v1"].split() == ["twilio/text", "pending"]
    assert lines["tapbook_moved_en_v1"].split() == ["twilio/text", "rejected:", "INVALID_FORMAT"]
    assert lines["tapbook_owner_pt_v1"].split() == ["twilio/text", "received"]
    services = get_services(app)
    recorded = Approvals(services.redis, services.shared_keys.template_approvals).all()
    assert (
        recorded["tapbook_moved_en_v1"].status == "rejected"
        and recorded["tapbook_moved_en_v1"].reason == "INVALID_FORMAT"
    )
    assert recorded["tapbook_reminder_en_v1"].status == "approved"
    assert not fake.surprises


def test_list_shows_the_recorded_approval_when_twilio_cannot_be_reached(
    app: Flask, fake: FakeTwilio, monkeypatch: pytest.MonkeyPatch
) -> None:
    sync_output(app)
    services = get_services(app)
    Approvals(services.redis, services.shared_keys.template_approvals, now=lambda: 1768386600.0).record(
        "tapbook_moved_en_v1", "rejected", "INVALID_FORMAT"
    )
    services.redis.hdel(services.shared_keys.template_approvals, "tapbook_owner_pt_v1")
    calls = []

    def unreachable(*args: Any, **kwargs: Any) -> Any:
        calls.append(args)
        raise requests.exceptions.ConnectionError("HTTPSConnectionPool(host='content.twilio.com'): Name not known")

    monkeypatch.setattr(fake, "request", unreachable)
    result = app.test_cli_runner().invoke(args=["templates", "list"])
    assert result.exit_code == 0, result.output
    lines = {line.split()[0]: line for line in result.output.splitlines()}
    assert lines["tapbook_moved_en_v1"].endswith(
        "rejected: INVALID_FORMAT (as of 2026-01-14 10:30 UTC; Twilio cannot be reached: ConnectionError)"
    )
    assert "received (as of " in lines["tapbook_reminder_en_v1"]
    assert lines["tapbook_owner_pt_v1"].endswith("approval unknown (Twilio cannot be reached: ConnectionError)")
    assert len(calls) == 1  # one failed read: the rest are shown as recorded, not waited for


# -- Approvals -----------------------------------------------------------------------------------
KEY = "tapbook:template-approvals"


def test_approvals_record_json_and_read_it_back(client: redis.Redis) -> None:
    approvals = Approvals(client, KEY, now=lambda: 1768386600.9)
    assert approvals.get("tapbook_reminder_en_v1") is None and approvals.all() == {}
    approvals.record("tapbook_reminder_en_v1", "rejected", "INVALID_FORMAT")
    approvals.record("tapbook_owner_en_v1", "approved")
    stored = json.loads(str(client.hget(KEY, "tapbook_reminder_en_v1")))
    assert stored == {"status": "rejected", "reason": "INVALID_FORMAT", "at": 1768386600}
    assert approvals.get("tapbook_reminder_en_v1") == Approval("rejected", "INVALID_FORMAT", 1768386600)
    client.hset(KEY, "garbage", "{not json")
    assert approvals.all() == {
        "tapbook_owner_en_v1": Approval("approved", "", 1768386600),
        "tapbook_reminder_en_v1": Approval("rejected", "INVALID_FORMAT", 1768386600),
    }


def test_approved_reads_redis_at_most_once_per_cache_period(
    client: redis.Redis, monkeypatch: pytest.MonkeyPatch
) -> None:
    now = [1000.0]
    reader = Approvals(client, KEY, clock=lambda: now[0], cache_seconds=60.0)
    writer = Approvals(client, KEY)  # another process: the worker polling, or a sync
    reads = []
    hgetall = client.hgetall
    monkeypatch.setattr(client, "hgetall", lambda key: reads.append(key) or hgetall(key))
    writer.record("tapbook_reminder_en_v1", "received")
    assert not reader.approved("tapbook_reminder_en_v1") and reads == [KEY]
    writer.record("tapbook_reminder_en_v1", "approved")
    now[0] += 59.9
    assert not any(reader.approved("tapbook_reminder_en_v1") for _ in range(100))
    assert reads == [KEY]  # no round trip per send
    now[0] += 0.1
    assert reader.approved("tapbook_reminder_en_v1") and reads == [KEY, KEY]
    reader.record("tapbook_owner_en_v1", "approved")  # its own record counts at once
    assert reader.approved("tapbook_owner_en_v1") and not reader.approved("tapbook_moved_en_v1")
    assert reads == [KEY, KEY]


@pytest.fixture
def twilio(fake: FakeTwilio) -> Client:
    return Client(ACCOUNT_SID, AUTH_TOKEN, http_client=fake)


def test_fetch_reads_whatsapps_status_and_an_unsubmitted_template(
    client: redis.Redis, fake: FakeTwilio, twilio: Client
) -> None:
    sids = TemplateSids(client, "tapbook:templates")
    sync_templates(twilio, sids, PROACTIVE)
    sid = sids.get("tapbook_moved_es_v1")
    assert sid is not None
    approvals = Approvals(client, KEY, now=lambda: 1768386600.0)
    assert approvals.fetch(twilio, sid) == Approval("unsubmitted", "", 1768386600)
    fake.approvals[sid] = ("rejected", "INVALID_FORMAT")
    assert approvals.fetch(twilio, sid) == Approval("rejected", "INVALID_FORMAT", 1768386600)
    assert approvals.all() == {}  # fetch records nothing
    assert not fake.surprises


def test_refresh_records_the_templates_not_yet_approved_and_skips_one_twilio_fails(
    client: redis.Redis,
    fake: FakeTwilio,
    twilio: Client,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    sids = TemplateSids(client, "tapbook:templates")
    english = [t for t in PROACTIVE if t.language == "en"]
    sync_templates(twilio, sids, english)
    approvals = Approvals(client, KEY)
    seek_approval(twilio, approvals, [(t.friendly_name, str(sids.get(t.friendly_name)), "created") for t in english])
    reminder, cancelled, moved, owner = (str(sids.get(t.friendly_name)) for t in english)
    approvals.record("tapbook_owner_en_v1", "approved")  # recorded approved: not asked again
    fake.approvals[reminder] = ("approved", "")
    fake.approvals[moved] = ("rejected", "INVALID_FORMAT")
    fetch = fake._fetch_approval

    def failing(content_sid: str) -> Any:
        return error_response(500, 20500, "Internal Server Error") if content_sid == cancelled else fetch(content_sid)

    monkeypatch.setattr(fake, "_fetch_approval", failing)
    fake.requests.clear()
    names = [t.friendly_name for t in PROACTIVE]  # the Spanish and Portuguese ones are not synced: skipped
    with caplog.at_level(logging.WARNING, logger="bot.channels.approvals"):
        fresh = approvals.refresh(twilio, sids, names)
    assert {name: (a.status, a.reason) for name, a in fresh.items()} == {
        "tapbook_reminder_en_v1": ("approved", ""),
        "tapbook_moved_en_v1": ("rejected", "INVALID_FORMAT"),
    }
    assert {r.url.split("/")[-2] for r in fake.requests} == {reminder, cancelled, moved}
    recorded = approvals.all()
    assert recorded["tapbook_cancelled_en_v1"].status == "received"  # as the sync recorded it
    assert recorded["tapbook_moved_en_v1"].reason == "INVALID_FORMAT"
    assert "tapbook_cancelled_en_v1" in caplog.text and "TwilioRestException" in caplog.text
    assert owner not in {r.url.split("/")[-2] for r in fake.requests}

    def unreachable(*args: Any, **kwargs: Any) -> Any:
        raise requests.exceptions.ConnectionError("HTTPSConnectionPool(host='content.twilio.com'): Name not known")

    monkeypatch.setattr(fake, "request", unreachable)
    assert approvals.refresh(twilio, sids, names) == {}  # Twilio out of reach: nothing raised


# -- the fakes answer the approval endpoints as Twilio does ----------------------------------------
def submission_of(twilio: Client, sid: str, body: dict[str, Any]) -> Any:
    return twilio.content.v1.contents(sid).approval_create.create(_Definition(body))


def test_the_fake_refuses_a_second_submission_and_a_bad_category(fake: FakeTwilio, twilio: Client) -> None:
    sid = "HX" + "1" * 32
    fake.contents[sid] = PROACTIVE[0].definition()
    for body in ({"name": "tapbook_reminder_en_v1"}, {"name": "tapbook_reminder_en_v1", "category": "urgent"}):
        with pytest.raises(TwilioRestException) as refused:
            submission_of(twilio, sid, body)
        assert refused.value.status == 400
    with pytest.raises(TwilioRestException):
        submission_of(twilio, sid, {"name": "Tapbook Reminder", "category": "UTILITY"})
    answer = submission_of(twilio, sid, {"name": "tapbook_reminder_en_v1", "category": "UTILITY"})
    assert (answer.status, answer.category, answer.content_type) == ("received", "UTILITY", "twilio/quick-reply")
    with pytest.raises(TwilioRestException) as again:
        submission_of(twilio, sid, {"name": "tapbook_reminder_en_v1", "category": "UTILITY"})
    assert again.value.status == 400
    fetched = twilio.content.v1.contents(sid).approval_fetch().fetch()
    assert fetched.whatsapp["status"] == "received" and fetched.whatsapp["name"] == "tapbook_reminder_en_v1"
    assert not fake.surprises
    with pytest.raises(Surprise):  # a field the bot never sends
        submission_of(twilio, sid, {"name": "x", "category": "UTILITY", "send_ttl_seconds": 60})
    fake.surprises.clear()


def test_the_http_stand_in_serves_sync_and_approval_like_the_fake(client: redis.Redis) -> None:
    with TwilioServer() as server:
        twilio = Client(ACCOUNT_SID, AUTH_TOKEN, http_client=EndpointHttpClient(server.url, timeout=5.0))
        sids = TemplateSids(client, "tapbook:templates")
        approvals = Approvals(client, KEY)
        synced = sync_templates(twilio, sids, PROACTIVE)
        notes = seek_approval(twilio, approvals, synced[len(TEMPLATES) :])
        assert set(notes.values()) == {"submitted for WhatsApp approval"} and len(server.submissions) == 12
        reminder = str(sids.get("tapbook_reminder_es_v1"))
        assert server.submissions[reminder] == {"name": "tapbook_reminder_es_v1", "category": "UTILITY"}
        server.approvals[reminder] = ("rejected", "INVALID_FORMAT")
        again = seek_approval(twilio, approvals, sync_templates(twilio, sids, PROACTIVE)[len(TEMPLATES) :])
        assert again["tapbook_reminder_es_v1"] == "rejected: INVALID_FORMAT" and len(server.submissions) == 12
        assert approvals.refresh(twilio, sids, ["tapbook_reminder_es_v1"]) == {}  # rejected: the operator's move
        assert approvals.all()["tapbook_reminder_es_v1"].reason == "INVALID_FORMAT"
        with pytest.raises(TwilioRestException) as twice:
            submission_of(twilio, reminder, {"name": "tapbook_reminder_es_v1", "category": "UTILITY"})
        assert twice.value.status == 400
        assert not server.surprises, server.surprises
