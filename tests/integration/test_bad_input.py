"""Bad input. Each gets exit code 1, exactly one CRITICAL line on stderr
naming the problem and the fix, no traceback, and the API key never echoed.
A catalog or state naming an unknown stream, a config key that is no setting, an unknown
LOG_LEVEL and a state that is not this tap's only get a warning.
"""

from __future__ import annotations

import datetime
import json
import os
import re
import socket
from pathlib import Path

import helpers
import pytest

API_KEY = "sk-badinput-2e7c5a9f0d3b6e18-NEVER-PRINT"
START_DATE = "2000-01-01T00:00:00Z"
# The unreachable-API cases retry before they give up: a first backoff of at most 50 ms instead
# of 1 s keeps them from waiting ~10 s each (see BACKOFF_BASE_ENV in tap_autopilot/http/retry.py).
SHORT_BACKOFF = dict(os.environ, TAP_AUTOPILOT_BACKOFF_SECONDS="0.05")
# A start_date typed 2030 for 2020: some years after today, whatever today is.
FUTURE_DAY = (datetime.datetime.now(datetime.UTC) + datetime.timedelta(days=3 * 365)).date().isoformat()


# ----- helpers -----------------------------------------------------------------


def good_config(sb):
    return {"api_key": API_KEY, "start_date": START_DATE, "base_url": sb.base_url}


