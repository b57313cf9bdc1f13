"""The JSON half of scripts/run-pipeline.sh: the run marker, the state the target printed,
the run history and the per-run extraction logs. The wrapper runs it twice a run, holding
the state's lock:

    run_pipeline_state.py start STATE REAL_STATE STARTED PID
        records a run that vanished (its marker is still there), removes the temporary
        files a killed run left beside the state, creates this run's log file and marker,
        and prints the log file's path.
    run_pipeline_state.py finish STATE REAL_STATE STARTED ENDED TAP_EXIT TARGET_EXIT
                                 STOPPED_BY TARGET_OUT LOG KEEP_LOGS
        saves the target's last state, appends the history line, removes the marker and
        keeps only the last KEEP_LOGS logs.

STATE is the path as given (history and logs go beside it), REAL_STATE its `realpath -m`
(the lock, marker and temporary files go beside the file itself). STARTED and ENDED are
epoch seconds (`date +%s.%N`), STOPPED_BY a signal name such as SIGTERM, or "".

It runs under whatever python3 the wrapper finds (3.6 or newer), never the tap's venv: the
standard library only, and typing's old spellings (ruff.toml lets this file keep them).
Any failure is one line on stderr and exit status 3.
"""

import contextlib
import datetime
import json
import os
import re
import stat
import sys
import tempfile
from typing import Any, Dict, Iterable, List, Optional, Tuple

VANISHED = "vanished"
# A per-run log: its run's start time (UTC, to the nanosecond, fixed width so that names
# sort by time) and the wrapper's pid.
LOG_NAME = re.compile(r"^\d{8}T\d{6}\.\d{9}Z-\d+\.log$")
_RETRY = re.compile(r"; retrying in [0-9.]+ s \(attempt \d+\)$")


class WriteFailed(Exception):
    """Something the wrapper writes could not be written; the first error is kept."""


def say(message: str) -> None:
    print("run-pipeline: " + message, file=sys.stderr)


# ---- rules -----------------------------------------------------------------------


def is_state(value: Any) -> bool:
    """The shape of a state this tap writes: an object whose "bookmarks" is an object of
    objects. `{}` is not one: every STATE the tap writes carries "bookmarks"."""
    if not isinstance(value, dict):
        return False
    bookmarks = value.get("bookmarks")
    return isinstance(bookmarks, dict) and all(isinstance(entry, dict) for entry in bookmarks.values())


def outcome(stopped_by: str, tap_exit: int, target_exit: int) -> str:
    """How a run ended, for its history line. A stop names the signal the wrapper got,
    whatever the tap and target then exited with (they were stopped)."""
    if stopped_by:
        return "stopped by " + stopped_by
    if tap_exit != 0:
        return "tap failed"
    if target_exit != 0:
        return "target failed"
    return "completed"


def _described(value: Any) -> str:
    """What a JSON value is, never its content: an object by its first key names."""
    if isinstance(value, dict):
        keys = [json.dumps(key)[:40] for key in list(value)[:5]]
        more = ", ..." if len(value) > 5 else ""
        return "an object with keys " + ", ".join(keys) + more if keys else "an empty object"
    kinds = {list: "a list", str: "a string", bool: "a boolean", type(None): "null"}
    return kinds.get(type(value), "a number")


def last_state(lines: Iterable[str]) -> Tuple[Optional[Dict[str, Any]], int, str]:
    """(the last line that is a state, or None; how many lines are JSON but not a state;
    what the first of those is). Lines that are not JSON (a target's log text) do not count."""
    state = None  # type: Optional[Dict[str, Any]]
    ignored, first = 0, ""
    for line in lines:
        try:
            value = json.loads(line)
        except ValueError:
            continue
        if is_state(value):
            state = value
        else:
            ignored += 1
            first = first or _described(value)
    return state, ignored, first


