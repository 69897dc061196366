"""``flask --app wsgi doctor``: after deploying, is everything in place? One line per check.

Checks, under short headings: the settings and each business's catalog; Redis (reachable, its
mode, ``appendonly`` and ``maxmemory-policy``); Twilio (the credentials, each sender, the webhook
URL each number calls, a Messaging Service's status callback); the content templates (synced, and
WhatsApp's approval of those sent outside the 24-hour window); an outbox worker alive (its
heartbeat) and the outbox's depth; the app's clock against Redis's. See :func:`doctor` for the
output format. Each check's function returns its lines; :func:`diagnose` runs them all.

When the settings are too wrong for the app to build, ``flask --app wsgi …`` stops before any
command runs (one ``tapbook: invalid configuration: …`` line); ``python -m bot.commands.doctor``
builds the app itself and reports that as a ✗ line instead.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, cast
from urllib.parse import parse_qsl, urlsplit

import click
import redis
import requests
from flask.cli import with_appcontext
from twilio.base.exceptions import TwilioException, TwilioRestException
from twilio.rest import Client

from ..agenda import templates_needed
from ..booking.catalog import SETTING as CATALOG_SETTING
from ..channels.approvals import APPROVED, WAITING, Approval, Approvals
from ..channels.cli import answered
from ..channels.content import TEMPLATES
from ..channels.proactive import all_templates
from ..channels.twilio import TemplateSids
from ..connections import Cluster, servers
from ..durability import durability_problems
from ..errors import ConfigError
from ..outbox.heartbeat import TTL as HEARTBEAT_TTL
from ..outbox.heartbeat import Heartbeats
from ..services import Services, get_services
from ..signature import PROXY_HINT, PUBLIC_BASE_URL_HINT
from ..tenants import Tenant

OK, FAIL, WARN = "✓", "✗", "!"
#: how far the app's clock may be from Redis's
CLOCK_TOLERANCE = 1.0
#: a customer due this long ago and still unsent: no worker is sending
OVERDUE_SECONDS = 60
#: Twilio's WhatsApp sandbox number: its webhook is set in the Console, not readable through the API
SANDBOX_NUMBER = "+14155238886"
WORKER_FIX = "start one: flask --app wsgi worker (the Procfile's worker process), and keep it running"
SYNC_FIX = "flask --app wsgi templates sync"


@dataclass(frozen=True)
class Check:
    """One line: ``✓ <what>``, ``✗ <what>: <problem> — fix: <fix>``, or ``! <what>: <problem>[ — fix: …]``."""

    mark: str
    what: str
    problem: str = ""
    fix: str = ""

    @property
    def failed(self) -> bool:
        return self.mark == FAIL

    def line(self) -> str:
        text = f"{self.mark} {self.what}"
        if self.problem:
            text += f": {self.problem}"
        if self.fix:
            text += f" — fix: {self.fix}"
        return text


def ok(what: str) -> Check:
    return Check(OK, what)


def fail(what: str, problem: str, fix: str) -> Check:
    return Check(FAIL, what, problem, fix)


def warn(what: str, problem: str, fix: str = "") -> Check:
    return Check(WARN, what, problem, fix)


@dataclass
class Report:
    """The checks under their headings, in order."""

    sections: list[tuple[str, list[Check]]] = field(default_factory=list)

    @property
    def checks(self) -> list[Check]:
        return [check for _, checks in self.sections for check in checks]

    @property
    def failed(self) -> bool:
        return any(check.failed for check in self.checks)

    def lines(self) -> list[str]:
        lines = []
        for heading, checks in self.sections:
            lines.append(heading)
            lines += [f"  {check.line()}" for check in checks]
        marks = [check.mark for check in self.checks]
        lines.append(f"{marks.count(FAIL)} failed, {marks.count(WARN)} warnings, {marks.count(OK)} passed")
        return lines


# --- settings and catalogs ---------------------------------------------------------------------
def settings_checks(services: Services) -> list[Check]:
    """The app built, so the settings parsed and every catalog validated; what it serves."""
    settings = services.settings
    shops = list(services.directory)
    mode = "Content API buttons (outbox worker)" if any(s.channel.out_of_band for s in shops) else "TwiML"
    checks = [ok(f"settings valid: {len(shops)} business(es), Redis {settings.redis_mode}, replies as {mode}")]
    for shop in shops:
        business = shop.business
        numbers = ", ".join(business.numbers) or "every number"
        where = f" ({shop.file})" if shop.file else ""
        checks.append(
            ok(
                f"catalog {shop.id}{where} valid: {len(shop.catalog.services)} service(s), "
                f"languages {', '.join(shop.languages)}, answers {numbers}"
            )
        )
    claimed = [number for shop in shops for number in shop.business.numbers]
    if claimed:
        checks.append(ok(f"numbers unique across businesses: {len(claimed)} number(s), each claimed once"))
    return checks


def config_error_checks(exc: ConfigError) -> list[Check]:
    """The ✗ line for settings the app could not be built with."""
    if exc.setting == CATALOG_SETTING:
        what = "numbers unique across businesses" if "claim the number" in exc.reason else "catalogs valid"
        fix = "correct the catalog named above (flask --app wsgi catalog check FILE shows its problems)"
        return [fail(what, f"{exc.setting}: {exc.reason}", fix)]
    return [fail("settings valid", f"{exc.setting}: {exc.reason}", f"correct {exc.setting} (environment or .env)")]


# --- Redis ---------------------------------------------------------------------------------------
def describe_redis(services: Services) -> str:
    """``server 127.0.0.1:6379/0``, ``sentinel master mymaster at 10.0.0.5:6379``, ``cluster of 3 masters``."""
    settings = services.settings
    mode = settings.redis_mode
    if mode == "cluster":
        return f"cluster of {len(cast(Cluster, services.redis).get_primaries())} masters"
    if mode == "sentinel":
        pool: Any = services.redis.connection_pool
        host, port = pool.get_master_address()
        return f"sentinel, master {settings.redis_sentinel_service} at {host}:{port}"
    parts = urlsplit(settings.redis_url or "")
    host = parts.hostname or ""
    where = f"{host}:{parts.port or 6379}{parts.path}" if host else parts.path  # no user name or password
    return f"standalone server {parts.scheme}://{where}"


def redis_checks(services: Services) -> tuple[list[Check], bool]:
    """Whether Redis answers (and its mode), and its durability settings; whether it can be used."""
    if services.embedded:
        problem = (
            "REDIS_URL is unset: the embedded in-memory store is lost on restart and shared with no other process "
            "(not the worker, not this command)"
        )
        return [fail("Redis", problem, "set REDIS_URL (or REDIS_CLUSTER_NODES, or REDIS_SENTINELS)")], False
    try:
        services.redis.ping()
        checks = [ok(f"Redis reachable: {describe_redis(services)}")]
    except redis.RedisError as exc:
        fix = "start it, or correct REDIS_URL / REDIS_CLUSTER_NODES / REDIS_SENTINELS (host, port, password, TLS)"
        return [fail("Redis reachable", f"{type(exc).__name__}: {exc}", fix)], False
    for server in servers(services.redis):
        checks += durability_checks(server, several=services.settings.redis_mode == "cluster")
    return checks, True


def durability_checks(server: redis.Redis, *, several: bool = False) -> list[Check]:
    """``appendonly`` and ``maxmemory-policy`` of one server: a ✗ per setting that can lose bookings."""
    kwargs = server.connection_pool.connection_kwargs
    what = f"durability of {kwargs.get('host')}:{kwargs.get('port')}" if several else "durability"
    pipe = server.pipeline(transaction=False)
    for name in ("maxmemory-policy", "maxmemory", "appendonly", "save"):
        pipe.config_get(name)
    try:
        config: dict[str, str] = {}
        for reply in pipe.execute():
            config.update(reply)
    except redis.RedisError as exc:
        fix = "check in your provider's settings that appendonly is yes and maxmemory-policy is noeviction"
        return [warn(what, f"CONFIG GET refused ({type(exc).__name__}: {exc})", fix)]
    checks = []
    for problem in durability_problems(config):
        said, _, fix = problem.rpartition("; ")
        checks.append(fail(what, said, f"{fix} (CONFIG SET, and in redis.conf)"))
    save = config.get("save", "").strip()
    if config.get("appendonly") == "no" and save:  # durability_problems accepts snapshots; a deployment should not
        problem = f"appendonly is no: a crash loses the bookings written since the last snapshot (save {save})"
        checks.append(fail(what, problem, "set appendonly yes (CONFIG SET appendonly yes, and in redis.conf)"))
    if not checks:
        policy = config.get("maxmemory-policy", "?")
        checks.append(ok(f"{what}: appendonly {config.get('appendonly', '?')}, maxmemory-policy {policy}"))
    return checks


# --- Twilio --------------------------------------------------------------------------------------
def twilio_problem(exc: Exception) -> str:
    if isinstance(exc, TwilioException):
        return answered(exc)
    return f"Twilio cannot be reached: {type(exc).__name__}: {exc}"


@dataclass
class TwilioAccount:
    """What the checks read from the account, each thing once."""

    client: Client
    account_sid: str
    numbers: dict[str, Any] = field(default_factory=dict)
    services: dict[str, Any] = field(default_factory=dict)
    service_numbers: dict[str, set[str]] = field(default_factory=dict)

    def number(self, phone: str) -> Any:
        """The IncomingPhoneNumber ``phone`` (+E164) of the account, or None."""
        if phone not in self.numbers:
            found = self.client.api.v2010.accounts(self.account_sid).incoming_phone_numbers.list(
                phone_number=phone, limit=20
            )
            self.numbers[phone] = next((n for n in found if n.phone_number == phone), None)
        return self.numbers[phone]

    def service(self, sid: str) -> Any:
        """The Messaging Service ``sid`` (raises TwilioRestException 404 when there is none)."""
        if sid not in self.services:
            self.services[sid] = self.client.messaging.v1.services(sid).fetch()
        return self.services[sid]

    def numbers_of(self, sid: str) -> set[str]:
        """The phone numbers (+E164) in Messaging Service ``sid``."""
        if sid not in self.service_numbers:
            listed = self.client.messaging.v1.services(sid).phone_numbers.list(limit=400)
            self.service_numbers[sid] = {str(n.phone_number) for n in listed}
        return self.service_numbers[sid]


def senders_of(shop: Tenant) -> list[str]:
    """Who sends the business's messages: its sender, the numbers it is written to, or the deployment's."""
    business = shop.business
    found = [business.sender] if business.sender else []
    found += [f"whatsapp:{number}" for number in business.numbers]
    if not found and shop.fallback_sender:
        found.append(shop.fallback_sender)
    return list(dict.fromkeys(found))


def inbound_numbers(shop: Tenant) -> list[str]:
    """The numbers (+E164) customers write to, as far as the settings say."""
    if shop.business.numbers:
        return list(shop.business.numbers)
    sender = shop.sender or ""
    return [sender.removeprefix("whatsapp:")] if sender.startswith("whatsapp:") else []


def twilio_checks(services: Services) -> list[Check]:
    settings = services.settings
    client = services.twilio
    if client is None or not settings.twilio_account_sid:
        problem = "TWILIO_ACCOUNT_SID is not set: credentials, senders and webhook URLs at Twilio not checked"
        return [warn("Twilio", problem, "set TWILIO_ACCOUNT_SID to have them checked (replies are TwiML meanwhile)")]
    sid = settings.twilio_account_sid
    try:
        account = client.api.v2010.accounts(sid).fetch()
    except TwilioRestException as exc:
        fix = "copy TWILIO_ACCOUNT_SID and TWILIO_AUTH_TOKEN from the Twilio Console (Account info)"
        if exc.status not in (401, 403, 404):
            fix = "try again; if it persists see status.twilio.com"
        return [fail("Twilio credentials", twilio_problem(exc), fix)]
    except (TwilioException, requests.RequestException) as exc:
        fix = "allow outbound HTTPS to api.twilio.com (proxy settings: HTTPS_PROXY)"
        return [fail("Twilio credentials", twilio_problem(exc), fix)]
    name = f" {account.friendly_name!r}" if account.friendly_name else ""
    if account.status and account.status != "active":
        return [fail("Twilio account", f"{sid}{name} is {account.status}", "reactivate it in the Twilio Console")]
    checks = [ok(f"Twilio credentials valid: account {sid}{name}, {account.status or 'active'}")]
    twilio = TwilioAccount(client, sid)
    try:
        checks += sender_checks(services, twilio)
        checks += webhook_checks(services, twilio)
    except (TwilioException, requests.RequestException) as exc:
        checks.append(fail("Twilio", twilio_problem(exc), "run the doctor again; if it persists see status.twilio.com"))
    return checks


def sender_checks(services: Services, twilio: TwilioAccount) -> list[Check]:
    checks = []
    senders: dict[str, list[str]] = {}
    for shop in services.directory:
        for sender in senders_of(shop):
            senders.setdefault(sender, []).append(shop.id)
    for sender, shops in senders.items():
        whose = f" ({', '.join(shops)})"
        if sender.startswith("MG"):
            try:
                service = twilio.service(sender)
            except TwilioRestException as exc:
                if exc.status != 404:
                    raise
                fix = "correct the catalog's sender or TWILIO_MESSAGING_SERVICE_SID (Console: Messaging → Services)"
                problem = f"no such Messaging Service in {twilio.account_sid}"
                checks.append(fail(f"sender {sender}{whose}", problem, fix))
                continue
            checks.append(ok(f"sender {sender}{whose}: Messaging Service {service.friendly_name!r}"))
            checks += status_callback_checks(services, sender, service)
            continue
        phone = sender.removeprefix("whatsapp:")
        if phone == SANDBOX_NUMBER:
            checks.append(warn(f"sender {sender}{whose}", "Twilio's WhatsApp sandbox: for trying only"))
        elif twilio.number(phone) is None:
            fix = (
                "correct the catalog's numbers/sender or TWILIO_FROM, or buy or port the number into this account "
                "(a WhatsApp sender on a number outside Twilio: check it in Console → Messaging → Senders)"
            )
            checks.append(fail(f"sender {sender}{whose}", f"not a phone number of account {twilio.account_sid}", fix))
        else:
            checks.append(ok(f"sender {sender}{whose}: a number of the account"))
    return checks


def status_callback_checks(services: Services, sid: str, service: Any) -> list[Check]:
    public = services.settings.public_base_url
    if not public:
        return []
    expected = f"{public}/webhook/status"
    what = f"status callback of {sid}"
    if not service.status_callback:
        return [warn(what, "not set (the worker's messages carry their own)", f"set it to {expected}")]
    if service.status_callback != expected:
        return [fail(what, f"Twilio has {service.status_callback}", f"set it to {expected} (or clear it)")]
    return [ok(f"{what}: {expected}")]


def webhook_bases(services: Services) -> list[str]:
    """The webhook URLs (no query) this deployment checks signatures for: PUBLIC_BASE_URL's, or each of
    WEBHOOK_HOSTS'."""
    settings = services.settings
    if settings.public_base_url:
        return [settings.public_base_url + "/webhook"]
    return [f"{scheme}://{host}/webhook" for host in settings.webhook_hosts for scheme in ("https", "http")]


