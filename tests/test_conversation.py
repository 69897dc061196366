"""The conversation a customer has in this release: menu, help, language, typed input."""

from __future__ import annotations

import pytest

from .whatsapp import WhatsApp


def test_any_first_message_gets_a_greeting_and_the_menu(wa: WhatsApp) -> None:
    answer = wa.send("good morning, can I book?")
    assert answer.status == 200
    assert answer.text.startswith("Hi Ana! 👋")
    assert "What would you like to do?" in answer.text
    assert answer.options == ["Book", "My bookings", "Language"]


@pytest.mark.parametrize(
    ("word", "switch"),
    [
        ("hi", "Language"),
        ("Hello!", "Language"),
        ("MENU", "Language"),
        ("  menu  ", "Language"),
        ("menú", "Language"),  # folds to "menu": English too
        ("hola", "Español"),
        ("Olá", "Português"),
        ("oi", "Português"),
    ],
)
def test_greetings_and_menu_words_in_any_language_show_the_menu(wa: WhatsApp, word: str, switch: str) -> None:
    """In English, with a one-tap switch to the language the word belongs to (the picker otherwise)."""
    wa.send("hi")
    wa.send("3")  # now on the language picker
    answer = wa.send(word)
    assert "What would you like to do?" in answer.text
    assert answer.options == ["Book", "My bookings", switch]


def test_hola_on_an_english_number_offers_spanish_in_one_tap(wa: WhatsApp) -> None:
    answer = wa.send("hola")
    assert answer.text.startswith("Hi Ana! 👋") and answer.options == ["Book", "My bookings", "Español"]
    switched = wa.choose(answer, "Español")
    assert switched.text.startswith("¡Hecho!") and "¿Qué te gustaría hacer?" in switched.text
    assert wa.send("hola").options[2] == "Idioma"  # she chose: the picker again, in her language


def test_the_customers_own_choice_beats_the_numbers_language(wa: WhatsApp) -> None:
    """A Spanish number (``?lang=es``) is only a default: a customer who picks English keeps English."""
    spanish = "/webhook?lang=es"
    answer = wa.send("hola", path=spanish)
    assert "¿Qué te gustaría hacer?" in answer.text
    picker = wa.send(answer.number("Idioma"), path=spanish)
    english = wa.send(picker.number("English"), path=spanish)
    assert "What would you like to do?" in english.text
    assert "What would you like to do?" in wa.send("menu", path=spanish).text  # still English


@pytest.mark.parametrize(
    ("word", "switch"), [("help", "Language"), ("HELP", "Language"), ("ayuda", "Español"), ("ajuda", "Português")]
)
def test_help_explains_how_to_answer(wa: WhatsApp, word: str, switch: str) -> None:
    wa.send("hi")
    answer = wa.send(word)
    assert "reply with the number of an option" in answer.text
    assert answer.options == ["Book", "My bookings", switch]


def test_typed_number_picks_the_offered_option(wa: WhatsApp) -> None:
    wa.send("hi")
    answer = wa.send("3")
    assert answer.text.startswith("Which language would you like?")
    assert answer.options == ["English", "Español", "Português"]


@pytest.mark.parametrize("typed", ["language", "LANGUAGE", "Language."])
def test_typed_title_picks_the_option_case_insensitively(wa: WhatsApp, typed: str) -> None:
    wa.send("hi")
    assert wa.send(typed).options == ["English", "Español", "Português"]


def test_tapping_a_button_works_like_typing_its_number(wa: WhatsApp) -> None:
    wa.send("hi")
    answer = wa.tap("nav1:language", "Language")
    assert answer.options == ["English", "Español", "Português"]


def test_picking_espanol_answers_in_spanish_from_then_on(wa: WhatsApp) -> None:
    wa.send("hi")
    wa.send("3")
    answer = wa.tap("lang1:es", "Español")
    assert answer.text.startswith("¡Hecho! A partir de ahora te escribiré en español.")
    assert "¿Qué te gustaría hacer?" in answer.text
    assert answer.options == ["Reservar", "Mis reservas", "Idioma"]
    later = wa.send("what?")
    assert later.text.startswith("Perdona, no te he entendido.")
    assert wa.send("idioma").text.startswith("¿En qué idioma")


def test_portuguese_by_typed_number_and_title(wa: WhatsApp) -> None:
    wa.send("hi")
    wa.send("3")
    answer = wa.send("3")
    assert answer.text.startswith("Feito!")
    assert answer.options == ["Marcar", "As minhas marcações", "Idioma"]
    assert wa.send("idioma").options == ["English", "Español", "Português"]
    assert wa.send("english").text.startswith("Done! I'll write to you in English")


