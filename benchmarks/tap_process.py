"""Running one tap process under a launcher that reports its own rusage; catalogs and configs
written for it."""

import contextlib
import json
import os
import re
import signal
import subprocess
import threading
import time

from settings import VENV_PY


class TapRun:
    """One tap process: its rusage, wall time, exit status and sink."""

    def __init__(self, **fields):
        self.__dict__.update(fields)


# The tap runs under this small launcher, which forks it, waits for it with
# os.wait4 and writes the child's own rusage and wall time to a file. Why not
# wait4 the tap from here: Linux carries the RSS high-water mark of the process
# that forks across exec (into the child's ru_maxrss), so a tap started straight
# from this process would report at least this process's RSS (which grows with
# the validation samples). The launcher is a fresh interpreter of ~10 MB.
LAUNCHER = r"""
import json, os, subprocess, sys, time
started = time.perf_counter()
child = subprocess.Popen(sys.argv[2:])
while True:
    try:
        _, status, usage = os.wait4(child.pid, 0)
        break
    except InterruptedError:
        continue
wall = time.perf_counter() - started
child.returncode = code = os.waitstatus_to_exitcode(status)
with open(sys.argv[1], "w") as handle:
    json.dump({"wall": wall, "user": usage.ru_utime, "sys": usage.ru_stime,
               "maxrss_kb": usage.ru_maxrss, "exit_code": code}, handle)
sys.exit(code if 0 <= code < 256 else 128 - code)
"""


def run_process(cmd, workdir, label, sink, timeout, env=None):
    slug = re.sub(r"[^A-Za-z0-9_.-]+", "_", label)
    log_path = os.path.join(workdir, slug + ".stderr.log")
    usage_path = os.path.join(workdir, slug + ".rusage.json")
    if os.path.exists(usage_path):
        os.unlink(usage_path)
    killed = threading.Event()
    started = time.perf_counter()
    with open(log_path, "wb") as err:
        proc = subprocess.Popen(
            [VENV_PY, "-c", LAUNCHER, usage_path] + list(cmd),
            stdout=subprocess.PIPE,
            stderr=err,
            stdin=subprocess.DEVNULL,
            cwd=workdir,
            env=env,
            bufsize=1 << 16,
            start_new_session=True,
        )

    def kill():
        killed.set()
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)  # the launcher and the tap

    timer = threading.Timer(timeout, kill)
    timer.daemon = True
    timer.start()
    try:
        sink.feed(proc.stdout)
        _, status, usage = os.wait4(proc.pid, 0)
    finally:
        timer.cancel()
    wall = time.perf_counter() - started
    proc.returncode = os.waitstatus_to_exitcode(status)
    if proc.stdout is not None:
        proc.stdout.close()
    try:
        with open(usage_path, encoding="utf-8") as handle:
            child = json.load(handle)
    except (OSError, ValueError):  # killed: the launcher's totals (its own share is tiny)
        child = {
            "wall": wall,
            "user": usage.ru_utime,
            "sys": usage.ru_stime,
            "maxrss_kb": usage.ru_maxrss,
            "exit_code": proc.returncode,
        }
    return TapRun(
        cmd=cmd,
        wall=child["wall"],
        user=child["user"],
        sys=child["sys"],
        cpu=child["user"] + child["sys"],
        maxrss_mb=child["maxrss_kb"] / 1024.0,
        exit_code=child["exit_code"],
        timed_out=killed.is_set(),
        log_path=log_path,
        sink=sink,
    )


def write_json(path, obj):
    with open(path, "w", encoding="utf-8") as handle:
        json.dump(obj, handle)
    return path


def select_catalog(catalog, streams):
    """A copy of a discovered catalog with exactly `streams` selected (stream-level
    metadata, which both taps read; columns keep their defaults)."""
    out = json.loads(json.dumps(catalog))
    for entry in out["streams"]:
        chosen = entry["tap_stream_id"] in streams
        for item in entry.get("metadata") or []:
            if not item.get("breadcrumb"):
                item["metadata"]["selected"] = chosen
                break
        else:
            entry.setdefault("metadata", []).append({"breadcrumb": [], "metadata": {"selected": chosen}})
    return out