def tap_counts(lines: Iterable[str]) -> Dict[str, Any]:
    """Records per stream, requests, 429s and retries, read from the tap's log lines:
    singer-python's metrics (`... METRIC: {"type", "metric", "value", "tags"}`) and the
    tap's "retrying in" warnings."""
    records = {}  # type: Dict[str, int]
    requests = rate_limited = retries = 0
    for line in lines:
        if "METRIC: " in line:
            try:
                metric = json.loads(line.split("METRIC: ", 1)[1])
            except ValueError:
                continue
            if not isinstance(metric, dict):
                continue
            tags = metric.get("tags")
            tags = tags if isinstance(tags, dict) else {}
            value = metric.get("value")
            if metric.get("metric") == "record_count" and isinstance(value, int) and not isinstance(value, bool):
                # Only a count is counted: a line that is not one must not stop this run's
                # history, nor (read again as a vanished run's log) every later run.
                stream = str(tags.get("endpoint") or tags.get("stream"))
                records[stream] = records.get(stream, 0) + value
            elif metric.get("metric") == "http_request_duration":
                requests += 1
                rate_limited += tags.get("http_status_code") == 429
        elif _RETRY.search(line.rstrip("\n")):
            retries += 1
    return {"records": records, "requests": requests, "rate_limited": rate_limited, "retries": retries}


def utc(epoch: str) -> str:
    moment = datetime.datetime.fromtimestamp(float(epoch), datetime.timezone.utc)
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")


def log_name(started: str, pid: str) -> str:
    """This run's log file name: its start time to the nanosecond, then the wrapper's pid."""
    seconds, _, fraction = started.partition(".")
    moment = datetime.datetime.fromtimestamp(int(seconds), datetime.timezone.utc)
    return f"{moment.strftime('%Y%m%dT%H%M%S')}.{(fraction + '0' * 9)[:9]}Z-{pid}.log"


def logs_to_remove(names: Iterable[str], keep: int) -> List[str]:
    """The per-run logs beyond the newest `keep`, oldest first; other files are not ours."""
    logs = sorted(name for name in names if LOG_NAME.match(name))
    return logs[: max(len(logs) - keep, 0)]


# ---- files -------------------------------------------------------------------------


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def write_atomically(real: str, text: str, purpose: str) -> None:
    """Replace the file `real` (symlinks already resolved) with `text`: a temporary file
    `<real>.tmp-<purpose>-<random>` in the same directory, fsync'd, given the old file's
    mode (and owner and group where allowed), then renamed over it. A new file gets the
    mode the umask gives. The tap's --reset-stream writes the same way
    (tap_autopilot/state/file.py): this file cannot import the tap, so a change to one
    rule there is made here too."""
    directory, name = os.path.split(real)
    try:
        before = os.stat(real)  # type: Optional[os.stat_result]
    except FileNotFoundError:
        before = None
    descriptor, temporary = tempfile.mkstemp(prefix=name + ".tmp-" + purpose + "-", dir=directory or ".")
    try:
        with os.fdopen(descriptor, "w", encoding="utf-8") as handle:
            handle.write(text)
            handle.flush()
            os.fsync(handle.fileno())
        if before is None:
            os.chmod(temporary, 0o666 & ~_umask())
        else:
            try:
                os.chown(temporary, before.st_uid, before.st_gid)
            except PermissionError:  # not root: the group at least, if we belong to it
                with contextlib.suppress(PermissionError):
                    os.chown(temporary, -1, before.st_gid)
            os.chmod(temporary, stat.S_IMODE(before.st_mode))
        os.replace(temporary, real)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(temporary)
        raise
    with contextlib.suppress(OSError):  # the rename itself survives a crash
        directory_descriptor = os.open(directory or ".", os.O_RDONLY)
        try:
            os.fsync(directory_descriptor)
        finally:
            os.close(directory_descriptor)


def read_json(path: str) -> Any:
    try:
        with open(path, encoding="utf-8") as handle:
            return json.loads(handle.read())
    except (OSError, ValueError):
        return None


def read_lines(path: str) -> List[str]:
    try:
        with open(path, encoding="utf-8", errors="replace") as handle:
            return handle.readlines()
    except OSError:
        return []


def remove_leftovers(real: str) -> int:
    """Delete `<real>.tmp-*`: only a holder of the lock creates them, and the caller holds
    it, so they belong to a run that was killed. Returns how many there were."""
    directory, name = os.path.split(real)
    prefix = name + ".tmp-"
    removed = 0
    for entry in os.listdir(directory or "."):
        if entry.startswith(prefix):
            with contextlib.suppress(FileNotFoundError):
                os.unlink(os.path.join(directory, entry))
                removed += 1
    return removed


def append_history(history: str, run: Dict[str, Any]) -> None:
    with open(history, "a", encoding="utf-8") as handle:
        handle.write(json.dumps(run) + "\n")


# ---- the two steps -------------------------------------------------------------------