@pytest.mark.parametrize("typed", ["7", "0", "banana", "", "🙂"])
def test_unknown_input_resends_the_current_step_with_a_hint(wa: WhatsApp, typed: str) -> None:
    wa.send("hi")
    wa.send("3")
    answer = wa.send(typed)
    assert answer.text.startswith("Sorry, I didn't catch that.")
    assert "Which language would you like?" in answer.text
    assert answer.options == ["English", "Español", "Português"]


@pytest.mark.parametrize(
    "payload",
    [
        "nope1:x",  # unknown kind
        "lang7:es",  # a version this release never packed
        "lang1:es:extra",  # wrong fields
        "lang1:xx",  # a language we do not speak
        "nav1:nowhere",
        "x" * 129,  # longer than any ID we pack
        "lang1:e s",
    ],
)
def test_tampered_buttons_change_nothing_and_get_the_current_step_back(wa: WhatsApp, payload: str) -> None:
    wa.send("hi")
    wa.send("3")
    answer = wa.tap(payload, "Whatever")
    assert answer.status == 200
    assert answer.text.startswith("That menu is out of date.")
    assert answer.options == ["English", "Español", "Português"]
    assert wa.send("2").text.startswith("¡Hecho!")  # still on the picker: nothing changed


def test_a_media_message_without_text_gets_the_hint(wa: WhatsApp) -> None:
    wa.send("hi")
    form = wa.form("", NumMedia="1", MediaUrl0="https://api.twilio.com/x.jpg", MediaContentType0="image/jpeg")
    answer = wa.post(form)
    assert answer.text.startswith("Sorry, I didn't catch that.")


def test_customers_do_not_share_conversations(app, wa: WhatsApp) -> None:
    other = WhatsApp(app.test_client(), "test-auth-token", phone="+447700900123", name="Bob")
    wa.send("hi")
    wa.send("3")
    wa.send("2")  # Ana picks Spanish
    answer = other.send("hi")
    assert answer.text.startswith("Hi Bob! 👋")
    assert other.send("3").options == ["English", "Español", "Português"]
    assert wa.send("menu").options == ["Reservar", "Mis reservas", "Idioma"]


def test_profile_names_cannot_break_the_reply(app) -> None:
    nasty = WhatsApp(app.test_client(), "test-auth-token", name="<b>&\x07Zoë</b>\n\n" + "x" * 80)
    answer = nasty.send("hi")
    assert answer.status == 200
    assert answer.text.startswith("Hi <b>&Zoë</b> xxxx")


def test_a_bug_costs_the_customer_an_apology_not_a_500(app, wa: WhatsApp, monkeypatch, caplog) -> None:  # type: ignore[no-untyped-def]
    from bot import get_services

    def broken(*args, **kwargs):  # type: ignore[no-untyped-def]
        raise RuntimeError("a bug")

    monkeypatch.setattr(get_services(app).conversation, "reply_to", broken)
    answer = wa.send("hi", path="/webhook?lang=pt")
    assert (answer.status, answer.text) == (200, "Desculpe, algo correu mal do nosso lado. Tente novamente.")
    assert "webhook failed" in caplog.text
    assert get_services(app).stats.get("taps.error") == 1


@pytest.mark.parametrize(
    ("typed", "path", "welcome"),
    [
        ("thanks", "/webhook", "You're welcome! 😊"),
        ("OK!", "/webhook", "You're welcome! 😊"),
        ("👍", "/webhook", "You're welcome! 😊"),
        ("gracias", "/webhook?lang=es", "¡De nada! 😊"),
        ("obrigado", "/webhook?lang=pt", "De nada! 😊"),
        ("valeu", "/webhook?lang=pt", "De nada! 😊"),
    ],
)
def test_thanks_gets_a_friendly_answer_and_the_step_again(wa: WhatsApp, typed: str, path: str, welcome: str) -> None:
    wa.send("menu", path=path)
    services = wa.send("1", path=path)  # Book: the services
    answer = wa.send(typed, path=path)
    assert answer.text.startswith(welcome), answer.text
    assert answer.options == services.options  # nothing lost: the same step


@pytest.mark.parametrize("kind", ["audio", "image", "location"])
def test_a_voice_note_a_picture_or_a_place_gets_what_the_bot_can_read(wa: WhatsApp, kind: str) -> None:
    menu = wa.send("menu")
    answer = wa.post(wa.form("", MessageType=kind, NumMedia="1" if kind != "location" else "0"))
    assert answer.text.startswith("I can only read text and taps.")
    assert answer.options == menu.options
