"""The config: the settings users can give (SETTINGS, for validation, --about and the
Meltano plugin file), their defaults, and the validation a config passes before any
request is made."""

import datetime
import difflib
import ipaddress
import logging
import re
from collections.abc import Mapping
from typing import Any
from urllib.parse import urlparse

from tap_autopilot.errors import ConfigError

LOGGER = logging.getLogger("tap_autopilot")

DEFAULT_BASE_URL = "https://api2.autopilothq.com/v1"
DEFAULT_REQUEST_TIMEOUT_SECONDS = 300
DEFAULT_MAX_REQUESTS_PER_SECOND = 5
# Concurrent requests in flight. The rate limiter, not this, sets the pace;
# this only has to cover (rate x round trip) with some room.
DEFAULT_MAX_CONCURRENT_REQUESTS = 4

# Where lists_contacts rows come from (config `lists_contacts_source`): the contacts scan
# when contacts are selected, else whichever needs fewer requests; always the contacts
# scan; always each list's own pages. The first is the default.
SOURCE_AUTO, SOURCE_CONTACTS, SOURCE_LISTS = "auto", "contacts", "lists"
MEMBERSHIP_SOURCES = (SOURCE_AUTO, SOURCE_CONTACTS, SOURCE_LISTS)

# The settings users can give, for validation, --about and the Meltano plugin file.
SETTINGS = [
    {
        "name": "api_key",
        "kind": "password",
        "type": "string",
        "required": True,
        "secret": True,
        "description": "Autopilot API key, sent as the autopilotapikey header.",
    },
    {
        "name": "start_date",
        "kind": "date_iso8601",
        "type": "string",
        "required": False,
        "secret": False,
        "description": "A date (2020-01-01, midnight UTC) or an RFC 3339 time; contacts updated before it are not "
        "replicated on the first run. Default: one year before the first run began, kept in the state "
        "(default_start_date) so that later runs do not slide.",
    },
    {
        "name": "base_url",
        "kind": "string",
        "type": "string",
        "required": False,
        "secret": False,
        "default": DEFAULT_BASE_URL,
        "description": "API root URL (plain http only to localhost).",
    },
    {
        "name": "user_agent",
        "kind": "string",
        "type": "string",
        "required": False,
        "secret": False,
        "description": "Sent as the User-Agent header.",
    },
    {
        "name": "request_timeout",
        "kind": "decimal",
        "type": "number",
        "required": False,
        "secret": False,
        "default": DEFAULT_REQUEST_TIMEOUT_SECONDS,
        "description": "Seconds each whole HTTP response (body included) may take before it is retried.",
    },
    {
        "name": "max_requests_per_second",
        "kind": "decimal",
        "type": "number",
        "required": False,
        "secret": False,
        "default": DEFAULT_MAX_REQUESTS_PER_SECOND,
        "description": "Client-side request rate ceiling; Autopilot documents 5 per second.",
    },
    {
        "name": "max_concurrent_requests",
        "kind": "integer",
        "type": "integer",
        "required": False,
        "secret": False,
        "default": DEFAULT_MAX_CONCURRENT_REQUESTS,
        "description": "Requests in flight at once; the rate limit, not this, sets the pace.",
    },
    {
        "name": "lists_contacts_source",
        "kind": "options",
        "type": "string",
        "required": False,
        "secret": False,
        "default": MEMBERSHIP_SOURCES[0],
        "options": list(MEMBERSHIP_SOURCES),
        "description": "Where lists_contacts rows come from: the contacts scan's documents (contacts), each "
        "list's pages (lists), or auto: the scan when contacts are selected, else the cheaper.",
    },
]


SETTING_NAMES = [str(setting["name"]) for setting in SETTINGS]

# What each setting holds, for the line that refuses a value of the wrong type.
SETTING_VALUES = {
    "api_key": "your Autopilot API key",
    "start_date": "a date such as 2020-01-01, or an RFC 3339 time",
    "base_url": f"the API root URL, such as {DEFAULT_BASE_URL}",
    "user_agent": "the User-Agent header to send",
    "request_timeout": "seconds",
    "max_requests_per_second": "requests per second",
    "max_concurrent_requests": "requests in flight at once",
    "lists_contacts_source": f"one of {', '.join(MEMBERSHIP_SOURCES)}",
}

