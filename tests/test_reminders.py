"""Reminders: scheduled by the step that books, sent once through the outbox, answered with a tap.

Real Redis, the real twilio client over :class:`FakeTwilio`, the app's clock moved by the test.
Ana books through a number answering in plain text (her 24-hour window is not stamped there, so
for the Content API app she last wrote long ago: what a reminder a day ahead usually meets).
"""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import parse_qs, urlsplit
from zoneinfo import ZoneInfo

import pytest
import redis
from flask import Flask

from bot import create_app, get_services
from bot.booking.reminders import due_at, parse_offset, schedule
from bot.channels import proactive
from bot.outbox.worker import IN_FLIGHT, LEASE, Worker

from .bookings import book, cancel, reschedule
from .catalogs import salon
from .conftest import TOKEN, Clock, app_config
from .content_phone import PUBLIC, ContentCustomer, content_config, shown, synced_worker
from .redis_server import RedisServer
from .twilio_fake import SENDER, FakeTwilio
from .whatsapp import WhatsApp

ANA = "+34600111222"
MADRID = ZoneInfo("Europe/Madrid")
REMINDER = proactive.friendly_name(proactive.REMINDER, "en")
#: Sat 17 Jan 2026 10:00 in Madrid: Ana's booking; its 24h reminder is due Fri 16 Jan 10:00
SATURDAY_10 = datetime(2026, 1, 17, 10, 0, tzinfo=MADRID)


# -- when reminders are due (plain values) -------------------------------------------------
def test_24h_means_the_same_wall_clock_time_the_day_before_across_dst() -> None:
    sunday = datetime(2026, 10, 25, 10, 0, tzinfo=MADRID).astimezone(UTC)  # the clocks go back at 03:00
    day_before = due_at(sunday, timedelta(hours=24), MADRID)
    assert day_before.astimezone(MADRID).replace(tzinfo=None) == datetime(2026, 10, 24, 10, 0)
    assert sunday - day_before == timedelta(hours=25)  # 25 real hours: that night had one more
    spring = datetime(2026, 3, 29, 10, 0, tzinfo=MADRID).astimezone(UTC)  # the clocks go forward at 02:00
    assert spring - due_at(spring, timedelta(hours=24), MADRID) == timedelta(hours=23)
    assert sunday - due_at(sunday, timedelta(hours=2), MADRID) == timedelta(hours=2)  # real time


def test_a_booking_made_less_than_an_offset_ahead_gets_no_reminder_for_it() -> None:
    start = datetime(2026, 1, 17, 9, 0, tzinfo=UTC)
    made = start - timedelta(hours=5)
    assert [label for label, _ in schedule(("24h", "2h"), start, made, MADRID)] == ["2h"]
    assert schedule(("24h", "2h"), start, start - timedelta(minutes=90), MADRID) == ()
    assert [parse_offset(x) for x in ("24h", "90m", "2d", "0h", "1w", "31d", " 2h")] == [
        timedelta(hours=24),
        timedelta(minutes=90),
        timedelta(days=2),
        None,
        None,
        None,
        None,
    ]


# -- fixtures ---------------------------------------------------------------------------------
@pytest.fixture
def db(redis_server: RedisServer) -> Iterator[redis.Redis]:
    client = redis.Redis.from_url(redis_server.url, decode_responses=True)
    client.flushdb()
    yield client
    client.close()


def plain_app(redis_server: RedisServer, clock: Clock, **business: Any) -> Flask:
    return create_app(app_config(REDIS_URL=redis_server.url, CLOCK=clock, CATALOG=salon(**business)))


def content_app(redis_server: RedisServer, fake: FakeTwilio, clock: Clock, **business: Any) -> Flask:
    return create_app(content_config(fake, REDIS_URL=redis_server.url, CLOCK=clock, CATALOG=salon(**business)))


@pytest.fixture
def booked(db: redis.Redis, redis_server: RedisServer, clock: Clock) -> str:
    """Ana's haircut on Sat 17 Jan at 10:00, booked on Wed 14 Jan at 10:00."""
    app = plain_app(redis_server, clock)
    ref = book(WhatsApp(app.test_client(), TOKEN, phone=ANA, name="Ana"), day="Sat 17 Jan", at="10:00")
    get_services(app).redis.close()
    return ref


@pytest.fixture
def app(db: redis.Redis, redis_server: RedisServer, fake: FakeTwilio, clock: Clock) -> Iterator[Flask]:
    app = content_app(redis_server, fake, clock)
    yield app
    get_services(app).redis.close()


