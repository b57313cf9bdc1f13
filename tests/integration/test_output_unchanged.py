"""The tap's stdout against 1.2.0's recorded output (tests/fixtures/output-1.2.0/).

Issue 27 redesigns the tap's internals and must not change what it writes. Each scenario
runs the real CLI against the sandbox (fixed seeds and sizes, real sockets), puts its
stdout in a canonical form and compares it with its fixture, one file per scenario.
Re-record (scripts/record-output-fixtures.py) only for an intended change, and say so in
the CHANGELOG.

The form is as strict as 1.2.0's own run-to-run variation allows: each scenario was run
many times, at the default concurrency and at max_concurrent_requests 1, idle, under CPU
load and with sandbox latency, and diffed. What varied, and what the form does about it
(everything else is compared byte for byte):

- The sandbox's clock: its Date header (the contacts scan's started_at, hence the
  updated_at bookmark) and the time it stamps changes with (touched and added contacts).
  Pinned rather than masked: SandboxClock sets the sandbox's "now", so these are compared.
- The tap's clock, which a test cannot set:
  - `time_extracted`: its digits become 0 (its format is still compared);
  - table versions (a pass takes the clock in ms) in RECORD `version` and `table_version`,
    ACTIVATE_VERSION and the state: "<V1>", "<V2>", ... per stream, in order of first
    appearance across the scenario's runs, checked to grow. Per stream, because two
    streams may or may not begin their passes in the same millisecond;
  - `default_start_date` is masked like `time_extracted`, but no scenario writes it:
    without a start_date, which contacts a run emits would depend on the day it runs.
- The interleaving: several threads write (the listings from the main thread, the scans
  from the workers), and max_concurrent_requests 1 does not make the order
  deterministic (the main thread still races the one worker: 1 run in 15 differed). So
  the lines are grouped by the unit of work that wrote them, each unit in written order:
  the SCHEMA messages (written first, together); the contacts scan (contacts, and
  lists_contacts when it reads the scan: a page's lines as its commit wrote them); each
  listing; a membership pass read parent by parent (its ACTIVATE_VERSIONs and pass-level
  entry), and each of its parents (RECORDs and progress: {"cursor"} or {"done"}). Which
  parent finishes first varies, so done_through, done_beyond and in_progress are compared
  through that progress, and checked to be written from it as 1.2.0 writes them.
- STATE: each holds the whole document, written by whichever thread committed. So a STATE
  is compared as the entries it changes, each placed in its unit where it changes (its
  unit's own commit). Left out: a new pass's bare {"version", "complete": false}, which
  begin_version sets without a STATE, so the next STATE from any thread shows it at a
  varying place. `currently_syncing` on the way, identical STATEs in a row and the
  intermediate STATEs' bytes are covered by the count of STATE messages and the final
  STATE, compared whole, with its bookmarks in stream order (the order in which their
  entries were made varies).
  The full sync at max_concurrent_requests 1 must give the same form as at the default.

The completed_passes stream (1.4.0) is the one change since: checked on its own, then taken
out before the comparison (without_completed_passes).

Resumes are deterministic: rather than a SIGKILL at a random moment, a run is given the
state a killed run leaves: the k-th STATE of a recorded run whose STATE sequence does not
vary (one unit: the contacts scan), or, for membership passes whose parents run
concurrently (their STATE sequence varies), a state built from a recorded run's cursors.
"""

from __future__ import annotations

import datetime
import difflib
import email.utils
import json
import os
import re
from pathlib import Path
from typing import Any

import helpers
import pytest
import tools

FIXTURES = tools.REPO_ROOT / "tests" / "fixtures" / "output-1.2.0"
RECORDING = os.environ.get("RECORD_OUTPUT_FIXTURES") == "1"
API_KEY = helpers.SECRET_API_KEY
# The sandbox's "now" for a scenario's first run: after every generated updated_at
# (2026-01-01) and before the tap's clock, which never trusts a bookmark in its future.
SANDBOX_START = datetime.datetime(2026, 1, 2, tzinfo=datetime.UTC)
HOUR = datetime.timedelta(hours=1)
# The contact columns of the scenarios that need not show every column (smaller fixtures).
FEW_CONTACT_COLUMNS = ("contact_id", "email", "updated_at", "lists", "table_version")
STREAM_ORDER = ("contacts", "lists", "lists_contacts", "smart_segments", "smart_segments_contacts")
PARENT_KEYS = helpers.PARENT_KEYS
MEMBERSHIP_PASS_KEYS = ("done_through", "done_beyond", "in_progress")


