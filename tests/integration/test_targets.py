"""The tap with real Singer tools, and its versioned full-table flow at the message level.

- target-jsonl end to end (tap stdout piped into the target): one file per
  stream, rows equal to the sandbox's data.
- singer-tools' singer-check-tap accepts the tap's output (stdin mode).
- ACTIVATE_VERSION: a first-ever run activates each full-table stream before
  its first record and after its last; a run from that state activates once,
  after the pass, with a new, higher version; a run killed mid-pass resumes
  with the same version and activates only when the pass completes.

Everything runs the installed tap CLI as a subprocess against the sandbox over
real sockets.
"""

from __future__ import annotations

import json
import re
import signal
import subprocess
from pathlib import Path

import helpers
import pytest
import tools

from tap_autopilot.sandbox import Sandbox

TIMEOUT = 180


# ---- small helpers (on top of helpers.py) ------------------------------------------------


def _write_json(path: Path, obj) -> Path:
    return Path(helpers.write_json(path, obj))


def _config(tmp: Path, sb: Sandbox) -> Path:
    return Path(helpers.write_config(tmp, sb))  # max_requests_per_second 100: quick tests


def _catalog(tmp: Path, config: Path) -> Path:
    """--discover through the CLI, then select every stream."""
    catalog = helpers.select(helpers.discover(config))
    assert sorted(e["tap_stream_id"] for e in catalog["streams"]) == sorted(helpers.ALL_STREAMS)
    return _write_json(tmp / "catalog.json", catalog)


def _sync_argv(config: Path, catalog: Path, state: Path | None = None) -> list[str]:
    argv = tools.tap_cmd() + ["--config", str(config), "--catalog", str(catalog)]
    if state is not None:
        argv += ["--state", str(state)]
    return argv


def _run_tap(config: Path, catalog: Path, state: Path | None = None) -> list[dict]:
    run = helpers.run_tap(_sync_argv(config, catalog, state)[len(tools.tap_cmd()) :], timeout=TIMEOUT)
    assert run.returncode == 0, run
    return run.messages


def _last_state(messages: list[dict]) -> dict:
    state = helpers.last_state(messages)
    assert state is not None, "the tap wrote no STATE"
    return state


def _records(messages: list[dict], stream: str) -> list[dict]:
    return [m for m in messages if m["type"] == "RECORD" and m["stream"] == stream]


@pytest.fixture
def sb():
    with helpers.sandbox(contacts=300, lists=3, segments=2, seed=23) as sandbox:
        yield sandbox


@pytest.fixture
def synced(tmp_path, sb):
    """(config, catalog) for the sandbox, discovered through the CLI."""
    config = _config(tmp_path, sb)
    return config, _catalog(tmp_path, config)


# ---- target-jsonl ----------------------------------------------------------------------


def test_target_jsonl_end_to_end(tmp_path, sb, synced):
    tools.require(tools.TARGET_JSONL)
    config, catalog = synced
    out_dir = tmp_path / "jsonl"
    out_dir.mkdir()
    target_cfg = _write_json(
        tmp_path / "target-jsonl.json", {"destination_path": str(out_dir), "do_timestamp_file": False}
    )
    with open(tmp_path / "tap.log", "wb") as tap_log, open(tmp_path / "target.log", "wb") as target_log:
        tap = subprocess.Popen(_sync_argv(config, catalog), stdout=subprocess.PIPE, stderr=tap_log)
        target = subprocess.Popen(
            [str(tools.TARGET_JSONL), "--config", str(target_cfg)],
            stdin=tap.stdout,
            stdout=subprocess.PIPE,
            stderr=target_log,
        )
        assert tap.stdout is not None
        tap.stdout.close()  # the target owns the read end now: a real pipe between the two
        target_out, _ = target.communicate(timeout=TIMEOUT)
        tap_rc = tap.wait(timeout=TIMEOUT)
    assert tap_rc == 0, (tmp_path / "tap.log").read_text()[-3000:]
    assert target.returncode == 0, (tmp_path / "target.log").read_text()[-3000:]

    assert sorted(p.name for p in out_dir.iterdir()) == sorted(f"{s}.jsonl" for s in helpers.ALL_STREAMS)
    expected = helpers.expected_keys(sb)
    for stream in helpers.STREAM_NAMES:
        rows = [json.loads(line) for line in (out_dir / f"{stream}.jsonl").read_text().splitlines()]
        keys = [helpers.key_of(stream, row) for row in rows]
        assert len(keys) == len(expected[stream]), stream  # one line per row, no repeats
        assert set(keys) == expected[stream], stream

    # target-jsonl echoes the last STATE: every full-table pass completed, contacts bookmarked.
    state = json.loads(target_out.decode().strip().splitlines()[-1])
    assert state["currently_syncing"] is None
    for stream in helpers.FULL_TABLE_STREAMS:
        assert state["bookmarks"][stream]["complete"] is True
        assert isinstance(state["bookmarks"][stream]["version"], int)
    assert state["bookmarks"]["contacts"]["updated_at"].startswith("2025-")