def approve(app: Flask, *names: str) -> None:
    for name in names or (REMINDER,):
        get_services(app).approvals.record(name, "approved")


#: Fri 16 Jan 2026 10:00 in Madrid: Ana's reminder is due
FRIDAY_10 = datetime(2026, 1, 16, 10, 0, tzinfo=MADRID).astimezone(UTC)


def at_the_reminder(app: Flask, clock: Clock, *, approved: bool = True) -> Worker:
    """The app's worker (templates synced, the reminder's approved unless said), at Friday 10:00."""
    worker = synced_worker(app)
    if approved:
        approve(app)
    clock.now = FRIDAY_10
    return worker


def reminders_of(db: redis.Redis) -> dict[str, float]:
    return dict(db.zrange("tapbook:{test}:reminders", 0, -1, withscores=True))


def counts(db: redis.Redis) -> dict[str, int]:
    return {k: int(v) for k, v in db.hgetall("tapbook:{test}:reminder-counts").items()}


def ms(moment: datetime) -> float:
    return float(int(moment.timestamp() * 1000))


def reminder_sends(fake: FakeTwilio) -> list[dict[str, Any]]:
    reminder_sids = {sid for sid, body in fake.contents.items() if body["friendly_name"].startswith("tapbook_reminder")}
    return [m for m in fake.accepted if m.get("ContentSid") in reminder_sids]


# -- scheduling, in the step that books, moves and cancels -----------------------------------
def test_booking_schedules_its_reminder_a_move_re_times_it_and_a_cancel_removes_it(
    db: redis.Redis, redis_server: RedisServer, clock: Clock
) -> None:
    app = plain_app(redis_server, clock, reminders=("24h", "2h"))
    ana = WhatsApp(app.test_client(), TOKEN, phone=ANA)
    ref = book(ana, day="Sat 17 Jan", at="10:00")
    assert reminders_of(db) == {
        f"{ref}:24h": ms(datetime(2026, 1, 16, 10, 0, tzinfo=MADRID)),
        f"{ref}:2h": ms(datetime(2026, 1, 17, 8, 0, tzinfo=MADRID)),
    }
    assert db.hget(f"tapbook:{{test}}:booking:{ref}", "reminders") == "24h,2h"

    reschedule(ana, "Sat 17 Jan 10:00", "Thu 15 Jan", "11:00")
    ((member, due),) = [(m, d) for m, d in reminders_of(db).items() if m.endswith(":24h")]
    moved_to = member.partition(":")[0]
    assert moved_to != ref and due == ms(datetime(2026, 1, 14, 11, 0, tzinfo=MADRID))
    assert set(reminders_of(db)) == {f"{moved_to}:24h", f"{moved_to}:2h"}  # the old booking's are gone

    cancel(ana, "Thu 15 Jan 11:00")
    assert reminders_of(db) == {}
    get_services(app).redis.close()


def test_a_business_with_no_reminders_schedules_none(db: redis.Redis, redis_server: RedisServer, clock: Clock) -> None:
    app = plain_app(redis_server, clock, reminders=())
    book(WhatsApp(app.test_client(), TOKEN, phone=ANA), day="Sat 17 Jan", at="10:00")
    assert reminders_of(db) == {}
    get_services(app).redis.close()