def webhook_matches(url: str | None, bases: Sequence[str], shop: Tenant, services: Services) -> bool:
    """Whether Twilio calling ``url`` reaches this deployment's webhook for ``shop``: one of ``bases``,
    with no query or ``?lang=xx`` of a language the business speaks."""
    if not url:
        return False
    base, query = _normal(url)
    if base not in {_normal(b)[0] for b in bases}:
        return False
    if not query:
        return True
    return len(query) == 1 and query[0][0] == "lang" and shop.pick_language(query[0][1], services.catalogs) is not None


def _normal(url: str) -> tuple[str, list[tuple[str, str]]]:
    """``url`` without its query (scheme and host in lower case, a default port dropped), and its query."""
    parts = urlsplit(url.strip())
    scheme = parts.scheme.lower()
    netloc = parts.netloc.lower().removesuffix({"https": ":443", "http": ":80"}.get(scheme, "\0"))
    return f"{scheme}://{netloc}{parts.path}", parse_qsl(parts.query, keep_blank_values=True)


def webhook_checks(services: Services, twilio: TwilioAccount) -> list[Check]:
    settings = services.settings
    bases = webhook_bases(services)
    if not bases:
        return [warn("webhook URLs", "neither PUBLIC_BASE_URL nor WEBHOOK_HOSTS is set", PUBLIC_BASE_URL_HINT)]
    expected = bases[0]
    hint = "" if settings.public_base_url else f"; {PUBLIC_BASE_URL_HINT}"
    checks = []
    if not settings.public_base_url and not settings.trusted_proxy_hops:
        problem = "signatures are checked against the URL each request arrives with (WEBHOOK_HOSTS)"
        checks.append(warn("webhook signatures", problem, f"{PROXY_HINT}, or {PUBLIC_BASE_URL_HINT}"))
    in_use = dict.fromkeys(sender for shop in services.directory for sender in senders_of(shop))
    services_in_use = [sender for sender in in_use if sender.startswith("MG")]
    for shop in services.directory:
        numbers = inbound_numbers(shop)
        for number in numbers:
            what = f"webhook of {number} ({shop.id})"
            if number == SANDBOX_NUMBER:
                fix = (
                    "check Console → Messaging → Try it out → WhatsApp sandbox settings: "
                    f"“When a message comes in” is {expected}"
                )
                checks.append(warn(what, "the sandbox's webhook cannot be read through the API", fix))
                continue
            via = _service_of(twilio, number, services_in_use)
            if via is not None and not via.use_inbound_webhook_on_number:
                url, method = via.inbound_request_url, via.inbound_method
                where = f"Messaging Service {via.sid} → Integration → “Send a webhook”"
            else:
                found = twilio.number(number)
                if found is None:
                    continue  # said by the sender checks (or not a sender: nothing to read)
                url, method = found.sms_url, found.sms_method
                where = f"the number's “A message comes in” (Console → Phone Numbers → {number})"
            if not webhook_matches(url, bases, shop, services):
                checks.append(fail(what, f"Twilio has {url or 'none'}", f"set {where} to {expected}{hint}"))
            elif method and str(method).upper() != "POST":
                checks.append(fail(what, f"Twilio calls {url} with {method}", f"set {where} to HTTP POST"))
            else:
                checks.append(ok(f"{what}: {url}"))
        if not numbers:
            for sid in (s for s in senders_of(shop) if s.startswith("MG")):
                checks += _service_webhook(services, twilio, shop, sid, bases, hint)
    return checks


