"""What the CLI writes besides the sync: log lines with the API key redacted as a token of its
own (never letters inside longer words, whatever the key's length), a quiet exit when the
reader of --about/--discover/--version closes the pipe, and the record_count metrics of a
sync that ends early."""

import logging
import signal

import pytest

import tap_autopilot.cli as cli_module
from tap_autopilot.http.client import RequestStats
from tap_autopilot.progress import Progress
from tap_autopilot.values.cleaning import ValueChanges


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


# ---- a closed stdout --------------------------------------------------------------------------


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


# ---- record_count when a sync ends early -----------------------------------------------------


def test_an_early_end_counts_every_stream_s_records_not_counted_yet_once(caplog):
    caplog.set_level(logging.INFO, logger="tap_autopilot")
    progress = Progress(["contacts", "lists", "lists_contacts"], RequestStats(), ValueChanges(), interval=3600)
    progress.page("lists", 3, 3, 3)
    progress.stream_done("lists")  # counted at its end
    progress.page("contacts", 100, 100, None)
    progress.page("contacts", 40, 40, None)
    progress.log_record_counts()
    progress.log_record_counts()  # nothing new: nothing more
    counts = [r.getMessage() for r in caplog.records if "record_count" in r.getMessage()]
    assert len(counts) == 2
    assert '"value": 3' in counts[0] and '"lists"' in counts[0]
    assert '"value": 140' in counts[1] and '"contacts"' in counts[1]  # in progress: counted too
    assert not any("lists_contacts" in line for line in counts)  # no records, no metric