# -- sending ------------------------------------------------------------------------------------
def test_a_due_reminder_goes_once_as_the_approved_template_with_these_exact_fields(
    app: Flask, fake: FakeTwilio, clock: Clock, booked: str, db: redis.Redis
) -> None:
    worker = synced_worker(app)
    approve(app)
    clock.now = datetime(2026, 1, 16, 9, 59, tzinfo=MADRID).astimezone(UTC)
    worker.run_once()
    assert reminder_sends(fake) == []  # a minute early
    clock.advance(minutes=1)
    worker.run_once()
    (sent,) = reminder_sends(fake)
    services = get_services(app)
    assert sent["ContentSid"] == services.redis.hget(services.shared_keys.templates, REMINDER)
    assert sent["To"] == f"whatsapp:{ANA}" and sent["From"] == SENDER and "Body" not in sent
    assert json.loads(sent["ContentVariables"]) == {
        "1": "Ana",
        "2": "Haircut",
        "3": "Sat 17 Jan",
        "4": "10:00",
        "5": "Test Salon",
        "6": f"rem1:c:{booked}:{int(SATURDAY_10.timestamp())}",
        "7": f"rem1:m:{booked}:{int(SATURDAY_10.timestamp())}",
        "8": f"rem1:x:{booked}:{int(SATURDAY_10.timestamp())}",
    }
    callback = urlsplit(sent["StatusCallback"])
    assert f"{callback.scheme}://{callback.netloc}{callback.path}" == f"{PUBLIC}/webhook/status"
    assert parse_qs(callback.query)["b"] == ["test"] and parse_qs(callback.query)["to"] == [ANA]
    assert shown(fake, sent).options == ["Confirm", "Reschedule", "Cancel"]
    assert shown(fake, sent).text == (
        "Hi Ana, this is a reminder of your Haircut on Sat 17 Jan at 10:00, at Test Salon. Will you come?"
    )

    clock.advance(hours=1)
    worker.run_once()
    assert len(reminder_sends(fake)) == 1  # exactly once
    assert reminders_of(db) == {} and counts(db) == {"queued": 1, "sent": 1}
    metrics = app.test_client().get("/metrics").get_data(as_text=True)
    assert 'tapbook_reminders_total{business="test",result="sent"} 1.0' in metrics
    assert 'tapbook_reminders_scheduled{business="test"} 0.0' in metrics


def test_a_reminder_in_spanish_for_a_booking_made_in_spanish(
    db: redis.Redis, redis_server: RedisServer, fake: FakeTwilio, clock: Clock
) -> None:
    plain = plain_app(redis_server, clock)
    ana = WhatsApp(plain.test_client(), TOKEN, phone=ANA, name="")
    spanish = "/webhook?lang=es"
    answer = ana.send("menu", path=spanish)
    for title in ("Reservar", "Corte", "sáb 17 ene", "10:00", "Confirmar"):
        answer = ana.send(answer.number(title), path=spanish)
    assert "reserva" in answer.text.lower(), answer.text
    get_services(plain).redis.close()
    app = content_app(redis_server, fake, clock)
    worker = synced_worker(app)
    approve(app, proactive.friendly_name(proactive.REMINDER, "es"))
    clock.now = FRIDAY_10
    worker.run_once()
    (sent,) = reminder_sends(fake)
    assert shown(fake, sent).text == (
        "Hola 👋, te recordamos tu cita de Corte el sáb 17 ene a las 10:00, en Test Salon. ¿Vendrás?"
    )
    assert shown(fake, sent).options == ["Confirmar", "Cambiar hora", "Cancelar"]


def test_outside_the_window_an_unapproved_template_is_not_sent_and_the_owner_sees_why(
    app: Flask, fake: FakeTwilio, clock: Clock, booked: str, db: redis.Redis
) -> None:
    worker = at_the_reminder(app, clock, approved=False)
    worker.run_once()
    assert reminder_sends(fake) == []
    assert counts(db) == {"queued": 1, "not_approved": 1}
    url = get_services(app).settings.redis_url
    owner = create_app(content_config(fake, REDIS_URL=url, CLOCK=clock, ADMIN_PASSWORD="owner-secret"))
    page = owner.test_client().get("/admin", auth=("owner", "owner-secret")).get_data(as_text=True)
    assert "not approved by WhatsApp yet" in page and REMINDER in page
    get_services(owner).redis.close()


def test_inside_the_window_it_goes_even_before_approval(
    app: Flask, fake: FakeTwilio, clock: Clock, booked: str
) -> None:
    worker = synced_worker(app)
    clock.now = datetime(2026, 1, 16, 8, 0, tzinfo=MADRID).astimezone(UTC)
    ana = ContentCustomer(app, fake, worker, ANA)
    ana.send("hi")  # writes at 08:00: her window is open at 10:00
    clock.advance(hours=2)
    worker.run_once()
    assert len(reminder_sends(fake)) == 1


def test_a_customer_who_blocked_the_business_counts_as_failed(
    app: Flask, fake: FakeTwilio, clock: Clock, booked: str, db: redis.Redis
) -> None:
    worker = at_the_reminder(app, clock)
    fake.plan.append(63016)
    worker.run_once()
    assert reminder_sends(fake) == [] and counts(db) == {"queued": 1, "failed": 1}
    (given_up,) = get_services(app).outboxes["test"].undelivered()
    assert given_up.state == "undeliverable"


def test_a_customer_who_wrote_stop_gets_no_reminder(
    app: Flask, fake: FakeTwilio, clock: Clock, booked: str, db: redis.Redis
) -> None:
    worker = at_the_reminder(app, clock)
    ContentCustomer(app, fake, worker, ANA).send("stop")  # at 10:00, as the reminder falls due
    before = len(fake.accepted)
    worker.run_once()
    assert len(fake.accepted) == before and counts(db) == {"opted_out": 1}


