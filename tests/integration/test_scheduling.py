"""The cron entry of docs/scheduling.md. scripts/run-pipeline.sh runs tap | target-jsonl,
carries the target's state from run to run, and never runs while another run of the
same state (by whatever path) holds the lock. Its run history (one JSON line per run
beside the state, read as a table by the command in docs/running.md), a state replaced
only by a line of this tap's state shape, written through a symlink keeping its mode,
stops forwarded to the tap and target, killed runs recorded by the next run, and the
per-run extraction logs."""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import re
import signal
import subprocess
import sys
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


# The 500s some tests inject are retried after a short backoff, not a real one.
SHORT_BACKOFF = dict(os.environ, TAP_AUTOPILOT_BACKOFF_SECONDS="0.05")


def _run(command, cwd):
    return subprocess.run(command, cwd=cwd, capture_output=True, text=True, timeout=180, env=SHORT_BACKOFF)


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
    assert run["records"] == dict({name: len(keys[name]) for name in helpers.STREAM_NAMES}, completed_passes=4)
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


# ---- issue 26: only a state is saved, state files keep what they are, every run is in the history


def _until(condition, what, timeout=60.0):
    """Poll `condition` until it holds (returns its value), failing after `timeout` s."""
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value:
            return value
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.05)


def _gone(pid):
    """Whether a process has exited (gone, or a zombie nobody reaped yet)."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] == "Z"
    except OSError:
        return True


def _leftovers(*folders):
    return sorted(p.name for folder in folders for p in Path(folder).iterdir() if ".tmp-" in p.name)


def _start_mid_scan(command, cwd, sb, output=subprocess.PIPE):
    """The wrapper, started and caught mid contacts scan: (wrapper, tap pid, target pid)."""
    wrapper = subprocess.Popen(command, cwd=cwd, stdout=output, stderr=output, text=True)
    try:
        found: dict[str, int | None] = {}

        def mid_scan():
            assert wrapper.poll() is None, wrapper.communicate()
            for name in ("tap-autopilot", "target-jsonl"):
                found[name] = found.get(name) or _child_running(wrapper.pid, name)
            return len(found) == 2 and all(found.values()) and sb.stats()["by_endpoint"]["contacts"] >= 4

        _until(mid_scan, "the tap to be mid contacts scan")
    except BaseException:
        wrapper.kill()
        wrapper.communicate()
        raise
    return wrapper, found["tap-autopilot"], found["target-jsonl"]


def test_only_a_state_replaces_the_state_file(tmp_path, sandbox_factory):
    """A target that prints a JSON summary after its states: the state is its last state,
    and one line says what was ignored, by its key names, never its values. A target whose
    only JSON is `{}` (not a state: every STATE this tap writes has bookmarks) leaves the
    state as it was, and says so."""
    tools.require(tools.TARGET_JSONL)
    sb = sandbox_factory(contacts=120, lists=1, segments=1, seed=66)
    command = _pipeline(tmp_path, sb)
    target = command.index("--") + 1
    summary = """"$0" "$@" && echo '{"note": "loaded SECRET-ROWS", "rows": 120}' && echo '[1, 2]'"""
    chatty = command[:target] + ["sh", "-c", summary, *command[target:]]
    proc = _run(chatty, tmp_path)
    assert proc.returncode == 0, proc.stderr[-3000:]
    state = json.loads((tmp_path / "state.json").read_text())
    assert state["bookmarks"]["contacts"]["updated_at"] and "note" not in state
    wrapper_lines = [line for line in proc.stderr.splitlines() if line.startswith("run-pipeline:")]
    assert wrapper_lines == [
        "run-pipeline: ignored 2 line(s) of the target's output that are JSON but not a state "
        '(the first: an object with keys "note", "rows").'
    ]
    assert "SECRET-ROWS" not in proc.stderr
    [run] = _history(tmp_path)
    assert (run["outcome"], run["state_advanced"]) == ("completed", True)

    kept = (tmp_path / "state.json").read_text()
    empty = command[:target] + ["sh", "-c", "cat >/dev/null; echo '{}'"]
    proc = _run(empty, tmp_path)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert [line for line in proc.stderr.splitlines() if line.startswith("run-pipeline:")] == [
        "run-pipeline: ignored 1 line(s) of the target's output that are JSON but not a state "
        "(the first: an empty object).",
        "run-pipeline: the target printed no state; state.json left as it was.",
    ]
    assert (tmp_path / "state.json").read_text() == kept
    assert _history(tmp_path)[-1]["state_advanced"] is False


def test_a_symlinked_state_of_mode_600_in_another_folder_stays_so(tmp_path, sandbox_factory):
    """One state per account in a shared folder, linked from the pipeline's folder: the run
    writes the file the link names, the link stays a link, the mode stays 600, the lock is
    the real file's, and no temporary file is left in either folder."""
    tools.require(tools.TARGET_JSONL)
    sb = sandbox_factory(contacts=120, lists=1, segments=1, seed=67)
    command = _pipeline(tmp_path, sb)
    shared = tmp_path / "shared"
    shared.mkdir()
    real = shared / "acme.json"
    real.write_text('{"bookmarks": {}}\n')
    real.chmod(0o600)
    (tmp_path / "state.json").symlink_to(real)
    proc = _run(command, tmp_path)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert (tmp_path / "state.json").is_symlink() and os.readlink(tmp_path / "state.json") == str(real)
    assert json.loads(real.read_text())["bookmarks"]["contacts"]["updated_at"]
    assert real.stat().st_mode & 0o777 == 0o600
    assert (shared / "acme.json.lock").exists() and not (tmp_path / "state.json.lock").exists()
    assert _leftovers(tmp_path, shared) == [] and not (shared / "acme.json.running").exists()
    [run] = _history(tmp_path)  # history and logs beside the path as given
    assert run["outcome"] == "completed" and Path(run["log"]).parent == tmp_path / "state.json.logs"


