"""Where the external Singer tools live, and small helpers to run them.

The tools are installed by ``make tools`` into separate virtualenvs under
``.tools/`` (each pins its own, older singer-python), and the tap itself by
``make venv`` into ``.venv``. Import as ``tools`` (conftest.py puts this
directory on sys.path) or as ``tests.integration.tools``.
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[2]
VENV = REPO_ROOT / ".venv"
TOOLS_DIR = REPO_ROOT / ".tools"

# target-jsonl==0.1.4: config {"destination_path": DIR, "do_timestamp_file": false}.
# Appends to DIR/<stream>.jsonl (use a fresh DIR); prints the last STATE only if no RECORD followed it.
TARGET_JSONL = TOOLS_DIR / "target-jsonl" / "bin" / "target-jsonl"
# meltanolabs-target-postgres==0.8.1 (Meltano SDK): config from pg.PostgresServer.target_postgres_config().
TARGET_POSTGRES = TOOLS_DIR / "target-postgres" / "bin" / "target-postgres"
# Python of the target-postgres venv: has psycopg 3 and SQLAlchemy if a test wants a real driver.
TARGET_POSTGRES_PYTHON = TOOLS_DIR / "target-postgres" / "bin" / "python"
# singer-tools==0.4.1. Use it on stdin (see check_singer_output); its --tap mode is unusable here:
# it runs the tap without --catalog and races its reader thread (crashes with
# "'NoneType' object has no attribute 'num_messages'" on some runs).
SINGER_CHECK_TAP = TOOLS_DIR / "singer-tools" / "bin" / "singer-check-tap"
# The published tap-autopilot==0.3.0 (baseline for the benchmark).
PUBLISHED_TAP = TOOLS_DIR / "tap-autopilot-0.3.0" / "bin" / "tap-autopilot"

ALL_TOOLS = {
    "target-jsonl": TARGET_JSONL,
    "target-postgres": TARGET_POSTGRES,
    "singer-check-tap": SINGER_CHECK_TAP,
    "tap-autopilot-0.3.0": PUBLISHED_TAP,
}


def in_ci() -> bool:
    return os.environ.get("CI", "").lower() in ("1", "true", "yes")


def tap_cmd() -> list[str]:
    """argv prefix for the installed tap CLI, e.g. tap_cmd() + ["--config", cfg, "--discover"]:
    the one beside the Python running the tests (make test's other-version venvs, .venvs/),
    else the project's .venv."""
    for installed in (Path(sys.executable).parent / "tap-autopilot", VENV / "bin" / "tap-autopilot"):
        if installed.exists():
            return [str(installed)]
    return [sys.executable, "-c", "import sys, tap_autopilot.cli; sys.exit(tap_autopilot.cli.main())"]


def require(*paths: Path) -> None:
    """Skip the calling test if a tool is missing (fail instead under CI=true: `make test` installs them)."""
    import pytest

    missing = [str(p) for p in paths if not Path(p).exists()]
    if missing:
        msg = f"tool(s) not installed: {', '.join(missing)} (run `make tools`)"
        if in_ci():
            pytest.fail(msg)
        pytest.skip(msg)


def check_singer_output(messages: bytes | str, timeout: float = 300) -> subprocess.CompletedProcess:
    """Run singer-check-tap on a tap's stdout (Singer messages). Exit code 0 means valid.

    It validates every RECORD against the latest SCHEMA of its stream (Draft 4,
    date-time formats parsed strictly) and that SCHEMA precedes RECORD. It writes a
    ``singer-check-tap-data/`` dir into its cwd, so it runs in a temp dir.
    Returns the CompletedProcess (text); its stdout holds the per-stream summary table.
    """
    if isinstance(messages, bytes):
        messages = messages.decode("utf-8")
    with tempfile.TemporaryDirectory(prefix="singer-check-tap-") as cwd:
        return subprocess.run(
            [str(SINGER_CHECK_TAP)], input=messages, capture_output=True, text=True, cwd=cwd, timeout=timeout
        )
