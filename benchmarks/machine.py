"""What the benchmark ran on: CPU, memory, Python versions, commit, load."""

import datetime
import os
import platform
import subprocess

from settings import PUBLISHED_PY, ROOT, TAP, VENV_PY


def machine_info():
    model = "unknown"
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as handle:
            for line in handle:
                if line.startswith("model name"):
                    model = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    mem = None
    try:
        with open("/proc/meminfo", encoding="utf-8") as handle:
            for line in handle:
                if line.startswith("MemTotal:"):
                    mem = int(line.split()[1]) // 1024
                    break
    except OSError:
        pass
    try:
        usable = len(os.sched_getaffinity(0))
    except AttributeError:
        usable = os.cpu_count() or 0
    tap_python = _output([VENV_PY, "-c", "import sys; print(sys.version.split()[0])"])
    published_python = (
        _output([PUBLISHED_PY, "-c", "import sys; print(sys.version.split()[0])"])
        if os.path.exists(PUBLISHED_PY)
        else "not installed"
    )
    commit = _output(["git", "-C", ROOT, "rev-parse", "--short", "HEAD"])
    dirty = _output(
        ["git", "-C", ROOT, "status", "--porcelain", "--untracked-files=no", "--", "tap_autopilot", "setup.py"]
    )
    return {
        "cpu": model,
        "cores": f"{os.cpu_count()} ({usable} usable)",
        "memory": f"{mem:,} MB" if mem else "unknown",
        "os": platform.platform(),
        "python (tap)": tap_python,
        "python (0.3.0)": published_python,
        "tap version": _output([TAP, "--version"]),
        "commit": commit + (" + uncommitted changes in tap_autopilot/ or setup.py" if dirty else ""),
        "load average at start": " ".join(f"{x:.2f}" for x in os.getloadavg()),
        "date": datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%d %H:%M UTC"),
    }


def _output(cmd):
    try:
        return subprocess.run(cmd, capture_output=True, text=True, timeout=60).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return "unknown"