def _service_of(twilio: TwilioAccount, number: str, sids: Iterable[str]) -> Any:
    """The Messaging Service (of those in use) that ``number`` belongs to, or None."""
    for sid in sids:
        try:
            service = twilio.service(sid)
        except TwilioRestException as exc:
            if exc.status != 404:  # a missing service is said by the sender checks
                raise
            continue
        if number in twilio.numbers_of(sid):
            return service
    return None


def _service_webhook(
    services: Services, twilio: TwilioAccount, shop: Tenant, sid: str, bases: Sequence[str], hint: str
) -> list[Check]:
    """A business written to through a Messaging Service's numbers: the service's webhook, or each number's."""
    try:
        service = twilio.service(sid)
    except TwilioRestException as exc:
        if exc.status == 404:
            return []
        raise
    if service.use_inbound_webhook_on_number:
        checks = []
        for number in sorted(twilio.numbers_of(sid)):
            found = twilio.number(number)
            url = found.sms_url if found is not None else None
            what = f"webhook of {number} ({shop.id}, in {sid})"
            if webhook_matches(url, bases, shop, services):
                checks.append(ok(f"{what}: {url}"))
            else:
                fix = f"set the number's “A message comes in” to {bases[0]}{hint}"
                checks.append(fail(what, f"Twilio has {url or 'none'}", fix))
        return checks
    what = f"webhook of Messaging Service {sid} ({shop.id})"
    url = service.inbound_request_url
    if webhook_matches(url, bases, shop, services):
        return [ok(f"{what}: {url}")]
    fix = f"set the service's Integration → “Send a webhook” to {bases[0]}{hint}"
    return [fail(what, f"Twilio has {url or 'none'}", fix)]


