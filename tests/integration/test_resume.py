"""Resumable state. The real CLI is SIGKILLed mid-scan (the sandbox is
slowed with latency so that a scan takes a few seconds), then run again with the
last STATE it printed. Across the two runs nothing may be lost, little may be
read twice, the contacts `updated_at` bookmark moves only when a scan completes,
and the interrupted stream runs first on resume, followed by every other one.
"""

from __future__ import annotations

import functools
import json
from collections import Counter

import helpers
import pytest

from tap_autopilot.sandbox import Sandbox

API_KEY = helpers.SECRET_API_KEY
# Every run here must be clean: no traceback, the key never printed.
run_tap = functools.partial(helpers.run_tap, timeout=180, secret=API_KEY)
run_and_kill = functools.partial(helpers.run_and_kill, secret=API_KEY)


# ----- helpers (on top of the shared helpers.py) ---------------------------------------


def unit_of(path):
    """A sandbox request path -> the unit of work whose pages it reads (None for listings)."""
    parts = path.split("/")[2:]  # drop '' and 'v1'
    if parts[0] == "contacts" and parts[1:2] != ["custom_fields"]:
        return "contacts"
    if parts[0] == "list":
        return "list " + parts[1]
    if parts[0] == "smart_segments" and len(parts) > 1:
        return "segment " + parts[1]
    return None


def pages_read_twice(first_paths, second_paths):
    """{unit: pages requested by both runs}: what the resume read again."""
    twice: Counter[str] = Counter()
    for path in set(first_paths) & set(second_paths):
        unit = unit_of(path)
        if unit:
            twice[unit] += 1
    return twice


def expected_data(sb: Sandbox):
    """expected_keys, and the newest updated_at of every contact."""
    expected = helpers.expected_keys(sb)
    newest = max(helpers.instant(doc["updated_at"]) for doc in sb.dataset.iter_contacts())
    return {**expected, "max_updated_at": newest}


def schema_order(out: helpers.TapRun):
    return [m["stream"] for m in out.messages if m.get("type") == "SCHEMA"]


# ----- the contacts scan ------------------------------------------------------------