def test_sigterm_to_the_wrapper_stops_tap_and_target_and_is_in_the_history(tmp_path, sandbox_factory):
    """SIGTERM to the wrapper mid-scan: it passes SIGTERM to the tap, the target reads to the
    end and prints its state, both have exited when the wrapper exits 143, the history says
    "stopped by SIGTERM", and the next run resumes from the saved state. Meanwhile the same
    state named by another path (a symlink, absolute, from another folder) cannot run."""
    tools.require(tools.TARGET_JSONL)
    sb = sandbox_factory(contacts=1500, lists=1, segments=1, seed=68)
    command = _pipeline(tmp_path, sb)
    sb.set_faults(latency_ms=200)
    wrapper, tap, target = _start_mid_scan(command, tmp_path, sb)
    try:
        elsewhere = tmp_path / "elsewhere"
        elsewhere.mkdir()
        (elsewhere / "link.json").symlink_to("../state.json")
        second = command[:1] + [str(elsewhere / "link.json")] + command[2:]
        blocked = _run(second, elsewhere)
        assert blocked.returncode == 75, blocked.stderr
        assert blocked.stderr.splitlines() == [
            f"run-pipeline: another run of this pipeline holds {os.path.realpath(tmp_path)}/state.json.lock; "
            "not starting this one."
        ]
        assert not (elsewhere / "link.json.history.jsonl").exists()

        wrapper.send_signal(signal.SIGTERM)
        _, stderr = wrapper.communicate(timeout=60)
    finally:
        if wrapper.poll() is None:
            wrapper.kill()
            wrapper.communicate()
    assert wrapper.returncode == 143, stderr[-3000:]
    assert _gone(tap) and _gone(target), "the tap or the target outlived the wrapper"
    lines = stderr.splitlines()
    assert "run-pipeline: SIGTERM received: stopping the tap; the target gets 30 s to finish." in lines
    assert "WARNING Stopped by SIGTERM." in stderr
    [run] = _history(tmp_path)
    assert (run["outcome"], run["tap_exit"], run["target_exit"], run["state_advanced"]) == (
        "stopped by SIGTERM",
        143,
        0,
        True,
    )
    assert "WARNING Stopped by SIGTERM." in Path(run["log"]).read_text()
    state = json.loads((tmp_path / "state.json").read_text())
    assert state["bookmarks"]["contacts"]["scan"]["cursor"], "the target's state is not mid-scan"
    written = _contact_lines(tmp_path)
    assert 0 < len(written) < 1500
    assert _leftovers(tmp_path) == [] and not (tmp_path / "state.json.running").exists()

    sb.set_faults(latency_ms=None)
    resumed = _run(command, tmp_path)
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert set(_contact_lines(tmp_path)) == set(sb.dataset.contact_ids())
    assert [run["outcome"] for run in _history(tmp_path)] == ["stopped by SIGTERM", "completed"]