# --- content templates ---------------------------------------------------------------------------
def template_checks(services: Services, *, fresh: bool = False) -> list[Check]:
    shops = [shop for shop in services.directory if shop.channel.out_of_band]
    if not shops:
        return [ok("content templates: not used (replies are TwiML)")]
    sids = TemplateSids(services.redis, services.shared_keys.templates)
    recorded = sids.all()
    names = [t.friendly_name for t in TEMPLATES] + [t.friendly_name for t in all_templates(services.catalogs)]
    missing = [name for name in names if name not in recorded]
    if missing:
        shown = ", ".join(missing[:3]) + (f" and {len(missing) - 3} more" if len(missing) > 3 else "")
        checks = [fail("content templates synced", f"{len(missing)} of {len(names)} not synced: {shown}", SYNC_FIX)]
    else:
        checks = [ok(f"content templates synced: all {len(names)} in {services.shared_keys.templates}")]
    approvals = Approvals(services.redis, services.shared_keys.template_approvals)
    known = approvals.all()
    needed = list(dict.fromkeys(name for shop in shops for name in templates_needed(shop)))
    if fresh and services.twilio is not None:
        known.update(_fetch_approvals(services.twilio, approvals, sids, needed))
    for shop in shops:
        checks += approval_checks(shop.id, templates_needed(shop), known, recorded)
    return checks


