"""scripts/run_pipeline_state.py, the JSON half of scripts/run-pipeline.sh: which target line
is a state (the state-shape rule), how a run's outcome is named, what the history counts,
how per-run logs are named and pruned, and how a state file is written (through a symlink,
keeping its mode, atomically), read from the script itself (it is not part of the package)."""

import importlib.util
import json
import os
import stat
from pathlib import Path

import pytest

from tap_autopilot.state.document import State

REPO = Path(__file__).resolve().parents[2]
_spec = importlib.util.spec_from_file_location("run_pipeline_state", REPO / "scripts" / "run_pipeline_state.py")
assert _spec is not None and _spec.loader is not None
rps = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(rps)


# ---- the state-shape rule -------------------------------------------------------------


def test_every_state_the_tap_writes_has_the_shape_the_wrapper_saves():
    fresh = State({}).to_dict()  # the first run's first STATE
    assert rps.is_state(fresh)
    state = State({"bookmarks": {"contacts": {"updated_at": "2024-01-01T00:00:00Z"}}})
    state.set_currently_syncing("contacts")
    assert rps.is_state(state.to_dict())
    assert rps.is_state(json.loads(json.dumps(state.to_dict())))


@pytest.mark.parametrize(
    "value",
    [
        {},  # the tap never writes it: its every STATE has bookmarks
        {"note": "loaded 300 rows"},
        {"bookmarks": []},
        {"bookmarks": None},
        {"bookmarks": {"contacts": "garbage"}},
        ["bookmarks"],
        "bookmarks",
        42,
        None,
    ],
)
def test_anything_else_is_not_a_state(value):
    assert not rps.is_state(value)


def test_the_last_state_line_wins_and_other_json_is_counted_not_saved():
    lines = [
        '{"bookmarks": {"contacts": {"updated_at": "A"}}}\n',
        "target-jsonl: loaded 300 rows\n",  # not JSON: not counted
        '{"bookmarks": {"contacts": {"updated_at": "B"}}}\n',
        '{"note": "summary", "rows": 300}\n',
        "[1, 2]\n",
    ]
    state, ignored, first = rps.last_state(lines)
    assert state == {"bookmarks": {"contacts": {"updated_at": "B"}}}
    assert (ignored, first) == (2, 'an object with keys "note", "rows"')


def test_no_state_at_all():
    assert rps.last_state(["{}\n", "done\n"]) == (None, 1, "an empty object")
    assert rps.last_state([]) == (None, 0, "")


def test_json_that_is_not_a_state_is_described_by_its_key_names_never_its_values():
    described = rps.last_state(['{"api_key": "sk-SECRET", "a": 1, "b": 2, "c": 3, "d": 4, "e": 5}\n'])[2]
    assert described == 'an object with keys "api_key", "a", "b", "c", "d", ...'
    assert "SECRET" not in described
    assert rps.last_state(['"sk-SECRET"\n'])[2] == "a string"
    assert rps.last_state(["[1]\n", "true\n"])[1:] == (2, "a list")


# ---- outcomes and counts ------------------------------------------------------------


@pytest.mark.parametrize(
    ("stopped_by", "tap_exit", "target_exit", "expected"),
    [
        ("", 0, 0, "completed"),
        ("", 1, 0, "tap failed"),
        ("", 1, 2, "tap failed"),  # the tap's failure comes first, as in the exit status
        ("", 0, 2, "target failed"),
        ("SIGTERM", 143, 0, "stopped by SIGTERM"),
        ("SIGINT", 143, 137, "stopped by SIGINT"),  # a stop names the signal whatever they exited with
        ("SIGHUP", 0, 0, "stopped by SIGHUP"),
    ],
)
def test_the_outcome_of_a_run(stopped_by, tap_exit, target_exit, expected):
    assert rps.outcome(stopped_by, tap_exit, target_exit) == expected


def test_a_vanished_run_is_named_from_its_marker_with_no_end(tmp_path):
    log = tmp_path / "run.log"
    log.write_text(
        'INFO METRIC: {"type": "counter", "metric": "record_count", "value": 7, "tags": {"endpoint": "lists"}}\n'
    )
    run = rps.vanished_run({"pid": 12, "started_at": "2026-01-01T00:00:00Z", "log": str(log)})
    assert run["outcome"] == rps.VANISHED == "vanished"
    assert (run["started_at"], run["ended_at"], run["seconds"]) == ("2026-01-01T00:00:00Z", None, None)
    assert (run["tap_exit"], run["target_exit"], run["state_advanced"]) == (None, None, False)
    assert (run["records"], run["log"]) == ({"lists": 7}, str(log))
    assert rps.vanished_run({})["log"] is None  # a marker cut short still gives a line


