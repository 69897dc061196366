"""The business's catalog: opening hours, booking rules and services, read from TOML.

The file is validated with marshmallow once, at start-up; the first problem stops the bot with
one line naming the file and the field (``business.timezone``, ``hours.mon[1]``,
``services[2].name.es``). Unknown keys are ignored but logged, so a typo does not pass silently;
``[hours]`` is strict, because a misspelt weekday would quietly close that day.
"""

from __future__ import annotations

import logging
import re
import tomllib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import date
from pathlib import Path
from typing import Any, cast
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from marshmallow import EXCLUDE, RAISE, Schema, ValidationError, fields, post_load, validate, validates_schema

from ..errors import ConfigError
from .reminders import parse_offset

log = logging.getLogger(__name__)

SETTING = "BOT_CATALOG"
SAMPLE_CATALOG = Path(__file__).with_name("sample_salon.toml")
WEEKDAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
MAX_NAME = 20  # a WhatsApp button title
MAX_PRICE = 20
DAY_MINUTES = 1440


@dataclass(frozen=True)
class OpeningRange:
    """Opening time of one day, in minutes after local midnight (wall clock)."""

    start: int  # 0..1439
    end: int  # 1..1440 (1440 = "24:00"); end > start


@dataclass(frozen=True)
class Service:
    id: str  # [a-z0-9_-]{1,16}; it travels inside button IDs
    minutes: int
    capacity: int  # customers served at the same time
    price: str
    names: Mapping[str, str]  # language code -> name; always has "en"
    buffer_before_minutes: int = 0
    buffer_after_minutes: int = 0
    resource: str = ""  # services with the same resource share occupancy; "" means the service's own id

    def __post_init__(self) -> None:
        if not self.resource:
            object.__setattr__(self, "resource", self.id)

    def name(self, language: str) -> str:
        """The name in ``language``, else the English one."""
        return self.names.get(language) or self.names["en"]


@dataclass(frozen=True)
class Business:
    id: str  # [a-z0-9][a-z0-9-]{0,31}: the hash tag of every Redis key of the business
    name: str
    timezone: ZoneInfo
    slot_minutes: int
    min_notice_minutes: int
    horizon_days: int
    hold_minutes: int
    cancel_cutoff_minutes: int
    max_active_bookings: int
    closed: frozenset[date]
    hours: Mapping[int, tuple[OpeningRange, ...]]  # weekday 0=Mon..6=Sun; a missing day is closed; sorted
    #: the WhatsApp numbers (+E164) customers write to; empty: every number (one business only)
    numbers: tuple[str, ...] = ()
    #: who sends its Content API messages: ``whatsapp:+E164`` or a Messaging Service SID (``MG…``)
    sender: str | None = None
    #: the languages it speaks, its default first; empty: every language the bot speaks
    languages: tuple[str, ...] = ()
    #: the owner's /admin password as a werkzeug hash (``flask admin hash-password``)
    admin_password_hash: str | None = None
    #: bookings that ended longer ago lose their customer's phone and name (GDPR art. 5(1)(e))
    retention_days: int = 365
    #: reminders before each booking (``24h``: the same local time the day before); empty: none
    reminders: tuple[str, ...] = ("24h",)
    #: where customers come to, as reminders say it (default: the business's name)
    address: str = ""
    #: the owner's WhatsApp number (+E164): told of each new booking, move and cancel
    owner_whatsapp: str | None = None


@dataclass(frozen=True)
class Catalog:
    business: Business
    services: tuple[Service, ...]

    def service(self, service_id: str) -> Service | None:
        return next((service for service in self.services if service.id == service_id), None)


# --- fields ---------------------------------------------------------------------------------

_REQUIRED: dict[str, str | list[Any] | dict[Any, Any]] = {"required": "is required", "null": "is required"}


class _Whole(fields.Integer):
    default_error_messages = {**_REQUIRED, "invalid": "must be a whole number"}

    def __init__(self, low: int, high: int | None = None, **kwargs: Any) -> None:
        error = "must be at least {min}" if high is None else "must be between {min} and {max}"
        super().__init__(strict=True, validate=validate.Range(low, high, error=error), **kwargs)

    def _validated(self, value: Any) -> int:
        if isinstance(value, bool):  # TOML true/false is not a number of minutes
            raise self.make_error("invalid")
        return super()._validated(value)