_TYPE_WORDS = {"string": "a string", "number": "a number", "integer": "a whole number"}


def json_type(value: object) -> str:
    """The JSON type of a value, in words (for messages that must not quote the value)."""
    if isinstance(value, bool):
        return "true or false"
    if isinstance(value, (int, float)):
        return "a number"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, list):
        return "a list"
    if isinstance(value, dict):
        return "an object"
    return "null"


def _has_type(value: object, type_name: str) -> bool:
    if type_name == "string":
        return isinstance(value, str)
    # A number given as text passes here: the number checks below read it, as they always
    # did (runners that take settings from environment variables write text).
    number = isinstance(value, (int, float)) and not isinstance(value, bool)
    return number or (type_name == "number" and isinstance(value, str))


def type_error(name: str, value: object) -> str | None:
    """The type-message rule: the line refusing a setting's value of the wrong JSON type
    (saying the type expected and what the setting holds, never the value: it may be the
    API key), or None when the type is right."""
    type_name = str(next(setting["type"] for setting in SETTINGS if setting["name"] == name))
    if _has_type(value, type_name):
        return None
    return f"Config '{name}' must be {_TYPE_WORDS[type_name]} ({SETTING_VALUES[name]}), not {json_type(value)}."


def closest_setting(key: str) -> str | None:
    """The closest-key suggestion: the setting a config key that is not one was most
    likely meant to be (a typo, another case, '-' for '_'), or None when none is close."""
    matches = difflib.get_close_matches(key.strip().lower().replace("-", "_"), SETTING_NAMES, n=1, cutoff=0.6)
    return matches[0] if matches else None


def warn_unknown_settings(config: dict[str, Any]) -> None:
    """One WARNING for each key that is not a setting (it is ignored). Keys starting with
    '_' are left alone: comments, and the private keys runners keep (Meltano's extras)."""
    for key in config:
        if key in SETTING_NAMES or (isinstance(key, str) and key.startswith("_")):
            continue
        suggestion = closest_setting(key)
        if suggestion is not None:
            LOGGER.warning("Config %r is not a setting of this tap and is ignored: did you mean %s?", key, suggestion)
        else:
            LOGGER.warning(
                "Config %r is not a setting of this tap and is ignored. The settings are %s.",
                key,
                ", ".join(SETTING_NAMES),
            )


def _positive_number(config: dict[str, Any], key: str) -> None:
    value = config.get(key)
    if value is None:
        return
    try:
        number = float(value)
    except (TypeError, ValueError):
        number = None
    if isinstance(value, bool) or number is None or not number > 0 or number == float("inf"):
        raise ConfigError(
            f"Config '{key}' must be a positive number of "
            f"{'seconds' if key == 'request_timeout' else 'requests per second'}, "
            f"not {value!r}."
        )


_RFC3339 = re.compile(r"\d{4}-\d\d-\d\d[Tt]\d\d:\d\d:\d\d(\.\d+)?([Zz]|[+-]\d\d:\d\d)\Z")
_PLAIN_DATE = re.compile(r"\d{4}-\d\d-\d\d\Z")


def normalize_start_date(text: object) -> str | None:
    """start_date as the tap uses it (RFC 3339, upper-case T and Z), or None if it
    is neither an RFC 3339 time nor a plain date (taken as midnight UTC: what
    Meltano's date setting and most people write)."""
    if not isinstance(text, str):
        return None
    if _PLAIN_DATE.match(text):
        text += "T00:00:00Z"
    elif not _RFC3339.match(text):  # fromisoformat alone also takes basic and week forms
        return None
    text = text.upper()  # RFC 3339 allows 't' and 'z'; Python's parser does not
    try:
        datetime.datetime.fromisoformat(text)
    except ValueError:
        return None
    return text


def check_start_date_not_in_future(given: object, normalized: str, now: datetime.datetime) -> None:
    """The future-start-date rule: a start_date later than the run's start is refused (a
    typo such as 2030 for 2020). No contact has changed after it yet, and the contacts
    bookmark would start there: every later run would skip every contact."""
    if datetime.datetime.fromisoformat(normalized) > now:
        raise ConfigError(
            f"Config 'start_date' {given!r} is in the future (now is "
            f"{now.astimezone(datetime.UTC):%Y-%m-%dT%H:%M:%SZ}): no contact would be replicated, and the "
            "contacts bookmark would start there. Set it to the date to replicate from, such as 2020-01-01, "
            "or leave it out (one year before the first run)."
        )


