"""STOP and START (issue 19's opt-out): the customer's choice about messages the business starts."""

from __future__ import annotations

import pytest
import redis

from .whatsapp import WhatsApp

STOPPED = {
    "en": "Done: Test Salon will not send you reminders or other messages you did not ask for.",
    "es": "Hecho: Test Salon no te enviará recordatorios ni otros mensajes que no hayas pedido.",
    "pt": "Pronto: Test Salon não vai enviar lembretes nem outras mensagens que você não pediu.",
}


@pytest.mark.parametrize(
    ("lang", "word"), [("en", "STOP"), ("en", "unsubscribe"), ("es", "baja"), ("es", "Parar"), ("pt", "sair")]
)
def test_stop_in_any_language_is_confirmed_once_and_kept(wa: WhatsApp, db: redis.Redis, lang: str, word: str) -> None:
    path = f"/webhook?lang={lang}"
    wa.send("hi", path=path)
    answer = wa.send(word, path=path)
    assert answer.text.startswith(STOPPED[lang]) and answer.options == []
    assert db.hexists("tapbook:{test}:optout", "+34600111222") and db.ttl("tapbook:{test}:optout") == -1  # no expiry
    assert 'tapbook_consent_changes_total{business="test",change="out"} 1.0' in wa.client.get("/metrics").text


def test_start_turns_messages_back_on_and_shows_the_menu(wa: WhatsApp, db: redis.Redis) -> None:
    wa.send("hi")
    wa.send("stop")
    answer = wa.send("START")
    assert answer.text.startswith("Reminders and messages from Test Salon are on.")
    assert answer.options == ["Book", "My bookings", "Language"]
    assert not db.hexists("tapbook:{test}:optout", "+34600111222")
    assert wa.send("alta").options == ["Book", "My bookings", "Español"]  # again: no harm (and Spanish offered)


def test_replies_to_the_customers_own_messages_go_on_after_stop(wa: WhatsApp) -> None:
    wa.send("hi")
    wa.send("stop")
    answer = wa.send("menu")
    assert "What would you like to do?" in answer.text and answer.options == ["Book", "My bookings", "Language"]