class _Text(fields.String):
    default_error_messages = {**_REQUIRED, "invalid": "must be a string"}


def _text(low: int, high: int, **kwargs: Any) -> _Text:
    return _Text(validate=validate.Length(low, high, error="must be {min} to {max} characters"), **kwargs)


def _slug(high: int, **kwargs: Any) -> _Text:
    pattern = rf"[a-z0-9_-]{{1,{high}}}\Z"
    return _Text(validate=validate.Regexp(pattern, error=f"must be 1 to {high} of a-z, 0-9, '_' or '-'"), **kwargs)


class _TimeZone(fields.Field):
    default_error_messages = {**_REQUIRED, "invalid": "must be an IANA time zone such as Europe/Madrid"}

    def _deserialize(self, value: Any, attr: str | None, data: Any, **kwargs: Any) -> ZoneInfo:
        if not isinstance(value, str):
            raise self.make_error("invalid")
        try:
            return ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError, OSError):
            raise ValidationError(f"unknown time zone {value!r} (use an IANA name such as Europe/Madrid)") from None


class _Day(fields.Field):
    """A TOML date (``2026-12-25``) or the same as a string."""

    default_error_messages = {**_REQUIRED, "invalid": "must be a date such as 2026-12-25"}

    def _deserialize(self, value: Any, attr: str | None, data: Any, **kwargs: Any) -> date:
        if isinstance(value, date) and not hasattr(value, "hour"):  # a TOML datetime is not a day
            return value
        if isinstance(value, str) and re.fullmatch(r"\d{4}-\d{2}-\d{2}", value):
            try:
                return date.fromisoformat(value)
            except ValueError:
                pass
        raise self.make_error("invalid")


_RANGE = re.compile(r"(\d\d):(\d\d)-(\d\d):(\d\d)")


def _minute(hours: str, minutes: str) -> int | None:
    h, m = int(hours), int(minutes)
    if (h < 24 and m < 60) or (h, m) == (24, 0):
        return h * 60 + m
    return None


class _OpeningRangeField(fields.Field):
    """``"09:00-13:00"``: zero-padded 24-hour times; only an end may be ``24:00``."""

    default_error_messages = {**_REQUIRED, "invalid": 'must look like "09:00-13:00" (24-hour HH:MM-HH:MM)'}

    def _deserialize(self, value: Any, attr: str | None, data: Any, **kwargs: Any) -> OpeningRange:
        match = _RANGE.fullmatch(value) if isinstance(value, str) else None
        if match is None:
            raise self.make_error("invalid")
        start, end = _minute(match[1], match[2]), _minute(match[3], match[4])
        if start is None or end is None:
            raise ValidationError(f"{value!r} is not a time of day")
        if start == DAY_MINUTES:
            raise ValidationError("24:00 can only end a range")
        if end <= start:
            raise ValidationError(
                f"{value!r} must end after it starts (a range cannot cross midnight; end it at 24:00)"
            )
        return OpeningRange(start, end)


class _DayHours(fields.List):
    """The ranges of one weekday: they may touch but not overlap; returned sorted."""

    default_error_messages = {**_REQUIRED, "invalid": 'must be a list such as ["09:00-13:00", "14:00-19:00"]'}

    def __init__(self) -> None:
        super().__init__(_OpeningRangeField(), load_default=())

    def _deserialize(self, value: Any, attr: str | None, data: Any, **kwargs: Any) -> list[Any]:
        ranges = cast(list[OpeningRange], super()._deserialize(value, attr, data, **kwargs))
        order = sorted(range(len(ranges)), key=lambda i: ranges[i].start)
        for before, after in zip(order, order[1:], strict=False):
            if ranges[after].start < ranges[before].end:
                raise ValidationError({after: [f"{value[after]!r} overlaps {value[before]!r}"]})
        return [ranges[i] for i in order]


class _Names(fields.Field):
    """``{ en = "Haircut", es = "Corte" }``; English is required, it is the fallback."""

    # marshmallow str.format()s its messages: braces are doubled
    default_error_messages = {**_REQUIRED, "invalid": 'must be a table such as {{ en = "Haircut" }}'}

    def _deserialize(self, value: Any, attr: str | None, data: Any, **kwargs: Any) -> dict[str, str]:
        if not isinstance(value, dict):
            raise self.make_error("invalid")
        if "en" not in value:
            raise ValidationError({"en": ["is required (it is used for every language without a name)"]})
        for language, name in value.items():
            if not isinstance(name, str) or not name.strip() or len(name) > MAX_NAME:
                raise ValidationError({language: [f"must be text of 1 to {MAX_NAME} characters"]})
        return dict(value)