def is_loopback_host(host: str | None) -> bool:
    """True for localhost and loopback addresses (127.0.0.0/8, ::1): the only hosts
    the API key may be sent to over plain http (the local sandbox)."""
    if not host:
        return False
    if host.lower().rstrip(".") == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def validate_config(config: object, now: datetime.datetime | None = None) -> dict[str, Any]:
    """The config checked, and normalized in place: ConfigError for a value the tap cannot
    use, a WARNING for a key it ignores. now: when the run began (an aware datetime;
    the clock if not given), which start_date may not be later than."""
    if not isinstance(config, dict):
        raise ConfigError(
            "The config file must hold a JSON object with api_key and start_date (optional: one year back)."
        )
    warn_unknown_settings(config)
    for name in SETTING_NAMES:  # null is a setting left out (runners write it for one not set)
        if name in config and config[name] is None:
            del config[name]
    api_key = config.get("api_key")
    if api_key is None or (isinstance(api_key, str) and not api_key.strip()):
        raise ConfigError(
            "Config 'api_key' is missing or empty. Set it to your Autopilot API key (Settings > Autopilot API)."
        )
    for name in SETTING_NAMES:
        error = type_error(name, config[name]) if name in config else None
        if error is not None:
            raise ConfigError(error)
    # A key copied with a newline or a space around it is no valid header value: requests
    # would refuse every request, which the client would take for a network failure.
    config["api_key"] = api_key.strip()
    start_date = config.get("start_date")
    if start_date is None or (isinstance(start_date, str) and not start_date.strip()):
        config.pop("start_date", None)  # the default: one year before the first run (run_start.start_date_for)
    else:
        normalized = normalize_start_date(start_date)
        if normalized is None:
            raise ConfigError(
                f"Config 'start_date' {start_date!r} is neither a date nor an RFC 3339 time. Use a "
                "form such as 2020-01-01 (midnight UTC) or 2020-01-01T00:00:00Z, or leave it out "
                "(one year before the first run)."
            )
        check_start_date_not_in_future(start_date, normalized, now or datetime.datetime.now(datetime.UTC))
        config["start_date"] = normalized
    base_url = config.get("base_url", DEFAULT_BASE_URL)
    try:
        parts = urlparse(base_url) if isinstance(base_url, str) else None
        if parts is not None:
            parts.port  # noqa: B018  # read for its check: a port that is no number, or out of range
    except ValueError:  # "https://[::1/v1", "https://host:99999/v1"
        parts = None
    if parts is None or parts.scheme not in ("http", "https") or not parts.netloc or not parts.hostname:
        raise ConfigError(
            f"Config 'base_url' {base_url!r} is not an http(s) URL. Leave it out to use {DEFAULT_BASE_URL}."
        )
    if parts.scheme == "http" and not is_loopback_host(parts.hostname):
        raise ConfigError(
            f"Config 'base_url' {base_url!r} is plain http: the API key would cross the network "
            "unencrypted. Use https (plain http is only allowed to localhost, for the sandbox)."
        )
    _positive_number(config, "request_timeout")
    _positive_number(config, "max_requests_per_second")
    workers = config.get("max_concurrent_requests")
    if workers is not None and (isinstance(workers, bool) or not isinstance(workers, int) or workers < 1):
        raise ConfigError(f"Config 'max_concurrent_requests' must be a whole number of at least 1, not {workers!r}.")
    membership_source(config)  # ConfigError for a value that is not one of the sources
    return config


def membership_source(config: Mapping[str, Any]) -> str:
    """The config's `lists_contacts_source` (ConfigError if it is not one of MEMBERSHIP_SOURCES)."""
    source = config.get("lists_contacts_source", MEMBERSHIP_SOURCES[0])
    if source not in MEMBERSHIP_SOURCES:
        raise ConfigError(
            f"Config 'lists_contacts_source' must be one of {', '.join(MEMBERSHIP_SOURCES)}, not {source!r}."
        )
    return source