def _fetch_approvals(
    client: Client, approvals: Approvals, sids: TemplateSids, names: Iterable[str]
) -> dict[str, Approval]:
    """WhatsApp's approval of each synced template of ``names`` as Twilio reads it now (recorded too);
    one Twilio fails to answer for is left as recorded."""
    fresh = {}
    for name in names:
        sid = sids.get(name)
        if sid is None:
            continue
        try:
            approval = approvals.fetch(client, sid)
        except (TwilioException, requests.RequestException):
            continue
        approvals.record(name, approval.status, approval.reason)
        fresh[name] = approval
    return fresh


def approval_checks(shop_id: str, needed: list[str], known: dict[str, Approval], synced: dict[str, str]) -> list[Check]:
    """One line per status: the templates ``shop_id`` sends outside the 24-hour window, approved or not."""
    by_status: dict[str, list[str]] = {}
    reasons: dict[str, str] = {}
    for name in needed:
        approval = known.get(name)
        status = approval.status if approval else ("not synced" if name not in synced else "approval not read")
        by_status.setdefault(status, []).append(name)
        if approval and approval.reason:
            reasons[name] = approval.reason
    what = f"templates of {shop_id} outside the 24-hour window"
    checks = []
    for status, names in by_status.items():
        listed = ", ".join(f"{n} ({reasons[n]})" if n in reasons else n for n in names)
        if status == APPROVED:
            checks.append(ok(f"{what}: {len(names)} approved by WhatsApp"))
        elif status in WAITING:
            problem = (
                f"{status}, waiting for WhatsApp: {listed}; until approved they reach only customers who wrote "
                "in the last 24 hours"
            )
            checks.append(warn(what, problem, "wait (flask --app wsgi templates list shows the latest)"))
        elif status in ("not synced", "approval not read", "unsubmitted"):
            checks.append(fail(what, f"{status}: {listed}", f"{SYNC_FIX} (submits them for approval)"))
        else:  # rejected, disabled
            fix = (
                "read WhatsApp's reason in the Twilio Console (Content Template Builder) and appeal, or change "
                "the text and submit it again"
            )
            checks.append(fail(what, f"{status} by WhatsApp: {listed}", fix))
    return checks


