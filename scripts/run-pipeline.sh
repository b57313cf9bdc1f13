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
# - Never lets two runs of the same state overlap: it holds an flock(1) lock on
#   `<realpath of STATE_FILE>.lock` for the whole run (a symlink or another path to the
#   same file takes the same lock; the tap and target inherit it: a run killed while
#   they go on still holds it). A run that finds the lock taken does nothing and exits
#   75 (EX_TEMPFAIL: try again later) with one line on stderr.
# - Replaces STATE_FILE with the last state the *target* printed (it prints a state only
#   once the records before it are committed), and only when the target exited 0. A state
#   is a JSON object with a "bookmarks" object, the shape this tap writes: any other line
#   is ignored (one line on stderr for JSON that is not a state). It writes through a
#   symlink to the real file, keeps its mode (and owner where it may), atomically.
# - Appends one JSON line per run to STATE_FILE.history.jsonl (docs/running.md): times,
#   exit statuses, records per stream, requests, 429s, retries, whether the state
#   advanced, how the run ended ("outcome") and its log. The tap's stderr reaches this
#   script's stderr as it comes, and each run's copy is kept in STATE_FILE.logs/ (the
#   last RUN_PIPELINE_KEEP_LOGS runs, 30 by default).
# - SIGTERM, SIGINT or SIGHUP: passes SIGTERM to the tap (it writes its last state and
#   exits; the target then reads to the end, commits and exits), and gives them
#   RUN_PIPELINE_STOP_GRACE_SECONDS (30) before it sends SIGTERM to whichever still runs,
#   and as long again before SIGKILL. A second signal takes the next step at once. Then it
#   writes the history line, keeps the state as above, and exits 128 + the signal's number.
#   The tap and the target run in sessions of their own: a signal to this script's
#   process group (timeout(1), Ctrl-C) reaches them only through it.
# - A run killed outright (SIGKILL) leaves its marker `<realpath>.running`: the next run
#   records it in the history as "vanished" and removes the temporary files it left
#   (`<realpath>.tmp-*`) before it starts.
# - Exits with the tap's status if it failed, else the target's (or 128 + the signal):
#   cron and systemd see a failed or stopped run. A state or history that cannot be
#   written is one line and exit 3, after those.
#
# Needs bash, flock and setsid (util-linux), coreutils and python3 (3.6 or newer; PYTHON=/path
# for another) to run run_pipeline_state.py, which must stay beside this script.
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

keep_logs=${RUN_PIPELINE_KEEP_LOGS:-30}
if ! [[ $keep_logs =~ ^[1-9][0-9]{0,5}$ ]]; then
  echo "run-pipeline: RUN_PIPELINE_KEEP_LOGS must be a whole number of runs from 1 to 999999 (it is \"$keep_logs\")." >&2
  exit 64
fi
grace=${RUN_PIPELINE_STOP_GRACE_SECONDS:-30}
if ! [[ $grace =~ ^[0-9]{1,5}$ ]]; then
  echo "run-pipeline: RUN_PIPELINE_STOP_GRACE_SECONDS must be a whole number of seconds from 0 to 99999 (it is \"$grace\")." >&2
  exit 64
fi

for needed in flock setsid realpath; do
  if ! command -v "$needed" >/dev/null; then
    echo "run-pipeline: $needed not found (util-linux and coreutils provide it)." >&2
    exit 69
  fi
done
python=${PYTHON:-python3}
if ! command -v "$python" >/dev/null; then
  echo "run-pipeline: $python not found (it reads the target's state and writes the run history); set PYTHON." >&2
  exit 69
fi
helper=$(dirname -- "$(realpath -- "${BASH_SOURCE[0]}")")/run_pipeline_state.py
if [[ ! -f $helper ]]; then
  echo "run-pipeline: $helper is missing: keep run_pipeline_state.py beside run-pipeline.sh." >&2
  exit 69
fi

# Every path that names the state file shares its lock, marker and temporary files.
real=$(realpath -m -- "$state")
exec 9>"$real.lock"
if ! flock --nonblock 9; then
  echo "run-pipeline: another run of this pipeline holds $real.lock; not starting this one." >&2
  exit 75
fi

if [[ -s $state ]]; then
  tap+=(--state "$state")
fi

# ---- stopping: forward, then escalate ---------------------------------------------------
stop_signal=''  # the first of SIGTERM, SIGINT, SIGHUP this script got
stop_step=0     # 1: SIGTERM sent to whatever still ran, 2: SIGKILL
signals=0       # traps run so far (a `wait` they interrupted is waited again)
tap_pid=''
target_pid=''
timer_pid=''
tap_running=0
target_running=0

