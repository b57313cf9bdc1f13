"""Stopped the way schedulers stop jobs. The real CLI gets SIGTERM or
SIGINT mid-contacts-scan, mid-membership-pass, while a request is stuck, and
while its output is blocked. It must write whole lines only, end with the STATE
that covers every record written, say how to resume, exit 143 (SIGTERM) or 130
(SIGINT) without waiting for requests in flight, and a run resumed from that
STATE must give exactly the sandbox's data together with the stopped one. Its
record_count metrics must add up to the records it wrote, per stream.
"""

from __future__ import annotations

import functools
import json
import os
import signal
import subprocess
import tempfile
import threading
import time
from collections import Counter
from pathlib import Path

import helpers
import pytest
import tools

API_KEY = helpers.SECRET_API_KEY
run_tap = functools.partial(helpers.run_tap, timeout=180, secret=API_KEY)

EXIT_CODES = {signal.SIGTERM: 143, signal.SIGINT: 130}
# Generous bound on how long a stopped tap may take to exit: far below the stalls
# used here (a tap that waited for its stuck request would blow it), far above the
# fraction of a second a stop takes.
EXIT_BOUND_SECONDS = 30


def run_and_signal(args, signum, when, timeout=120, env=None) -> helpers.TapRun:
    """Run the tap reading its stdout line by line; send `signum` once when(messages
    so far) is true, then read to the end. Every line must be a whole JSON message."""
    cmd = tools.tap_cmd() + [str(a) for a in args]
    with tempfile.TemporaryFile() as stderr_file:
        proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=stderr_file, env=env)
        watchdog = threading.Timer(timeout, proc.kill)
        watchdog.start()
        assert proc.stdout is not None
        messages: list[dict] = []
        raw: list[bytes] = []
        sent = threading.Event()

        def signal_when_due():  # polled too: when() may turn true while no line comes (a stuck request)
            while not sent.is_set() and proc.poll() is None:
                if messages and when(list(messages)):
                    os.kill(proc.pid, signum)
                    sent.set()
                time.sleep(0.02)

        poller = threading.Thread(target=signal_when_due, daemon=True)
        poller.start()
        try:
            for line in proc.stdout:
                raw.append(line)
                assert line.endswith(b"\n"), f"a cut line: {line[-200:]!r}"
                messages.append(json.loads(line))
            proc.wait(timeout=EXIT_BOUND_SECONDS)
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
            proc.stdout.close()
            watchdog.cancel()
            sent.set()
            poller.join()
        stderr_file.seek(0)
        stderr = stderr_file.read().decode("utf-8", "replace")
    out = helpers.TapRun(proc.returncode, b"".join(raw).decode("utf-8", "replace"), stderr, messages, killed=True)
    assert out.returncode != 0, f"the tap ended before it could be signalled: {out!r}"
    helpers.assert_clean(out, API_KEY)
    return out


def assert_stopped_cleanly(out: helpers.TapRun, signum):
    name = signal.Signals(signum).name
    assert out.returncode == EXIT_CODES[signum], out
    assert out.messages[-1]["type"] == "STATE", "the last line is not the STATE covering the output"
    stops = [line for line in out.stderr.splitlines() if f"Stopped by {name}" in line]
    assert len(stops) == 1 and stops[0].startswith("WARNING ") and "--state" in stops[0], out


def record_counts(stderr: str) -> Counter[str]:
    """The sum of the record_count metrics per stream."""
    counted: Counter[str] = Counter()
    for line in stderr.splitlines():
        if line.startswith("INFO METRIC: "):
            point = json.loads(line[len("INFO METRIC: ") :])
            if point["metric"] == "record_count":
                counted[point["tags"]["endpoint"]] += point["value"]
    return counted


def assert_counts_are_the_records_written(out: helpers.TapRun):
    """The record_count metrics of a stopped run add up to its RECORD messages, per stream,
    the streams in progress included (the wrapper's history sums them)."""
    written = Counter(m["stream"] for m in out.messages if m["type"] == "RECORD")
    assert record_counts(out.stderr) == written


