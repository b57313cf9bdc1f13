"""The interfaces users and tools expect from the installed CLI: --about, --version,
progress and the end summary on stderr (stdout stays pure Singer), the Meltano
plugin definition at the top of the repository, checked against --about, a stdout
closed by its reader, and a short API key that leaves the log lines whole."""

from __future__ import annotations

import json
import os
import re
import subprocess
from collections import Counter
from importlib import metadata as importlib_metadata

import helpers
import pytest
import tools

from tap_autopilot.config import SETTINGS

SINGER_TYPES = {"SCHEMA", "RECORD", "STATE", "ACTIVATE_VERSION"}
PLUGIN_FILE = tools.REPO_ROOT / "meltano-plugin.yml"
# Setting kinds and extractor capabilities Meltano's meltano.yml schema accepts.
MELTANO_KINDS = {
    "oauth",
    "date_iso8601",
    "file",
    "email",
    "integer",
    "decimal",
    "options",
    "object",
    "array",
    "boolean",
    "string",
    "hidden",
    "password",
}
MELTANO_EXTRACTOR_CAPABILITIES = {
    "properties",
    "catalog",
    "discover",
    "state",
    "about",
    "stream-maps",
    "activate-version",
    "batch",
    "test",
    "log-based",
    "schema-flattening",
    "structured-logging",
}


def _about() -> dict:
    proc = helpers.run_cli(["--about"])
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout)  # the whole of stdout is one JSON document


# ---- --about and --version -------------------------------------------------------------------


def test_about_describes_the_tap():
    about = _about()
    assert about["name"] == "tap-autopilot"
    assert about["version"] == importlib_metadata.version("tap-autopilot")
    assert isinstance(about["description"], str) and "Autopilot" in about["description"]
    assert {"catalog", "discover", "state"} <= set(about["capabilities"])

    settings = {s["name"]: s for s in about["settings"]}
    assert list(settings) == [s["name"] for s in SETTINGS]
    assert {"api_key", "start_date", "base_url", "user_agent", "request_timeout", "max_requests_per_second"} <= set(
        settings
    )
    for name, setting in settings.items():
        assert setting["type"] in ("string", "integer", "number", "boolean"), name
        assert isinstance(setting["required"], bool) and isinstance(setting["secret"], bool), name
        assert setting.get("description"), name
    assert {n for n, s in settings.items() if s["required"]} == {"api_key"}  # start_date: one year back
    assert {n for n, s in settings.items() if s["secret"]} == {"api_key"}
    assert sorted(about["required_settings"]) == ["api_key"]
    assert "one year before the first run" in settings["start_date"]["description"]
    assert about["secret_settings"] == ["api_key"]
    assert settings["request_timeout"]["type"] in ("integer", "number")
    assert settings["base_url"]["default"] == "https://api2.autopilothq.com/v1"
    assert about["streams"] == list(helpers.ALL_STREAMS)


def test_about_needs_no_config_and_leaks_nothing(tmp_path):
    # --about ignores a config given alongside it: it neither reads nor prints the key
    config = helpers.write_json(tmp_path / "config.json", {"api_key": "very-secret-key", "start_date": "x"})
    proc = helpers.run_cli(["--about", "--config", config])
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout)["name"] == "tap-autopilot"
    assert "very-secret-key" not in proc.stdout + proc.stderr


def test_version():
    proc = helpers.run_cli(["--version"])
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == f"tap-autopilot {importlib_metadata.version('tap-autopilot')}"
    assert re.fullmatch(r"tap-autopilot \d+\.\d+\.\d+\S*", proc.stdout.strip())


# ---- progress on stderr, pure Singer on stdout -------------------------------------------------

_PROGRESS_CONTACTS = re.compile(
    r"contacts ([\d,]+) records, ([\d,]+) pages \((\d+)% of ([\d,]+), ETA (\d+:\d\d:\d\d)\)"
)
_REQUESTS = re.compile(r"([\d,]+) requests, ([\d,]+) throttled \(429\), ([\d,]+) retries")


def _int(text: str) -> int:
    return int(text.replace(",", ""))