# ---- the sandbox's clock ---------------------------------------------------------


class SandboxClock:
    """The sandbox's "now", set by the test: its Date header and the time its admin
    changes are stamped with, in place of the wall clock (so they are compared, not masked).
    Patches one running sandbox (its handler class and its dataset's tick), nothing else."""

    def __init__(self, sb, now: datetime.datetime):
        self.now = now
        clock = self

        class PinnedDate(sb._server.RequestHandlerClass):
            def date_time_string(self, timestamp=None):
                return email.utils.format_datetime(clock.now, usegmt=True)

        sb._server.RequestHandlerClass = PinnedDate
        dataset = sb.dataset

        def tick() -> int:  # Dataset._tick, with this clock for time.time()
            dataset._clock_ms = max(dataset._clock_ms + 1, int(clock.now.timestamp() * 1000))
            return dataset._clock_ms

        dataset._tick = tick


# ---- the canonical form ------------------------------------------------------------

_VERSION = re.compile(r'(?<!\\)"(?:table_version|version)": ?(\d+)')
_TIME_EXTRACTED = re.compile(r'(?<!\\)"time_extracted": ?"([^"\\]*)"')
_DEFAULT_START = re.compile(r'(?<!\\)"default_start_date": ?"([^"\\]*)"')
_BOOKMARKS = re.compile(r'(?<!\\)"bookmarks": ?\{')


class Versions:
    """Table versions -> "<V1>", "<V2>", ... per stream, in order of first appearance
    (kept across the runs of a scenario, so a resumed pass keeps its number)."""

    def __init__(self) -> None:
        self.seen: dict[str, list[int]] = {}

    def mask(self, stream: str, value: int) -> str:
        assert isinstance(value, int) and value > 10**12, f"{stream}: not a clock version: {value!r}"
        known = self.seen.setdefault(stream, [])
        if value not in known:
            assert not known or value > known[-1], f"{stream}: version {value} is not above {known[-1]}"
            known.append(value)
        return f"<V{known.index(value) + 1}>"


def _zero_digits(match: re.Match) -> str:
    start, end = match.span(1)
    text = match.string
    return text[match.start() : start] + re.sub(r"\d", "0", text[start:end]) + text[end : match.end()]


def _replace_versions(line: str, owners: list[str], versions: Versions) -> str:
    """Each version in the line -> its placeholder; owners: the stream of each, in order."""
    found = list(_VERSION.finditer(line))
    assert len(found) == len(owners), f"versions {[m.group(1) for m in found]} for streams {owners}: {line[:300]}"
    parts, at = [], 0
    for match, stream in zip(found, owners, strict=True):
        parts += [line[at : match.start(1)], json.dumps(versions.mask(stream, int(match.group(1))))]
        at = match.end(1)
    return "".join(parts) + line[at:]


def _masked_message(line: str, message: dict, versions: Versions) -> str:
    line = _TIME_EXTRACTED.sub(_zero_digits, line)
    return _replace_versions(line, [message["stream"]] * len(_VERSION.findall(line)), versions)


def _object_members(text: str, start: int) -> list[tuple[str, int, int]]:
    """[(key, start, end)] of each member of the JSON object whose "{" is text[start]."""
    decoder, at = json.JSONDecoder(), start + 1
    members: list[tuple[str, int, int]] = []
    while True:
        while text[at] in " \t\r\n,":
            at += 1
        if text[at] == "}":
            return members
        key, after = decoder.raw_decode(text, at)
        value = text.index(":", after) + 1
        while text[value] == " ":
            value += 1
        _, end = decoder.raw_decode(text, value)
        members.append((key, at, end))
        at = end