# ---- singer-check-tap ----------------------------------------------------------------------


def test_singer_check_tap_accepts_output(tmp_path, sb, synced):
    tools.require(tools.SINGER_CHECK_TAP)
    config, catalog = synced
    proc = subprocess.run(_sync_argv(config, catalog), capture_output=True, timeout=TIMEOUT)
    assert proc.returncode == 0, proc.stderr.decode(errors="replace")[-3000:]
    check = tools.check_singer_output(proc.stdout)
    assert check.returncode == 0, check.stdout[-3000:] + check.stderr[-3000:]
    assert "The output is valid." in check.stdout
    # Its per-stream table: | stream | records | schemas |
    counts = {
        m.group(1): int(m.group(2))
        for m in re.finditer(r"^\|\s*(\w+)\s*\|\s*(\d+)\s*\|\s*(\d+)\s*\|$", check.stdout, re.M)
    }
    expected = helpers.expected_keys(sb)
    assert counts == dict({stream: len(expected[stream]) for stream in helpers.STREAM_NAMES}, completed_passes=4)


# ---- ACTIVATE_VERSION at the message level ---------------------------------------------------


def _check_version_flow(messages: list[dict], state_in: dict) -> dict[str, int]:
    """Assert the versioned full-table flow of one run given the state it started from;
    return each full-table stream's version in this run.

    - no version in state (first-ever pass): ACTIVATE_VERSION before the stream's first
      RECORD and again after its last, both with the new version;
    - an incomplete pass in state: the same version, one ACTIVATE_VERSION after the last RECORD;
    - a completed pass in state: a new, higher version, one ACTIVATE_VERSION after the last RECORD.
    Every RECORD of the stream carries the version; contacts (incremental) carry none.
    """
    bookmarks = (state_in or {}).get("bookmarks") or {}
    versions = {}
    for stream in helpers.FULL_TABLE_STREAMS:
        positions = [(i, m) for i, m in enumerate(messages) if m.get("stream") == stream]
        records = [(i, m) for i, m in positions if m["type"] == "RECORD"]
        activations = [(i, m) for i, m in positions if m["type"] == "ACTIVATE_VERSION"]
        assert records, f"{stream}: no records"
        version = activations[-1][1]["version"] if activations else None
        assert isinstance(version, int), f"{stream}: no ACTIVATE_VERSION"
        versions[stream] = version
        assert {m.get("version") for _, m in records} == {version}, f"{stream}: records not all at {version}"
        assert activations[-1][0] > records[-1][0], f"{stream}: not activated after its last record"

        previous = bookmarks.get(stream) or {}
        if "version" not in previous:
            assert len(activations) == 2, f"{stream}: first-ever pass should activate twice"
            assert activations[0][0] < records[0][0], f"{stream}: not activated before its first record"
            assert activations[0][1]["version"] == version
        else:
            assert len(activations) == 1, f"{stream}: activated {len(activations)} times, expected once"
            if previous.get("complete", True):
                assert version > previous["version"], f"{stream}: version {version} not above {previous['version']}"
            else:
                assert version == previous["version"], f"{stream}: an interrupted pass must keep its version"
    contacts = _records(messages, "contacts")
    assert contacts and all("version" not in m for m in contacts)
    assert not [m for m in messages if m["type"] == "ACTIVATE_VERSION" and m["stream"] == "contacts"]
    return versions


def test_versions_first_run_then_second_run(tmp_path, sb, synced):
    config, catalog = synced
    first = _run_tap(config, catalog)
    v1 = _check_version_flow(first, {})
    state1 = _last_state(first)
    assert {s: state1["bookmarks"][s] for s in helpers.FULL_TABLE_STREAMS} == {
        s: {"version": v1[s], "complete": True} for s in helpers.FULL_TABLE_STREAMS
    }

    # A contact leaves a list between runs: the second pass no longer has it, under a new version.
    lid = sb.dataset.lists()[0]["list_id"]
    gone = sb.dataset.list_members(lid)[0]
    sb.dataset.remove_from_list(lid, [gone])

    second = _run_tap(config, catalog, _write_json(tmp_path / "state1.json", state1))
    v2 = _check_version_flow(second, state1)
    assert all(v2[s] > v1[s] for s in helpers.FULL_TABLE_STREAMS)
    pairs = {helpers.key_of("lists_contacts", m["record"]) for m in _records(second, "lists_contacts")}
    assert (lid, gone) not in pairs
    assert pairs == helpers.expected_keys(sb)["lists_contacts"]
    assert _last_state(second)["bookmarks"]["lists_contacts"] == {"version": v2["lists_contacts"], "complete": True}