# A timer in the background: SIGUSR1 to this script after the grace period. Its own
# SIGTERM trap takes its sleep along, and it keeps neither the lock nor our output.
start_timer() {
  (
    trap 'kill "$sleeper" 2>/dev/null; exit 0' TERM
    sleep "$grace" &
    sleeper=$!
    wait "$sleeper" && kill -s USR1 $$
  ) 8>&- 9>&- </dev/null >/dev/null 2>&1 &
  timer_pid=$!
}

escalate() {
  stop_step=$((stop_step + 1))
  local kill_with=TERM
  ((stop_step == 1)) || kill_with=KILL
  if ((tap_running)); then
    echo "run-pipeline: the tap still runs; sending it SIG$kill_with." >&2
    kill -s "$kill_with" "$tap_pid" 2>/dev/null || true
  fi
  if ((target_running)); then
    echo "run-pipeline: the target still runs; sending it SIG$kill_with." >&2
    kill -s "$kill_with" "$target_pid" 2>/dev/null || true
  fi
  ((stop_step >= 2)) || start_timer
}

on_signal() { # TERM, INT or HUP
  signals=$((signals + 1))
  if [[ -n $stop_signal ]]; then
    [[ -z $timer_pid ]] || kill "$timer_pid" 2>/dev/null || true
    timer_pid=''
    ((stop_step >= 2)) || escalate
    return
  fi
  stop_signal=SIG$1
  echo "run-pipeline: $stop_signal received: stopping the tap; the target gets $grace s to finish." >&2
  # SIGTERM whatever this script got: the stop every tap understands (SIGINT stays
  # ignored in a background job, SIGHUP would kill the tap before its last state).
  ((!tap_running)) || kill -s TERM "$tap_pid" 2>/dev/null || true
  start_timer
}

on_timer() {
  signals=$((signals + 1))
  timer_pid=''
  ((stop_step >= 2)) || escalate
}

trap 'on_signal TERM' TERM
trap 'on_signal INT' INT
trap 'on_signal HUP' HUP
trap on_timer USR1

# `wait` returns early when a trap runs: wait again until it returns on its own (bash
# keeps a child's status, so waiting again for one already waited for gives it again).
wait_for() { # PID; its exit status in $waited
  local seen
  while :; do
    seen=$signals
    wait "$1"
    waited=$?
    ((signals != seen)) || return 0
  done
}

# ---- the run ---------------------------------------------------------------------------
target_out=''
pipe=''
cleanup() {
  [[ -z $timer_pid ]] || kill "$timer_pid" 2>/dev/null || true
  rm -f -- "$target_out" "$pipe"
}
trap cleanup EXIT
started=$(date +%s.%N)
# Records a vanished run, removes leftovers, writes the marker; prints this run's log file.
log=$("$python" "$helper" start "$state" "$real" "$started" "$$")
target_out=$(mktemp -- "$real.tmp-target-out-XXXXXX")
pipe=$(mktemp -u -- "$real.tmp-pipe-XXXXXX")
mkfifo -m 600 -- "$pipe"

# The tap's stderr goes on to ours as it comes, and into this run's log. tee ignores the
# stop signals: it ends when the tap closes its stderr, so the log has the tap's last line.
exec 8> >(
  trap '' TERM INT HUP
  exec tee -a -- "$log" >&2 9>&-
)
tee_pid=$!
set +e
setsid "${target[@]}" <"$pipe" >"$target_out" 8>&- &
target_pid=$!
target_running=1
setsid "${tap[@]}" >"$pipe" 2>&8 8>&- &
tap_pid=$!
tap_running=1
exec 8>&-
if [[ -n $stop_signal ]]; then # a signal came while they started
  kill -s TERM "$tap_pid" 2>/dev/null
fi
wait_for "$tap_pid"
tap_status=$waited
tap_running=0
wait_for "$target_pid"
target_status=$waited
target_running=0
wait_for "$tee_pid"
set -e
# Done: a signal from here on would only cut the history line short.
trap '' TERM INT HUP USR1
[[ -z $timer_pid ]] || kill "$timer_pid" 2>/dev/null || true
timer_pid=''
ended=$(date +%s.%N)

# Keep the target's state, append the history line, remove the marker, prune the logs.
# Its failure (a folder not writable, a full disk) is one line and exit status 3.
set +e
"$python" "$helper" finish "$state" "$real" "$started" "$ended" "$tap_status" "$target_status" \
  "$stop_signal" "$target_out" "$log" "$keep_logs"
history_status=$?
set -e

if [[ -n $stop_signal ]]; then
  exit $((128 + $(kill -l "$stop_signal")))
fi
if ((tap_status != 0)); then
  exit "$tap_status"
fi
if ((target_status != 0)); then
  exit "$target_status"
fi
exit "$history_status"