def _masked_state(line: str, versions: Versions) -> str:
    """A STATE line (or a state document) masked, its bookmarks in stream order, every
    other byte kept."""
    document = json.loads(line)
    bookmarks = (document.get("value", document) or {}).get("bookmarks") or {}
    owners = [stream for stream, entry in bookmarks.items() if isinstance(entry, dict) and "version" in entry]
    line = _DEFAULT_START.sub(_zero_digits, _replace_versions(line, owners, versions))
    opening = _BOOKMARKS.search(line)
    if opening is None:
        return line
    members = _object_members(line, opening.end() - 1)
    if len(members) < 2:
        return line
    separator = line[members[0][2] : members[1][1]]
    rank = {stream: n for n, stream in enumerate(STREAM_ORDER)}
    ordered = sorted(members, key=lambda member: (rank.get(member[0], len(rank)), member[0]))
    body = separator.join(line[start:end] for _, start, end in ordered)
    return line[: members[0][1]] + body + line[members[-1][2] :]


def _is_done(parent: str, entry: dict) -> bool:
    through = entry.get("done_through")
    return (through is not None and parent <= through) or parent in (entry.get("done_beyond") or [])


def _as_written(entry: dict, parents: list[str]) -> dict:
    """The membership keys as 1.2.0 writes them for the parents' progress this entry shows:
    done_through the last of the longest run of done parents (by id), done_beyond the other
    done ones sorted, in_progress each cursor. Which parents are done varies from run to run;
    how that is written must not."""
    order = sorted(set(parents) | set(entry.get("in_progress") or {}) | set(entry.get("done_beyond") or []))
    done = [parent for parent in order if _is_done(parent, entry)]
    prefix = 0
    while prefix < len(order) and order[prefix] in done:
        prefix += 1
    return {
        "done_through": order[prefix - 1] if prefix else None,
        "done_beyond": [parent for parent in done if parent not in order[:prefix]],
        "in_progress": dict(entry.get("in_progress") or {}),
    }


def _unit_of_entry(stream: str, entry: dict, scan_reader: bool) -> str:
    if stream == "contacts" or "scan" in entry:
        return "contacts scan"
    if stream == "lists_contacts" and scan_reader and not any(key in entry for key in MEMBERSHIP_PASS_KEYS):
        return "contacts scan"
    return stream


def _entry_views(document: dict, versions: Versions, parents: dict, scan_reader: bool) -> dict:
    """{(unit, entry name): view} of a state document: each stream's entry (a membership
    pass by parent: its pass-level keys, and each parent's progress). None: not shown
    (a fresh pass's bare entry, a parent not begun)."""
    views: dict[tuple[str, str], Any] = {}
    bookmarks = document.get("bookmarks") or {}
    for stream in sorted(bookmarks, key=lambda s: STREAM_ORDER.index(s) if s in STREAM_ORDER else len(STREAM_ORDER)):
        entry = dict(bookmarks[stream])
        if isinstance(entry.get("version"), int):
            entry["version"] = versions.mask(stream, entry["version"])
        bare = set(entry) == {"version", "complete"} and entry["complete"] is False
        if stream in PARENT_KEYS and any(key in entry for key in MEMBERSHIP_PASS_KEYS):
            level = {key: value for key, value in entry.items() if key not in MEMBERSHIP_PASS_KEYS}
            level["by_parent"] = [key for key in entry if key in MEMBERSHIP_PASS_KEYS]
            written = {key: entry.get(key) for key in MEMBERSHIP_PASS_KEYS}
            if written != _as_written(entry, parents.get(stream, [])):
                level["not as 1.2.0 writes it"] = written  # never in a fixture: shows the change
            views[(stream, stream)] = level
            for parent in parents.get(stream, ()):
                progress = entry.get("in_progress") or {}
                view = {"cursor": progress[parent]} if parent in progress else {"done": True}
                unit = f"{stream} {PARENT_KEYS[stream]}={parent}"
                views[(unit, "progress")] = view if parent in progress or _is_done(parent, entry) else None
        else:
            views[(_unit_of_entry(stream, entry, scan_reader), stream)] = None if bare else entry
    return views


