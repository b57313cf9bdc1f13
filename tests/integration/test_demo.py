"""`make demo` (scripts/demo.sh) reads without alarm: target-jsonl's
ACTIVATE_VERSION warnings stay in its log, off the screen, with one line saying why
they are harmless; the rows are all there."""

from __future__ import annotations

import os
import subprocess

import tools

NOISE = "WARNING Unknown message type ACTIVATE_VERSION"


def test_demo_screen_leaves_out_activate_version_warnings_and_says_why(tmp_path):
    tools.require(tools.TARGET_JSONL)
    out = tmp_path / "demo-output"
    env = dict(os.environ, DEMO_OUTPUT=str(out), DEMO_CONTACTS="60", DEMO_LISTS="2", DEMO_SEGMENTS="1")
    demo = subprocess.run(
        ["bash", str(tools.REPO_ROOT / "scripts" / "demo.sh")], env=env, capture_output=True, text=True, timeout=300
    )
    assert demo.returncode == 0, demo.stderr[-3000:]
    screen = demo.stdout + demo.stderr
    logged = [line for line in (out / "target.log").read_text().splitlines() if line.startswith(NOISE)]
    assert len(logged) == 8, "one per versioned stream, before and after its records"  # 4 streams x 2
    assert NOISE not in screen
    [why] = [line for line in screen.splitlines() if "ACTIVATE_VERSION" in line]
    assert why.startswith(f"target-jsonl: {len(logged)} 'Unknown message type ACTIVATE_VERSION' warnings not shown")
    assert "Harmless" in why and str(out / "target.log") in why
    assert len((out / "data" / "contacts.jsonl").read_text().splitlines()) == 60