# -- races and crashes --------------------------------------------------------------------------
def test_a_cancel_between_the_queueing_and_the_send_revokes_it(
    app: Flask, fake: FakeTwilio, clock: Clock, booked: str, db: redis.Redis
) -> None:
    worker = at_the_reminder(app, clock)
    outbox = get_services(app).outboxes["test"]
    _, due, _ = outbox.claim_all(outbox.now_ms(), 10, 15_000, reminders=10)
    assert worker.fire(due[0], outbox) == "queued" and outbox.pending(ANA) == 1
    result = app.test_cli_runner().invoke(args=["bookings", "cancel", booked, "--yes"])
    assert result.exit_code == 0, result.output
    worker.run_once()
    assert reminder_sends(fake) == []
    assert counts(db)["revoked"] == 1 and outbox.pending(ANA) == 0


def test_a_cancel_after_the_claim_leaves_nothing_to_fire(
    app: Flask, fake: FakeTwilio, clock: Clock, booked: str, db: redis.Redis
) -> None:
    worker = at_the_reminder(app, clock, approved=False)
    outbox = get_services(app).outboxes["test"]
    _, due, _ = outbox.claim_all(outbox.now_ms(), 10, 15_000, reminders=10)
    assert app.test_cli_runner().invoke(args=["bookings", "cancel", booked, "--yes"]).exit_code == 0
    assert worker.fire(due[0], outbox) == "gone" and outbox.pending(ANA) == 0


def test_a_worker_that_died_after_claiming_leaves_the_reminder_to_the_next(
    app: Flask, fake: FakeTwilio, clock: Clock, booked: str
) -> None:
    worker = at_the_reminder(app, clock)
    outbox = get_services(app).outboxes["test"]
    outbox.claim_all(outbox.now_ms(), 10, worker.lease_ms, reminders=10)  # claimed, then killed
    worker.run_once()
    assert reminder_sends(fake) == []  # held by the dead worker's claim
    clock.advance(seconds=LEASE.total_seconds())
    worker.run_once()
    assert len(reminder_sends(fake)) == 1


def test_a_worker_killed_mid_send_is_not_followed_by_a_second_reminder(
    app: Flask, fake: FakeTwilio, clock: Clock, booked: str
) -> None:
    class Killed(BaseException):
        pass

    def die(phone: str, sid: str) -> None:
        raise Killed  # Twilio took it; the worker dies before writing the sid down

    approve(app)
    clock.now = FRIDAY_10
    with pytest.raises(Killed):
        synced_worker(app, after_send=die).run_once()
    assert len(reminder_sends(fake)) == 1
    clock.advance(seconds=IN_FLIGHT.total_seconds() + 60)
    successor = synced_worker(app)
    for _ in range(3):
        successor.run_once()
        clock.advance(seconds=40)
    assert len(reminder_sends(fake)) == 1  # looked up at Twilio, found, not sent again


def test_three_workers_send_each_of_many_reminders_exactly_once(
    db: redis.Redis, redis_server: RedisServer, fake: FakeTwilio, clock: Clock
) -> None:
    plain = plain_app(redis_server, clock)
    for n in range(8):  # every haircut time of Saturday, each booked by another phone
        customer = WhatsApp(plain.test_client(), TOKEN, phone=f"+3460000{n:04d}")
        book(customer, day="Sat 17 Jan", at=f"{9 + n // 2:02d}:{'30' if n % 2 else '00'}")
    get_services(plain).redis.close()
    app = content_app(redis_server, fake, clock)
    approve(app)
    workers: list[Worker] = [synced_worker(app, pool=4) for _ in range(3)]
    clock.now = datetime(2026, 1, 16, 13, 0, tzinfo=MADRID).astimezone(UTC)  # every one of them due
    start = threading.Barrier(3)

    def run(worker: Worker) -> None:
        start.wait()
        for _ in range(4):
            worker.run_once()

    threads = [threading.Thread(target=run, args=(w,)) for w in workers]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    sent = reminder_sends(fake)
    per_booking = sorted(json.loads(m["ContentVariables"])["6"] for m in sent)
    assert len(per_booking) == len(set(per_booking)) == 8
    assert counts(db) == {"queued": 8, "sent": 8}
    get_services(app).redis.close()