def _unit_rank(unit: str) -> tuple[int, str]:
    name = "contacts" if unit == "contacts scan" else unit.split(" ")[0]
    return STREAM_ORDER.index(name), unit


def without_completed_passes(lines: list[str], messages: list[Any]) -> tuple[list[str], list[Any]]:
    """The run's output without the completed_passes stream (added in 1.4.0, after the
    fixtures), once its records are checked: when the stream is selected, each pass that the
    run completed has one record, right after the ACTIVATE_VERSION that ended it and before
    the STATE that marks it complete."""
    passes = [n for n, message in enumerate(messages) if message.get("stream") == "completed_passes"]
    if not passes:
        return lines, messages
    final = messages[-1]["value"]["bookmarks"]
    ended = {}  # stream -> index of its last ACTIVATE_VERSION, if the run completed that pass
    for n, message in enumerate(messages):
        if message["type"] == "ACTIVATE_VERSION" and message["stream"] != "completed_passes":
            entry = final.get(message["stream"]) or {}
            if entry.get("complete") and entry.get("version") == message["version"]:
                ended[message["stream"]] = n
    records = []
    for n in passes:
        if messages[n]["type"] == "SCHEMA":
            continue
        record = messages[n]["record"]
        assert messages[n - 1] == {
            "type": "ACTIVATE_VERSION",
            "stream": record["stream_name"],
            "version": record["table_version"],
        }, f"message {n + 1}: a completed pass that does not follow its ACTIVATE_VERSION"
        assert messages[n + 1]["type"] == "STATE", f"message {n + 1}: no STATE after a completed pass"
        records.append(n - 1)
    assert sorted(records) == sorted(ended.values()), "not one completed_passes record per pass completed"
    keep = [n for n in range(len(messages)) if n not in set(passes)]
    return [lines[n] for n in keep], [messages[n] for n in keep]


def canonical(stdout: str, versions: Versions, parents: dict, given: dict | None = None) -> list[str]:
    """One run's stdout in the canonical form (module docstring): JSON lines.
    parents: {membership stream: every parent id}; given: the state the run was given."""
    lines, messages = without_completed_passes(stdout.splitlines(), [json.loads(line) for line in stdout.splitlines()])
    states = [n for n, message in enumerate(messages) if message["type"] == "STATE"]
    assert states and states[-1] == len(messages) - 1, "the run did not end with a STATE"
    # lists_contacts reads the contacts scan in this run if any STATE says so
    scan_reader = any("scan" in (messages[n]["value"]["bookmarks"].get("lists_contacts") or {}) for n in states)
    units: dict[str, list[str]] = {}
    shown: dict[tuple[str, str], Any] = {}
    if given is not None:
        shown = {key: view for key, view in _entry_views(given, versions, parents, scan_reader).items() if view}
    head = [json.dumps({"messages": len(messages), "STATE messages": len(states)})]
    if given is not None:
        head.append(json.dumps({"given state": json.loads(_masked_state(json.dumps(given), versions))}))
    schemas, next_state = [], len(messages) - 1
    closing = {}  # message index -> index of the STATE after it (its commit's)
    for n in reversed(range(len(messages))):
        next_state = n if messages[n]["type"] == "STATE" else next_state
        closing[n] = next_state
    for n, (line, message) in enumerate(zip(lines, messages, strict=True)):
        kind, stream = message["type"], message.get("stream")
        if kind == "SCHEMA":
            schemas.append(line)
        elif kind == "STATE":
            for key, view in _entry_views(message["value"], versions, parents, scan_reader).items():
                if view is not None and shown.get(key) != view:
                    shown[key] = view
                    units.setdefault(key[0], []).append(json.dumps({"state": key[1], "entry": view}))
        elif kind in ("RECORD", "ACTIVATE_VERSION"):
            if stream not in PARENT_KEYS:
                unit = "contacts scan" if stream == "contacts" else stream
            elif kind == "ACTIVATE_VERSION":
                unit = "contacts scan" if stream == "lists_contacts" and scan_reader else stream
            else:  # the STATE of its commit says how the stream is read
                entry = messages[closing[n]]["value"]["bookmarks"].get(stream) or {}
                assert "scan" in entry or "in_progress" in entry, f"message {n + 1}: a {stream} RECORD of no pass"
                key = PARENT_KEYS[stream]
                unit = "contacts scan" if "scan" in entry else f"{stream} {key}={message['record'][key]}"
            units.setdefault(unit, []).append(_masked_message(line, message, versions))
        else:
            raise AssertionError(f"message {n + 1}: an unknown type {kind!r}")
    out = head + [json.dumps({"unit": "SCHEMA messages"})] + schemas
    for unit in sorted(units, key=_unit_rank):
        out += [json.dumps({"unit": unit})] + units[unit]
    return out + [json.dumps({"unit": "final STATE"}), _masked_state(lines[-1], versions)]