def assert_resume_gives_the_union(tmp_path, config, catalog, stopped: helpers.TapRun, expected, streams):
    resumed = run_tap(helpers.tap_args(tmp_path, config, catalog, state=stopped.state, name="resumed"))
    assert resumed.returncode == 0, resumed
    for stream in streams:
        helpers.assert_exactly_once(resumed, stream)
        union = set(stopped.keys(stream)) | set(resumed.keys(stream))
        assert union == expected[stream], f"{stream}: {len(expected[stream] - union)} rows lost"
    assert resumed.state["currently_syncing"] is None


def _mid_contacts_scan(messages):
    records = sum(1 for m in messages if m.get("type") == "RECORD" and m["stream"] == "contacts")
    last = messages[-1]
    return (
        records >= 400
        and last.get("type") == "STATE"
        and (last["value"]["bookmarks"].get("contacts", {}).get("scan") or {}).get("cursor") is not None
    )


def _mid_membership_pass(messages):
    last = messages[-1]
    return (
        last.get("type") == "STATE"
        and bool((last["value"]["bookmarks"].get("lists_contacts") or {}).get("in_progress"))
        and sum(1 for m in messages if m.get("type") == "RECORD" and m["stream"] == "lists_contacts") >= 300
    )


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "SIGINT"])
def test_signal_mid_contacts_scan_then_resume(tmp_path, sandbox_factory, signum):
    sb = sandbox_factory(contacts=1500, lists=2, segments=1, seed=41, api_key=API_KEY)
    config = helpers.write_secret_config(tmp_path, sb)
    catalog = helpers.select(helpers.discover(config), streams=helpers.STREAM_NAMES)
    expected = helpers.expected_keys(sb)
    sb.set_faults(latency_ms=60)
    stopped = run_and_signal(helpers.tap_args(tmp_path, config, catalog, name="stopped"), signum, _mid_contacts_scan)
    assert_stopped_cleanly(stopped, signum)
    assert_counts_are_the_records_written(stopped)
    assert stopped.state["currently_syncing"] == "contacts"
    assert "updated_at" not in stopped.state["bookmarks"]["contacts"]
    sb.set_faults(latency_ms=None)
    assert_resume_gives_the_union(tmp_path, config, catalog, stopped, expected, helpers.STREAM_NAMES)


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "SIGINT"])
def test_signal_mid_membership_pass_then_resume(tmp_path, sandbox_factory, signum):
    sb = sandbox_factory(contacts=1500, lists=3, segments=1, seed=42, api_key=API_KEY)
    streams = ["lists", "lists_contacts"]
    config = helpers.write_secret_config(tmp_path, sb)
    catalog = helpers.select(helpers.discover(config), streams=streams)
    expected = helpers.expected_keys(sb)
    sb.set_faults(latency_ms=60)
    stopped = run_and_signal(helpers.tap_args(tmp_path, config, catalog, name="stopped"), signum, _mid_membership_pass)
    assert_stopped_cleanly(stopped, signum)
    assert_counts_are_the_records_written(stopped)
    entry = stopped.state["bookmarks"]["lists_contacts"]
    assert entry["complete"] is False and entry["in_progress"], entry
    sb.set_faults(latency_ms=None)
    assert_resume_gives_the_union(tmp_path, config, catalog, stopped, expected, streams)


def test_sigterm_logs_the_record_count_of_every_stream_that_wrote_records(tmp_path, sandbox_factory):
    """Progress lines every 0.2 s count the streams in progress along the way: the stop
    counts what they wrote since, and the streams already done are not counted twice."""
    sb = sandbox_factory(contacts=1500, lists=3, segments=1, seed=46, api_key=API_KEY)
    config = helpers.write_secret_config(tmp_path, sb)
    catalog = helpers.select(helpers.discover(config), streams=helpers.STREAM_NAMES)
    sb.set_faults(latency_ms=60)
    stopped = run_and_signal(
        helpers.tap_args(tmp_path, config, catalog, name="stopped"),
        signal.SIGTERM,
        _mid_contacts_scan,
        env=dict(os.environ, TAP_AUTOPILOT_PROGRESS_SECONDS="0.2"),
    )
    assert_stopped_cleanly(stopped, signal.SIGTERM)
    written = Counter(m["stream"] for m in stopped.messages if m["type"] == "RECORD")
    in_progress = {s for s in written if not any(f"INFO {s}: done," in line for line in stopped.stderr.splitlines())}
    assert "contacts" in in_progress and written["contacts"] >= 400
    assert record_counts(stopped.stderr) == written


