"""The settings (config.py): start_date forms, which hosts may get the key over plain http,
unknown keys, types, the lists_contacts_source options, the future-start-date rule. (The
whole-response deadline needs a socket: tests/integration/test_timeouts_and_dates.py.)"""

import datetime

import pytest

from tap_autopilot.config import (
    SETTING_NAMES,
    SETTING_VALUES,
    closest_setting,
    is_loopback_host,
    normalize_start_date,
    type_error,
    validate_config,
)
from tap_autopilot.errors import ConfigError


@pytest.mark.parametrize(
    "text, expected",
    [
        ("2020-01-01", "2020-01-01T00:00:00Z"),  # a plain date is midnight UTC
        ("2020-01-01T00:00:00Z", "2020-01-01T00:00:00Z"),
        ("2020-01-01t10:30:00z", "2020-01-01T10:30:00Z"),
        ("2020-01-01T10:30:00.5+02:00", "2020-01-01T10:30:00.5+02:00"),
    ],
)
def test_start_date_plain_date_or_rfc3339(text, expected):
    assert normalize_start_date(text) == expected


@pytest.mark.parametrize(
    "text",
    [
        "2020-1-1",
        "20200101",
        "2020-02-30",
        "2020-01-01T00:00:00",
        "2020-01-01 ",
        "2020-01-01T00:00Z",
        "2020-W01-1",
        "yesterday",
        "",
        None,
        20200101,
    ],
)
def test_start_date_anything_else_is_refused(text):
    assert normalize_start_date(text) is None


@pytest.mark.parametrize("host", ["127.0.0.1", "127.8.9.10", "::1", "localhost", "LOCALHOST", "localhost."])
def test_loopback_hosts(host):
    assert is_loopback_host(host)


@pytest.mark.parametrize(
    "host",
    [
        "api2.autopilothq.com",
        "10.0.0.7",
        "192.168.1.2",
        "0.0.0.0",
        "::",
        "localhost.example.com",
        "127.0.0.1.nip.io",
        "",
        None,
    ],
)
def test_not_loopback_hosts(host):
    assert not is_loopback_host(host)


def _config(base_url):
    return {"api_key": "k", "start_date": "2020-01-01", "base_url": base_url}


@pytest.mark.parametrize(
    "base_url",
    [
        "http://127.0.0.1:8000/v1",
        "http://[::1]:8000/v1",
        "http://localhost/v1",
        "https://api2.autopilothq.com/v1",
        "https://10.0.0.7/v1",
    ],
)
def test_base_url_allowed(base_url):
    assert validate_config(_config(base_url))["base_url"] == base_url


@pytest.mark.parametrize(
    "base_url", ["http://api2.autopilothq.com/v1", "http://10.0.0.7:8080/v1", "http://user@example.com/v1"]
)
def test_plain_http_to_another_host_is_refused(base_url):
    with pytest.raises(ConfigError, match=r"plain http.*Use https"):
        validate_config(_config(base_url))


@pytest.mark.parametrize(
    "base_url", ["https://[::1/v1", "https://api2.autopilothq.com:99999/v1", "https://host:abc/v1", "https://:443/v1"]
)
def test_a_base_url_urllib_cannot_read_is_one_config_error_not_a_crash(base_url):
    with pytest.raises(ConfigError) as raised:
        validate_config(_config(base_url))
    assert str(raised.value) == (
        f"Config 'base_url' {base_url!r} is not an http(s) URL. Leave it out to use https://api2.autopilothq.com/v1."
    )


def test_validate_config_stores_the_normalized_start_date():
    assert validate_config(_config("https://x.example/v1"))["start_date"] == "2020-01-01T00:00:00Z"


def test_the_lists_contacts_source_setting_offers_exactly_the_sources_the_tap_takes():
    """--about and the Meltano plugin list the options from SETTINGS; the sync checks
    against config.MEMBERSHIP_SOURCES."""
    from tap_autopilot.config import MEMBERSHIP_SOURCES, SETTINGS

    setting = next(s for s in SETTINGS if s["name"] == "lists_contacts_source")
    assert setting["options"] == list(MEMBERSHIP_SOURCES)
    assert setting["default"] == MEMBERSHIP_SOURCES[0]


def test_validate_config_strips_the_api_key_copied_with_a_newline():
    """Else every request is refused by requests (no valid header value) and retried as a network failure."""
    config = _config("https://x.example/v1")
    config["api_key"] = " key-123\n"
    assert validate_config(config)["api_key"] == "key-123"


NOW = datetime.datetime(2026, 3, 1, 12, 0, tzinfo=datetime.UTC)


@pytest.mark.parametrize(
    "start_date", ["2030-01-01", "2026-03-02", "2026-03-01T12:00:01Z", "2026-03-01T13:00:00+00:30"]
)
def test_future_start_date_rule_refuses_a_start_date_later_than_the_run_s_start(start_date):
    config = dict(_config("https://x.example/v1"), start_date=start_date)
    with pytest.raises(ConfigError) as raised:
        validate_config(config, now=NOW)
    assert str(raised.value) == (
        f"Config 'start_date' {start_date!r} is in the future (now is 2026-03-01T12:00:00Z): no contact would be "
        "replicated, and the contacts bookmark would start there. Set it to the date to replicate from, such as "
        "2020-01-01, or leave it out (one year before the first run)."
    )


