"""The cron entry of docs/scheduling.md. scripts/run-pipeline.sh runs tap | target-jsonl,
carries the target's state from run to run, and never runs while another run of the
same pipeline holds the lock. Its run history (one JSON line per run beside
the state, read as a table by the command in docs/running.md), and a state replaced
only by a line that is a JSON object."""

from __future__ import annotations

import fcntl
import json
import os
import re
import signal
import subprocess
import time
from pathlib import Path

import helpers
import tools

SCRIPT = tools.REPO_ROOT / "scripts" / "run-pipeline.sh"
DOC = tools.REPO_ROOT / "docs" / "running.md"


def _pipeline(tmp_path, sb):
    config = helpers.write_config(tmp_path, sb)
    helpers.write_json(tmp_path / "catalog.json", helpers.select(helpers.discover(config), streams=["contacts"]))
    (tmp_path / "out").mkdir()
    helpers.write_json(
        tmp_path / "target-jsonl.json", {"destination_path": str(tmp_path / "out"), "do_timestamp_file": False}
    )
    # docs/scheduling.md's cron command, with this checkout's tap and target.
    return [
        str(SCRIPT),
        "state.json",
        tools.tap_cmd()[0],
        "--config",
        "config.json",
        "--catalog",
        "catalog.json",
        "--",
        str(tools.TARGET_JSONL),
        "--config",
        "target-jsonl.json",
    ]


def _run(command, cwd):
    return subprocess.run(command, cwd=cwd, capture_output=True, text=True, timeout=180)


def _history(tmp_path):
    path = tmp_path / "state.json.history.jsonl"
    return [json.loads(line) for line in path.read_text().splitlines()] if path.exists() else []


def _contact_lines(tmp_path):
    return [json.loads(line)["contact_id"] for line in (tmp_path / "out" / "contacts.jsonl").read_text().splitlines()]


