#!/usr/bin/env bash
# One scheduled run of a Singer pipeline (tap | target), carrying state from run to run.
#
#   scripts/run-pipeline.sh STATE_FILE TAP [TAP ARGS...] -- TARGET [TARGET ARGS...]
#
# e.g. from cron (docs/scheduling.md; the run history: docs/running.md):
#   scripts/run-pipeline.sh state.json tap-autopilot --config config.json --catalog catalog.json \
#       -- target-postgres --config target-postgres.json
#
# - Gives the tap `--state STATE_FILE` when that file exists and is not empty.
# - Never lets two runs of the same pipeline overlap: it holds an flock(1) lock on
#   STATE_FILE.lock for the whole run (the tap and target inherit it: a run killed
#   while they go on still holds it). A run that finds the lock taken does nothing
#   and exits 75 (EX_TEMPFAIL: try again later) with one line on stderr.
# - Replaces STATE_FILE with the last state the *target* printed (it prints a state
#   only once the records before it are committed), and only when the target exited
#   0; atomically (rename). That state is the last line of the target's stdout that
#   is a JSON object: a log line a target prints on stdout is never taken for one.
#   A tap that failed or was stopped (SIGTERM) still leaves the target's state: the
#   next run resumes from what was loaded.
# - Appends one JSON line per run to STATE_FILE.history.jsonl: start and end, the
#   tap's and the target's exit status, records per stream (the tap's record_count
#   metrics), requests and 429s (its http_request_duration metrics), retries (its
#   "retrying in" warnings) and whether the state advanced. The tap's stderr still
#   reaches this script's stderr as it comes.
# - Exits with the tap's status if it failed, else the target's: cron and
#   systemd see a failed or stopped run.
#
# Needs bash, flock (util-linux) and python3 (any 3.x; PYTHON=/path/to/python for another).
set -euo pipefail

usage() {
  echo "usage: $0 STATE_FILE TAP [TAP ARGS...] -- TARGET [TARGET ARGS...]" >&2
  exit 64
}

(($# >= 4)) || usage
state=$1
shift
tap=()
while (($#)) && [[ $1 != -- ]]; do
  tap+=("$1")
  shift
done
(($# >= 2)) && ((${#tap[@]})) || usage
shift
target=("$@")

python=${PYTHON:-python3}
if ! command -v "$python" >/dev/null; then
  echo "run-pipeline: $python not found (it reads the target's state and writes the run history); set PYTHON." >&2
  exit 69
fi

exec 9>"$state.lock"
if ! flock --nonblock 9; then
  echo "run-pipeline: another run of this pipeline holds $state.lock; not starting this one." >&2
  exit 75
fi

if [[ -s $state ]]; then
  tap+=(--state "$state")
fi

target_out=$(mktemp "$state.target-out.XXXXXX")
tap_log=$(mktemp "$state.tap-log.XXXXXX")
trap 'rm -f "$target_out" "$tap_log" "$state.new"' EXIT

started=$(date +%s.%N)
# The tap's stderr goes on to ours as it comes, and into $tap_log for the history.
exec 8> >(tee -a "$tap_log" >&2)
tee_pid=$!
set +e
"${tap[@]}" 2>&8 8>&- | "${target[@]}" >"$target_out" 8>&-
statuses=("${PIPESTATUS[@]}")
set -e
exec 8>&-
wait "$tee_pid" || true
ended=$(date +%s.%N)
tap_status=${statuses[0]}
target_status=${statuses[1]}

# Keep the target's state and append the history line (JSON in and out: Python). Its failure
# (a folder not writable, a full disk) is one line and exit status 3, after the tap's and the target's.
set +e
"$python" - "$state" "$target_out" "$tap_log" "$started" "$ended" "$tap_status" "$target_status" <<'PY'
import datetime
import json
import os
import re
import sys


def one_line(kind, error, traceback):
    print(f"run-pipeline: the state or the run history could not be written ({kind.__name__}: {error}).", file=sys.stderr)
    sys.stderr.flush()
    os._exit(3)


sys.excepthook = one_line
state, target_out, tap_log, started, ended = sys.argv[1:6]
tap_status, target_status = int(sys.argv[6]), int(sys.argv[7])


def json_object(text):
    try:
        value = json.loads(text)
    except ValueError:
        return None
    return value if isinstance(value, dict) else None


def read_state():
    try:
        with open(state, encoding="utf-8") as handle:
            return json_object(handle.read())
    except OSError:
        return None


advanced = False
if target_status == 0:
    last = None
    with open(target_out, encoding="utf-8", errors="replace") as handle:
        for line in handle:
            value = json_object(line)
            last = last if value is None else value
    if last is not None:
        before = read_state()
        with open(state + ".new", "w", encoding="utf-8") as handle:
            handle.write(json.dumps(last) + "\n")
        os.replace(state + ".new", state)
        advanced = last != before
    elif os.path.getsize(target_out):
        print(f"run-pipeline: the target printed no line that is a JSON object; {state} left as it was.", file=sys.stderr)
else:
    print(f"run-pipeline: the target failed (exit {target_status}); {state} left as it was.", file=sys.stderr)

# singer-python's metric lines: ... METRIC: {"type": ..., "metric": ..., "value": ..., "tags": {...}}
records, requests, rate_limited, retries = {}, 0, 0, 0
with open(tap_log, encoding="utf-8", errors="replace") as handle:
    for line in handle:
        if "METRIC: " in line:
            metric = json_object(line.split("METRIC: ", 1)[1]) or {}
            tags = metric.get("tags") or {}
            if metric.get("metric") == "record_count":
                stream = str(tags.get("endpoint") or tags.get("stream"))
                records[stream] = records.get(stream, 0) + int(metric.get("value") or 0)
            elif metric.get("metric") == "http_request_duration":
                requests += 1
                rate_limited += tags.get("http_status_code") == 429
        elif re.search(r"; retrying in [0-9.]+ s \(attempt \d+\)$", line.rstrip("\n")):
            retries += 1


def utc(epoch):
    return datetime.datetime.fromtimestamp(float(epoch), datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


run = {
    "started_at": utc(started),
    "ended_at": utc(ended),
    "seconds": round(float(ended) - float(started), 1),
    "tap_exit": tap_status,
    "target_exit": target_status,
    "records": records,
    "requests": requests,
    "rate_limited": rate_limited,
    "retries": retries,
    "state_advanced": advanced,
}
with open(state + ".history.jsonl", "a", encoding="utf-8") as handle:
    handle.write(json.dumps(run) + "\n")
PY
history_status=$?
set -e

if ((tap_status != 0)); then
  exit "$tap_status"
fi
if ((target_status != 0)); then
  exit "$target_status"
fi
exit "$history_status"