@pytest.mark.parametrize("start_date", ["2026-03-01", "2026-03-01T12:00:00Z", "2026-03-01T14:00:00+02:00"])
def test_future_start_date_rule_takes_a_start_date_up_to_the_run_s_start(start_date):
    config = dict(_config("https://x.example/v1"), start_date=start_date)
    assert validate_config(config, now=NOW)["start_date"] == normalize_start_date(start_date)


@pytest.mark.parametrize(
    ("key", "suggestion"),
    [
        ("start_dat", "start_date"),
        ("startdate", "start_date"),
        ("apikey", "api_key"),
        ("API_KEY", "api_key"),
        ("api-key", "api_key"),
        ("base_uri", "base_url"),
        ("max_request_per_second", "max_requests_per_second"),
        ("timeout", "request_timeout"),
        ("list_contacts_source", "lists_contacts_source"),
        ("foo", None),
        ("streams", None),
    ],
)
def test_closest_key_suggestion(key, suggestion):
    assert closest_setting(key) == suggestion


def test_an_unknown_config_key_is_one_warning_naming_it_and_the_closest_setting(caplog):
    config = dict(_config("https://x.example/v1"), start_dat="2021-01-01", foo=1, _comment="runners' and people's")
    validate_config(config, now=NOW)
    assert [(r.levelname, r.getMessage()) for r in caplog.records] == [
        ("WARNING", "Config 'start_dat' is not a setting of this tap and is ignored: did you mean start_date?"),
        (
            "WARNING",
            "Config 'foo' is not a setting of this tap and is ignored. The settings are api_key, start_date, base_url, "
            "user_agent, request_timeout, max_requests_per_second, max_concurrent_requests, lists_contacts_source.",
        ),
    ]


def test_every_setting_and_nothing_else_is_known(caplog):
    """What --about and meltano-plugin.yml list (SETTINGS) raises no warning; Meltano's
    extras and comments start with '_' and are left alone."""
    config: dict[str, object] = dict.fromkeys(SETTING_NAMES)
    config.update(_config("https://x.example/v1"), _select=["contacts.*"], _load_schema="x")
    validate_config(config, now=NOW)
    assert caplog.records == []


@pytest.mark.parametrize(
    ("name", "value", "message"),
    [
        ("api_key", 4815162342, "Config 'api_key' must be a string (your Autopilot API key), not a number."),
        ("api_key", ["k"], "Config 'api_key' must be a string (your Autopilot API key), not a list."),
        (
            "start_date",
            20200101,
            "Config 'start_date' must be a string (a date such as 2020-01-01, or an RFC 3339 time), not a number.",
        ),
        (
            "base_url",
            {"host": "x"},
            "Config 'base_url' must be a string (the API root URL, such as https://api2.autopilothq.com/v1), not an "
            "object.",
        ),
        ("user_agent", 7, "Config 'user_agent' must be a string (the User-Agent header to send), not a number."),
        ("request_timeout", [30], "Config 'request_timeout' must be a number (seconds), not a list."),
        ("request_timeout", True, "Config 'request_timeout' must be a number (seconds), not true or false."),
        (
            "max_requests_per_second",
            {"rate": 5},
            "Config 'max_requests_per_second' must be a number (requests per second), not an object.",
        ),
        (
            "max_concurrent_requests",
            "4",
            "Config 'max_concurrent_requests' must be a whole number (requests in flight at once), not a string.",
        ),
        (
            "lists_contacts_source",
            False,
            "Config 'lists_contacts_source' must be a string (one of auto, contacts, lists), not true or false.",
        ),
    ],
)
def test_type_messages_say_the_type_expected(name, value, message):
    config = dict(_config("https://x.example/v1"), **{name: value})
    with pytest.raises(ConfigError) as raised:
        validate_config(config, now=NOW)
    assert str(raised.value) == message
    if name == "api_key":
        assert str(value) not in str(raised.value), "the API key's value is never echoed"


def test_type_messages_cover_every_setting():
    assert set(SETTING_VALUES) == set(SETTING_NAMES)
    for name in SETTING_NAMES:
        assert type_error(name, []) is not None, name


def test_a_number_given_as_text_still_passes_for_a_number_setting():
    config = dict(_config("https://x.example/v1"), request_timeout="30", max_requests_per_second="2.5")
    assert validate_config(config, now=NOW)["request_timeout"] == "30"


def test_a_setting_given_as_null_is_a_setting_left_out():
    config = dict(_config("https://x.example/v1"), request_timeout=None, lists_contacts_source=None, user_agent=None)
    assert validate_config(config, now=NOW) == {
        "api_key": "k",
        "start_date": "2020-01-01T00:00:00Z",
        "base_url": "https://x.example/v1",
    }
