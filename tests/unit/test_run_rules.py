"""The rules a scheduled run rests on, without a network: start_date forms,
which hosts may get the key over plain http, signal -> exit code, log levels. (The
whole-response deadline needs a socket: tests/integration/test_timeouts_and_dates.py.)"""

import logging
import signal

import pytest

import tap_autopilot.cli as cli_module
from tap_autopilot.cli import exit_code_for, log_level
from tap_autopilot.config import is_loopback_host, normalize_start_date, validate_config
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


def test_validate_config_stores_the_normalized_start_date():
    assert validate_config(_config("https://x.example/v1"))["start_date"] == "2020-01-01T00:00:00Z"


def test_signal_exit_codes_follow_the_shell_convention():
    assert exit_code_for(signal.SIGTERM) == 143
    assert exit_code_for(signal.SIGINT) == 130


@pytest.mark.parametrize(
    "debug, requested, level",
    [
        (True, "WARNING", logging.DEBUG),
        (False, "", logging.INFO),
        (False, "warning", logging.WARNING),
        (False, "DEBUG", logging.DEBUG),
        (False, "error", logging.ERROR),
        (False, "loud", logging.INFO),
    ],
)
def test_log_level(debug, requested, level):
    assert log_level(debug, requested) == level


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


class _FakeLibc:
    def __init__(self) -> None:
        self.calls: list[tuple[int, int]] = []

    def mallopt(self, parameter: int, value: int) -> int:
        self.calls.append((parameter, value))
        return 1


def test_one_malloc_arena_for_every_thread_where_glibc_has_mallopt(monkeypatch):
    # The page-ahead thread's and the workers' own arenas kept 1-4 MB of peak RSS (cli.share_one_malloc_arena).
    libc = _FakeLibc()
    monkeypatch.setattr(cli_module.ctypes, "CDLL", lambda name: libc)
    cli_module.share_one_malloc_arena()
    assert libc.calls == [(-8, 1)]  # glibc's M_ARENA_MAX, one arena


@pytest.mark.parametrize("missing", [OSError("no such library"), AttributeError("mallopt")])
def test_without_mallopt_the_tap_runs_as_it_is(monkeypatch, missing):
    def cdll(name):
        raise missing

    monkeypatch.setattr(cli_module.ctypes, "CDLL", cdll)
    cli_module.share_one_malloc_arena()  # no error: nothing to do there


def test_main_shares_one_arena_before_any_thread_of_the_run_starts(monkeypatch):
    order = []
    monkeypatch.setattr(cli_module, "share_one_malloc_arena", lambda: order.append("arena"))
    monkeypatch.setattr(cli_module, "_install_signal_handlers", lambda: None)
    monkeypatch.setattr(cli_module, "run", lambda args: order.append("run"))
    cli_module.main(["--about"])
    assert order == ["arena", "run"]