def closed_port_url():
    """A local URL nothing listens on: connections are refused at once."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    return f"http://127.0.0.1:{port}/v1"


def critical_lines(stderr):
    return [line for line in stderr.splitlines() if line.startswith("CRITICAL")]


@pytest.fixture(scope="module")
def catalog(tmp_path_factory):
    """A discovered catalog with every stream selected."""
    tmp = tmp_path_factory.mktemp("catalog")
    with helpers.sandbox(contacts=10, api_key=API_KEY) as sb:
        config = helpers.write_json(tmp / "config.json", good_config(sb))
        return helpers.select(helpers.discover(config))


@pytest.fixture
def sb(sandbox_factory):
    return sandbox_factory(contacts=120, lists=2, segments=1, api_key=API_KEY)


# ----- the table ------------------------------------------------------------------


def with_config(**changes):
    """Args for a sync whose config is the good one with `changes` (None removes a key)."""

    def build(tmp, sb, catalog):
        config = good_config(sb)
        config.update(changes)
        config = {k: v for k, v in config.items() if v is not None}
        return [
            "--config",
            helpers.write_json(tmp / "config.json", config),
            "--catalog",
            helpers.write_json(tmp / "catalog.json", catalog),
        ]

    return build


def with_files(config=None, catalog=None, state=None, discover=False):
    """Args whose files hold raw text (or are absent if the text is None and the
    file is named); `True` means the good content."""

    def build(tmp, sb, good_catalog):
        def file(name, text, good):
            path = tmp / name
            if text is True:
                path.write_text(json.dumps(good), encoding="utf-8")
            elif text is not None:
                path.write_text(text, encoding="utf-8")
            return str(path)

        args = ["--config", file("config.json", config, good_config(sb))]
        if discover:
            return args + ["--discover"]
        args += ["--catalog", file("catalog.json", catalog, good_catalog)]
        if state is not False:
            args += ["--state", file("state.json", state, {})]
        return args

    return build


def discover_with(*options, **changes):
    """Args for --discover with the good config changed by `changes`, then `options`."""

    def build(tmp, sb, catalog):
        config = dict(good_config(sb), **changes)
        return ["--config", helpers.write_json(tmp / "config.json", config), "--discover", *options]

    return build


def unreachable(discover):
    def build(tmp, sb, catalog):
        config = dict(good_config(sb), base_url=closed_port_url())
        args = ["--config", helpers.write_json(tmp / "config.json", config)]
        return args + (["--discover"] if discover else ["--catalog", helpers.write_json(tmp / "catalog.json", catalog)])

    return build


BROKEN_CONFIG = '{"api_key": "%s", "start_date": "%s",}' % (API_KEY, START_DATE)  # trailing comma

# id -> (args builder, regex the CRITICAL line must match for the problem, and for the fix)
CASES = {
    "api_key-missing": (
        with_config(api_key=None),
        r"'api_key' is missing or empty",
        r"Set it to your Autopilot API key",
    ),
    "api_key-empty": (with_config(api_key=""), r"'api_key' is missing or empty", r"Set it to your Autopilot API key"),
    "api_key-blank": (with_config(api_key="   "), r"'api_key' is missing or empty", r"Set it to"),
    "api_key-not-a-string": (
        with_config(api_key=4815162342),
        r"^CRITICAL Config 'api_key' must be a string \(your Autopilot API key\), not a number\.$",
        r"your Autopilot API key",
    ),
    "start_date-not-a-string": (
        with_config(start_date=20200101),
        r"'start_date' must be a string \(a date such as 2020-01-01, or an RFC 3339 time\)",
        r"not a number\.$",
    ),
    "user_agent-not-a-string": (
        with_config(user_agent=["tap"]),
        r"'user_agent' must be a string \(the User-Agent header to send\)",
        r"not a list\.$",
    ),
    "lists_contacts_source-not-a-string": (
        with_config(lists_contacts_source=1),
        r"'lists_contacts_source' must be a string \(one of auto, contacts, lists\)",
        r"not a number\.$",
    ),
    "start_date-in-the-future": (
        with_config(start_date=FUTURE_DAY),
        rf"'start_date' '{FUTURE_DAY}' is in the future \(now is ",
        r"Set it to the date to replicate from, such as 2020-01-01, or leave it out",
    ),
    "start_date-in-the-future-discover": (
        discover_with(start_date=FUTURE_DAY),
        rf"'start_date' '{FUTURE_DAY}' is in the future",
        r"Set it to the date to replicate from",
    ),
    "select-empty": (
        discover_with("--select", ""),
        r"^CRITICAL --select was given no name \(an empty variable\?\)",
        r"name at least one stream, or leave --select out to select every stream\.$",
    ),
    "select-only-commas": (
        discover_with("--select", " , ,"),
        r"--select was given no name",
        r"or leave --select out",
    ),
    "exclude-empty": (
        discover_with("--select", "contacts", "--exclude", ""),
        r"--exclude was given no name",
        r"or leave --exclude out to keep every column\.$",
    ),
    "exclude-table_version": (
        discover_with("--exclude", "lists_contacts.table_version"),
        r"^CRITICAL --exclude lists_contacts\.table_version: table_version carries removals",
        r"docs/state\.md, Removals\), so it cannot be left out\.$",
    ),
    "exclude-table_version-segments": (
        discover_with("--exclude", "contacts.email,smart_segments_contacts.table_version"),
        r"--exclude smart_segments_contacts\.table_version: table_version carries removals",
        r"docs/state\.md",
    ),
    "start_date-yesterday": (
        with_config(start_date="yesterday"),
        r"'start_date' 'yesterday' is neither a date nor an RFC 3339",
        r"Use a form such as",
    ),
    "start_date-is-the-api-key": (  # a key pasted into the wrong setting is quoted masked, never echoed
        with_config(start_date=API_KEY),
        r"'start_date' '\S+' is neither a date nor an RFC 3339",
        r"Use a form such as",
    ),
    "start_date-no-zone": (
        with_config(start_date="2020-01-01T00:00:00"),
        r"'start_date' .* is neither a date nor",
        r"Use a form such as",
    ),
    "start_date-basic-format": (
        with_config(start_date="20200101T000000Z"),
        r"'start_date' .* is neither a date nor",
        r"Use a form such as",
    ),
    "start_date-week-date": (
        with_config(start_date="2020-W01-1T00:00:00Z"),
        r"'start_date' .* is neither a date nor",
        r"Use a form such as",
    ),
    "start_date-no-seconds": (
        with_config(start_date="2020-01-01T00:00Z"),
        r"'start_date' .* is neither a date nor",
        r"Use a form such as",
    ),
    "start_date-basic-date": (
        with_config(start_date="20200101"),
        r"'start_date' '20200101' is neither a date nor",
        r"2020-01-01 \(midnight UTC\)",
    ),
    "start_date-impossible-date": (
        with_config(start_date="2020-02-30"),
        r"'start_date' '2020-02-30' is neither",
        r"Use a form such as",
    ),
    "base_url-ftp": (
        with_config(base_url="ftp://api2.autopilothq.com/v1"),
        r"'base_url' 'ftp://\S+' is not an http",
        r"Leave it out",
    ),
    "base_url-bare-host": (
        with_config(base_url="localhost"),
        r"'base_url' 'localhost' is not an http",
        r"Leave it out",
    ),
    "base_url-plain-http-remote": (
        with_config(base_url="http://api2.autopilothq.com/v1"),
        r"'base_url' 'http://api2\.autopilothq\.com/v1' is plain http",
        r"Use https",
    ),
    "base_url-plain-http-private-address": (
        with_config(base_url="http://10.0.0.7:8080/v1"),
        r"'base_url' \S+ is plain http",
        r"Use https",
    ),
    "request_timeout-zero": (
        with_config(request_timeout=0),
        r"'request_timeout' must be a positive number of seconds",
        r"not 0",
    ),
    "request_timeout-negative": (
        with_config(request_timeout=-1),
        r"'request_timeout' must be a positive number",
        r"not -1",
    ),
    "request_timeout-text": (
        with_config(request_timeout="abc"),
        r"'request_timeout' must be a positive number",
        r"not 'abc'",
    ),
    "max_requests_per_second-zero": (
        with_config(max_requests_per_second=0),
        r"'max_requests_per_second' must be a positive number of requests per second",
        r"not 0",
    ),
    "max_requests_per_second-negative": (
        with_config(max_requests_per_second=-2),
        r"'max_requests_per_second' must be a positive number",
        r"not -2",
    ),
    "max_requests_per_second-text": (
        with_config(max_requests_per_second="fast"),
        r"'max_requests_per_second' must be a positive number",
        r"not 'fast'",
    ),
    "lists_contacts_source-unknown": (
        with_config(lists_contacts_source="both"),
        r"'lists_contacts_source' must be one of auto, contacts, lists",
        r"not 'both'",
    ),
    "config-missing": (with_files(config=None), r"config file \S+ does not exist", r"Check the --config path"),
    "config-not-json": (with_files(config=BROKEN_CONFIG), r"config file \S+ is not valid JSON", r"Fix the file"),
    "config-not-an-object": (with_files(config='["api_key"]'), r"must hold a JSON object", r"api_key and start_date"),
    "catalog-missing": (
        with_files(config=True, catalog=None, state=False),
        r"catalog file \S+ does not exist",
        r"Check the --catalog path",
    ),
    "catalog-not-json": (
        with_files(config=True, catalog="streams: [contacts]", state=False),
        r"catalog file \S+ is not valid JSON",
        r"Fix the file",
    ),
    "catalog-null": (
        with_files(config=True, catalog="null", state=False),
        r"catalog file \S+ has no 'streams' list",
        r"--discover",
    ),
    "state-missing": (
        with_files(config=True, catalog=True, state=None),
        r"state file \S+ does not exist",
        r"Check the --state path",
    ),
    "state-not-json": (
        with_files(config=True, catalog=True, state="{bookmarks"),
        r"state file \S+ is not valid JSON",
        r"Fix the file",
    ),
    "api-unreachable-sync": (unreachable(discover=False), r"could not be reached", r"Check base_url and the network"),
    "api-unreachable-discover": (
        unreachable(discover=True),
        r"could not be reached",
        r"Check base_url and the network",
    ),
}


@pytest.mark.parametrize("case", list(CASES))
def test_bad_input_fails_with_one_clear_line(tmp_path, sb, catalog, case):
    build, problem, fix = CASES[case]
    args = build(Path(tmp_path), sb, catalog)
    proc = helpers.run_cli(args, timeout=90, env=SHORT_BACKOFF)
    output = proc.stdout + proc.stderr
    assert proc.returncode == 1, proc.stderr[-3000:]
    critical = critical_lines(proc.stderr)
    assert len(critical) == 1, proc.stderr[-3000:]
    assert re.search(problem, critical[0]), critical[0]
    assert re.search(fix, critical[0]), critical[0]
    assert "Traceback" not in output, proc.stderr[-3000:]
    assert API_KEY not in output, "the API key was echoed"
    assert "4815162342" not in output, "the API key given as a number was echoed"
    if case.startswith("api-unreachable"):
        # It retried with backoff before giving up, and said so.
        assert [line for line in proc.stderr.splitlines() if line.startswith("WARNING") and "retrying in" in line], (
            proc.stderr[-3000:]
        )
    else:
        # Refused before any request and before any output.
        assert sb.stats()["requests"] == 0
        assert proc.stdout == ""


@pytest.mark.parametrize(
    "start_date",
    [
        "2000-01-01T00:00:00Z",
        "2000-01-01t00:00:00z",
        "2000-01-01T02:00:00.250+02:00",
        "1999-12-31T19:00:00-05:00",
        "2000-01-01",
    ],
)
def test_rfc3339_start_dates_are_accepted(tmp_path, sb, catalog, start_date):
    """The other side of the table: every RFC 3339 form passes (lower-case t and z too), and a plain date."""
    config = helpers.write_json(tmp_path / "config.json", dict(good_config(sb), start_date=start_date))
    run = helpers.run_tap(
        [
            "--config",
            config,
            "--catalog",
            helpers.write_json(tmp_path / "catalog.json", helpers.select(catalog, streams=["contacts"])),
        ]
    )
    assert run.returncode == 0, run
    contacts = helpers.records_by_stream(run.messages)["contacts"]
    assert {r["contact_id"] for r in contacts} == set(sb.dataset.contact_ids())


# ----- not fatal: unknown streams ---------------------------------------------------------


def test_catalog_naming_an_unknown_stream_warns_and_runs_on(tmp_path, sb, catalog):
    catalog = helpers.select(catalog, streams=["contacts", "lists"])
    stranger = json.loads(json.dumps(next(s for s in catalog["streams"] if s["tap_stream_id"] == "lists")))
    stranger["tap_stream_id"] = stranger["stream"] = "campaigns"
    catalog["streams"].append(stranger)  # selected, like its model
    config = helpers.write_json(tmp_path / "config.json", good_config(sb))
    run = helpers.run_tap(["--config", config, "--catalog", helpers.write_json(tmp_path / "catalog.json", catalog)])
    assert run.returncode == 0, run
    assert [line for line in run.stderr.splitlines() if line.startswith("WARNING") and "'campaigns'" in line], (
        run.stderr
    )
    assert not critical_lines(run.stderr) and "Traceback" not in run.stderr
    assert API_KEY not in run.stderr + json.dumps(run.messages)
    records = helpers.records_by_stream(run.messages)
    assert "campaigns" not in records
    assert {r["contact_id"] for r in records["contacts"]} == set(sb.dataset.contact_ids())
    assert {r["list_id"] for r in records["lists"]} == {item["list_id"] for item in sb.dataset.lists()}


# ----- not fatal: typos are named --------------------------------------------------------


def _sync(tmp_path, config, catalog, state=None, env=None):
    args = ["--config", helpers.write_json(tmp_path / "config.json", config)]
    args += ["--catalog", helpers.write_json(tmp_path / "catalog.json", catalog)]
    if state is not None:
        args += ["--state", helpers.write_json(tmp_path / "state.json", state)]
    run = helpers.run_tap(args, env=env, secret=API_KEY)
    assert run.returncode == 0, run
    assert not critical_lines(run.stderr), run
    return run


def test_a_misspelled_setting_is_one_warning_naming_the_closest_setting(tmp_path, sb, catalog):
    config = dict(good_config(sb), start_dat=START_DATE)
    del config["start_date"]
    run = _sync(tmp_path, config, helpers.select(catalog, streams=["contacts"]))
    assert run.lines("WARNING") == [
        "WARNING Config 'start_dat' is not a setting of this tap and is ignored: did you mean start_date?"
    ]
    # Ignored indeed: the run took the default start date, and said so.
    assert any("No start_date in the config: starting from" in line for line in run.lines("INFO")), run


def test_an_unknown_log_level_is_one_warning_naming_the_levels_and_the_tap_logs_at_info(tmp_path, sb, catalog):
    run = _sync(
        tmp_path, good_config(sb), helpers.select(catalog, streams=["lists"]), env=dict(os.environ, LOG_LEVEL="verbose")
    )
    assert run.lines("WARNING") == [
        "WARNING LOG_LEVEL='verbose' is not a log level; logging at INFO. It takes DEBUG, INFO, WARNING, ERROR, "
        "CRITICAL."
    ]
    assert any("record_count" in line for line in run.lines("INFO")), "not logging at INFO"


def _every_stream_from_the_start(run, sb):
    expected = helpers.expected_keys(sb)
    for stream in helpers.STREAM_NAMES:
        assert set(run.keys(stream)) == expected[stream], stream
    assert set(run.keys("contacts")) == helpers.updated_since(sb, helpers.instant(START_DATE))


def test_a_state_of_another_shape_is_one_warning_and_every_stream_starts_over(tmp_path, sb, catalog):
    run = _sync(tmp_path, good_config(sb), helpers.select(catalog), state={"foo": 1})
    assert run.lines("WARNING") == [
        'WARNING The state is not in this tap\'s shape: it has no "bookmarks" object (its keys: foo), so every '
        "stream starts over."
    ]
    _every_stream_from_the_start(run, sb)
    assert "foo" not in run.state


def test_a_garbage_bookmark_is_one_warning_and_that_stream_starts_over(tmp_path, sb, catalog):
    first = _sync(tmp_path, good_config(sb), helpers.select(catalog))
    state = json.loads(json.dumps(first.state))
    state["bookmarks"]["contacts"] = "garbage"
    run = _sync(tmp_path, good_config(sb), helpers.select(catalog), state=state)
    assert run.lines("WARNING") == [
        'WARNING The state is not in this tap\'s shape: bookmarks.contacts is "garbage", not an object, so '
        "contacts starts over."
    ]
    _every_stream_from_the_start(run, sb)
    # the bookmark a full scan saves: the newest change time it saw
    newest = max(helpers.last_changed(doc) for doc in sb.dataset.iter_contacts())
    assert helpers.emitted_instant(run.state["bookmarks"]["contacts"]["updated_at"]) == newest
    # The other streams went on from their bookmarks: each a new pass, under a higher version.
    for stream in helpers.FULL_TABLE_STREAMS:
        assert run.state["bookmarks"][stream]["version"] > first.state["bookmarks"][stream]["version"], stream


# ----- --debug ---------------------------------------------------------------------------

# A catalog entry whose metadata holds a string where Singer metadata has objects.
CORRUPT_CATALOG = {"streams": [{"tap_stream_id": "contacts", "schema": {}, "metadata": ["not-an-object"]}]}


@pytest.mark.parametrize("debug", [False, True], ids=["quiet", "debug"])
def test_unexpected_error_traceback_only_with_debug_and_never_the_key(tmp_path, sb, debug):
    config = helpers.write_json(tmp_path / "config.json", good_config(sb))
    args = [
        "--config",
        config,
        "--catalog",
        helpers.write_json(tmp_path / "catalog.json", CORRUPT_CATALOG),
    ] + (["--debug"] if debug else [])
    proc = helpers.run_cli(args, timeout=90)
    output = proc.stdout + proc.stderr
    assert proc.returncode == 1, proc.stderr[-3000:]
    critical = critical_lines(proc.stderr)
    assert len(critical) == 1 and "Unexpected error" in critical[0], proc.stderr[-3000:]
    assert API_KEY not in output, "the API key was echoed"
    if debug:
        assert "Traceback" in proc.stderr, "--debug should show the traceback of an unexpected error"
    else:
        assert "Traceback" not in output


# ----- a base_url that is not the API root -------------------------------------------------

NOT_THE_ROOT = (
    r"CRITICAL Config 'base_url' {url} answered 404 for {path}: it must be the API root, ending with /v1 "
    r"\(the default is https://api2\.autopilothq\.com/v1\)\."
)


@pytest.mark.parametrize("shape", ["without-v1", "a-path-too-many"])
@pytest.mark.parametrize("mode", ["catalog", "no-catalog", "discover"])
def test_a_base_url_that_is_not_the_api_root_is_named_before_any_output(tmp_path, sb, catalog, shape, mode):
    url = sb.base_url.removesuffix("/v1") if shape == "without-v1" else sb.base_url + "/contacts"
    config = helpers.write_json(tmp_path / "config.json", dict(good_config(sb), base_url=url))
    args = ["--config", config]
    if mode == "catalog":
        args += ["--catalog", helpers.write_json(tmp_path / "catalog.json", catalog)]
    elif mode == "discover":
        args += ["--discover"]
    proc = helpers.run_cli(args, timeout=90)
    assert proc.returncode == 1, proc.stderr[-3000:]
    assert proc.stdout == "", "no SCHEMA, STATE or catalog before the API answered"
    # the sync's first requests go out together: whichever 404 comes first is named
    path = "/contacts/custom_fields" if mode != "catalog" else "(/contacts|/lists|/smart_segments)"
    assert [
        re.fullmatch(NOT_THE_ROOT.format(url=re.escape(url), path=path), line) is not None
        for line in critical_lines(proc.stderr)
    ] == [True], proc.stderr[-3000:]
    assert "Traceback" not in proc.stderr and API_KEY not in proc.stderr
    assert set(sb.stats()["status"]) == {"404"}  # answered, and only ever with 404
    # (a 404 after the API has answered, a list deleted mid-run, keeps its WARNING: test_faults.py)