# ---- running the scenarios -----------------------------------------------------------


def parents_of(sb) -> dict[str, list[str]]:
    return {
        "lists_contacts": [group["list_id"] for group in sb.dataset.lists()],
        "smart_segments_contacts": [group["segment_id"] for group in sb.dataset.segments()],
    }


class Scenario:
    """The runs of one fixture: each run's canonical form, under one version numbering."""

    def __init__(self, name: str, sb, versions: Versions | None = None):
        self.name, self.sb = name, sb
        self.versions = versions or Versions()
        self.lines: list[str] = []

    def add(self, label: str, run: helpers.TapRun, given: dict | None = None) -> list[str]:
        form = canonical(run.stdout, self.versions, parents_of(self.sb), given)
        self.lines += [json.dumps({"run": label})] + form
        return form


class Runner:
    """Runs the CLI (the key never printed, no traceback, exit 0) with the sandbox's clock
    at a given time, and collects every scenario's differences from its fixture."""

    def __init__(self, tmp_path: Path):
        self.tmp_path = tmp_path
        self.count = 0
        self.failures: list[str] = []

    def run(self, clock: SandboxClock, at: datetime.datetime, config: str, catalog=None, state=None):
        self.count += 1
        clock.now = at
        args = ["--config", config]
        if catalog is not None:
            args += ["--catalog", helpers.write_json(self.tmp_path / f"catalog-{self.count}.json", catalog)]
        if state is not None:
            args += ["--state", helpers.write_json(self.tmp_path / f"state-{self.count}.json", state)]
        run = helpers.run_tap(args, timeout=120, secret=API_KEY)
        assert run.returncode == 0, run
        return run

    def check(self, scenario: Scenario) -> None:
        path = FIXTURES / f"{scenario.name}.jsonl"
        if RECORDING:
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text("\n".join(scenario.lines) + "\n", encoding="utf-8")
            return
        expected = path.read_text(encoding="utf-8").splitlines() if path.exists() else []
        if expected != scenario.lines:
            got = self.tmp_path / path.name
            got.write_text("\n".join(scenario.lines) + "\n", encoding="utf-8")
            self.failures.append(readable_diff(path, got, expected, scenario.lines))

    def same(self, expected: Scenario, actual: Scenario, what: str) -> None:
        """Two runs that must give the same canonical output (not a fixture of their own)."""
        if expected.lines != actual.lines:
            got = self.tmp_path / f"{actual.name}-{what.replace(' ', '-')}.jsonl"
            got.write_text("\n".join(actual.lines) + "\n", encoding="utf-8")
            self.failures.append(f"{what}: " + readable_diff(Path(expected.name), got, expected.lines, actual.lines))

    def assert_all_unchanged(self) -> None:
        if self.failures:
            pytest.fail("the output changed:\n\n" + "\n\n".join(self.failures), pytrace=False)


def _shorten(line: str, around: int, width: int = 90) -> str:
    """A long line cut to a window around column `around`."""
    if len(line) <= 2 * width:
        return line
    start = max(0, min(around - width, len(line) - 2 * width))
    return ("..." if start else "") + line[start : start + 2 * width] + ("..." if start + 2 * width < len(line) else "")


def _where(lines: list[str], index: int) -> str:
    """The run and unit of the canonical line at `index`."""
    run, unit = "?", "the run's counts"
    for line in lines[: index + 1]:
        if line.startswith('{"run": '):
            run, unit = json.loads(line)["run"], "the run's counts"
        elif line.startswith('{"unit": '):
            unit = json.loads(line)["unit"]
    return f"run {run!r}, unit {unit!r}"