def test_cron_wrapper_carries_state_and_never_overlaps(tmp_path, sandbox_factory):
    tools.require(tools.TARGET_JSONL)
    sb = sandbox_factory(contacts=300, lists=1, segments=1, seed=61)
    command = _pipeline(tmp_path, sb)

    first = _run(command, tmp_path)
    assert first.returncode == 0, first.stderr[-3000:]
    assert sorted(_contact_lines(tmp_path)) == sorted(sb.dataset.contact_ids())
    state = json.loads((tmp_path / "state.json").read_text())
    bookmark = helpers.instant(state["bookmarks"]["contacts"]["updated_at"])

    touched = set(helpers.admin(sb, "touch", {"count": 3})["contact_ids"])
    expected = helpers.updated_since(sb, bookmark)
    assert touched <= expected and len(expected) < 10

    second = _run(command, tmp_path)
    assert second.returncode == 0, second.stderr[-3000:]
    again = _contact_lines(tmp_path)[300:]
    assert sorted(again) == sorted(expected), "the second run was not incremental from the stored state"
    assert json.loads((tmp_path / "state.json").read_text()) != state

    # Another run holds the lock: this one starts nothing and leaves the state alone.
    kept = (tmp_path / "state.json").read_text()
    sb.reset_stats()
    with open(tmp_path / "state.json.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        blocked = _run(command, tmp_path)
    assert blocked.returncode == 75, blocked.stderr
    assert blocked.stderr.splitlines() == [
        f"run-pipeline: another run of this pipeline holds {os.path.realpath(tmp_path)}/state.json.lock; "
        "not starting this one."
    ]
    assert sb.stats()["requests"] == 0
    assert (tmp_path / "state.json").read_text() == kept

    # One history line per run that started (none for the refused one).
    history = _history(tmp_path)
    assert [run["records"] for run in history] == [{"contacts": 300}, {"contacts": len(expected)}]
    assert [(run["tap_exit"], run["target_exit"], run["state_advanced"]) for run in history] == [(0, 0, True)] * 2
    for run in history:
        assert run["started_at"] <= run["ended_at"] and run["seconds"] >= 0
        assert run["requests"] >= 1 and run["rate_limited"] == 0 and run["retries"] == 0


def test_cron_wrapper_keeps_the_state_when_the_target_fails(tmp_path, sandbox_factory):
    tools.require(tools.TARGET_JSONL)
    sb = sandbox_factory(contacts=50, lists=1, segments=1, seed=62)
    command = _pipeline(tmp_path, sb)
    (tmp_path / "state.json").write_text('{"bookmarks": {}}\n')
    failing = command[: command.index("--") + 1] + ["false"]
    proc = _run(failing, tmp_path)
    assert proc.returncode != 0
    assert "run-pipeline: the target failed (exit 1); state.json left as it was." in proc.stderr.splitlines()
    assert (tmp_path / "state.json").read_text() == '{"bookmarks": {}}\n'
    [run] = _history(tmp_path)
    assert run["target_exit"] == 1 and run["state_advanced"] is False


def test_cron_wrapper_says_in_one_line_when_the_run_history_cannot_be_written(tmp_path, sandbox_factory):
    """Its own failure comes after the tap's and the target's: exit 3, one line, no traceback."""
    tools.require(tools.TARGET_JSONL)
    sb = sandbox_factory(contacts=50, lists=1, segments=1, seed=63)
    command = _pipeline(tmp_path, sb)
    (tmp_path / "state.json.history.jsonl").mkdir()  # where the history line would be appended
    proc = _run(command, tmp_path)
    assert proc.returncode == 3, proc.stderr[-3000:]
    assert "run-pipeline: the state or the run history could not be written (IsADirectoryError" in proc.stderr
    assert "Traceback" not in proc.stderr
    assert json.loads((tmp_path / "state.json").read_text())["bookmarks"]["contacts"], "the state was kept"


_SUMMARY = re.compile(r"(\d+) requests, (\d+) throttled \(429\), (\d+) retries")


def test_run_history_counts_what_the_tap_did_and_only_a_json_object_becomes_the_state(tmp_path, sandbox_factory):
    """A target that prints a log line on stdout after its last state: the state file
    gets the state, not the log line, and the next run reads it. The history's
    requests, 429s and retries are the tap's own (its summary line) and the sandbox's."""
    tools.require(tools.TARGET_JSONL)
    sb = sandbox_factory(contacts=400, lists=2, segments=1, seed=65, error_every=4)
    command = _pipeline(tmp_path, sb)
    helpers.write_json(tmp_path / "catalog.json", helpers.select(helpers.discover(tmp_path / "config.json")))
    # 2 r/s against the tap's 100: the third request in a row is always throttled, whatever the load.
    sb.set_faults(rate_limit=2, retry_after=True)
    sb.reset_stats()
    target = command.index("--") + 1
    chatty = command[:target] + ["sh", "-c", '"$0" "$@" && echo "target-jsonl: done"', *command[target:]]
    first = _run(chatty, tmp_path)
    assert first.returncode == 0, first.stderr[-3000:]
    state = json.loads((tmp_path / "state.json").read_text())
    assert state["bookmarks"]["contacts"]["updated_at"] and state["currently_syncing"] is None
    [run] = _history(tmp_path)
    stats = sb.stats()
    statuses = stats["status"]
    assert run["requests"] == stats["requests"]
    assert run["rate_limited"] == statuses.get("429", 0) > 0
    assert run["retries"] == stats["requests"] - statuses["200"] > run["rate_limited"]
    summary = _SUMMARY.findall(first.stderr)[-1]
    assert summary == (str(run["requests"]), str(run["rate_limited"]), str(run["retries"])), first.stderr[-2000:]
    keys = helpers.expected_keys(sb)
    assert run["records"] == {name: len(keys[name]) for name in helpers.STREAM_NAMES}
    assert run["state_advanced"] is True

    sb.set_faults(rate_limit=None, error_every=None)
    second = _run(chatty, tmp_path)
    assert second.returncode == 0, second.stderr[-3000:]
    since = helpers.updated_since(sb, helpers.instant(state["bookmarks"]["contacts"]["updated_at"]))
    assert _history(tmp_path)[-1]["records"].get("contacts", 0) == len(since) < 400, "not from the stored state"

    # The documented command reads the history as a table: a header and a row per run.
    [one_liner] = [line for line in DOC.read_text().splitlines() if "history.jsonl | python3" in line]
    table = subprocess.run(one_liner, shell=True, cwd=tmp_path, capture_output=True, text=True, timeout=30)
    assert table.returncode == 0, table.stderr
    header, *rows = table.stdout.splitlines()
    assert header.split()[:3] == ["started_at", "seconds", "tap"] and len(rows) == 2
    assert rows[0].split()[4] == str(sum(run["records"].values()))


def test_log_level_warning_leaves_what_a_scheduler_should_surface(tmp_path, sandbox_factory):
    """LOG_LEVEL=WARNING drops the INFO lines (progress, METRIC); warnings stay."""
    sb = sandbox_factory(contacts=120, lists=1, segments=1, seed=63, error_every=4)
    config = helpers.write_config(tmp_path, sb)
    catalog = helpers.write_json(tmp_path / "catalog.json", helpers.select(helpers.discover(config)))
    quiet = helpers.run_cli(["--config", config, "--catalog", catalog], env=dict(os.environ, LOG_LEVEL="WARNING"))
    assert quiet.returncode == 0, quiet.stderr[-3000:]
    lines = quiet.stderr.splitlines()
    assert lines and all(line.startswith("WARNING ") and "retrying in" in line for line in lines), lines
    loud = helpers.run_cli(["--config", config, "--catalog", catalog])
    assert any(line.startswith("INFO METRIC: ") for line in loud.stderr.splitlines())


def _child_running(parent_pid, name):
    """The pid of parent_pid's child whose command line mentions `name`, or None (Linux /proc).
    Not the wrapper's own forks (their command line is the wrapper's until they exec)."""
    try:
        children = Path(f"/proc/{parent_pid}/task/{parent_pid}/children").read_text().split()
    except OSError:
        return None
    for pid in children:
        try:
            cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().decode("utf-8", "replace")
            if name in cmdline and SCRIPT.name not in cmdline:
                return int(pid)
        except OSError:
            continue
    return None


def test_sigterm_to_the_tap_lets_the_target_commit_and_the_next_run_resume(tmp_path, sandbox_factory):
    """A scheduler stops the tap mid-scan: the target sees a clean end of input and
    emits the state, the wrapper keeps it, and the next run resumes from it."""
    tools.require(tools.TARGET_JSONL)
    sb = sandbox_factory(contacts=1500, lists=1, segments=1, seed=64)
    command = _pipeline(tmp_path, sb)
    sb.set_faults(latency_ms=60)
    wrapper = subprocess.Popen(command, cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        tap = None
        while tap is None or sb.stats()["by_endpoint"]["contacts"] < 4:
            assert wrapper.poll() is None, wrapper.communicate()
            tap = tap or _child_running(wrapper.pid, "tap-autopilot")
            time.sleep(0.05)
        os.kill(tap, signal.SIGTERM)
        _, stderr = wrapper.communicate(timeout=60)
    finally:
        if wrapper.poll() is None:
            wrapper.kill()
            wrapper.communicate()
    assert wrapper.returncode == 143, stderr[-3000:]
    assert "WARNING Stopped by SIGTERM." in stderr
    written = _contact_lines(tmp_path)  # every line whole (json.loads)
    state = json.loads((tmp_path / "state.json").read_text())
    assert state["bookmarks"]["contacts"]["scan"]["cursor"], "the target's state is not mid-scan"
    assert 0 < len(written) < 1500

    sb.set_faults(latency_ms=None)
    resumed = _run(command, tmp_path)
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert set(_contact_lines(tmp_path)) == set(sb.dataset.contact_ids())
    assert "scan" not in json.loads((tmp_path / "state.json").read_text())["bookmarks"]["contacts"]