def test_progress_and_summary_on_stderr_stdout_pure_singer(tmp_path):
    contacts = 300
    with helpers.sandbox(contacts=contacts, lists=3, segments=2, seed=41) as sb:
        # Twice the sandbox's rate limit: some requests get 429 (with Retry-After); every 4th
        # request fails with a 500 unless it was throttled. Latency makes the scan last a while.
        # (lists_contacts_source "lists": enough requests for the limits to bite, as before 1.1.0)
        config = helpers.write_config(tmp_path, sb, max_requests_per_second=12, lists_contacts_source="lists")
        catalog = helpers.write_json(tmp_path / "catalog.json", helpers.select(helpers.discover(config)))
        sb.set_faults(latency_ms=200, rate_limit=8, error_every=4)
        sb.reset_stats()
        proc = subprocess.run(
            tools.tap_cmd() + ["--config", config, "--catalog", catalog],
            capture_output=True,
            text=True,
            timeout=300,
            env=dict(os.environ, TAP_AUTOPILOT_PROGRESS_SECONDS="0.1", TAP_AUTOPILOT_BACKOFF_SECONDS="0.05"),
        )
        stats = sb.stats()
        expected = {
            "contacts": contacts,
            "lists": len(sb.dataset.lists()),
            "smart_segments": len(sb.dataset.segments()),
            "lists_contacts": sum(len(sb.dataset.list_members(g["list_id"])) for g in sb.dataset.lists()),
            "smart_segments_contacts": sum(
                len(sb.dataset.segment_members(g["segment_id"])) for g in sb.dataset.segments()
            ),
            "completed_passes": 4,  # one per versioned stream
        }
    assert proc.returncode == 0, proc.stderr[-3000:]

    # stdout: nothing but Singer messages, one JSON object a line
    records: Counter[str] = Counter()
    for number, line in enumerate(proc.stdout.splitlines(), 1):
        message = json.loads(line)
        assert isinstance(message, dict) and message.get("type") in SINGER_TYPES, f"stdout line {number}: {line[:200]}"
        if message["type"] == "RECORD":
            records[message["stream"]] += 1
    assert dict(records) == expected
    assert "Progress" not in proc.stdout and "summary" not in proc.stdout

    # the standard Singer record_count metrics add up to the records of each stream
    counted: Counter[str] = Counter()
    for line in proc.stderr.splitlines():
        if line.startswith("INFO METRIC: "):
            point = json.loads(line[len("INFO METRIC: ") :])
            if point["metric"] == "record_count":
                counted[point["tags"]["endpoint"]] += point["value"]
    assert dict(counted) == expected

    lines = [line for line in proc.stderr.splitlines() if "METRIC" not in line]
    # periodic progress lines, with percentage and ETA for contacts from total_contacts
    progress = [line for line in lines if line.startswith("INFO Progress: ")]
    assert len(progress) >= 2, "\n".join(lines[-40:])
    contact_parts = [m for m in map(_PROGRESS_CONTACTS.search, progress) if m]
    assert contact_parts, "no progress line showed contacts with a percentage and ETA:\n" + "\n".join(progress)
    for match in contact_parts:
        done, pages, percent, total = (_int(match.group(i)) for i in range(1, 5))
        assert total == contacts
        assert 0 <= done <= total and pages == done // 100
        assert percent == round(100 * done / total)
    assert any(_int(m.group(1)) > 0 for m in contact_parts), "no progress line caught the scan midway"
    requests_seen = [_int(m.group(1)) for m in map(_REQUESTS.search, progress) if m]
    assert len(requests_seen) == len(progress) and requests_seen == sorted(requests_seen)
    # a line when each stream ends (completed_passes never ends: its count is in the summary)
    for stream, count in expected.items():
        if stream == helpers.PASSES_STREAM:
            continue
        assert any(
            re.fullmatch(rf"INFO {stream}: done, {count:,} records from [\d,]+ pages in [\d.]+ s\.", line)
            for line in lines
        ), f"no end line for {stream}"

    # the summary table: every stream with its record count, then requests / 429s / retries
    start = next(i for i, line in enumerate(lines) if re.fullmatch(r"INFO Sync summary \(\d+:\d\d:\d\d\):", line))
    summary = lines[start + 1 :]
    table = {}
    for line in summary:
        row = re.fullmatch(r"INFO\s+(\w+)\s+([\d,]+)\s+([\d,]+)", line)
        if row:
            table[row.group(1)] = _int(row.group(2))
    assert table == expected
    totals = [m for m in map(_REQUESTS.search, summary) if m]
    assert len(totals) == 1
    n_requests, n_429, n_retries = (_int(totals[0].group(i)) for i in (1, 2, 3))
    status = stats["status"]
    assert n_requests == stats["requests"]  # every attempt the sandbox answered
    assert n_429 == status.get("429", 0) > 0
    assert n_retries == status.get("429", 0) + status.get("500", 0)  # each failed attempt retried once


# ---- the Meltano plugin definition ---------------------------------------------------------------


