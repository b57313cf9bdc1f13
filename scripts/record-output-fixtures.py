"""Record the fixtures of tests/integration/test_output_unchanged.py again, from the tap
as it is now, then run the comparison three times to show they are stable.

The fixtures are the tap's output that `make test` holds every change to. Run this only
when a change to the output is intended, and say so in the CHANGELOG; the fixtures'
folder is named for the release whose output it holds (FIXTURES in the test).

    .venv/bin/python scripts/record-output-fixtures.py
"""

import os
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
TEST = "tests/integration/test_output_unchanged.py"
CHECKS = 3


def pytest(record: bool) -> int:
    env = dict(os.environ, RECORD_OUTPUT_FIXTURES="1" if record else "0")
    return subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", TEST], cwd=REPO, env=env
    ).returncode


def main() -> int:
    if pytest(record=True):
        print("recording failed: the fixtures may be half written (git checkout tests/fixtures to undo)")
        return 1
    for n in range(1, CHECKS + 1):
        if pytest(record=False):
            print(f"the new fixtures did not compare equal on check {n}: the output varies from run to run")
            return 1
    subprocess.run(["git", "status", "--short", "tests/fixtures"], cwd=REPO)
    print("Recorded. Say in the CHANGELOG what changed in the output and why.")
    return 0


if __name__ == "__main__":
    sys.exit(main())
