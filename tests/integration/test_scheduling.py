"""Issue 11: the README's cron entry. scripts/run-pipeline.sh runs tap | target-jsonl,
carries the target's state from run to run, and never runs while another run of the
same pipeline holds the lock."""

from __future__ import annotations

import fcntl
import json
import os
import subprocess
import urllib.request

import helpers
import tools
from test_resume import instant

SCRIPT = tools.REPO_ROOT / "scripts" / "run-pipeline.sh"


def _pipeline(tmp_path, sb):
    config = helpers.write_config(tmp_path, sb)
    helpers.write_json(tmp_path / "catalog.json", helpers.select(helpers.discover(config), streams=["contacts"]))
    (tmp_path / "out").mkdir()
    helpers.write_json(tmp_path / "target-jsonl.json", {"destination_path": str(tmp_path / "out"),
                                                         "do_timestamp_file": False})
    # The README's cron command, with this checkout's tap and target.
    return [str(SCRIPT), "state.json", tools.tap_cmd()[0], "--config", "config.json", "--catalog", "catalog.json",
            "--", str(tools.TARGET_JSONL), "--config", "target-jsonl.json"]


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
    bookmark = instant(state["bookmarks"]["contacts"]["updated_at"])

    request = urllib.request.Request(sb.url + "/_admin/touch", data=json.dumps({"count": 3}).encode(),
                                     method="POST", headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=10) as response:
        touched = set(json.loads(response.read())["contact_ids"])
    expected = {doc["contact_id"] for doc in sb.dataset.dump()["contacts"] if instant(doc["updated_at"]) >= bookmark}
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
        "run-pipeline: another run of this pipeline holds state.json.lock; not starting this one."]
    assert sb.stats()["requests"] == 0
    assert (tmp_path / "state.json").read_text() == kept


def test_cron_wrapper_keeps_the_state_when_the_target_fails(tmp_path, sandbox_factory):
    tools.require(tools.TARGET_JSONL)
    sb = sandbox_factory(contacts=50, lists=1, segments=1, seed=62)
    command = _pipeline(tmp_path, sb)
    (tmp_path / "state.json").write_text('{"bookmarks": {}}\n')
    failing = command[:command.index("--") + 1] + ["false"]
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