def readable_diff(path: Path, got: Path, expected: list[str], actual: list[str], limit: int = 40) -> str:
    """The changed lines (- fixture, + output), each pair cut to a window around its first
    difference, under the run and unit they belong to."""
    if not expected:
        return f"{path} is missing: record it (scripts/record-output-fixtures.py); output in {got}"
    shown: list[str] = []
    matcher = difflib.SequenceMatcher(None, expected, actual, autojunk=False)
    changes = [op for op in matcher.get_opcodes() if op[0] != "equal"]
    for _, i1, i2, j1, j2 in changes:
        shown.append(f"@@ fixture line {i1 + 1}, output line {j1 + 1} ({_where(expected, max(i1 - 1, 0))})")
        old, new = expected[i1:i2], actual[j1:j2]
        for k in range(max(len(old), len(new))):
            a, b = (old[k] if k < len(old) else ""), (new[k] if k < len(new) else "")
            at = next((n for n, (x, y) in enumerate(zip(a, b, strict=False)) if x != y), min(len(a), len(b)))
            shown += [f"- {_shorten(a, at)}"] * (k < len(old)) + [f"+ {_shorten(b, at)}"] * (k < len(new))
    more = f"\n... {len(shown) - limit} more lines" if len(shown) > limit else ""
    head = f"{path.name}: {len(changes)} change(s); the whole output is in {got}"
    return head + "\n" + "\n".join(shown[:limit]) + more


def catalog_variant(discovered: dict, streams=None, full_table: bool = False) -> dict:
    """The discovered catalog with `streams` selected (all if None), contacts with
    FEW_CONTACT_COLUMNS only, and contacts in FULL_TABLE mode if asked."""
    contacts = next(entry for entry in discovered["streams"] if entry["tap_stream_id"] == "contacts")
    others = [column for column in contacts["schema"]["properties"] if column not in FEW_CONTACT_COLUMNS]
    catalog = helpers.select(discovered, streams, deselect_columns={"contacts": others})
    if full_table:
        entry = next(entry for entry in catalog["streams"] if entry["tap_stream_id"] == "contacts")
        root = next(m for m in entry["metadata"] if m["breadcrumb"] == [])
        root["metadata"]["replication-method"] = "FULL_TABLE"
    return catalog


@pytest.fixture
def runner(tmp_path):
    return Runner(tmp_path)


def config_for(runner: Runner, sb, **overrides) -> str:
    """A config file of its own (write_config always writes <dir>/config.json)."""
    folder = runner.tmp_path / f"config-{len(list(runner.tmp_path.glob('config-*')))}"
    folder.mkdir()
    return helpers.write_config(folder, sb, api_key=API_KEY, **overrides)


# ---- the scenarios -----------------------------------------------------------------------


def test_full_sync_then_an_incremental_run_after_changes(runner):
    with helpers.sandbox(contacts=105, lists=3, segments=2, seed=2701, api_key=API_KEY) as sb:
        clock = SandboxClock(sb, SANDBOX_START)
        config = config_for(runner, sb)
        full = Scenario("full-sync", sb)
        first = runner.run(clock, SANDBOX_START, config)  # no catalog: every stream
        # every stream includes completed_passes, which the canonical form checks and takes out
        passes = helpers.records_by_stream(first.messages)["completed_passes"]
        assert sorted(r["stream_name"] for r in passes) == sorted(helpers.FULL_TABLE_STREAMS)
        full.add("every stream, no catalog", first)
        runner.check(full)
        # One worker: the same canonical output (the form does not depend on the concurrency).
        alone = Scenario("full-sync", sb)
        alone.add(
            "every stream, no catalog",
            runner.run(clock, SANDBOX_START, config_for(runner, sb, max_concurrent_requests=1)),
        )
        runner.same(full, alone, "max_concurrent_requests 1")

        # Changes two minutes before the next run: within the 5 minutes allowed for clock skew,
        # so the bookmark stops at the scan's start less 5 minutes.
        clock.now = SANDBOX_START + HOUR - datetime.timedelta(minutes=2)
        ids = sb.dataset.contact_ids()
        helpers.admin(sb, "touch", {"contact_ids": [ids[7], ids[104]]})  # one on each page
        helpers.admin(sb, "add_contacts", {"count": 2})
        helpers.admin(sb, "delete_contacts", {"contact_ids": [ids[50]]})
        big = max(parents_of(sb)["lists_contacts"], key=lambda list_id: len(sb.dataset.list_members(list_id)))
        helpers.admin(sb, "remove_from_list", {"list_id": big, "contact_ids": sb.dataset.list_members(big)[:3]})
        segment = parents_of(sb)["smart_segments_contacts"][0]
        members = sb.dataset.segment_members(segment)[:2]
        helpers.admin(sb, "remove_from_segment", {"segment_id": segment, "contact_ids": members})
        incremental = Scenario("incremental", sb, full.versions)
        second = runner.run(clock, SANDBOX_START + HOUR, config, state=first.state)
        incremental.add("from the full sync's last STATE, after changes", second, given=first.state)
        runner.check(incremental)
    runner.assert_all_unchanged()