# --- schemas ----------------------------------------------------------------------------------


class _Table(Schema):
    class Meta:
        unknown = EXCLUDE

    error_messages = {"type": "must be a table"}


E164 = re.compile(r"\+[1-9][0-9]{6,14}")
BUSINESS_ID = re.compile(r"[a-z0-9][a-z0-9-]{0,31}")
SENDER = re.compile(r"whatsapp:\+[1-9][0-9]{6,14}|MG[0-9a-f]{32}")
#: the id of a catalog that names none (one business per deployment, as in release 1)
DEFAULT_ID = "main"


class _Number(_Text):
    default_error_messages = {**_REQUIRED, "invalid": "must be a phone number such as +34910000000 (E.164)"}

    def _deserialize(self, value: Any, attr: str | None, data: Any, **kwargs: Any) -> str:
        text = super()._deserialize(value, attr, data, **kwargs)
        number = text.removeprefix("whatsapp:")
        if not E164.fullmatch(number):
            raise self.make_error("invalid")
        return number


def _offset(label: str) -> None:
    if parse_offset(label) is None:
        raise ValidationError(f'{label!r} is not an offset such as "24h", "2h", "90m" or "2d" (at most 30 days)')


def _unique(items: list[Any]) -> None:
    seen: set[Any] = set()
    for index, item in enumerate(items):
        if item in seen:
            raise ValidationError({index: [f"{item!r} is listed twice"]})
        seen.add(item)


class _BusinessSchema(_Table):
    id = _Text(
        load_default=DEFAULT_ID,
        validate=validate.Regexp(
            BUSINESS_ID.pattern + r"\Z", error="must be 1 to 32 of a-z, 0-9 and '-', starting with a letter or digit"
        ),
    )
    numbers = fields.List(
        _Number(),
        load_default=(),
        validate=_unique,
        error_messages={"invalid": 'must be a list such as ["+34910000000"]'},
    )
    sender = _Text(
        load_default=None,
        validate=validate.Regexp(
            SENDER.pattern + r"\Z", error="must be whatsapp:+<E.164 number> or a Messaging Service SID (MG…)"
        ),
    )
    languages = fields.List(
        _Text(), load_default=(), validate=_unique, error_messages={"invalid": 'must be a list such as ["es", "en"]'}
    )
    admin_password_hash = _Text(
        load_default=None,
        validate=validate.Regexp(
            r"(pbkdf2|scrypt):\S+\$\S+\$\S+\Z", error="must be a hash made by flask admin hash-password"
        ),
    )
    name = _text(1, 100, required=True)
    timezone = _TimeZone(required=True)
    slot_minutes = _Whole(5, DAY_MINUTES, required=True)
    min_notice_minutes = _Whole(0, required=True)
    horizon_days = _Whole(1, 365, required=True)
    hold_minutes = _Whole(1, 120, required=True)
    cancel_cutoff_minutes = _Whole(0, 365 * DAY_MINUTES, required=True)
    max_active_bookings = _Whole(1, required=True)
    retention_days = _Whole(1, 3650, load_default=365)
    reminders = fields.List(
        _Text(validate=_offset),
        load_default=("24h",),
        validate=_unique,
        error_messages={"invalid": 'must be a list such as ["24h", "2h"] (or [] for none)'},
    )
    address = _text(0, 100, load_default="")
    owner_whatsapp = _Number(load_default=None)
    closed = fields.List(_Day(), load_default=(), error_messages={"invalid": 'must be a list such as ["2026-12-25"]'})

    @validates_schema
    def notice_within_horizon(self, data: dict[str, Any], **kwargs: Any) -> None:
        limit = data["horizon_days"] * DAY_MINUTES
        if data["min_notice_minutes"] >= limit:
            raise ValidationError(
                f"must be less than horizon_days * 1440 = {limit}, or nothing can ever be booked",
                field_name="min_notice_minutes",
            )

    @post_load
    def freeze(self, data: dict[str, Any], **kwargs: Any) -> dict[str, Any]:
        return {
            **data,
            "closed": frozenset(data["closed"]),
            "numbers": tuple(data["numbers"]),
            "languages": tuple(data["languages"]),
            "reminders": tuple(data["reminders"]),
        }