# -- answered with a tap ----------------------------------------------------------------------
@pytest.fixture
def reminded(app: Flask, fake: FakeTwilio, clock: Clock, booked: str) -> tuple[ContentCustomer, Any]:
    """Ana's reminder, delivered on Fri 16 Jan at 10:00; and Ana, ready to tap it."""
    worker = at_the_reminder(app, clock)
    worker.run_once()
    (sent,) = reminder_sends(fake)
    return ContentCustomer(app, fake, worker, ANA), shown(fake, sent)


def test_confirm_records_the_customers_word_for_the_owner(
    app: Flask, reminded: tuple[ContentCustomer, Any], booked: str, db: redis.Redis, clock: Clock
) -> None:
    ana, reminder = reminded
    clock.advance(hours=20)  # a day later: no session left
    db.delete(f"tapbook:{{test}}:session:{ANA}")
    answer = ana.pick(reminder, "Confirm")
    assert answer.text.startswith("Thanks for confirming! See you on Sat 17 Jan 10:00.")
    assert db.hget(f"tapbook:{{test}}:booking:{booked}", "customer_confirmed_at")
    assert ana.pick(reminder, "Confirm").text.startswith("Thanks for confirming!")  # a second tap: same answer
    assert counts(db)["confirmed"] == 1
    listed = app.test_cli_runner().invoke(args=["bookings", "list", "--date", "2026-01-17", "--days", "1"])
    assert "confirmed by customer" in listed.output


def test_reschedule_opens_the_move_and_cancel_asks_once(
    app: Flask, reminded: tuple[ContentCustomer, Any], booked: str, db: redis.Redis
) -> None:
    ana, reminder = reminded
    dates = ana.pick(reminder, "Reschedule")
    assert dates.kind == "twilio/list-picker" and "Mon 19 Jan" in dates.options
    asked = ana.pick(reminder, "Cancel")
    assert asked.text.startswith("Cancel this booking?") and asked.options == ["Yes, cancel it", "No, keep it"]
    done = ana.pick(asked, "Yes, cancel it")
    assert f"Your booking is cancelled: Haircut, Sat 17 Jan, 10:00–10:30 ({booked})" in done.text
    assert db.hget(f"tapbook:{{test}}:booking:{booked}", "status") == "cancelled"


def test_a_tap_on_the_reminder_of_a_moved_or_cancelled_booking_says_so(
    app: Flask, reminded: tuple[ContentCustomer, Any], booked: str, db: redis.Redis
) -> None:
    ana, reminder = reminded
    mine = ana.pick(ana.send("menu"), "My bookings")
    booking = ana.pick(mine, mine.options[0])
    dates = ana.pick(booking, "Reschedule")
    times = ana.pick(dates, "Mon 19 Jan")
    confirm = ana.pick(times, "11:00")
    moved = ana.pick(confirm, "Confirm")
    assert moved.text.startswith("Moved!")
    answer = ana.pick(reminder, "Confirm")
    assert answer.text.startswith("This booking was moved to Haircut, Mon 19 Jan, 11:00–11:30")
    assert not db.hget(f"tapbook:{{test}}:booking:{booked}", "customer_confirmed_at")
    moved_to = db.hget(f"tapbook:{{test}}:booking:{booked}", "rescheduled_to")
    assert app.test_cli_runner().invoke(args=["bookings", "cancel", moved_to, "--yes"]).exit_code == 0
    ana.worker.run_once()  # the business's notice of its cancel goes first
    assert ana.pick(reminder, "Cancel").text.startswith("This booking was cancelled.")
    assert ana.pick(reminder, "Reschedule").text.startswith("This booking was cancelled.")


def test_someone_elses_reminder_button_finds_nothing(
    app: Flask, fake: FakeTwilio, reminded: tuple[ContentCustomer, Any], booked: str, db: redis.Redis
) -> None:
    _, reminder = reminded
    eve = ContentCustomer(app, fake, reminded[0].worker, "+34699999999")
    assert eve.pick(reminder, "Cancel").text.startswith("Sorry, we couldn't find that booking.")
    assert db.hget(f"tapbook:{{test}}:booking:{booked}", "status") == "confirmed"