def test_kill_mid_contacts_scan_and_resume(tmp_path, sandbox_factory):
    sb = sandbox_factory(contacts=1500, lists=3, segments=2, seed=31, api_key=API_KEY, dense=True)
    config = helpers.write_secret_config(tmp_path, sb)
    catalog = helpers.select(helpers.discover(config), streams=helpers.STREAM_NAMES)
    expected = expected_data(sb)
    sb.set_faults(latency_ms=60)
    sb.reset_stats()

    def mid_scan(messages):
        if sum(1 for m in messages if m.get("type") == "RECORD" and m["stream"] == "contacts") < 400:
            return False
        last = messages[-1]
        return (
            last.get("type") == "STATE"
            and (last["value"]["bookmarks"].get("contacts", {}).get("scan") or {}).get("cursor") is not None
        )

    first = run_and_kill(helpers.tap_args(tmp_path, config, catalog, name="first"), mid_scan)
    first_paths = sb.stats()["paths"]
    interrupted = first.state
    entry = interrupted["bookmarks"]["contacts"]
    assert interrupted["currently_syncing"] == "contacts"
    assert "updated_at" not in entry, "the updated_at bookmark moved before the scan completed"
    assert entry["scan"]["cursor"], entry
    assert sb.dataset.position_of(entry["scan"]["cursor"]) < len(expected["contacts"]) - 1

    sb.reset_stats()
    second = run_tap(helpers.tap_args(tmp_path, config, catalog, state=interrupted, name="second"))
    second_paths = sb.stats()["paths"]
    assert second.returncode == 0, second

    # Nothing lost: the union of both runs is the sandbox's data, and each run emits a row once.
    for stream in helpers.STREAM_NAMES:
        helpers.assert_exactly_once(second, stream)
        union = set(first.keys(stream)) | set(second.keys(stream))
        assert union == expected[stream], f"{stream}: {len(expected[stream] - union)} rows lost"
    # Little re-read: at most the one page each unit had in flight.
    twice = pages_read_twice(first_paths, second_paths)
    assert all(n <= 1 for n in twice.values()), twice
    assert twice["contacts"] <= 1
    contact_pages = -(-len(expected["contacts"]) // 100)
    assert (
        sum(n for path, n in {**first_paths}.items() if unit_of(path) == "contacts")
        + sum(n for path, n in second_paths.items() if unit_of(path) == "contacts")
        <= contact_pages + 1
    )
    # The resumed run starts with the interrupted stream, then runs every other one.
    assert schema_order(second)[0] == "contacts"
    assert second.states()[0]["currently_syncing"] == "contacts"
    final = second.state
    assert final["currently_syncing"] is None
    assert "scan" not in final["bookmarks"]["contacts"]
    assert helpers.instant(final["bookmarks"]["contacts"]["updated_at"]) == expected["max_updated_at"]
    for stream in helpers.FULL_TABLE_STREAMS:
        assert final["bookmarks"][stream].get("complete") is True, (stream, final)
    for stream in ("lists", "smart_segments"):
        assert set(second.keys(stream)) == expected[stream], f"{stream} skipped on resume"


def _interrupted_incremental_scan(tmp_path, sb):
    """A complete run, then one killed half-way through its (incremental) contacts scan."""
    config = helpers.write_secret_config(tmp_path, sb)
    catalog = helpers.select(helpers.discover(config), streams=["contacts"])
    full = run_tap(helpers.tap_args(tmp_path, config, catalog, name="full"))
    assert full.returncode == 0, full
    done = full.state["bookmarks"]["contacts"]["updated_at"]
    sb.set_faults(latency_ms=60)
    killed = run_and_kill(
        helpers.tap_args(tmp_path, config, catalog, state=full.state, name="killed"),
        lambda messages: messages[-1].get("type") == "STATE" and helpers.contacts_scan_position(sb, messages) >= 500,
    )
    sb.set_faults(latency_ms=None)
    entry = killed.state["bookmarks"]["contacts"]
    assert entry["updated_at"] == done, "the updated_at bookmark changed before the scan completed"
    assert helpers.instant(entry["scan"]["threshold"]) == helpers.instant(done)
    position = sb.dataset.position_of(entry["scan"]["cursor"])
    assert 500 <= position < len(sb.dataset) - 100
    return catalog, config, killed.state, position


def test_contact_touched_between_kill_and_resume_is_emitted(tmp_path, sandbox_factory):
    sb = sandbox_factory(contacts=1500, lists=1, segments=1, seed=32, api_key=API_KEY, dense=True)
    catalog, config, interrupted, position = _interrupted_incremental_scan(tmp_path, sb)
    done = helpers.instant(interrupted["bookmarks"]["contacts"]["updated_at"])
    ahead = sb.dataset.contact_ids()[len(sb.dataset) - 7]  # on a page the resumed scan still has to read
    behind = sb.dataset.contact_ids()[position - 150]  # on a page the killed run had already read
    helpers.admin(sb, "touch", {"contact_ids": [behind, ahead]})
    touched_at = helpers.instant(sb.dataset.contact(ahead)["updated_at"])
    assert touched_at > done

    resumed = run_tap(helpers.tap_args(tmp_path, config, catalog, state=interrupted, name="resumed"))
    assert resumed.returncode == 0, resumed
    by_id = {r["contact_id"]: r for r in resumed.records("contacts")}
    assert ahead in by_id, "the contact touched before the resume was not emitted"
    assert "(touched 1)" in by_id[ahead]["title"] and helpers.instant(by_id[ahead]["updated_at"]) == touched_at
    helpers.assert_exactly_once(resumed, "contacts")
    bookmark = helpers.instant(resumed.state["bookmarks"]["contacts"]["updated_at"])
    # It advances, but not past the scan's start (less the clock-skew margin): the touch came
    # after the scan began, so the next run takes the touched contacts again.
    assert done < bookmark <= touched_at, "the bookmark did not advance when the scan completed"
    assert "scan" not in resumed.state["bookmarks"]["contacts"]

    # The one touched on an already-read page is not lost: the next run has it.
    after = run_tap(helpers.tap_args(tmp_path, config, catalog, state=resumed.state, name="after"))
    assert after.returncode == 0, after
    assert behind in {r["contact_id"] for r in after.records("contacts")}


def test_contacts_touched_one_after_the_other_during_an_interrupted_scan_are_not_lost(tmp_path, sandbox_factory):
    sb = sandbox_factory(contacts=1500, lists=1, segments=1, seed=33, api_key=API_KEY, dense=True)
    catalog, config, interrupted, position = _interrupted_incremental_scan(tmp_path, sb)
    behind = sb.dataset.contact_ids()[position - 150]
    ahead = sb.dataset.contact_ids()[len(sb.dataset) - 7]
    helpers.admin(sb, "touch", {"contact_ids": [behind]})  # first this one ...
    helpers.admin(sb, "touch", {"contact_ids": [ahead]})  # ... then, a second later, this one
    resumed = run_tap(helpers.tap_args(tmp_path, config, catalog, state=interrupted, name="resumed"))
    after = run_tap(helpers.tap_args(tmp_path, config, catalog, state=resumed.state, name="after"))
    assert resumed.returncode == after.returncode == 0
    emitted = {r["contact_id"]: r["title"] for out in (resumed, after) for r in out.records("contacts")}
    assert ahead in emitted
    assert behind in emitted and "(touched 1)" in emitted[behind], "a change made during the scan was lost"


# ----- membership scans ----------------------------------------------------------


def _biggest_list(expected):
    """(the list with the most members, {list id: its number of members})."""
    sizes = Counter(gid for gid, _ in expected["lists_contacts"])
    return max(sizes, key=lambda gid: sizes[gid]), sizes


def _big_list_in_progress(stream, big, min_records):
    def check(messages):
        last = messages[-1]
        if last.get("type") != "STATE":
            return False
        entry = last["value"]["bookmarks"].get(stream) or {}
        rows = sum(
            1
            for m in messages
            if m.get("type") == "RECORD" and m["stream"] == stream and m["record"][helpers.PARENT_KEYS[stream]] == big
        )
        return big in (entry.get("in_progress") or {}) and rows >= min_records

    return check


def test_kill_mid_membership_scan_and_resume(tmp_path, sandbox_factory):
    sb = sandbox_factory(contacts=3000, lists=2, segments=1, seed=34, api_key=API_KEY, dense=True)
    config = helpers.write_secret_config(tmp_path, sb)
    catalog = helpers.select(helpers.discover(config), streams=["lists_contacts"])
    expected = expected_data(sb)
    big, sizes = _biggest_list(expected)
    assert sizes[big] > 1000
    sb.set_faults(latency_ms=60)
    sb.reset_stats()

    first = run_and_kill(
        helpers.tap_args(tmp_path, config, catalog, name="first"), _big_list_in_progress("lists_contacts", big, 300)
    )
    first_paths = sb.stats()["paths"]
    interrupted = first.state
    entry = interrupted["bookmarks"]["lists_contacts"]
    assert interrupted["currently_syncing"] == "lists_contacts"
    assert entry["complete"] is False and entry["in_progress"].get(big), entry
    # Small state: which parents are done and the page of those in progress, nothing per contact.
    assert set(entry) <= {"version", "complete", "done_through", "done_beyond", "in_progress"}, entry
    assert len(entry.get("in_progress") or {}) <= len(expected["lists"])
    assert len(json.dumps(interrupted)) < 2000

    sb.reset_stats()
    second = run_tap(helpers.tap_args(tmp_path, config, catalog, state=interrupted, name="second"))
    second_paths = sb.stats()["paths"]
    assert second.returncode == 0, second
    helpers.assert_exactly_once(second, "lists_contacts")
    union = set(first.keys("lists_contacts")) | set(second.keys("lists_contacts"))
    assert union == expected["lists_contacts"], f"{len(expected['lists_contacts'] - union)} pairs lost"
    twice = pages_read_twice(first_paths, second_paths)
    assert all(n <= 1 for n in twice.values()), twice
    big_pages = -(-sizes[big] // 100)
    assert sum(n for path, n in second_paths.items() if unit_of(path) == "list " + big) < big_pages
    # One table version across the crash, activated when the pass completes.
    versions = {m["version"] for m in second.messages if m.get("type") == "RECORD"}
    assert versions == {entry["version"]}
    assert {"type": "ACTIVATE_VERSION", "stream": "lists_contacts", "version": entry["version"]} in second.messages
    final = second.state
    assert final["currently_syncing"] is None
    assert final["bookmarks"]["lists_contacts"] == {"version": entry["version"], "complete": True}


def test_list_deleted_between_kill_and_resume_is_dropped_cleanly(tmp_path, sandbox_factory):
    sb = sandbox_factory(contacts=3000, lists=2, segments=1, seed=37, api_key=API_KEY, dense=True)
    config = helpers.write_secret_config(tmp_path, sb)
    catalog = helpers.select(helpers.discover(config), streams=["lists_contacts"])
    expected = expected_data(sb)
    big, _ = _biggest_list(expected)
    sb.set_faults(latency_ms=60)
    first = run_and_kill(
        helpers.tap_args(tmp_path, config, catalog, name="first"), _big_list_in_progress("lists_contacts", big, 300)
    )
    assert first.state["bookmarks"]["lists_contacts"]["in_progress"].get(big)
    helpers.admin(sb, "delete_list", {"list_id": big})  # gone from /lists; its pages answer 404
    sb.reset_stats()

    second = run_tap(helpers.tap_args(tmp_path, config, catalog, state=first.state, name="second"))
    assert second.returncode == 0, second
    # The list is gone from /lists, so the resumed run has no reason to ask for it any more
    # (a list that vanishes after /lists was read is test_faults' 404 case).
    assert not [path for path in sb.stats()["paths"] if big in path], sb.stats()["paths"]
    union = set(first.keys("lists_contacts")) | set(second.keys("lists_contacts"))
    others = {pair for pair in expected["lists_contacts"] if pair[0] != big}
    assert others <= union, f"{len(others - union)} pairs of the other list lost"
    assert not {pair for pair in second.keys("lists_contacts") if pair[0] == big}
    final = second.state
    assert final["currently_syncing"] is None
    assert final["bookmarks"]["lists_contacts"] == {
        "version": first.state["bookmarks"]["lists_contacts"]["version"],
        "complete": True,
    }, "stale progress left in the state"


def test_resume_runs_the_interrupted_stream_first_then_every_other(tmp_path, sandbox_factory):
    streams = list(helpers.FULL_TABLE_STREAMS)
    sb = sandbox_factory(contacts=3000, lists=2, segments=2, seed=35, api_key=API_KEY, dense=True)
    config = helpers.write_secret_config(tmp_path, sb)
    catalog = helpers.select(helpers.discover(config), streams=streams)
    expected = expected_data(sb)
    big, _ = _biggest_list(expected)
    sb.set_faults(latency_ms=60)

    first = run_and_kill(
        helpers.tap_args(tmp_path, config, catalog, name="first"), _big_list_in_progress("lists_contacts", big, 300)
    )
    interrupted = first.state
    assert interrupted["currently_syncing"] == "lists_contacts"  # lists came before it and is complete
    assert interrupted["bookmarks"]["lists"]["complete"] is True

    second = run_tap(helpers.tap_args(tmp_path, config, catalog, state=interrupted, name="second"))
    assert second.returncode == 0, second
    assert any("lists_contacts" in line for line in second.stderr.splitlines() if "esum" in line), second
    assert schema_order(second) == ["lists_contacts", "lists", "smart_segments", "smart_segments_contacts"]
    assert second.states()[0]["currently_syncing"] == "lists_contacts"
    # Then every other selected stream: none skipped.
    for stream in ("lists", "smart_segments"):
        assert set(second.keys(stream)) == expected[stream], f"{stream} skipped on resume"
    for stream in helpers.PARENT_KEYS:
        helpers.assert_exactly_once(second, stream)
        union = set(first.keys(stream)) | set(second.keys(stream))
        assert union == expected[stream], f"{stream}: {len(expected[stream] - union)} pairs lost"
    final = second.state
    assert final["currently_syncing"] is None
    assert all(final["bookmarks"][stream]["complete"] is True for stream in streams), final


# ----- a state naming an unknown stream -------------------------------------------------


@pytest.mark.parametrize("named", ["no_such_stream", "smart_segments"], ids=["unknown", "not-selected"])
def test_currently_syncing_an_unknown_stream_warns_and_runs_on(tmp_path, sandbox_factory, named):
    sb = sandbox_factory(contacts=300, lists=3, segments=2, seed=36, api_key=API_KEY, dense=True)
    streams = ["contacts", "lists", "lists_contacts"]
    config = helpers.write_secret_config(tmp_path, sb)
    catalog = helpers.select(helpers.discover(config), streams=streams)
    expected = expected_data(sb)
    out = run_tap(helpers.tap_args(tmp_path, config, catalog, state={"currently_syncing": named, "bookmarks": {}}))
    assert out.returncode == 0, out
    assert [line for line in out.lines("WARNING") if named in line], out
    assert not [line for line in out.stderr.splitlines() if line.startswith(("ERROR", "CRITICAL"))], out
    for stream in streams:
        helpers.assert_exactly_once(out, stream)
        assert set(out.keys(stream)) == expected[stream], stream
    assert out.state["currently_syncing"] is None
