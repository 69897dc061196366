"""Sentinel: the master is killed mid-traffic; the bot keeps answering through the failover.

Thirty customers book at once on one app instance that finds its master through three
sentinels. Once a third of them are booked, the master is killed (SIGKILL). Until the
sentinels have promoted the replica, taps get the polite "trouble" reply (never a 5xx);
Twilio redelivers such a message (same MessageSid) and the conversation carries on on the
new master; one whose last steps had reached only the old master starts again. Every
booking a customer was told about is on the new master: with Sentinel the app waits
(``WAIT 1``) for the replica before saying "Booked!".
"""

from __future__ import annotations

import threading
import time

import redis

from bot import create_app, get_services

from ..bookings import book
from ..conftest import TOKEN, app_config
from ..system.harness import BOOKED, POLITE, REF, Customer, Reply, Report, Twilio, customers, in_parallel
from ..system.test_retry_storm import SCRIPT
from ..whatsapp import WhatsApp
from .servers import Sentinels, wait_until

CUSTOMERS = 30
PATIENCE = 30  # seconds a conversation may take, failover included


def converse(person: Customer, deadline: float) -> list[list[Reply]]:
    """The booking conversation, until booked: a message answered politely is delivered again (as
    Twilio retries); a conversation that lost its place (its last steps were written to the old
    master only) starts again from "hi"."""
    attempts: list[list[Reply]] = []
    while time.monotonic() < deadline and not (attempts and attempts[-1][-1].text.startswith(BOOKED)):
        attempts.append([])
        for text in SCRIPT:
            form = person.form(text)
            while True:
                reply = person.twilio.deliver(form)
                attempts[-1].append(reply)
                if reply.status != 200 or reply.text != POLITE or time.monotonic() > deadline:
                    break
                time.sleep(0.05)  # Twilio's retry interval, shortened
    return attempts


def test_the_app_behind_sentinels(sentinels: Sentinels) -> None:
    """Readiness, the durability check (of the master), and a booking that waited for the replica."""
    with redis.Redis(port=sentinels.master.port, decode_responses=True) as master:
        waits = int(master.info("commandstats").get("cmdstat_wait", {}).get("calls", 0))
        app = create_app(
            app_config(REDIS_SENTINELS=",".join(sentinels.addresses), REDIS_SENTINEL_SERVICE=Sentinels.SERVICE)
        )
        services = get_services(app)
        assert services.settings.wait_replicas == 1
        ready = app.test_client().get("/readyz")
        assert ready.status_code == 200 and ready.get_json()["checks"]["redis"] == "ok"
        ref = book(WhatsApp(app.test_client(), TOKEN))
        assert int(master.info("commandstats")["cmdstat_wait"]["calls"]) > waits
        with sentinels.replica_client() as replica:
            assert replica.hget(f"tapbook:{{test}}:booking:{ref}", "status") == "confirmed"  # before "Booked!"
            master.flushall()
            wait_until(lambda: not replica.dbsize(), "the replica to follow")
    services.redis.close()


def test_killing_the_master_mid_traffic(sentinels: Sentinels, sentinel_instance, deployments_report: Report) -> None:  # type: ignore[no-untyped-def]
    report = deployments_report
    twilio = Twilio(sentinel_instance, report)
    people = customers(twilio, CUSTOMERS, area="8")
    old_master, replica = sentinels.master.port, sentinels.replica.port
    booked = threading.Semaphore(0)
    timeline: dict[str, float] = {}

    def kill_master_after_some_bookings() -> None:
        for _ in range(CUSTOMERS // 3):
            booked.acquire(timeout=PATIENCE)
        timeline["killed"] = time.monotonic()
        sentinels.master.kill()
        wait_until(lambda: sentinels.master_port() == replica, "the sentinels to promote the replica", timeout=PATIENCE)
        timeline["promoted"] = time.monotonic()

    def conversation(person: Customer) -> list[list[Reply]]:
        attempts = converse(person, time.monotonic() + PATIENCE)
        if attempts[-1][-1].text.startswith(BOOKED):
            booked.release()
        return attempts

    killer = threading.Thread(target=kill_master_after_some_bookings, daemon=True)
    killer.start()
    conversations = in_parallel(people, conversation, threads=10)
    killer.join(timeout=PATIENCE)
    assert "promoted" in timeline, "the master was never killed or never replaced"

    replies = [reply for attempts in conversations for replies in attempts for reply in replies]
    assert {reply.status for reply in replies} == {200}  # no 5xx, no dropped connection
    polite = [reply for reply in replies if reply.text == POLITE]
    told = {}
    for person, attempts in zip(people, conversations, strict=True):
        last = attempts[-1][-1]
        assert last.text.startswith(BOOKED), last.text
        told[person.phone] = REF.search(last.text)[1]

    with sentinels.replica_client() as db:  # the new master
        found = {}
        for key in db.scan_iter("system:{system}:booking:*", count=1000):
            record = db.hgetall(key)
            found.setdefault(record["phone"], []).append(record["ref"])
    for phone, ref in told.items():
        assert ref in found.get(phone, []), f"a booking the customer was told about is lost: {ref}"

    switch = [reply for reply in polite if reply.sent_at >= timeline["killed"]]
    waits = sentinel_instance.log().count("a booking write reached")
    report.scenario(
        "sentinel failover",
        customers=CUSTOMERS,
        taps=len(replies),
        polite_replies=len(polite),
        polite_after_kill=len(switch),
        failover_s=round(timeline["promoted"] - timeline["killed"], 2),
        polite_window_s=round(max((r.sent_at for r in polite), default=timeline["killed"]) - timeline["killed"], 2),
        bookings_told=len(told),
        bookings_found=sum(len(refs) for refs in found.values()),
        conversations_restarted=sum(len(attempts) - 1 for attempts in conversations),
        bookings_answered_unreplicated=waits,
        old_master=old_master,
        new_master=replica,
    )