# --- the outbox worker, and the clock -----------------------------------------------------------
def redis_now_ms(client: Any) -> int:
    seconds, micros = client.time()
    return int(seconds) * 1000 + int(micros) // 1000


def worker_checks(services: Services) -> list[Check]:
    outboxes = [services.outboxes[shop.id] for shop in services.directory if shop.channel.out_of_band]
    if not outboxes:
        return [ok("outbox worker: not needed (replies are TwiML)")]
    now = redis_now_ms(servers(services.redis)[0])
    alive = Heartbeats(services.redis, services.shared_keys.worker_heartbeats).alive(now)
    if alive:
        shown = "; ".join(beat.describe(now) for beat in alive[:3]) + ("; …" if len(alive) > 3 else "")
        checks = [ok(f"outbox worker alive: {len(alive)} ({shown})")]
    else:
        checks = [fail("outbox worker alive", f"no heartbeat in the last {HEARTBEAT_TTL} s", WORKER_FIX)]
    pipe = services.redis.pipeline(transaction=False)
    for outbox in outboxes:
        pipe.zcard(outbox.keys.due)
        pipe.zrange(outbox.keys.due, 0, 0, withscores=True)
    replies = pipe.execute()
    waiting = sum(int(n) for n in replies[0::2])
    oldest = [int(first[0][1]) for first in replies[1::2] if first]
    overdue = (now - min(oldest)) // 1000 if oldest else 0
    if waiting and overdue > OVERDUE_SECONDS:
        problem = f"{waiting} customer(s) with unsent messages, one due {overdue // 60} min {overdue % 60} s ago"
        checks.append(warn("outbox depth", problem, "check that a worker runs and read its log"))
    else:
        checks.append(ok(f"outbox depth: {waiting} customer(s) with unsent messages"))
    return checks