# -- the other messages the business starts ---------------------------------------------------
def test_the_owner_is_told_of_each_booking_move_and_cancel(
    db: redis.Redis, redis_server: RedisServer, fake: FakeTwilio, clock: Clock
) -> None:
    owner = "+34911000000"
    app = content_app(redis_server, fake, clock, owner_whatsapp=owner)
    worker = synced_worker(app)
    approve(app, proactive.friendly_name(proactive.OWNER, "en"))
    ana = ContentCustomer(app, fake, worker, ANA)
    services = get_services(app)
    for title in ("Book", "Haircut", "Sat 17 Jan", "10:00", "Confirm"):
        answer = ana.pick(ana.seen[-1], title) if ana.seen else ana.pick(ana.send("hi"), title)
    assert "Your booking reference" in answer.text
    worker.run_once()
    alerts = [shown(fake, m).text for m in fake.accepted if m["To"] == f"whatsapp:{owner}"]
    assert alerts == [
        "Booking update for Test Salon: new booking Haircut, Sat 17 Jan, 10:00–10:30 "
        f"({answer.text.split('reference: ')[1][:6]}), Ana {ANA}. Your diary has the details."
    ]
    assert services.stats.get("outbox.sent") >= 1
    get_services(app).redis.close()


def test_the_business_cancel_reaches_the_customer_as_an_approved_template(
    app: Flask, fake: FakeTwilio, clock: Clock, booked: str, redis_server: RedisServer
) -> None:
    worker = synced_worker(app)
    cancelled = proactive.friendly_name(proactive.CANCELLED, "en")
    refused = app.test_cli_runner().invoke(args=["bookings", "cancel", booked, "--yes"])
    assert "WhatsApp has not approved the template yet" in refused.output  # she last wrote long ago
    assert get_services(app).outboxes["test"].pending(ANA) == 0

    plain = plain_app(redis_server, clock)
    plain_ref = book(WhatsApp(plain.test_client(), TOKEN, phone=ANA), day="Sat 17 Jan", at="11:00")
    get_services(plain).redis.close()
    approve(app, cancelled)
    told = app.test_cli_runner().invoke(args=["bookings", "cancel", plain_ref, "--yes"])
    assert "on its way" in told.output
    worker.run_once()
    (sent,) = [m for m in fake.accepted if m["To"] == f"whatsapp:{ANA}"]
    assert shown(fake, sent).text == (
        f"Your booking with Test Salon is cancelled: Haircut, Sat 17 Jan, 11:00–11:30 ({plain_ref}). "
        "Write to us to book another time."
    )


def test_a_move_between_the_queueing_and_the_send_revokes_it_and_the_new_time_gets_its_own(
    app: Flask, fake: FakeTwilio, clock: Clock, booked: str, db: redis.Redis
) -> None:
    worker = synced_worker(app)
    approve(app)
    clock.now = datetime(2026, 1, 16, 9, 0, tzinfo=MADRID).astimezone(UTC)
    ana = ContentCustomer(app, fake, worker, ANA)
    mine = ana.pick(ana.send("menu"), "My bookings")
    times = ana.pick(ana.pick(ana.pick(mine, mine.options[0]), "Reschedule"), "Mon 19 Jan")
    confirm = ana.pick(times, "11:00")
    clock.advance(hours=1)  # Sat 17 Jan's reminder is due; it is queued, then the move lands
    outbox = get_services(app).outboxes["test"]
    _, due, _ = outbox.claim_all(outbox.now_ms(), 10, 15_000, reminders=10)
    assert [worker.fire(member, outbox) for member in due] == ["queued"]
    moved = ana.pick(confirm, "Confirm")  # the tap's reply goes; the old reminder behind it is revoked
    assert moved.text.startswith("Moved!")
    assert reminder_sends(fake) == [] and counts(db) == {"queued": 1, "revoked": 1}
    (new_ref,) = [m.partition(":")[0] for m in reminders_of(db)]
    assert reminders_of(db) == {f"{new_ref}:24h": ms(datetime(2026, 1, 18, 11, 0, tzinfo=MADRID))}


def test_a_business_sending_through_a_messaging_service_names_it(
    db: redis.Redis, redis_server: RedisServer, fake: FakeTwilio, clock: Clock
) -> None:
    service_sid = "MG" + "5" * 32
    plain = plain_app(redis_server, clock)
    book(WhatsApp(plain.test_client(), TOKEN, phone=ANA), day="Sat 17 Jan", at="10:00")
    get_services(plain).redis.close()
    app = content_app(redis_server, fake, clock, sender=service_sid)
    worker = at_the_reminder(app, clock)
    worker.run_once()
    (sent,) = reminder_sends(fake)
    assert sent["MessagingServiceSid"] == service_sid and "From" not in sent
    get_services(app).redis.close()