class _HoursSchema(_Table):
    class Meta:
        unknown = RAISE  # a misspelt weekday must not silently close that day

    error_messages = {"type": "must be a table", "unknown": "is not a weekday (use mon, tue, wed, thu, fri, sat, sun)"}

    mon = _DayHours()
    tue = _DayHours()
    wed = _DayHours()
    thu = _DayHours()
    fri = _DayHours()
    sat = _DayHours()
    sun = _DayHours()

    @post_load
    def by_weekday(self, data: dict[str, Any], **kwargs: Any) -> dict[int, tuple[OpeningRange, ...]]:
        return {weekday: tuple(data[day]) for weekday, day in enumerate(WEEKDAYS) if data.get(day)}


class _ServiceSchema(_Table):
    error_messages = {"type": "must be an array of [[services]] tables"}

    id = _slug(16, required=True)
    minutes = _Whole(1, DAY_MINUTES, required=True)
    capacity = _Whole(1, required=True)
    price = _text(1, MAX_PRICE, required=True)
    names = _Names(required=True, data_key="name")
    buffer_before_minutes = _Whole(0, DAY_MINUTES, load_default=0)
    buffer_after_minutes = _Whole(0, DAY_MINUTES, load_default=0)
    resource = _Text(
        load_default="",
        validate=validate.Regexp(r"[a-z0-9_-]{0,32}\Z", error="must be 0 to 32 of a-z, 0-9, '_' or '-'"),
    )

    @post_load
    def make_service(self, data: dict[str, Any], **kwargs: Any) -> Service:
        return Service(**data)


class _CatalogSchema(_Table):
    business = fields.Nested(_BusinessSchema, required=True, error_messages=_REQUIRED)
    hours = fields.Nested(_HoursSchema, required=True, error_messages=_REQUIRED)
    services = fields.Nested(
        _ServiceSchema,
        many=True,
        required=True,
        error_messages=_REQUIRED,
        validate=validate.Length(min=1, error="needs at least one [[services]] table"),
    )

    def __init__(self, *, languages: frozenset[str]) -> None:
        super().__init__()
        self.languages = languages

    @validates_schema
    def check_languages(self, data: dict[str, Any], **kwargs: Any) -> None:
        for index, language in enumerate(data["business"]["languages"]):
            if language not in self.languages:
                spoken = ", ".join(sorted(self.languages))
                problem = f"{language!r} is not a language the bot speaks ({spoken})"
                raise ValidationError({"business": {"languages": {index: [problem]}}})

    @validates_schema
    def check_services(self, data: dict[str, Any], **kwargs: Any) -> None:
        seen: dict[str, int] = {}
        for index, service in enumerate(data["services"]):
            if service.id in seen:
                raise ValidationError({"services": {index: {"id": [f"duplicates services[{seen[service.id]}].id"]}}})
            seen[service.id] = index
            for language in service.names:
                if language not in self.languages:
                    spoken = ", ".join(sorted(self.languages))
                    problem = f"is not a language the bot speaks ({spoken})"
                    raise ValidationError({"services": {index: {"name": {language: [problem]}}}})

    @post_load
    def make_catalog(self, data: dict[str, Any], **kwargs: Any) -> Catalog:
        business = Business(**data["business"], hours=data["hours"])
        return Catalog(business=business, services=tuple(data["services"]))


# --- loading ----------------------------------------------------------------------------------


def _where(parts: list[Any]) -> str:
    where = ""
    for part in parts:
        if part == "_schema":
            continue
        where += f"[{part}]" if isinstance(part, int) else f".{part}" if where else str(part)
    return where or "catalog"


def _first_problem(messages: Any, parts: list[Any] | None = None) -> tuple[str, str]:
    """``(where, reason)`` of the first error in marshmallow's nested messages."""
    parts = parts or []
    if isinstance(messages, dict):
        key, inner = next(iter(messages.items()))
        return _first_problem(inner, [*parts, key])
    if isinstance(messages, list) and messages:
        return _first_problem(messages[0], parts)
    return _where(parts), str(messages)