def vanished_run(marker: Dict[str, Any]) -> Dict[str, Any]:
    """The history line of a run whose wrapper was killed: what its marker and its log say.
    When it ended is unknown (null): it left nothing that says so."""
    log = marker.get("log") if isinstance(marker.get("log"), str) else None
    run = {"started_at": marker.get("started_at"), "ended_at": None, "seconds": None}
    run.update({"tap_exit": None, "target_exit": None})
    run.update(tap_counts(read_lines(log) if log else []))
    run.update({"state_advanced": False, "outcome": VANISHED, "log": log})
    return run


def start(state: str, real: str, started: str, pid: str) -> str:
    marker_path = real + ".running"
    if os.path.lexists(marker_path):
        left = read_json(marker_path)
        left = left if isinstance(left, dict) else {}
        run = vanished_run(left)
        append_history(state + ".history.jsonl", run)
        os.unlink(marker_path)
        say(
            f"the run started at {run['started_at']} (wrapper pid {left.get('pid')}) ended without writing "
            f"its history line (killed?); recorded as {VANISHED}."
        )
    removed = remove_leftovers(real)
    if removed:
        say(f"removed {removed} temporary file(s) a killed run left beside {real}.")
    logs = state + ".logs"
    os.makedirs(logs, exist_ok=True)
    log = os.path.abspath(os.path.join(logs, log_name(started, pid)))
    with open(log, "x", encoding="utf-8"):
        pass
    marker = {"pid": int(pid), "started_at": utc(started), "log": log}
    write_atomically(marker_path, json.dumps(marker) + "\n", "marker")
    return log


def save_state(state: str, real: str, target_out: str, target_exit: int, stopped_by: str) -> bool:
    """Replace the state with the last state the target printed, when it exited 0.
    Returns whether the state changed."""
    if target_exit != 0:
        ended = "was stopped" if stopped_by and target_exit > 128 else "failed"
        say(f"the target {ended} (exit {target_exit}); {state} left as it was.")
        return False
    document, ignored, first = last_state(read_lines(target_out))
    if ignored:
        say(f"ignored {ignored} line(s) of the target's output that are JSON but not a state (the first: {first}).")
    if document is None:
        say(f"the target printed no state; {state} left as it was.")
        return False
    before = read_json(real)
    write_atomically(real, json.dumps(document) + "\n", "state")
    return document != before


def finish(arguments: List[str]) -> None:
    state, real, started, ended, tap_exit, target_exit, stopped_by, target_out, log, keep = arguments
    errors = []  # type: List[BaseException]
    advanced = False
    try:
        advanced = save_state(state, real, target_out, int(target_exit), stopped_by)
    except OSError as error:
        errors.append(error)
    run = {"started_at": utc(started), "ended_at": utc(ended), "seconds": round(float(ended) - float(started), 1)}
    run.update({"tap_exit": int(tap_exit), "target_exit": int(target_exit)})
    run.update(tap_counts(read_lines(log)))
    run.update({"state_advanced": advanced, "outcome": outcome(stopped_by, int(tap_exit), int(target_exit))})
    run["log"] = log
    try:
        append_history(state + ".history.jsonl", run)
    except OSError as error:
        errors.append(error)
    # Gone even when the history could not be written: the next run must not call this one vanished.
    with contextlib.suppress(FileNotFoundError):
        os.unlink(real + ".running")
    logs = os.path.dirname(log)
    try:
        for name in logs_to_remove(os.listdir(logs), int(keep)):
            with contextlib.suppress(FileNotFoundError):
                os.unlink(os.path.join(logs, name))
    except OSError as error:
        errors.append(error)
    if errors:
        raise WriteFailed(errors[0])


def _one_line(kind: type, error: BaseException, traceback: object) -> None:
    if isinstance(error, WriteFailed):
        kind, error = type(error.args[0]), error.args[0]
    say(f"the state or the run history could not be written ({kind.__name__}: {error}).")
    sys.stderr.flush()
    os._exit(3)


def main(argv: List[str]) -> None:
    sys.excepthook = _one_line
    if argv[:1] == ["start"] and len(argv) == 5:
        print(start(*argv[1:]))
    elif argv[:1] == ["finish"] and len(argv) == 11:
        finish(argv[1:])
    else:
        raise SystemExit("usage: run_pipeline_state.py start|finish ... (run by scripts/run-pipeline.sh)")


if __name__ == "__main__":
    main(sys.argv[1:])