def test_a_killed_wrapper_is_recorded_by_the_next_run_which_removes_its_leftovers(tmp_path, sandbox_factory):
    """SIGKILL to the wrapper: its tap and target go on and keep the lock (the next run is
    refused until they end). Once they are gone (killed too, as a cgroup's kill does), the
    next run writes a "vanished" line from the marker, then its own, and the temporary
    files the killed run left are gone."""
    tools.require(tools.TARGET_JSONL)
    sb = sandbox_factory(contacts=1500, lists=1, segments=1, seed=69)
    command = _pipeline(tmp_path, sb)
    sb.set_faults(latency_ms=300)
    # Its output to a file: the tap and target it leaves behind keep writing there.
    with open(tmp_path / "killed-run.log", "w") as output:
        wrapper, tap, target = _start_mid_scan(command, tmp_path, sb, output)
    wrapper.kill()
    wrapper.wait(timeout=30)
    marker = json.loads((tmp_path / "state.json.running").read_text())
    assert marker["pid"] == wrapper.pid and Path(marker["log"]).exists()
    assert any(name.startswith("state.json.tmp-target-out-") for name in _leftovers(tmp_path))
    try:
        refused = _run(command, tmp_path)
        assert refused.returncode == 75, refused.stderr
    finally:
        for pid in (tap, target):
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
    _until(lambda: _gone(tap) and _gone(target), "the killed run's tap and target to end", timeout=30)
    assert _history(tmp_path) == []

    sb.set_faults(latency_ms=None)
    proc = _run(command, tmp_path)
    assert proc.returncode == 0, proc.stderr[-3000:]
    vanished, completed = _history(tmp_path)
    assert vanished["outcome"] == "vanished"
    assert (vanished["started_at"], vanished["log"]) == (marker["started_at"], marker["log"])
    assert (vanished["ended_at"], vanished["tap_exit"], vanished["state_advanced"]) == (None, None, False)
    killed_log = Path(marker["log"]).read_text()
    assert vanished["requests"] == killed_log.count('"http_request_duration"') >= 1, "counted from its log"
    assert completed["outcome"] == "completed" and completed["log"] != vanished["log"]
    assert [line for line in proc.stderr.splitlines() if line.startswith("run-pipeline:")] == [
        f"run-pipeline: the run started at {marker['started_at']} (wrapper pid {wrapper.pid}) ended without "
        "writing its history line (killed?); recorded as vanished.",
        f"run-pipeline: removed 2 temporary file(s) a killed run left beside {os.path.realpath(tmp_path)}/state.json.",
    ]
    assert _leftovers(tmp_path) == [] and not (tmp_path / "state.json.running").exists()
    assert set(_contact_lines(tmp_path)) == set(sb.dataset.contact_ids())