def _load_yaml(path):
    """PyYAML from the project venv, or else from the target-postgres venv (it ships PyYAML)."""
    try:
        import yaml
    except ImportError:
        tools.require(tools.TARGET_POSTGRES_PYTHON)
        proc = subprocess.run(
            [
                str(tools.TARGET_POSTGRES_PYTHON),
                "-c",
                "import json, sys, yaml; json.dump(yaml.safe_load(open(sys.argv[1], encoding='utf-8')), sys.stdout)",
                str(path),
            ],
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert proc.returncode == 0, proc.stderr
        return json.loads(proc.stdout)
    with open(path, encoding="utf-8") as handle:
        return yaml.safe_load(handle)


def test_meltano_plugin_definition_matches_about():
    plugin = _load_yaml(PLUGIN_FILE)
    about = _about()
    assert plugin["name"] == "tap-autopilot"
    assert plugin["namespace"] == "tap_autopilot"
    scripts = {
        ep.name
        for ep in importlib_metadata.entry_points(group="console_scripts")
        if ep.value.startswith("tap_autopilot")
    }
    assert scripts == {"tap-autopilot"}
    assert plugin["executable"] == "tap-autopilot"
    assert plugin["pip_url"]
    capabilities = set(plugin["capabilities"])
    assert {"catalog", "discover", "state", "about"} <= capabilities
    assert capabilities <= set(about["capabilities"]) and capabilities <= MELTANO_EXTRACTOR_CAPABILITIES

    settings = {s["name"]: s for s in plugin["settings"]}
    about_settings = {s["name"]: s for s in about["settings"]}
    assert list(settings) == list(about_settings)
    assert plugin["settings_group_validation"] == [about["required_settings"]]
    declared_kinds = {s["name"]: s["kind"] for s in SETTINGS}
    for name, setting in settings.items():
        assert setting["kind"] in MELTANO_KINDS, name
        assert setting["kind"] == declared_kinds[name], name
        assert setting.get("description"), name
        assert bool(setting.get("sensitive")) == about_settings[name]["secret"], name
        if "default" in about_settings[name]:
            assert setting.get("value") == about_settings[name]["default"], name
    assert settings["api_key"]["kind"] == "password" and settings["api_key"]["sensitive"] is True
    assert settings["start_date"]["kind"] == "date_iso8601"
    # fractions are valid (0.5 requests per second, a 2.5 s timeout)
    assert {settings["request_timeout"]["kind"], settings["max_requests_per_second"]["kind"]} == {"decimal"}


# ---- a closed stdout ---------------------------------------------------------------------------


def _into_a_closed_pipe(args, **kwargs) -> subprocess.CompletedProcess:
    """The CLI with a stdout whose reader has gone: every write fails (EPIPE)."""
    read_end, write_end = os.pipe()
    os.close(read_end)
    try:
        return subprocess.run(
            tools.tap_cmd() + [str(a) for a in args],
            stdout=write_end,
            stderr=subprocess.PIPE,
            text=True,
            timeout=120,
            **kwargs,
        )
    finally:
        os.close(write_end)


def test_about_into_head_exits_quietly():
    proc = subprocess.run(
        ["bash", "-o", "pipefail", "-c", '"$@" --about | head -1', "-", *tools.tap_cmd()],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.stdout == "{\n" and proc.stderr == ""
    assert proc.returncode in (0, 141)  # 141: head closed the pipe before the tap's one write


@pytest.mark.parametrize("command", ["--about", "--version", "--discover"])
def test_a_closed_stdout_ends_about_version_and_discover_quietly_with_141(tmp_path, sandbox_factory, command):
    args = [command]
    if command == "--discover":
        sb = sandbox_factory(contacts=5)
        args += ["--config", helpers.write_config(tmp_path, sb)]
    proc = _into_a_closed_pipe(args)
    assert proc.returncode == 141, proc.stderr  # as a process that SIGPIPE ended: the reader went away
    assert "CRITICAL" not in proc.stderr and "Traceback" not in proc.stderr, proc.stderr
    if command != "--discover":  # (discovery logs what it found, as ever)
        assert proc.stderr == ""


def test_a_closed_stdout_during_a_sync_stays_an_error(tmp_path, sandbox_factory):
    sb = sandbox_factory(contacts=50, api_key=helpers.SECRET_API_KEY)
    config = helpers.write_secret_config(tmp_path, sb)
    proc = _into_a_closed_pipe(["--config", config])
    assert proc.returncode == 1, proc.stderr
    assert [line for line in proc.stderr.splitlines() if line.startswith("CRITICAL")] == [
        "CRITICAL The output pipe closed (did the target exit?). Stopping."
    ]
    assert helpers.SECRET_API_KEY not in proc.stderr


# ---- a short API key ---------------------------------------------------------------------------


@pytest.mark.parametrize("key", ["k", "e"])
def test_a_short_api_key_leaves_every_log_line_as_it_was(tmp_path, sandbox_factory, key):
    sb = sandbox_factory(contacts=150, lists=2, segments=1, seed=45, api_key=key)
    config = helpers.write_config(tmp_path, sb, api_key=key)
    run = helpers.run_tap(["--config", config], env=dict(os.environ, TAP_AUTOPILOT_PROGRESS_SECONDS="0.05"))
    assert run.returncode == 0, run
    assert "<redacted>" not in run.stderr, "a letter of a word was taken for the key"
    for word in ("records", "pages", "requests", "Discovered", "columns", "record_count", "throttled"):
        assert word in run.stderr, word
    token = re.compile(rf"(?<![A-Za-z0-9]){re.escape(key)}(?![A-Za-z0-9])")
    assert not token.search(run.stderr), "the key was printed"

    # A message quoting the key (here as the start_date too) still hides it, the words around intact.
    config = helpers.write_config(tmp_path, sb, api_key=key, start_date=key)
    refused = helpers.run_cli(["--config", config, "--discover"])
    assert refused.returncode == 1 and refused.stdout == ""
    [line] = refused.stderr.splitlines()
    assert line.startswith("CRITICAL Config 'start_date' '<redacted>' is neither a date nor an RFC 3339 time."), line
    assert not token.search(line)
