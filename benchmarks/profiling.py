"""Scenario 1 under a per-thread cProfile (thread CPU time): where the tap's CPU goes."""

import os
import pstats
import subprocess

from sandbox_process import Sandbox
from settings import ALL, ROOT, SIZES, UNLIMITED_RATE, VENV_PY, log
from sink import Sink
from tap_process import run_process, select_catalog, write_json

PROFILE_BOOTSTRAP = r"""
import cProfile, os, sys, threading, time
_profiles = []
_lock = threading.Lock()
_original_run = threading.Thread.run
def _run(self):
    profile = cProfile.Profile(time.thread_time)
    with _lock:
        _profiles.append(profile)
    profile.enable()
    try:
        _original_run(self)
    finally:
        profile.disable()
threading.Thread.run = _run
_main = cProfile.Profile(time.thread_time)
_profiles.append(_main)
sys.argv = ["tap-autopilot"] + sys.argv[1:]
code = 0
_main.enable()
try:
    from tap_autopilot.cli import main
    main()
except SystemExit as exit_:
    code = exit_.code
finally:
    _main.disable()
    import pstats
    with _lock:
        stats = pstats.Stats(*_profiles)
    stats.dump_stats(os.environ["TAP_PROFILE_OUT"])
sys.exit(code)
"""


def profiling_python():
    """The interpreter to profile the tap under: per-thread cProfile needs CPython 3.11 (from
    3.12 on cProfile rides on sys.monitoring, one profiler per process: a second thread's
    enable() raises). The tap's venv if it is 3.11, else the 3.11 venv `make test` builds
    (.venvs/3.11), else None."""
    for python in (VENV_PY, os.path.join(ROOT, ".venvs", "3.11", "bin", "python")):
        if os.path.exists(python):
            version = subprocess.run(
                [python, "-c", "import sys; print(*sys.version_info[:2])"], capture_output=True, text=True, check=True
            ).stdout.split()
            if version == ["3", "11"]:
                return python
    return None


def scenario_profile(bench):
    size = SIZES[bench.mode]["s1"]
    out = os.path.join(bench.workdir, "tap.prof")
    python = profiling_python()
    if python is None:
        bench.sections.append(
            (
                "Profile of scenario 1",
                [
                    "Skipped: per-thread cProfile needs CPython 3.11 (from 3.12 on only one profiler runs "
                    "at a time), and neither .venv nor .venvs/3.11 (made by `make test`) is 3.11."
                ],
            )
        )
        return
    with Sandbox(bench.workdir, **size) as sb:
        config = bench.our_config(sb, UNLIMITED_RATE)
        catalog = write_json(
            os.path.join(bench.workdir, "catalog-profile.json"), select_catalog(bench.our_catalog(sb, config), ALL)
        )
        log(f"bench: profile: scenario 1 ({size['contacts']:,} contacts, all streams) under cProfile ...")
        sb.reset_stats()
        env = dict(os.environ, TAP_PROFILE_OUT=out)
        run = run_process(
            [python, "-c", PROFILE_BOOTSTRAP, "--config", config, "--catalog", catalog],
            bench.workdir,
            "profile",
            Sink(validate_all_up_to=0, stride=10**9),
            bench.timeout,
            env=env,
        )
    if run.exit_code != 0 or not os.path.exists(out):
        bench.sections.append(
            ("Profile of scenario 1", [f"The profiled run failed (exit {run.exit_code}); see {run.log_path}."])
        )
        return
    records = sum(run.sink.records().values())
    stats = pstats.Stats(out)
    total = stats.total_tt  # type: ignore[attr-defined]  # documented in the profile module, not in typeshed
    lines = [
        f"Scenario 1 data ({size['contacts']:,} contacts, all streams, {records:,} records), the tap run "
        f"under CPython 3.11 ({os.path.relpath(python, ROOT)}) and cProfile in every thread (main, pool "
        "workers, progress) with `time.thread_time` as the clock, so "
        f"the times are CPU, not waiting. Profiled CPU {total:.2f} s in the profiler's clock "
        f"(process CPU {run.cpu:.2f} s with the profiler's own overhead; the unprofiled run is in the table "
        "above). Recreate with `benchmarks/run.py --only profile --keep` (the .prof file stays in the work "
        "directory).",
        "",
    ]
    for title, key in (("Top 15 by own time (tottime)", 2), ("Top 15 by cumulative time", 3)):
        lines += [f"**{title}**", "", "| own s | own % | cumulative s | calls | function |", "|--:|--:|--:|--:|---|"]
        rows = sorted(stats.stats.items(), key=lambda item: item[1][key], reverse=True)  # type: ignore[attr-defined]
        shown = 0
        for (filename, line, name), (cc, nc, tt, ct, _callers) in rows:
            if key == 3 and _is_wrapper(filename, name):
                continue
            calls = f"{nc:,}" if nc == cc else f"{nc:,}/{cc:,}"
            lines.append(
                f"| {tt:.3f} | {100 * tt / total if total else 0:.1f} | {ct:.3f} | {calls} | "
                f"`{_function_label(filename, line, name)}` |"
            )
            shown += 1
            if shown == 15:
                break
        lines.append("")
    bench.sections.append(("Profile of scenario 1 (where the tap's CPU goes)", lines))


def _is_wrapper(filename, name):
    """Frames that only wrap everything: thread bootstrap, the profiling script,
    the import machinery (import CPU shows as the `<module>` rows)."""
    if filename == "<string>" and name in ("<module>", "_run"):
        return True
    if filename.startswith("<frozen importlib"):
        return True
    if filename == "~" and name in ("<built-in method builtins.exec>", "<built-in method builtins.__import__>"):
        return True
    return "threading.py" in filename and name in ("_bootstrap", "_bootstrap_inner", "run")


def _function_label(filename, line, name):
    if filename == "~":
        return name
    for marker in ("site-packages/", "lib/python3.11/", ROOT + "/"):
        if marker in filename:
            filename = filename.split(marker, 1)[1]
            break
    return f"{filename}:{line} {name}"