def test_version_is_higher_than_the_last_even_if_the_clock_is_behind(tmp_path, sb, synced):
    """A state written by a machine whose clock ran ahead (or before the clock was set back):
    the next version must still be higher, or the target keeps rows of the 'newer' old version."""
    config, catalog = synced
    future = 4102444800000  # 2100-01-01 in ms
    state = {
        "bookmarks": {s: {"version": future + i, "complete": True} for i, s in enumerate(helpers.FULL_TABLE_STREAMS)}
    }
    messages = _run_tap(config, catalog, _write_json(tmp_path / "future.json", state))
    versions = _check_version_flow(messages, state)
    assert all(versions[s] > state["bookmarks"][s]["version"] for s in helpers.FULL_TABLE_STREAMS)


def test_interrupted_pass_resumes_with_the_same_version(tmp_path, sb, synced):
    """Kill the tap (SIGKILL) in the middle of lists_contacts; run again from the last STATE
    it had written at that point: the pass goes on under the same version, is activated only
    at its end, and the two runs together cover every membership exactly."""
    config, catalog = synced
    sb.set_faults(latency_ms=150)  # slow enough that the kill lands mid-pass
    tap = subprocess.Popen(_sync_argv(config, catalog), stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
    assert tap.stdout is not None
    seen: list[dict] = []
    cut_state = None
    try:
        for line in tap.stdout:
            message = json.loads(line)
            seen.append(message)
            if message["type"] == "STATE" and _records(seen, "lists_contacts"):
                cut_state = message["value"]
                break
    finally:
        tap.send_signal(signal.SIGKILL)
        tap.stdout.close()
        tap.wait(timeout=TIMEOUT)
    assert tap.returncode == -signal.SIGKILL
    assert cut_state is not None, "the tap ended before writing any lists_contacts record"
    entry = cut_state["bookmarks"]["lists_contacts"]
    assert entry["complete"] is False
    killed_version = entry["version"]
    # What the target saw of the killed run: up-front activation for the first-ever pass, none after.
    activations = [m for m in seen if m["type"] == "ACTIVATE_VERSION" and m["stream"] == "lists_contacts"]
    assert [m["version"] for m in activations] == [killed_version]
    assert {m["version"] for m in _records(seen, "lists_contacts")} == {killed_version}

    sb.set_faults(latency_ms=None)
    resumed = _run_tap(config, catalog, _write_json(tmp_path / "cut.json", cut_state))
    versions = _check_version_flow(resumed, cut_state)
    assert versions["lists_contacts"] == killed_version

    before = {helpers.key_of("lists_contacts", m["record"]) for m in _records(seen, "lists_contacts")}
    after = {helpers.key_of("lists_contacts", m["record"]) for m in _records(resumed, "lists_contacts")}
    assert before | after == helpers.expected_keys(sb)["lists_contacts"]
    assert len(after) < len(helpers.expected_keys(sb)["lists_contacts"])  # it resumed, it did not start over
    final = _last_state(resumed)["bookmarks"]["lists_contacts"]
    assert final == {"version": killed_version, "complete": True}

    # And the run after that starts a new pass under a new version.
    again = _run_tap(config, catalog, _write_json(tmp_path / "after.json", _last_state(resumed)))
    assert _check_version_flow(again, _last_state(resumed))["lists_contacts"] > killed_version


def test_incomplete_pass_in_state_is_not_activated_early(tmp_path, sb, synced):
    """A hand-fed state with complete: false (what a kill leaves): same version, no up-front activation."""
    config, catalog = synced
    state = {
        "currently_syncing": "smart_segments_contacts",
        "bookmarks": {"smart_segments_contacts": {"version": 1700000000000, "complete": False}},
    }
    messages = _run_tap(config, catalog, _write_json(tmp_path / "incomplete.json", state))
    versions = _check_version_flow(messages, state)
    assert versions["smart_segments_contacts"] == 1700000000000
    assert _last_state(messages)["bookmarks"]["smart_segments_contacts"] == {"version": 1700000000000, "complete": True}
