"""The owner's desk pages (routes of the ``admin`` blueprint, behind its login and CSRF checks):
the diary (a day or a week as a time grid), a walk-in booking, a move, attended / no-show marks,
and search. The work is in :mod:`bot.desk`; these views only read forms and render."""

from __future__ import annotations

from datetime import date, timedelta

from flask import flash, get_flashed_messages, redirect, render_template, request, url_for
from flask.typing import ResponseReturnValue

from . import desk
from .admin import _cancels, _shop, bp
from .agenda import today
from .blocks import add_block, remove_block
from .desk import start_of as desk_start
from .feeds import feed_url, rotate_feed_token
from .figures import bar_chart, figures, rate_text
from .services import get_services

VIEWS = {"day": 1, "week": 7}


def _day(text: str | None, fallback: date) -> date:
    try:
        return date.fromisoformat(text or "")
    except ValueError:
        return fallback


@bp.get("/diary")
def diary() -> ResponseReturnValue:
    services, shop = get_services(), _shop()
    now_day = today(services, shop)
    view = request.args.get("view", "day")
    view = view if view in VIEWS else "day"
    first = _day(request.args.get("day"), now_day)
    if view == "week":
        first -= timedelta(days=first.weekday())  # weeks start on Monday
    span = VIEWS[view]
    columns = desk.diary(services, shop, first, span)
    signer = _cancels()
    return render_template(
        "admin/diary.html",
        business=shop.business.name,
        view=view,
        first=first,
        today=now_day,
        previous=first - timedelta(days=span),
        next=first + timedelta(days=span),
        columns=columns,
        services=[(s.id, s.name(shop.default_language)) for s in shop.catalog.services],
        token=lambda ref: signer.dumps(ref),
        notices=get_flashed_messages(),
        numbers=figures(shop, services.clock()),
        feed=_absolute(feed_url(services, shop)),
        bar_chart=bar_chart,
        rate_text=rate_text,
    )


def _absolute(url: str) -> str:
    """A path made a full URL on this host (without PUBLIC_BASE_URL the feed's URL is a path)."""
    return request.host_url.rstrip("/") + url if url.startswith("/") else url


def _back(day: date | None = None) -> ResponseReturnValue:
    view = request.form.get("view", "day")
    target = request.form.get("back_day") or (day.isoformat() if day else "")
    return redirect(url_for("admin.diary", view=view if view in VIEWS else "day", day=target or None), 303)


@bp.post("/walk-in")
def walk_in() -> ResponseReturnValue:
    services, shop = get_services(), _shop()
    day = _day(request.form.get("day"), today(services, shop))
    name = " ".join(request.form.get("name", "").split())[:40]
    phone = "".join(c for c in request.form.get("phone", "") if c.isdigit() or c == "+")
    if not name or not (phone.startswith("+") and 8 <= len(phone) <= 16):
        flash("Give the customer's name and phone in international form (+34…).")
        return _back(day)
    service, hhmm, form = (
        request.form.get("service", ""),
        request.form.get("time", ""),
        request.form.get("csrf_token", ""),
    )
    done = desk.walk_in(services, shop, service, day, hhmm, name, phone, form=form)
    flash(done.message)
    return _back(day)


@bp.post("/move")
def move() -> ResponseReturnValue:
    services, shop = get_services(), _shop()
    day = _day(request.form.get("day"), today(services, shop))
    ref, hhmm = request.form.get("ref", "").strip().upper(), request.form.get("time", "")
    done = desk.move(services, shop, ref, day, hhmm, form=request.form.get("csrf_token", ""))
    flash(done.message)
    return _back(day)


@bp.post("/mark")
def mark() -> ResponseReturnValue:
    services, shop = get_services(), _shop()
    done = desk.mark(services, shop, request.form.get("ref", "").strip().upper(), request.form.get("attendance", ""))
    flash(done.message)
    return _back()


@bp.post("/block")
def block() -> ResponseReturnValue:
    services, shop = get_services(), _shop()
    day = _day(request.form.get("day"), today(services, shop))
    start = desk_start(shop, day, request.form.get("from", ""))
    end = desk_start(shop, day, request.form.get("to", ""))
    if start is None or end is None or end <= start:
        flash("Give the time off as a start and a later end, e.g. 14:00 and 16:00.")
        return _back(day)
    added, covered = add_block(services, shop, start, end, request.form.get("reason", ""))
    message = (
        f"Blocked {day.isoformat()} {request.form.get('from')}–{request.form.get('to')}: the bot offers none of it."
    )
    if covered:
        refs = ", ".join(b.ref for b in covered)
        message += f" Bookings already in that time stay booked: {refs} (cancel or move them if need be)."
    flash(message)
    return _back(day)


@bp.post("/unblock")
def unblock() -> ResponseReturnValue:
    services, shop = get_services(), _shop()
    removed = remove_block(services, shop, request.form.get("block", ""))
    flash("The time off is removed: those times are offered again." if removed else "There is no such time off.")
    return _back()


@bp.post("/feed/rotate")
def rotate_feed() -> ResponseReturnValue:
    services, shop = get_services(), _shop()
    rotate_feed_token(services, shop)
    flash("The calendar feed has a new address: the old one no longer works. Subscribe again with the new one.")
    return _back()


@bp.get("/search")
def search() -> ResponseReturnValue:
    services, shop = get_services(), _shop()
    query = request.args.get("q", "")[:60]
    found = desk.search(services, shop, query)
    tz = shop.business.timezone
    return render_template(
        "admin/search.html",
        business=shop.business.name,
        query=query,
        found=[
            (b, b.start.astimezone(tz).strftime("%a %d %b %Y %H:%M"), b.start.astimezone(tz).date().isoformat())
            for b in found
        ],
    )