def _unknown_keys(schema: Schema, data: Any, where: str = "") -> list[str]:
    """The keys of ``data`` that ``schema`` (and its nested schemas) would silently drop."""
    if not isinstance(data, dict) or schema.unknown != EXCLUDE:
        return []
    known = {field.data_key or name: field for name, field in schema.fields.items()}
    prefix = f"{where}." if where else ""
    found = [f"{prefix}{key}" for key in data if key not in known]
    for key, field in known.items():
        if not isinstance(field, fields.Nested) or key not in data:
            continue
        if not field.many:
            found += _unknown_keys(field.schema, data[key], f"{prefix}{key}")
        elif isinstance(data[key], list):
            for index, item in enumerate(data[key]):
                found += _unknown_keys(field.schema, item, f"{prefix}{key}[{index}]")
    return found


def _fail(path: str | Path, where: str, reason: str) -> ConfigError:
    return ConfigError(SETTING, " ".join(f"{path}: {where}: {reason}".splitlines()))  # always one line


def load_catalog(path: str | Path, *, languages: frozenset[str]) -> Catalog:
    """The validated catalog in the TOML file ``path``; any problem raises ConfigError(BOT_CATALOG).

    ``languages`` are those the bot speaks: a service name in any other language is refused as a
    typo; a language without a name falls back to English (:meth:`Service.name`).
    """
    try:
        with open(path, "rb") as file:
            raw = tomllib.load(file)
    except OSError as exc:
        raise _fail(path, "file", f"cannot be read ({exc.strerror or exc})") from None
    except tomllib.TOMLDecodeError as exc:
        raise _fail(path, "toml", f"not valid TOML: {exc}") from None
    except UnicodeDecodeError as exc:
        raise _fail(path, "file", f"not UTF-8 text (byte {exc.start}): save it as UTF-8") from None
    schema = _CatalogSchema(languages=languages)
    unknown = _unknown_keys(schema, raw)
    if unknown:
        log.warning("catalog %s: ignoring unknown keys (typos?): %s", path, ", ".join(unknown))
    try:
        return schema.load(raw)
    except ValidationError as exc:
        where, reason = _first_problem(exc.normalized_messages())
        raise _fail(path, where, reason) from None


def catalog_files(path: str | Path) -> list[Path]:
    """``BOT_CATALOG``'s files: the file itself, or every ``*.toml`` in the folder, by name."""
    path = Path(path)
    if path.is_dir():
        files = sorted(path.glob("*.toml"))
        if not files:
            raise ConfigError(SETTING, f"{path}: the folder holds no *.toml catalog")
        return files
    return [path]


def load_catalogs(path: str | Path, *, languages: frozenset[str]) -> list[tuple[Path, Catalog]]:
    """Every business of ``BOT_CATALOG`` (one file, or a folder of them), validated and checked
    against each other: with several, each names its ``id`` and its ``numbers``; no id and no
    number may be claimed twice (the error names both files)."""
    loaded = [(file, load_catalog(file, languages=languages)) for file in catalog_files(path)]
    if len(loaded) > 1:
        for file, _ in loaded:
            if not _names_its_id(file):
                raise _fail(file, "business.id", "is required when BOT_CATALOG holds several businesses")
    check_businesses(loaded)
    return loaded


def check_businesses(loaded: Sequence[tuple[Path, Catalog]]) -> None:
    """The rules between businesses (see :func:`load_catalogs`); ConfigError naming the files."""
    if len(loaded) > 1:
        for file, catalog in loaded:
            if not catalog.business.numbers:
                raise _fail(
                    file, "business.numbers", "is required when BOT_CATALOG holds several businesses (which To?)"
                )
    ids: dict[str, Path] = {}
    numbers: dict[str, Path] = {}
    for file, catalog in loaded:
        business = catalog.business
        if business.id in ids:
            raise ConfigError(SETTING, f"{ids[business.id]} and {file} both have business.id {business.id!r}")
        ids[business.id] = file
        for number in business.numbers:
            if number in numbers:
                raise ConfigError(SETTING, f"{numbers[number]} and {file} both claim the number {number}")
            numbers[number] = file


def _names_its_id(file: Path) -> bool:
    try:
        with open(file, "rb") as handle:
            raw = tomllib.load(handle)
    except (OSError, tomllib.TOMLDecodeError):  # already read by load_catalog
        return False
    business = raw.get("business")
    return isinstance(business, dict) and "id" in business
