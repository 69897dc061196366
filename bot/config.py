"""Every setting the bot reads, its default, and how it is checked.

Layering (as in Flask's tutorial): these defaults, then a ``.env`` file in the working
directory, then the process environment, then ``test_config``. A value that does not
parse stops start-up with a :class:`~bot.errors.ConfigError` naming the setting.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from dotenv import dotenv_values

from .errors import ConfigError

#: The token written by ``.env.example`` for the quickstart; refused next to a real Redis.
SAMPLE_AUTH_TOKEN = "dev-only-not-a-secret"

Parser = Callable[[Any], Any]


def _setting(default: Any, parse: Parser, help: str, *, shown: str | None = None) -> Any:
    """A setting: its default, its parser, and what docs/settings.md says of it (``help``, Markdown;
    ``shown`` when the default reads better in words than as a value)."""
    metadata = {"parse": parse, "help": help}
    if shown is not None:
        metadata["shown"] = shown
    return field(default=default, metadata=metadata)


def _blank(value: Any) -> bool:
    return value is None or (isinstance(value, str) and not value.strip())


def _optional_text(value: Any) -> str | None:
    return None if _blank(value) else str(value).strip()


def _text(value: Any) -> str:
    if _blank(value):
        raise ValueError("must not be empty")
    return str(value).strip()


def _number(kind: type, low: float, high: float) -> Parser:
    def parse(value: Any) -> Any:
        if isinstance(value, bool):
            raise ValueError(f"must be a number between {low} and {high}")
        try:
            number = kind(str(value).strip()) if isinstance(value, str) else kind(value)
        except (TypeError, ValueError):
            raise ValueError(f"must be a number between {low} and {high} (got {value!r})") from None
        if not low <= number <= high:
            raise ValueError(f"must be between {low} and {high} (got {number})")
        return number

    return parse


_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"0", "false", "no", "off"}


def _auto_bool(value: Any) -> bool | None:
    """True, False, or None for "decide from the app's mode"."""
    if _blank(value) or (isinstance(value, str) and value.strip().lower() == "auto"):
        return None
    if isinstance(value, bool):
        return value
    text = str(value).strip().lower()
    if text in _TRUE:
        return True
    if text in _FALSE:
        return False
    raise ValueError(f"must be true, false or auto (got {value!r})")


def _flag(value: Any) -> bool:
    if _blank(value) or (isinstance(value, str) and value.strip().lower() == "auto"):
        raise ValueError(f"must be true or false (got {value!r})")
    return bool(_auto_bool(value))


def _redis_url(value: Any) -> str | None:
    url = _optional_text(value)
    if url is not None and urlsplit(url).scheme not in {"redis", "rediss", "unix", "redis+cluster", "rediss+cluster"}:
        raise ValueError(
            "must start with redis://, rediss:// or unix:// (a cluster: redis+cluster://, rediss+cluster://)"
        )
    return url


def _nodes(value: Any) -> tuple[tuple[str, int], ...]:
    """``host:port,host:port`` → ((host, port), …); blank → ()."""
    if isinstance(value, (tuple, list)):  # the default, or already parsed
        value = ",".join(node if isinstance(node, str) else f"{node[0]}:{node[1]}" for node in value)
    text = _optional_text(value)
    if text is None:
        return ()
    nodes = []
    for item in text.split(","):
        host, colon, port = item.strip().rpartition(":")
        if not colon or not host or not port.isdigit() or not 0 < int(port) < 65536:
            raise ValueError(f"must be host:port pairs separated by commas (got {item.strip()!r})")
        nodes.append((host.strip("[]"), int(port)))
    return tuple(nodes)


def _wait_replicas(value: Any) -> int | None:
    """A number of replicas, or None for auto."""
    if _blank(value) or (isinstance(value, str) and value.strip().lower() == "auto"):
        return None
    return _number(int, 0, 5)(value)


def _base_url(example: str, *, credentials: bool = True) -> Parser:
    """An http(s) URL with a host and no query or fragment (nor a user name or password unless
    ``credentials``); the trailing ``/`` dropped; blank → None."""

    def parse(value: Any) -> str | None:
        url = _optional_text(value)
        if url is None:
            return None
        parts = urlsplit(url)
        try:
            valid = parts.scheme in {"http", "https"} and bool(parts.hostname) and parts.port != 0
        except ValueError:  # a port that is not a number from 0 to 65535
            valid = False
        if not valid:
            raise ValueError(f"must be an http(s) URL such as {example} (got {url!r})")
        if parts.query or parts.fragment:
            raise ValueError("must not carry a query string or fragment")
        if not credentials and (parts.username is not None or parts.password is not None):
            raise ValueError("must not carry a user name or password")
        return url.rstrip("/")

    return parse


_LABEL = r"[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?"
_HOST = re.compile(rf"(?:{_LABEL}\.)*{_LABEL}|\[[0-9a-f:.]+\]")


def _hosts(value: Any) -> tuple[str, ...]:
    """``bot.example.com,other.example.com:8443`` → lower-case ``host[:port]`` names; blank → ()."""
    if isinstance(value, (tuple, list)):  # the default, or already parsed
        value = ",".join(value)
    text = _optional_text(value)
    if text is None:
        return ()
    hosts = []
    for item in text.split(","):
        host = name = item.strip().lower()
        port_ok = True
        if ":" in host and not host.endswith("]"):  # host:port ([IPv6] keeps its own colons)
            name, _, port = host.rpartition(":")
            port_ok = port.isdigit() and 0 < int(port) < 65536
        if not (_HOST.fullmatch(name) and port_ok):
            raise ValueError(f"must be host or host:port names separated by commas, no scheme or path (got {item!r})")
        hosts.append(host)
    return tuple(hosts)


def _key_prefix(value: Any) -> str:
    prefix = _text(value)
    if not re.fullmatch(r"[A-Za-z0-9_.-]{1,32}", prefix):
        raise ValueError("must be 1-32 letters, digits, '_', '.' or '-'")
    return prefix


def _prefixed(prefix: str, example: str) -> Parser:
    def parse(value: Any) -> str | None:
        text = _optional_text(value)
        if text is not None and not text.startswith(prefix):
            raise ValueError(f"must start with {prefix!r}, e.g. {example}")
        return text

    return parse


def _language(value: Any) -> str:
    return _text(value).lower()


def _log_level(value: Any) -> str:
    level = _text(value).upper()
    if level not in {"DEBUG", "INFO", "WARNING", "ERROR"}:
        raise ValueError("must be DEBUG, INFO, WARNING or ERROR")
    return level


def _admin_password(value: Any) -> str | None:
    password = None if _blank(value) else str(value)
    if password is not None and len(password) < 10:
        raise ValueError("must be at least 10 characters")
    return password


#: the shortest SECRET_KEY accepted: 32 characters of secrets.token_urlsafe carry 192 bits
SECRET_KEY_MIN_LENGTH = 32
SECRET_KEY_HINT = "python3 -c 'import secrets; print(secrets.token_urlsafe(32))'"


def _secret_key(value: Any) -> str | None:
    if _blank(value):
        return None
    if not isinstance(value, str):
        raise ValueError("must be text")
    key = value.strip()
    if len(key) < SECRET_KEY_MIN_LENGTH:
        raise ValueError(f"must be at least {SECRET_KEY_MIN_LENGTH} random characters, e.g. from {SECRET_KEY_HINT}")
    return key


ADMIN_PASSWORD_PREFIX = "ADMIN_PASSWORD_"


def _admin_passwords(value: Any) -> dict[str, str]:
    """``{ADMIN_PASSWORD_<ID>: password}``, each checked like ADMIN_PASSWORD; blank ones left out."""
    passwords = {}
    for key, password in dict(value or {}).items():
        try:
            checked = _admin_password(password)
        except ValueError as exc:
            raise ValueError(f"{key}: {exc}") from None
        if checked is not None:
            passwords[key] = checked
    return passwords


def _log_format(value: Any) -> str:
    fmt = "auto" if _blank(value) else str(value).strip().lower()
    if fmt not in {"auto", "plain", "json"}:
        raise ValueError(f"must be auto, plain or json (got {value!r})")
    return fmt


_DAY = 86_400


@dataclass(frozen=True)
class Settings:
    """Typed, validated settings; the Flask config key is the field name upper-cased."""

    redis_url: str | None = _setting(
        None,
        _redis_url,
        "`redis://`, `rediss://` or `unix://` URL of one server (`redis+cluster://`, `rediss+cluster://`: a node"
        " of a Redis Cluster). Unset (and no cluster or sentinels): embedded in-memory store (development only,"
        " warned loudly).",
    )
    redis_cluster_nodes: tuple[tuple[str, int], ...] = _setting(
        (),
        _nodes,
        "Redis Cluster instead of `REDIS_URL`: some nodes as `host:port,host:port` (the client discovers the rest).",
    )
    redis_sentinels: tuple[tuple[str, int], ...] = _setting(
        (), _nodes, "Redis Sentinel instead of `REDIS_URL`: the sentinels as `host:port,host:port`."
    )
    redis_sentinel_service: str | None = _setting(
        None,
        _optional_text,
        "With `REDIS_SENTINELS` (required): the master's name in `sentinel monitor <name> …`.",
    )
    redis_username: str | None = _setting(
        None, _optional_text, "ACL user of the Redis servers (a `REDIS_URL` may carry its own, which wins)."
    )
    redis_password: str | None = _setting(
        None, _optional_text, "Password of the Redis servers (a `REDIS_URL` may carry its own, which wins)."
    )
    redis_sentinel_password: str | None = _setting(
        None, _optional_text, "Password of the sentinels themselves (`requirepass` in sentinel.conf)."
    )
    redis_tls: bool = _setting(
        False,
        _flag,
        "TLS to the cluster nodes, or to the sentinels and the master. With `REDIS_URL`, write `rediss://` instead.",
    )
    redis_tls_ca_file: str | None = _setting(
        None,
        _optional_text,
        "CA certificate (PEM) that signed the servers' certificates, when it is not in the system's store.",
    )
    redis_wait_replicas: int | None = _setting(
        None,
        _wait_replicas,
        'Replicas that must have a booking (`WAIT`) before the customer reads "Booked!": `auto` is 1 with'
        " Sentinel, 0 otherwise; 0 turns it off. Not with Redis Cluster.",
        shown="`auto`",
    )
    redis_wait_timeout_ms: int = _setting(
        250,
        _number(int, 1, 5000),
        "How long a booking waits for its replicas; past it the customer is answered anyway and a WARNING is"
        " logged. Shorter than `REDIS_SOCKET_TIMEOUT`.",
    )
    redis_socket_timeout: float = _setting(
        1.0,
        _number(float, 0.01, 30),
        'Seconds a Redis command may take; past it the customer gets the polite "try again" reply.',
    )
    redis_connect_timeout: float = _setting(1.0, _number(float, 0.01, 30), "Seconds to wait for a Redis connection.")
    redis_key_prefix: str = _setting(
        "tapbook", _key_prefix, "First part of every key (1–32 letters, digits, `_`, `.` or `-`)."
    )
    twilio_auth_token: str | None = _setting(
        None,
        _optional_text,
        "Auth token of the account owning the sender; required while signatures are checked. The sample value"
        " from `.env.example` is refused once `REDIS_URL` is set.",
    )
    twilio_account_sid: str | None = _setting(
        None,
        _prefixed("AC", "AC0123…"),
        "`AC…`: with the token and a sender, replies go out as WhatsApp buttons through the Content API.",
    )
    twilio_from: str | None = _setting(
        None,
        _prefixed("whatsapp:+", "whatsapp:+14155238886"),
        "The WhatsApp sender, `whatsapp:+14155238886`, of a business whose catalog names no `sender` and no `numbers`.",
    )
    twilio_messaging_service_sid: str | None = _setting(
        None,
        _prefixed("MG", "MG0123…"),
        "`MG…`: the same, through this Messaging Service instead of `TWILIO_FROM`.",
    )
    twilio_api_url: str | None = _setting(
        None,
        _base_url("http://127.0.0.1:8010", credentials=False),
        "Tests and benchmarks only: send every Twilio REST request (Messages, Content API) to this"
        " `http(s)://host:port` instead of Twilio's hosts, path and query kept, e.g. to the local stand-in"
        " `tests/twilio_server.py`. A WARNING at start-up says so. Never set it in production.",
    )
    twilio_validate_signature: bool | None = _setting(
        None,
        _auto_bool,
        "Check `X-Twilio-Signature`: `true`, `false` or `auto` (on, except in Flask debug/testing mode). `false`"
        " switches checks off (local experiments on the embedded store only: next to a real Redis, checks that"
        " are off stop start-up).",
        shown="`auto`",
    )
    public_base_url: str | None = _setting(
        None,
        _base_url("https://bot.example.com"),
        "Scheme and host Twilio calls (`https://bot.example.com`): signatures are checked over it, whatever"
        " `Host` a request names. With a real Redis this or `WEBHOOK_HOSTS` is required.",
    )
    webhook_hosts: tuple[str, ...] = _setting(
        (),
        _hosts,
        "Hosts Twilio may call, `bot.example.com,other.example.com:8443`: a request to one of them (its `Host`,"
        " or `X-Forwarded-Host` with `TRUSTED_PROXY_HOPS`) is checked over its own URL, one to any other host"
        " is refused.",
    )
    trusted_proxy_hops: int = _setting(
        0, _number(int, 0, 5), "Proxies whose `X-Forwarded-*` headers to trust (ProxyFix)."
    )
    session_ttl_seconds: int = _setting(
        1800,
        _number(int, 60, 7 * _DAY),
        "Idle seconds before a conversation is forgotten; every write restarts it.",
    )
    profile_ttl_seconds: int = _setting(
        400 * _DAY,
        _number(int, _DAY, 3650 * _DAY),
        "How long a customer's language choice is kept (default: 400 days).",
    )
    dedupe_ttl_seconds: int = _setting(
        60,
        _number(int, 60, 7 * _DAY),
        "How long the reply to a message is kept, to answer Twilio's retries with it (Twilio gives up within"
        " 15 s, retries included). Later copies are still recognised by the customer's `answered` set and"
        " change nothing.",
    )
    default_language: str = _setting(
        "en",
        _language,
        "Language of a business whose catalog lists no `languages`, when nothing else decides (`en`, `es`, `pt`).",
    )
    bot_catalog: str | None = _setting(
        None,
        _optional_text,
        "A business's catalog (TOML file), or a folder of them, one business each; checked at start-up.",
        shown="the sample salon",
    )
    log_level: str = _setting("INFO", _log_level, "`DEBUG`, `INFO`, `WARNING` or `ERROR`.")
    log_format: str = _setting(
        "auto",
        _log_format,
        "`plain` (readable lines), `json` (one JSON object per line), or `auto`: `json` when a Redis is"
        " configured (`REDIS_URL`, a cluster or sentinels) outside debug/testing mode, else `plain`.",
    )
    secret_key: str | None = _setting(
        None,
        _secret_key,
        "Signs the owner's page's cancel tokens and its session cookie (never an admin password): 32 or more"
        f" random characters, e.g. `{SECRET_KEY_HINT}`. Required next to a real Redis (start-up stops with one"
        " line without it); unset on the embedded store, each process makes a random one. The same on every"
        " instance; changing it voids the buttons of open pages.",
    )
    admin_password: str | None = _setting(
        None,
        _admin_password,
        "With one business: the password (10 characters or more) of the owner's page `/admin` (HTTP basic"
        " auth, any user name). Unset (and no other password): the page answers 404 and start-up logs that it"
        " is off. With several businesses it stops start-up: use the next.",
    )
    admin_passwords: Mapping[str, str] = field(
        default_factory=dict,
        metadata={
            "parse": _admin_passwords,
            "help": "The `/admin` password of business `<ID>` (its id upper-cased, `-` as `_`); its owner logs in"
            " with the id as user name. A catalog may carry a hash instead (`admin_password_hash`).",
            "prefix": ADMIN_PASSWORD_PREFIX,
        },
    )

    @property
    def redis_mode(self) -> str:
        """``cluster``, ``sentinel``, ``server`` (REDIS_URL) or ``embedded``."""
        if self.redis_cluster_nodes or urlsplit(self.redis_url or "").scheme.endswith("+cluster"):
            return "cluster"
        if self.redis_sentinels:
            return "sentinel"
        return "server" if self.redis_url else "embedded"

    @property
    def wait_replicas(self) -> int:
        """Replicas a booking waits for (``WAIT``): auto means 1 behind Sentinel, else none."""
        if self.redis_wait_replicas is None:
            return 1 if self.redis_mode == "sentinel" else 0
        return self.redis_wait_replicas

    @property
    def twilio_rest(self) -> bool:
        """Twilio's REST API can be used (an account SID and its auth token are set): a business with a
        sender then gets its replies as buttons through the Content API (see ``bot.tenants``)."""
        return bool(self.twilio_account_sid and self.twilio_auth_token)

    @classmethod
    def keys(cls) -> list[str]:
        return [f.name.upper() for f in fields(cls) if "prefix" not in f.metadata]

    @classmethod
    def prefixes(cls) -> list[str]:
        """Families of settings named by a prefix (``ADMIN_PASSWORD_<ID>``)."""
        return [f.metadata["prefix"] for f in fields(cls) if "prefix" in f.metadata]

    @classmethod
    def is_known(cls, key: str) -> bool:
        return key in cls.keys() or any(key.startswith(prefix) for prefix in cls.prefixes())

    @classmethod
    def defaults(cls) -> dict[str, Any]:
        return {f.name.upper(): f.default for f in fields(cls) if "prefix" not in f.metadata}

    @classmethod
    def from_mapping(cls, config: Mapping[str, Any]) -> Settings:
        """Parse every known key of ``config``; the first bad one raises ConfigError."""
        values = {}
        for f in fields(cls):
            if "prefix" in f.metadata:
                family = {k: v for k, v in config.items() if k.startswith(f.metadata["prefix"])}
                try:
                    values[f.name] = f.metadata["parse"](family)
                except ValueError as exc:
                    key, _, reason = str(exc).partition(": ")
                    raise ConfigError(key, reason) from None
                continue
            key = f.name.upper()
            try:
                values[f.name] = f.metadata["parse"](config.get(key, f.default))
            except ValueError as exc:
                raise ConfigError(key, str(exc)) from None
        return cls(**values)


def layered_config(
    environ: Mapping[str, str], dotenv_path: Path | None, test_config: Mapping[str, Any] | None
) -> dict[str, Any]:
    """Defaults, then ``.env``, then the environment, then ``test_config`` (later wins)."""
    config = Settings.defaults()
    if dotenv_path is not None and dotenv_path.is_file():
        config.update({k: v for k, v in dotenv_values(dotenv_path).items() if Settings.is_known(k)})
    config.update({k: v for k, v in environ.items() if Settings.is_known(k)})
    if test_config:
        config.update(test_config)
    return config


def check_consistency(settings: Settings, *, languages: frozenset[str], lenient_mode: bool) -> bool:
    """Cross-setting rules; returns whether signatures are checked."""
    if settings.default_language not in languages:
        raise ConfigError(
            "DEFAULT_LANGUAGE", f"{settings.default_language!r} is not one of {', '.join(sorted(languages))}"
        )
    validate = settings.twilio_validate_signature
    if validate is None:
        validate = not lenient_mode
    if validate and not settings.twilio_auth_token:
        raise ConfigError(
            "TWILIO_AUTH_TOKEN",
            "required while signature checks are on (or set TWILIO_VALIDATE_SIGNATURE=false)",
        )
    check_redis(settings)
    if settings.redis_mode != "embedded":
        check_real_webhook(settings, validate=validate)
        if not settings.secret_key:
            raise ConfigError(
                "SECRET_KEY",
                f"required next to a real Redis: {SECRET_KEY_MIN_LENGTH} or more random characters, e.g. from"
                f" {SECRET_KEY_HINT} (it signs the /admin page's tokens; never the admin password)",
            )
    return validate


def check_real_webhook(settings: Settings, *, validate: bool) -> None:
    """Next to a real Redis the webhook fails closed: signatures checked, over a URL the client cannot pick."""
    if not validate:
        why = (
            "false"
            if settings.twilio_validate_signature is False
            else "auto turns checks off in Flask debug/testing mode (FLASK_DEBUG)"
        )
        raise ConfigError(
            "TWILIO_VALIDATE_SIGNATURE",
            f"{why}; unchecked signatures are refused next to a real Redis"
            " (set it to true, or unset REDIS_URL for the embedded store)",
        )
    if settings.twilio_auth_token == SAMPLE_AUTH_TOKEN:
        raise ConfigError("TWILIO_AUTH_TOKEN", "is the sample from .env.example; use your account's token")
    if not settings.public_base_url and not settings.webhook_hosts:
        raise ConfigError(
            "PUBLIC_BASE_URL",
            "required next to a real Redis: the scheme and host Twilio calls, e.g. https://bot.example.com"
            " (or list the hosts it may call in WEBHOOK_HOSTS)",
        )


def check_redis(settings: Settings) -> None:
    """One way to reach Redis, and the settings that go with it."""
    chosen = [
        key
        for key, value in (
            ("REDIS_URL", settings.redis_url),
            ("REDIS_CLUSTER_NODES", settings.redis_cluster_nodes),
            ("REDIS_SENTINELS", settings.redis_sentinels),
        )
        if value
    ]
    if len(chosen) > 1:
        raise ConfigError(chosen[1], f"set only one of {' and '.join(chosen)}")
    mode = settings.redis_mode
    if mode == "sentinel" and not settings.redis_sentinel_service:
        raise ConfigError("REDIS_SENTINEL_SERVICE", "required with REDIS_SENTINELS (the name in 'sentinel monitor')")
    if settings.redis_sentinel_service and mode != "sentinel":
        raise ConfigError("REDIS_SENTINEL_SERVICE", "only used with REDIS_SENTINELS")
    if settings.redis_tls and settings.redis_url:
        raise ConfigError("REDIS_TLS", "with REDIS_URL, write rediss:// (rediss+cluster://) instead")
    if settings.redis_tls_ca_file and not (settings.redis_tls or (settings.redis_url or "").startswith("rediss")):
        raise ConfigError("REDIS_TLS_CA_FILE", "needs TLS: REDIS_TLS=true, or a rediss:// REDIS_URL")
    if settings.redis_wait_replicas and mode == "cluster":
        raise ConfigError("REDIS_WAIT_REPLICAS", "is not supported with REDIS_CLUSTER_NODES (set it to 0 or auto)")
    if settings.wait_replicas and settings.redis_wait_timeout_ms >= settings.redis_socket_timeout * 1000:
        raise ConfigError(
            "REDIS_WAIT_TIMEOUT_MS",
            f"must be shorter than REDIS_SOCKET_TIMEOUT ({settings.redis_socket_timeout} s), or waiting times out taps",
        )
