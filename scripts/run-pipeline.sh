#!/usr/bin/env bash
# One scheduled run of a Singer pipeline (tap | target), carrying state from run to run.
#
#   scripts/run-pipeline.sh STATE_FILE TAP [TAP ARGS...] -- TARGET [TARGET ARGS...]
#
# e.g. from cron (docs/scheduling.md):
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
#   0; atomically (mv). A tap that failed or was stopped (SIGTERM) still leaves the
#   target's state: the next run resumes from what was loaded.
# - Exits with the tap's status if it failed, else the target's: cron and
#   systemd see a failed or stopped run.
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

exec 9>"$state.lock"
if ! flock --nonblock 9; then
  echo "run-pipeline: another run of this pipeline holds $state.lock; not starting this one." >&2
  exit 75
fi

if [[ -s $state ]]; then
  tap+=(--state "$state")
fi

target_out=$(mktemp "$state.target-out.XXXXXX")
trap 'rm -f "$target_out" "$state.new"' EXIT

set +e
"${tap[@]}" | "${target[@]}" >"$target_out"
statuses=("${PIPESTATUS[@]}")
set -e
tap_status=${statuses[0]}
target_status=${statuses[1]}

if ((target_status == 0)); then
  last=$(tail -n 1 "$target_out")
  if [[ -n $last ]]; then
    printf '%s\n' "$last" >"$state.new"
    mv "$state.new" "$state"
  fi
else
  echo "run-pipeline: the target failed (exit $target_status); $state left as it was." >&2
fi

if ((tap_status != 0)); then
  exit "$tap_status"
fi
exit "$target_status"
