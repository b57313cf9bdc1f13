"""The cron entry of docs/scheduling.md. scripts/run-pipeline.sh runs tap | target-jsonl,
carries the target's state from run to run, and never runs while another run of the
same pipeline holds the lock."""

from __future__ import annotations

import fcntl
import json
import os
import signal
import subprocess
import time
from pathlib import Path

import helpers
import tools

SCRIPT = tools.REPO_ROOT / "scripts" / "run-pipeline.sh"


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
        "run-pipeline: another run of this pipeline holds state.json.lock; not starting this one."
    ]
    assert sb.stats()["requests"] == 0
    assert (tmp_path / "state.json").read_text() == kept


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
    """The pid of parent_pid's child whose command line mentions `name`, or None (Linux /proc)."""
    try:
        children = Path(f"/proc/{parent_pid}/task/{parent_pid}/children").read_text().split()
    except OSError:
        return None
    for pid in children:
        try:
            if name in Path(f"/proc/{pid}/cmdline").read_bytes().decode("utf-8", "replace"):
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
