"""The README's Meltano commands, verbatim, with real Meltano 4 from its own
virtualenv (.tools/meltano, `make tools`). Offline from MeltanoHub: the tap comes
from this checkout's meltano-plugin.yml, target-jsonl from a local definition
(both installed from PyPI/the checkout by Meltano itself).

init, add, config set, select, `meltano run` twice with a change in the sandbox in
between (the second run must be incremental from the state Meltano stored), the
documented job and schedule, Meltano's refusal to start a pipeline that is already
running, and a SIGTERM to `meltano run` reaching the tap, which stops cleanly.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time

import helpers
import pytest
import tools

pytestmark = pytest.mark.meltano

MELTANO = tools.TOOLS_DIR / "meltano" / "bin" / "meltano"
API_KEY = "sk-meltano-9d2b7c41e0a6f358-NEVER-PRINT"
STATE_ID = "dev:tap-autopilot-to-target-jsonl"

TARGET_JSONL_DEFINITION = """\
name: target-jsonl
namespace: target_jsonl
pip_url: target-jsonl==0.1.4 singer-python==5.8.0
executable: target-jsonl
settings:
  - name: destination_path
    kind: string
  - name: do_timestamp_file
    kind: boolean
"""


class Project:
    def __init__(self, directory):
        self.dir = directory
        self.env = dict(
            os.environ,
            PATH=f"{MELTANO.parent}{os.pathsep}{os.environ.get('PATH', '')}",
            MELTANO_SEND_ANONYMOUS_USAGE_STATS="false",
        )

    def meltano(self, *args, check=True, timeout=300):
        proc = subprocess.run(
            [str(MELTANO), *args], cwd=self.dir, env=self.env, capture_output=True, text=True, timeout=timeout
        )
        if check:
            assert proc.returncode == 0, (
                f"meltano {' '.join(args)} failed:\n{proc.stdout[-2000:]}\n{proc.stderr[-4000:]}"
            )
        assert API_KEY not in proc.stdout + proc.stderr, "the API key was printed"
        return proc

    def state(self):
        out = self.meltano("state", "get", STATE_ID).stdout
        return json.loads(out.strip().splitlines()[-1])["singer_state"]

    def contact_ids(self):
        path = self.dir / "output" / "contacts.jsonl"
        return [json.loads(line)["contact_id"] for line in path.read_text().splitlines()]


def _touch(sb, count):
    return set(helpers.admin(sb, "touch", {"count": count})["contact_ids"])


def test_meltano4_readme_pipeline(tmp_path, sandbox_factory):
    tools.require(MELTANO)
    sb = sandbox_factory(contacts=300, lists=2, segments=1, seed=71, api_key=API_KEY)
    (tmp_path / "target-jsonl.yml").write_text(TARGET_JSONL_DEFINITION)

    # README, "Meltano": the project, where the checkout is, the plugin, its settings.
    Project(tmp_path).meltano("init", "autopilot-pipeline")
    project = Project(tmp_path / "autopilot-pipeline")
    with open(project.dir / ".env", "a", encoding="utf-8") as env:
        env.write(f"TAP_AUTOPILOT_CHECKOUT={tools.REPO_ROOT}\n")
    add_tap = (
        "add",
        "--plugin-type",
        "extractor",
        "tap-autopilot",
        "--from-ref",
        str(tools.REPO_ROOT / "meltano-plugin.yml"),
    )
    project.meltano(*add_tap)
    project.meltano("config", "set", "tap-autopilot", "api_key", API_KEY)
    project.meltano("config", "set", "tap-autopilot", "start_date", "2020-01-01")
    project.meltano("config", "set", "tap-autopilot", "base_url", sb.base_url)  # the sandbox
    project.meltano("config", "set", "tap-autopilot", "max_requests_per_second", "50")
    for stream in ("contacts", "lists", "lists_contacts"):
        project.meltano("select", "tap-autopilot", stream, "*")
    project.meltano("add", "--plugin-type", "loader", "target-jsonl", "--from-ref", str(tmp_path / "target-jsonl.yml"))
    project.meltano("config", "set", "target-jsonl", "destination_path", "output")
    project.meltano("config", "set", "target-jsonl", "do_timestamp_file", "false")
    assert API_KEY not in (project.dir / "meltano.yml").read_text(), "the key belongs in .env, not meltano.yml"

    # Re-running the documented add keeps the pip_url pointing at the checkout.
    project.meltano(*add_tap)
    assert "pip_url: -e ${TAP_AUTOPILOT_CHECKOUT}" in (project.dir / "meltano.yml").read_text()

    project.meltano("run", "tap-autopilot", "target-jsonl")
    first = project.contact_ids()
    assert sorted(first) == sorted(helpers.updated_since(sb, helpers.instant("2020-01-01T00:00:00Z")))  # the plain date
    state = project.state()
    assert state["currently_syncing"] is None
    bookmark = helpers.instant(state["bookmarks"]["contacts"]["updated_at"])

    touched = _touch(sb, 3)
    expected = helpers.updated_since(sb, bookmark)
    assert touched <= expected and len(expected) < 10
    project.meltano("run", "tap-autopilot", "target-jsonl")
    assert sorted(project.contact_ids()[len(first) :]) == sorted(expected), "the second run was not incremental"
    second = project.state()
    assert helpers.instant(second["bookmarks"]["contacts"]["updated_at"]) > bookmark

    # docs/scheduling.md, "With Meltano": the job and schedule, run as its cron line runs it.
    project.meltano("job", "add", "autopilot", "--tasks", "[tap-autopilot target-jsonl]")
    project.meltano("schedule", "add", "autopilot-hourly", "--job", "autopilot", "--interval", "@hourly")
    written = len(project.contact_ids())
    expected = helpers.updated_since(sb, helpers.instant(second["bookmarks"]["contacts"]["updated_at"])) | _touch(sb, 2)
    project.meltano("schedule", "run", "autopilot-hourly")
    assert sorted(project.contact_ids()[written:]) == sorted(expected), "the scheduled run lost the state"

    # The job (docs/scheduling.md's plain cron line) hangs on a stuck request; a second run of the
    # same pipeline is refused while it runs.
    sb.reset_stats()
    sb.set_faults(stall_every=2, stall_seconds=600)
    running = subprocess.Popen(
        [str(MELTANO), "run", "autopilot"],
        cwd=project.dir,
        env=project.env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        deadline = time.monotonic() + 120
        while sb.stats()["stalled"] < 1:
            assert running.poll() is None and time.monotonic() < deadline, "the run never reached the sandbox"
            time.sleep(0.1)
        overlapping = project.meltano("schedule", "run", "autopilot-hourly", check=False)
        assert overlapping.returncode != 0
        assert "is already running" in overlapping.stdout + overlapping.stderr
        # SIGTERM to Meltano reaches the tap, which stops without waiting for the stuck request.
        running.send_signal(signal.SIGTERM)
        output, _ = running.communicate(timeout=60)
    finally:
        if running.poll() is None:
            running.kill()
            running.communicate()
    assert running.returncode != 0
    assert "tap-autopilot WARNING Stopped by SIGTERM. The last STATE written covers every record written" in output, (
        output[-4000:]
    )
    assert "Traceback" not in output