def test_each_run_keeps_its_extraction_log_and_only_the_last_ones_stay(tmp_path, sandbox_factory):
    """Each run's tap stderr is a file of its own in state.json.logs/, named in its history
    line; RUN_PIPELINE_KEEP_LOGS=2 keeps the last two. A value that is not a count of runs
    is refused with one line before anything starts."""
    tools.require(tools.TARGET_JSONL)
    sb = sandbox_factory(contacts=50, lists=1, segments=1, seed=70)
    command = _pipeline(tmp_path, sb)
    for bad in ("0", "ten", "-3"):
        refused = subprocess.run(
            command,
            cwd=tmp_path,
            capture_output=True,
            text=True,
            timeout=60,
            env=dict(os.environ, RUN_PIPELINE_KEEP_LOGS=bad),
        )
        assert refused.returncode == 64
        assert refused.stderr.splitlines() == [
            f'run-pipeline: RUN_PIPELINE_KEEP_LOGS must be a whole number of runs from 1 to 999999 (it is "{bad}").'
        ]
    assert not (tmp_path / "state.json.lock").exists() and not (tmp_path / "state.json.logs").exists()

    keep_two = dict(os.environ, RUN_PIPELINE_KEEP_LOGS="2")
    for _ in range(3):
        proc = subprocess.run(command, cwd=tmp_path, capture_output=True, text=True, timeout=180, env=keep_two)
        assert proc.returncode == 0, proc.stderr[-3000:]
        latest = Path(_history(tmp_path)[-1]["log"])
        assert latest.read_text() in proc.stderr and "INFO METRIC: " in latest.read_text()
    logs = [Path(run["log"]) for run in _history(tmp_path)]
    assert len(set(logs)) == 3 and logs == sorted(logs)
    assert sorted((tmp_path / "state.json.logs").iterdir()) == logs[1:]


def test_a_target_that_does_not_end_after_a_stop_gets_sigterm_then_sigkill(tmp_path, sandbox_factory):
    """SIGHUP to the wrapper while the target lingers after the end of its input and ignores
    SIGTERM: after the grace period (1 s here) it gets SIGTERM, after another SIGKILL. The
    history says "stopped by SIGHUP"; the state the target printed is not saved (the target
    did not exit 0)."""
    sb = sandbox_factory(contacts=50, lists=1, segments=1, seed=71)
    command = _pipeline(tmp_path, sb)
    ended_input = tmp_path / "target-read-everything"
    lingering = tmp_path / "lingering_target.py"
    lingering.write_text(
        "import json, pathlib, signal, sys, time\n"
        "signal.signal(signal.SIGTERM, signal.SIG_IGN)\n"
        "states = [json.loads(line)['value'] for line in sys.stdin if json.loads(line)['type'] == 'STATE']\n"
        "print(json.dumps(states[-1]), flush=True)\n"
        "pathlib.Path(sys.argv[1]).write_text('done')\n"
        "time.sleep(600)\n"
    )
    command = command[: command.index("--") + 1] + [sys.executable, str(lingering), str(ended_input)]
    env = dict(os.environ, RUN_PIPELINE_STOP_GRACE_SECONDS="1")
    wrapper = subprocess.Popen(
        command, cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env
    )
    try:
        _until(lambda: ended_input.exists() or wrapper.poll() is not None, "the target to read its input")
        target = _child_running(wrapper.pid, "lingering_target.py")
        assert target is not None
        started = time.monotonic()
        wrapper.send_signal(signal.SIGHUP)
        _, stderr = wrapper.communicate(timeout=30)
        took = time.monotonic() - started
    finally:
        if wrapper.poll() is None:
            wrapper.kill()
            wrapper.communicate()
    assert wrapper.returncode == 129, stderr[-3000:]
    assert 2 <= took < 10
    assert _gone(target)
    assert [line for line in stderr.splitlines() if line.startswith("run-pipeline:")] == [
        "run-pipeline: SIGHUP received: stopping the tap; the target gets 1 s to finish.",
        "run-pipeline: the target still runs; sending it SIGTERM.",
        "run-pipeline: the target still runs; sending it SIGKILL.",
        "run-pipeline: the target was stopped (exit 137); state.json left as it was.",
    ]
    assert not (tmp_path / "state.json").exists()
    [run] = _history(tmp_path)
    assert (run["outcome"], run["tap_exit"], run["target_exit"]) == ("stopped by SIGHUP", 0, 137)