def test_sigterm_while_a_request_is_stuck(tmp_path, sandbox_factory):
    """Every 4th request hangs for 10 minutes: the stop must not wait for it."""
    sb = sandbox_factory(contacts=1500, lists=2, segments=1, seed=43, api_key=API_KEY)
    config = helpers.write_secret_config(tmp_path, sb)
    catalog = helpers.select(helpers.discover(config), streams=helpers.STREAM_NAMES)
    expected = helpers.expected_keys(sb)
    sb.reset_stats()
    sb.set_faults(stall_every=4, stall_seconds=600)
    config = helpers.write_secret_config(tmp_path, sb, max_concurrent_requests=1)  # one worker: the stall holds the run
    stopped = run_and_signal(
        helpers.tap_args(tmp_path, config, catalog, name="stopped"),
        signal.SIGTERM,
        lambda messages: sb.stats()["stalled"] >= 1 and sum(m.get("type") == "RECORD" for m in messages) >= 100,
    )
    assert_stopped_cleanly(stopped, signal.SIGTERM)
    sb.set_faults(stall_every=None)
    assert_resume_gives_the_union(tmp_path, config, catalog, stopped, expected, helpers.STREAM_NAMES)


def test_stop_while_the_output_is_blocked_is_bounded_and_a_second_signal_exits_at_once(tmp_path, sandbox_factory):
    """Nobody reads the tap's stdout: a worker is stuck writing a page. The first
    SIGTERM cannot write the final STATE without cutting that page: it gives up after
    a grace period (10 s) and says so; a second SIGTERM exits at once."""
    sb = sandbox_factory(contacts=1500, lists=1, segments=1, seed=44, api_key=API_KEY)
    config = helpers.write_secret_config(tmp_path, sb)
    catalog = helpers.select(helpers.discover(config), streams=["contacts"])
    args = tools.tap_cmd() + [str(a) for a in helpers.tap_args(tmp_path, config, catalog, name="blocked")]
    results = {}
    for insist in (False, True):
        sb.reset_stats()
        with tempfile.TemporaryFile() as stderr_file:
            proc = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=stderr_file)
            try:
                while not _blocked_writing_to_a_pipe(proc.pid):
                    assert proc.poll() is None
                    time.sleep(0.05)
                proc.send_signal(signal.SIGTERM)
                if insist:
                    time.sleep(1)
                    proc.send_signal(signal.SIGTERM)
                proc.wait(timeout=EXIT_BOUND_SECONDS)
            finally:
                if proc.poll() is None:
                    proc.kill()
                proc.communicate()
            stderr_file.seek(0)
            results[insist] = (proc.returncode, stderr_file.read().decode("utf-8", "replace"))
    code, stderr = results[False]
    assert code == 143, stderr[-2000:]
    assert [
        line
        for line in stderr.splitlines()
        if line.startswith("CRITICAL Stopped by SIGTERM while the output was blocked")
    ], stderr[-2000:]
    code, stderr = results[True]
    assert code == 143, stderr[-2000:]
    assert "CRITICAL SIGTERM again: exiting at once." in stderr.splitlines(), stderr[-2000:]
    assert "Traceback" not in stderr and API_KEY not in stderr


def _blocked_writing_to_a_pipe(pid):
    """True once a thread of the process sleeps in the kernel's pipe write (Linux)."""
    for task in Path(f"/proc/{pid}/task").iterdir():
        try:
            if "pipe_write" in (task / "wchan").read_text():
                return True
        except OSError:
            continue
    return False


def test_sigterm_during_discovery(tmp_path, sandbox_factory):
    sb = sandbox_factory(contacts=10, api_key=API_KEY, stall_every=1, stall_seconds=600)
    config = helpers.write_secret_config(tmp_path, sb)
    proc = subprocess.Popen(
        tools.tap_cmd() + ["--config", config, "--discover"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    try:
        while sb.stats()["stalled"] < 1:
            assert proc.poll() is None
            time.sleep(0.05)
        proc.send_signal(signal.SIGTERM)
        stdout, stderr = proc.communicate(timeout=EXIT_BOUND_SECONDS)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    assert proc.returncode == 143, stderr
    assert stdout == ""
    assert "WARNING Stopped by SIGTERM before the sync began; nothing was written." in stderr.splitlines()
    assert "Traceback" not in stderr and API_KEY not in stderr