def clock_checks(services: Services, clock: Callable[[], datetime] | None = None) -> list[Check]:
    """The app's clock (``CLOCK``; the host's in production) against each Redis server's ``TIME``."""
    clock = clock or services.clock
    checks = []
    for server in servers(services.redis):
        before = clock()
        started = time.perf_counter()
        redis_ms = redis_now_ms(server)
        after = clock()
        app_ms = (before.timestamp() + (after - before).total_seconds() / 2) * 1000
        skew = (app_ms - redis_ms) / 1000
        took = time.perf_counter() - started
        kwargs = server.connection_pool.connection_kwargs
        where = f" ({kwargs.get('host')}:{kwargs.get('port')})" if services.settings.redis_mode == "cluster" else ""
        if abs(skew) > CLOCK_TOLERANCE + took:
            side = "ahead of" if skew > 0 else "behind"
            problem = f"the app's clock is {abs(skew):.1f} s {side} Redis's{where}"
            fix = "synchronise both hosts' clocks (NTP: chrony or systemd-timesyncd)"
            checks.append(fail("clock", problem, fix))
        else:
            checks.append(ok(f"clock: the app's and Redis's{where} agree within {max(abs(skew), 0.001):.3f} s"))
    return checks


# --- all of it -----------------------------------------------------------------------------------
def diagnose(services: Services, *, fresh: bool = False) -> Report:
    """Every check, under its heading (see :func:`doctor`)."""
    report = Report([("Settings", settings_checks(services))])
    redis_lines, usable = redis_checks(services)
    report.sections.append(("Redis", redis_lines))
    report.sections.append(("Twilio", _guarded(lambda: twilio_checks(services), "Twilio")))
    shared: list[tuple[str, Callable[[], list[Check]]]] = [
        ("Templates", lambda: template_checks(services, fresh=fresh)),
        ("Outbox", lambda: worker_checks(services)),
        ("Clock", lambda: clock_checks(services)),
    ]
    for heading, run in shared:
        if usable:
            report.sections.append((heading, _guarded(run, heading.lower())))
        else:
            report.sections.append((heading, [warn(heading.lower(), "not checked: no shared Redis to read")]))
    return report


def _guarded(run: Callable[[], list[Check]], what: str) -> list[Check]:
    """``run``'s checks; a Redis failure part way is one ✗ line, not a traceback."""
    try:
        return run()
    except redis.RedisError as exc:
        return [fail(what, f"Redis failed: {type(exc).__name__}: {exc}", "check that Redis is up and reachable")]


def _show(report: Report) -> None:
    for line in report.lines():
        click.echo(line)
    if report.failed:
        click.get_current_context().exit(1)


_fresh = click.option(
    "--fresh",
    is_flag=True,
    help="Read WhatsApp's approval of the templates from Twilio now (and record it), not as last recorded.",
)


@click.command("doctor")
@_fresh
@with_appcontext
def doctor(fresh: bool) -> None:
    """Check the deployment: settings, Redis, Twilio, templates, the outbox worker, the clock.

    \b
    One line per check, under a heading (Settings, Redis, Twilio, Templates, Outbox, Clock):
      ✓ <what>
      ✗ <what>: <the problem> — fix: <the fix>
      ! <what>: <a warning>[ — fix: <what to do>]
    then "<n> failed, <n> warnings, <n> passed". Exit status 1 when any line is ✗; warnings (!)
    do not change it. A warning is something that works but may surprise: the WhatsApp sandbox,
    templates still waiting for WhatsApp's approval, CONFIG that cannot be read, a Messaging
    Service without a status callback. Durability (appendonly yes, maxmemory-policy noeviction)
    is a ✗: bookings live only in Redis.

    When the settings are too wrong for the app to build, run python -m bot.commands.doctor.
    """
    _show(diagnose(get_services(), fresh=fresh))


@click.command("doctor")
@_fresh
def standalone(fresh: bool) -> None:
    """``python -m bot.commands.doctor``: as ``flask --app wsgi doctor``, with settings that do not
    build an app reported as ✗ lines."""
    from .. import create_app  # the package imports this module

    try:
        app = create_app()
    except ConfigError as exc:
        _show(Report([("Settings", config_error_checks(exc))]))
        return
    with app.app_context():
        _show(diagnose(get_services(app), fresh=fresh))


def main(argv: list[str] | None = None) -> None:
    standalone.main(args=argv, prog_name="python -m bot.commands.doctor")


if __name__ == "__main__":
    main(sys.argv[1:])