def test_the_history_counts_come_from_the_tap_log():
    lines = [
        'INFO METRIC: {"type": "timer", "metric": "http_request_duration", "value": 0.1, '
        '"tags": {"endpoint": "contacts", "http_status_code": 200}}\n',
        'INFO METRIC: {"type": "timer", "metric": "http_request_duration", "value": 0.1, '
        '"tags": {"endpoint": "contacts", "http_status_code": 429}}\n',
        "WARNING contacts: HTTP 429; retrying in 1.0 s (attempt 1)\n",
        'INFO METRIC: {"type": "counter", "metric": "record_count", "value": 100, "tags": {"endpoint": "contacts"}}\n',
        'INFO METRIC: {"type": "counter", "metric": "record_count", "value": 20, "tags": {"endpoint": "contacts"}}\n',
        "INFO METRIC: not json\n",
        'INFO METRIC: {"type": "counter", "metric": "record_count", "value": "n/a", '
        '"tags": {"endpoint": "contacts"}}\n',
        'INFO METRIC: {"type": "counter", "metric": "record_count", "value": null, "tags": {"endpoint": "lists"}}\n',
    ]
    assert rps.tap_counts(lines) == {"records": {"contacts": 120}, "requests": 2, "rate_limited": 1, "retries": 1}


# ---- per-run logs ---------------------------------------------------------------------


def test_log_names_come_from_the_start_time_and_sort_by_it():
    first = rps.log_name("1733600000.5", "99999")
    later = rps.log_name("1733600000.500000001", "7")
    assert first == "20241207T193320.500000000Z-99999.log"
    assert later == "20241207T193320.500000001Z-7.log"
    assert sorted([later, first]) == [first, later]
    assert rps.LOG_NAME.match(first) and rps.LOG_NAME.match(later)


def test_only_the_newest_logs_are_kept_and_other_files_are_left_alone():
    names = [rps.log_name(f"17336000{second:02d}.0", "1") for second in range(5)] + ["notes.txt", "x.log"]
    assert rps.logs_to_remove(names, 2) == sorted(names[:3])
    assert rps.logs_to_remove(names, 30) == []


# ---- writing a state file -------------------------------------------------------------


def test_a_state_is_written_through_a_symlink_keeping_its_mode(tmp_path):
    shared = tmp_path / "shared"
    shared.mkdir()
    real = shared / "acme.json"
    real.write_text("{}\n")
    real.chmod(0o600)
    link = tmp_path / "state.json"
    link.symlink_to(real)
    rps.write_atomically(os.path.realpath(link), '{"bookmarks": {}}\n', "state")
    assert link.is_symlink() and real.read_text() == '{"bookmarks": {}}\n'
    assert stat.S_IMODE(real.stat().st_mode) == 0o600
    assert sorted(p.name for p in shared.iterdir()) == ["acme.json"]  # no temporary file left


def test_a_new_state_file_gets_the_umask_mode(tmp_path):
    old = os.umask(0o027)
    try:
        rps.write_atomically(str(tmp_path / "state.json"), "{}\n", "state")
    finally:
        os.umask(old)
    assert stat.S_IMODE((tmp_path / "state.json").stat().st_mode) == 0o640


def test_a_failed_write_leaves_the_state_and_no_temporary_file(tmp_path):
    real = tmp_path / "state.json"
    real.write_text("kept\n")
    with pytest.raises(TypeError):
        rps.write_atomically(str(real), None, "state")
    assert real.read_text() == "kept\n" and sorted(p.name for p in tmp_path.iterdir()) == ["state.json"]


def test_leftovers_are_only_the_state_files_temporary_files(tmp_path):
    for name in ["state.json.tmp-target-out-Ab12Cd", "state.json.tmp-pipe-x", "state.json.tmp-state-y"]:
        (tmp_path / name).write_text("")
    for name in ["state.json", "state.json.lock", "other.json.tmp-state-z", "state.json.tmpfoo"]:
        (tmp_path / name).write_text("")
    assert rps.remove_leftovers(str(tmp_path / "state.json")) == 3
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        "other.json.tmp-state-z",
        "state.json",
        "state.json.lock",
        "state.json.tmpfoo",
    ]