def test_contacts_in_full_table_mode(runner):
    with helpers.sandbox(contacts=150, lists=2, segments=1, seed=2702, api_key=API_KEY) as sb:
        clock = SandboxClock(sb, SANDBOX_START)
        config = config_for(runner, sb)
        catalog = catalog_variant(helpers.discover(config), ["contacts", "lists_contacts"], full_table=True)
        scenario = Scenario("contacts-full-table", sb)
        first = runner.run(clock, SANDBOX_START, config, catalog)
        scenario.add("contacts FULL_TABLE and lists_contacts", first)
        clock.now = SANDBOX_START + HOUR / 2
        ids = sb.dataset.contact_ids()
        helpers.admin(sb, "delete_contacts", {"contact_ids": [ids[3], ids[99], ids[140]]})
        helpers.admin(sb, "touch", {"contact_ids": [ids[20]]})
        second = runner.run(clock, SANDBOX_START + HOUR, config, catalog, first.state)
        scenario.add("after three contacts were deleted and one touched", second, given=first.state)
        runner.check(scenario)
    runner.assert_all_unchanged()


# lists_contacts_source x streams selected: each way lists_contacts is read. `auto` with
# contacts selected reads the scan: the full sync above.
SOURCES = (
    ("source-auto-probe-scan", "auto", ["lists_contacts"]),
    ("source-contacts", "contacts", ["lists_contacts"]),
    ("source-lists", "lists", ["lists_contacts"]),
    ("source-lists-with-contacts", "lists", ["contacts", "lists_contacts"]),
)


def test_each_lists_contacts_source(runner):
    # 300 contacts on 3 lists (one empty, one whose id needs escaping): the probe finds
    # the scan cheaper (2 more pages against 4).
    with helpers.sandbox(contacts=300, lists=3, segments=1, seed=2703, api_key=API_KEY, awkward_ids=True) as sb:
        clock = SandboxClock(sb, SANDBOX_START)
        discovered = helpers.discover(config_for(runner, sb))
        for name, source, streams in SOURCES:
            scenario = Scenario(name, sb)
            run = runner.run(
                clock,
                SANDBOX_START,
                config_for(runner, sb, lists_contacts_source=source),
                catalog_variant(discovered, streams),
            )
            scenario.add(f"lists_contacts_source {source}, selected: {', '.join(streams)}", run)
            runner.check(scenario)
    # 400 contacts on one list: list by list is cheaper (2 pages against 3 more).
    with helpers.sandbox(contacts=400, lists=1, segments=1, seed=2703, api_key=API_KEY) as sb:
        clock = SandboxClock(sb, SANDBOX_START)
        config = config_for(runner, sb)
        scenario = Scenario("source-auto-probe-lists", sb)
        run = runner.run(clock, SANDBOX_START, config, catalog_variant(helpers.discover(config), ["lists_contacts"]))
        scenario.add("lists_contacts_source auto, selected: lists_contacts", run)
        runner.check(scenario)
    runner.assert_all_unchanged()


