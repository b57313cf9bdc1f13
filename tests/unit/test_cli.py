"""The command line (cli.py): arguments, logging (the API key redacted), printing a document,
exit codes."""

import logging
import signal

import pytest

import tap_autopilot.cli as cli_module
from tap_autopilot.cli import log_level

from .state.files import held, write_state


def test_the_cli_exits_75_with_one_line_while_the_lock_is_held(tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(cli_module, "install_stop_signals", lambda: None)
    path = write_state(tmp_path / "state.json")
    with held(str(path) + ".lock"), pytest.raises(SystemExit) as exited:
        cli_module.main(["--state", str(path), "--reset-stream", "lists"])
    assert exited.value.code == 75
    [line] = capsys.readouterr().err.splitlines()
    assert line.startswith("CRITICAL The state file ") and "in use" in line


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


@pytest.mark.parametrize(("requested", "unknown"), [("verbose", True), ("10", True), ("info ", False), ("", False)])
def test_log_level_rule(requested, unknown):
    assert cli_module.unknown_log_level(requested) is unknown


def test_an_unknown_log_level_is_a_warning_naming_the_levels_then_info(capsys, monkeypatch):
    root = logging.getLogger()
    monkeypatch.setattr(root, "handlers", list(root.handlers))  # _setup_logging replaces them
    monkeypatch.setattr(root, "level", root.level)  # and sets this one
    monkeypatch.setattr(cli_module.LOGGER, "level", cli_module.LOGGER.level)
    cli_module._setup_logging(False, "verbose")
    assert cli_module.LOGGER.level == logging.INFO
    assert capsys.readouterr().err == (
        "WARNING LOG_LEVEL='verbose' is not a log level; logging at INFO. It takes DEBUG, INFO, WARNING, ERROR, "
        "CRITICAL.\n"
    )


def redacted(key: str, text: str) -> str:
    formatter = cli_module._RedactingFormatter("%(message)s")
    formatter.secrets = [key]
    return formatter.format(logging.LogRecord("tap_autopilot", logging.INFO, __file__, 1, text, None, None))


@pytest.mark.parametrize(
    "text",
    [
        "Skipped 3 pages of kind k8s in 0.2 s",
        "contacts: done, 1,204 records from 13 pages",
        'METRIC: {"type": "counter", "metric": "record_count", "tags": {"endpoint": "lists"}}',
        'Traceback: File "/usr/lib/python3/site-packages/requests/api.py", line 59, in request',
    ],
)
def test_a_short_key_is_never_redacted_inside_longer_words(text):
    for key in ("k", "e", "age", "ount", "20"):
        assert redacted(key, text) == text, key


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("k", "<redacted>"),
        ("autopilotapikey: k", "autopilotapikey: <redacted>"),
        ("header value 'k'", "header value '<redacted>'"),
        ('{"api_key": "k", "start_date": "2020"}', '{"api_key": "<redacted>", "start_date": "2020"}'),
        ("https://x.example/v1/contacts?key=k&page=2", "https://x.example/v1/contacts?key=<redacted>&page=2"),
        ("/v1/k/contacts", "/v1/<redacted>/contacts"),
        ("repr: '\\nk'", "repr: '\\n<redacted>'"),  # after an escape, as repr() writes a line break
        ("key%3Dk%26", "key%3D<redacted>%26"),  # URL-encoded
        ("json: \\u00e9k", "json: \\u00e9<redacted>"),
        ("k k", "<redacted> <redacted>"),
    ],
)
def test_a_key_standing_as_a_token_of_its_own_is_redacted_wherever_it_is_written(text, expected):
    assert redacted("k", text) == expected


def test_a_real_key_is_redacted_in_headers_urls_json_and_quotes():
    key = "sk-test-4b8d1f2a6c9e3b70"
    for text in (
        f"autopilotapikey: {key}",
        f"'{key}'",
        f'"{key}"',
        f"key={key}&x=1",
        f"{{'autopilotapikey': '{key}'}}",
    ):
        assert key not in redacted(key, text)
        assert "<redacted>" in redacted(key, text)


def test_a_key_whose_edges_are_not_letters_is_redacted_even_next_to_letters():
    # a boundary is only asked for at an edge that is a letter or digit
    assert redacted("-k-", "a-k-b") == "a<redacted>b"


def test_the_key_and_its_stripped_form_are_both_redacted_the_longer_first():
    formatter = cli_module._RedactingFormatter("%(message)s")
    formatter.secrets = [" key-1\n", "key-1"]
    record = logging.LogRecord("tap_autopilot", logging.INFO, __file__, 1, "a: key-1 b", None, None)
    assert formatter.format(record) == "a: <redacted> b"


def test_without_a_key_nothing_is_redacted():
    formatter = cli_module._RedactingFormatter("%(message)s")
    record = logging.LogRecord("tap_autopilot", logging.INFO, __file__, 1, "pages", None, None)
    assert formatter.format(record) == "pages"


class ClosedPipe:
    def write(self, text: str) -> int:
        raise BrokenPipeError(32, "Broken pipe")

    def flush(self) -> None:
        raise BrokenPipeError(32, "Broken pipe")


def test_a_reader_that_closed_the_pipe_ends_the_print_quietly_with_141(monkeypatch):
    exits = []

    def exit_now(code: int) -> None:
        exits.append(code)
        raise SystemExit(code)

    monkeypatch.setattr(cli_module.sys, "stdout", ClosedPipe())
    monkeypatch.setattr(cli_module.os, "_exit", exit_now)
    with pytest.raises(SystemExit):
        cli_module._print_document("tap-autopilot 1.0.0")
    assert exits == [128 + signal.SIGPIPE] == [141]


def test_printing_with_stdout_closed_from_the_start_is_an_error_not_silence(monkeypatch):
    monkeypatch.setattr(cli_module.sys, "stdout", None)
    with pytest.raises(cli_module.TapError, match="Standard output is closed"):
        cli_module._print_document("tap-autopilot 1.0.0")