def test_timeout_signalling_the_whole_process_group_still_lets_the_target_commit(tmp_path, sandbox_factory):
    """timeout(1) (and Ctrl-C) signal the wrapper's whole process group. The tap and the
    target run in sessions of their own, so only the wrapper's order reaches them: the
    target is not killed mid-load, prints its state, and the state is kept."""
    tools.require(tools.TARGET_JSONL)
    sb = sandbox_factory(contacts=1500, lists=1, segments=1, seed=72)
    command = _pipeline(tmp_path, sb)
    sb.set_faults(latency_ms=100)
    timeout = subprocess.Popen(["timeout", "600", *command], cwd=tmp_path, stderr=subprocess.PIPE, text=True)
    try:
        _until(lambda: timeout.poll() is None and sb.stats()["by_endpoint"]["contacts"] >= 4, "the contacts scan")
        timeout.send_signal(signal.SIGTERM)  # timeout passes it to its child, then to the group
        _, stderr = timeout.communicate(timeout=60)
    finally:
        if timeout.poll() is None:
            timeout.kill()
            timeout.communicate()
    [run] = _history(tmp_path)
    assert (run["outcome"], run["tap_exit"], run["target_exit"]) == ("stopped by SIGTERM", 143, 0), stderr[-3000:]
    assert json.loads((tmp_path / "state.json").read_text())["bookmarks"]["contacts"]["scan"]["cursor"]
    sb.set_faults(latency_ms=None)
    resumed = _run(command, tmp_path)
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert set(_contact_lines(tmp_path)) == set(sb.dataset.contact_ids())


def test_a_reset_through_a_symlink_while_the_wrapper_runs_is_refused_then_done(tmp_path, sandbox_factory):
    """The cron run holds the state (named through a link into a shared folder) while an
    operator resets contacts through another link to the same file: refused with exit 75 and
    one line, the file untouched, so the run cannot write the old bookmark back over a reset
    it never saw. Once the run has ended, the same command resets, and the next run writes
    every contact again."""
    tools.require(tools.TARGET_JSONL)
    sb = sandbox_factory(contacts=1500, lists=1, segments=1, seed=69)
    command = _pipeline(tmp_path, sb)
    shared = tmp_path / "shared"
    shared.mkdir()
    real = shared / "acme.json"
    (tmp_path / "state.json").symlink_to(real)
    first = _run(command, tmp_path)  # a state with a contacts bookmark
    assert first.returncode == 0, first.stderr[-3000:]
    operator = tmp_path / "operator"
    operator.mkdir()
    (operator / "acme-state.json").symlink_to(real)
    reset = tools.tap_cmd() + ["--state", "acme-state.json", "--reset-stream", "contacts"]

    sb.set_faults(latency_ms=200)
    sb.reset_stats()  # _start_mid_scan waits for this run's own contacts pages
    wrapper, _, _ = _start_mid_scan(command, tmp_path, sb)
    try:
        before = real.read_bytes()
        refused = subprocess.run(reset, cwd=operator, capture_output=True, text=True, timeout=60)
        assert real.read_bytes() == before
        sb.set_faults(latency_ms=None)
        _, stderr = wrapper.communicate(timeout=120)
    finally:
        if wrapper.poll() is None:
            wrapper.kill()
            wrapper.communicate()
    assert refused.returncode == 75, refused.stderr
    [line] = refused.stderr.splitlines()
    assert line.startswith("CRITICAL ") and str(real) + ".lock" in line
    assert wrapper.returncode == 0, stderr[-3000:]
    assert "updated_at" in json.loads(real.read_text())["bookmarks"]["contacts"]

    done = subprocess.run(reset, cwd=operator, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert "contacts" not in json.loads(real.read_text())["bookmarks"]
    assert (operator / "acme-state.json").is_symlink() and (tmp_path / "state.json").is_symlink()
    (tmp_path / "out" / "contacts.jsonl").unlink()
    again = _run(command, tmp_path)
    assert again.returncode == 0, again.stderr[-3000:]
    assert sorted(_contact_lines(tmp_path)) == sorted(sb.dataset.contact_ids())