def test_resume_mid_contacts_scan(runner):
    with helpers.sandbox(contacts=250, lists=2, segments=1, seed=2704, api_key=API_KEY) as sb:
        clock = SandboxClock(sb, SANDBOX_START)
        config = config_for(runner, sb)
        discovered = helpers.discover(config)
        scenario = Scenario("resume-contacts-scan", sb)
        # One unit of work (the contacts scan), so its STATE sequence is the same every run.
        recorded = runner.run(clock, SANDBOX_START, config, catalog_variant(discovered, ["contacts", "lists_contacts"]))
        scenario.add("recorded: contacts and lists_contacts", recorded)
        killed = recorded.states()[1]  # what a run killed after the scan's second page leaves
        ids = sb.dataset.contact_ids()
        assert killed["currently_syncing"] == "contacts"
        assert killed["bookmarks"]["contacts"]["scan"]["cursor"] == ids[199], killed
        clock.now = SANDBOX_START + HOUR / 2
        helpers.admin(sb, "touch", {"contact_ids": [ids[20], ids[230]]})  # one read already, one ahead
        resumed = runner.run(clock, SANDBOX_START + HOUR, config, catalog_variant(discovered), killed)
        scenario.add("resumed from STATE 2 with every stream, after two contacts were touched", resumed, killed)
        runner.check(scenario)
    runner.assert_all_unchanged()


def mid_pass(recorded: helpers.TapRun, stream: str, parents: list[str]) -> dict:
    """A membership pass as a killed run leaves it when its parents finish out of order: the
    first parent that had a second page, at the cursor its first page ended with (from the
    recorded run); those before it done (done_through), the one after it done (done_beyond)."""
    first_cursors: dict[str, str] = {}
    for state in recorded.states():
        for parent, cursor in (state["bookmarks"].get(stream, {}).get("in_progress") or {}).items():
            first_cursors.setdefault(parent, cursor)
    order = sorted(parents)
    paged = next(parent for parent in order if parent in first_cursors)
    at = order.index(paged)
    return {
        "version": recorded.state["bookmarks"][stream]["version"],
        "complete": False,
        "done_through": order[at - 1] if at else None,
        "done_beyond": order[at + 1 : at + 2],
        "in_progress": {paged: first_cursors[paged]},
    }


def test_resume_mid_membership_passes(runner):
    # Seed 2729: the list and the segment with a second page sort second by id, so the
    # state has a done_through for both, and a done_beyond for the lists.
    with helpers.sandbox(contacts=350, lists=3, segments=2, seed=2729, api_key=API_KEY) as sb:
        clock = SandboxClock(sb, SANDBOX_START)
        config = config_for(runner, sb, lists_contacts_source="lists")
        catalog = catalog_variant(helpers.discover(config), ["lists_contacts", "smart_segments_contacts"])
        scenario = Scenario("resume-memberships", sb)
        recorded = runner.run(clock, SANDBOX_START, config, catalog)
        scenario.add("recorded: lists_contacts list by list, smart_segments_contacts", recorded)
        parents = parents_of(sb)
        bookmarks = {stream: mid_pass(recorded, stream, parents[stream]) for stream in PARENT_KEYS}
        assert all(entry["done_through"] for entry in bookmarks.values()), bookmarks
        assert bookmarks["lists_contacts"]["done_beyond"], bookmarks
        killed = {"currently_syncing": "lists_contacts", "bookmarks": bookmarks}
        resumed = runner.run(clock, SANDBOX_START + HOUR, config, catalog, killed)
        scenario.add("resumed mid-pass: one parent done, one in progress, one done after it", resumed, killed)
        runner.check(scenario)
    runner.assert_all_unchanged()


def test_awkward_values(runner):
    with helpers.sandbox(contacts=20, lists=3, segments=2, seed=5, api_key=API_KEY, awkward_values=True) as sb:
        clock = SandboxClock(sb, SANDBOX_START)
        scenario = Scenario("awkward-values", sb)
        scenario.add("every stream, no catalog", runner.run(clock, SANDBOX_START, config_for(runner, sb)))
        runner.check(scenario)
    runner.assert_all_unchanged()
