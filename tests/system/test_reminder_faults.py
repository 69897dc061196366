"""Reminders against real processes: three ``flask worker`` processes, one SIGKILLed while they
fire, and the business cancelling bookings as they go: each reminder reaches Twilio at most once,
every reminder of a booking that stands exactly once, and none of a booking cancelled before it
was queued.

Customers book through the app under gunicorn (``outbox_rig.py``); their reminders are then made
due now (the clock seam: the due set's scores moved to the Redis clock's now, as time would), and
the workers fire and send them to the local Twilio over HTTP. Bounded waits on conditions only.
"""

from __future__ import annotations

import json
import threading
import time
from collections import Counter
from collections.abc import Iterator

import pytest

from bot import create_app, get_services
from bot.agenda import cancel_for_business
from bot.config import Settings

from ..conftest import need_redis_server
from .harness import Report
from .outbox_rig import OutboxRig

CUSTOMERS = 40


@pytest.fixture(scope="module")
def rig(tmp_path_factory: pytest.TempPathFactory) -> Iterator[OutboxRig]:
    need_redis_server()
    rig = OutboxRig(tmp_path_factory.mktemp("reminder-faults"))
    try:
        yield rig
    finally:
        rig.close()


def reminder_refs(rig: OutboxRig) -> Counter[str]:
    """How many reminder messages Twilio created per booking (the REF in the Confirm button's ID)."""
    names = {sid: body.get("friendly_name", "") for sid, body in rig.twilio.contents.items()}
    found: Counter[str] = Counter()
    for message in rig.twilio.created():
        if names.get(message.form.get("ContentSid", ""), "").startswith("tapbook_reminder_"):
            found[json.loads(message.form["ContentVariables"])["6"].split(":")[2]] += 1
    return found


def test_three_workers_one_killed_and_racing_cancels_send_each_reminder_at_most_once(
    rig: OutboxRig, report: Report
) -> None:
    rig.reset(3)
    made = rig.conversations(CUSTOMERS, 6)  # each books a time two to eight days ahead
    phones = {taps[0].form["From"].removeprefix("whatsapp:") for taps in made}
    rig.tap(made, 60.0)
    rig.wait_until_quiet(phones, timeout=60)
    scheduled = rig.db.zrange(rig.keys.reminders, 0, -1)
    refs = sorted({member.partition(":")[0] for member in scheduled})
    assert len(refs) >= CUSTOMERS * 3 // 4, scheduled  # a booking under 24 h ahead has none
    owner = create_app({k: v for k, v in rig.env.items() if Settings.is_known(k)})  # the deployment's settings
    services = get_services(owner)
    (shop,) = [s for s in services.directory if s.id == rig.keys.business]
    cancelled_first, racing = refs[:5], refs[5:15]
    for ref in cancelled_first:
        assert cancel_for_business(services, shop, ref)[0] == "ok"

    outcomes: dict[str, str] = {}

    def cancel_as_they_fire() -> None:
        for ref in racing:
            outcomes[ref] = cancel_for_business(services, shop, ref)[0]
            time.sleep(0.03)  # spread over the firing and the sends (the race is the point)

    rig.twilio.delay = 0.5  # sends stay on the wire a while: the kill cuts some, the cancels meet some
    racer = threading.Thread(target=cancel_as_they_fire)
    started = time.monotonic()
    now_ms = int(rig.db.time()[0]) * 1000
    rig.db.zadd(rig.keys.reminders, {member: now_ms for member in rig.db.zrange(rig.keys.reminders, 0, -1)})
    racer.start()
    before = len(rig.twilio.received())
    rig.twilio.wait_until(lambda: len(rig.twilio.sends) > before, timeout=20)
    victim = rig.workers.alive()[0]
    rig.workers.kill(victim)  # SIGKILL mid-fire: whatever it held is due again after its lease
    rig.workers.start(1)
    racer.join(30)
    standing = [ref for ref in refs if ref not in cancelled_first and ref not in racing]

    def all_sent() -> bool:
        return set(standing) <= set(reminder_refs(rig))

    deadline = time.monotonic() + 60
    while not all_sent() and time.monotonic() < deadline:
        time.sleep(0.2)
    rig.wait_until_quiet(phones, timeout=60)
    seconds = time.monotonic() - started
    sent = reminder_refs(rig)
    counts = {k: int(v) for k, v in rig.db.hgetall(rig.keys.reminder_counts).items()}
    died = rig.workers.died()
    rig.workers.stop()
    figures = {
        "bookings": len(refs),
        "sent": sum(sent.values()),
        "twice": sum(1 for n in sent.values() if n > 1),
        "racing_sent_before_cancel": sum(1 for ref in racing if sent[ref]),
        **{f"counted_{k}": v for k, v in sorted(counts.items())},
        "seconds": round(seconds, 1),
    }
    report.scenario("reminders: 3 workers, 1 killed, cancels racing", **figures)
    print("\nreminders: " + ", ".join(f"{k}={v}" for k, v in figures.items()), flush=True)

    assert not died, died
    assert figures["twice"] == 0, sent
    assert all(sent[ref] == 1 for ref in standing), {ref: sent[ref] for ref in standing}
    assert not any(sent[ref] for ref in cancelled_first)
    assert all(outcomes.get(ref) == "ok" for ref in racing), outcomes
    assert rig.db.zcard(rig.keys.reminders) == 0
    # every reminder queued was either sent or revoked at the send (its booking cancelled in between)
    assert (
        counts.get("queued", 0)
        == counts.get("sent", 0) + counts.get("revoked", 0)
        == len(standing) + sum(1 for ref in racing if sent[ref]) + counts.get("revoked", 0)
    )
    get_services(owner).redis.close()
