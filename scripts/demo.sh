#!/usr/bin/env bash
# End-to-end demo: Autopilot API sandbox -> tap-autopilot -> target-jsonl, then the same
# messages -> target-duckdb -> the dbt package (dbt/) in an embedded DuckDB warehouse.
#
#   make demo            (or: bash scripts/demo.sh, after `make venv tools`)
#
# Starts the sandbox on a free local port, discovers, selects every stream,
# syncs into demo-output/data/<stream>.jsonl, prints rows per stream and the
# final state, and stops the sandbox on exit (whatever happens). target-jsonl's
# ACTIVATE_VERSION warnings stay in its log, off the screen, with one line on why.
# Then it loads the tap's output into demo-output/warehouse.duckdb with target-duckdb,
# runs `dbt build`, and prints members per list and per segment from the models.
#
# Everything lands in demo-output/ (recreated on each run, except the warehouse when
# DEMO_STATE is set: the incremental load goes into the one the earlier run filled):
#   config.json catalog.json tap-output.jsonl state.json data/ *.log warehouse.duckdb dbt/
#
# Knobs (environment): DEMO_OUTPUT (dir), DEMO_CONTACTS, DEMO_LISTS,
# DEMO_SEGMENTS, DEMO_SEED, DEMO_STATE (a state file to start from, e.g. the
# state.json of a previous run, to show an incremental sync), DEMO_WAREHOUSE=0
# (stop after the JSONL files).
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."
ROOT=$PWD
PY=${PY:-$ROOT/.venv/bin/python}
TAP=${TAP:-$ROOT/.venv/bin/tap-autopilot}
TARGET_JSONL=${TARGET_JSONL:-$ROOT/.tools/target-jsonl/bin/target-jsonl}
TARGET_DUCKDB=${TARGET_DUCKDB:-$ROOT/.tools/target-duckdb/bin/target-duckdb}
DBT=${DBT:-$ROOT/.tools/dbt/bin/dbt}
WAREHOUSE=${DEMO_WAREHOUSE:-1}
OUT=${DEMO_OUTPUT:-$ROOT/demo-output}
CONTACTS=${DEMO_CONTACTS:-500}
LISTS=${DEMO_LISTS:-4}
SEGMENTS=${DEMO_SEGMENTS:-3}
SEED=${DEMO_SEED:-42}

NEEDED=("$PY" "$TAP" "$TARGET_JSONL")
[[ $WAREHOUSE == 0 ]] || NEEDED+=("$TARGET_DUCKDB" "$DBT")
for exe in "${NEEDED[@]}"; do
    [[ -x $exe ]] || { echo "demo: $exe not found; run 'make venv tools' first" >&2; exit 1; }
done

# Keep a starting state (it may live inside the output dir we are about to wipe).
STATE_IN=
WAREHOUSE_IN=
if [[ -n ${DEMO_STATE:-} ]]; then
    STATE_IN=$(mktemp)
    cp "$DEMO_STATE" "$STATE_IN"
    if [[ -f $OUT/warehouse.duckdb ]]; then
        WAREHOUSE_IN=$(mktemp)
        cp "$OUT/warehouse.duckdb" "$WAREHOUSE_IN"
    fi
fi

rm -rf "$OUT"
mkdir -p "$OUT/data"
if [[ -n $WAREHOUSE_IN ]]; then
    mv "$WAREHOUSE_IN" "$OUT/warehouse.duckdb"
    WAREHOUSE_IN=
fi

SANDBOX_PID=
cleanup() {
    local rc=$?
    if [[ -n $SANDBOX_PID ]] && kill -0 "$SANDBOX_PID" 2>/dev/null; then
        kill "$SANDBOX_PID" 2>/dev/null || true
        wait "$SANDBOX_PID" 2>/dev/null || true
    fi
    [[ -n $STATE_IN ]] && rm -f "$STATE_IN"
    [[ -n $WAREHOUSE_IN ]] && rm -f "$WAREHOUSE_IN"
    exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# target-jsonl 0.1.4 predates ACTIVATE_VERSION and warns once per message it skips:
# noise on the screen (kept in the log), explained in one line by note_activate_version.
ACTIVATE_VERSION_NOISE='^WARNING Unknown message type ACTIVATE_VERSION '

fail() {
    echo "demo: $1" >&2
    shift
    for log in "$@"; do
        [[ -s $log ]] && { echo "---- last lines of $log" >&2; grep -v -- "$ACTIVATE_VERSION_NOISE" "$log" | tail -n 30 >&2; }
    done
    exit 1
}

# What target-jsonl said, but its ACTIVATE_VERSION warnings, and a line on why those are harmless.
show_target_log() {
    local log=$1 skipped
    grep -v -- "$ACTIVATE_VERSION_NOISE" "$log" >&2 || true
    skipped=$(grep -c -- "$ACTIVATE_VERSION_NOISE" "$log" || true)
    if ((skipped)); then
        echo "target-jsonl: $skipped 'Unknown message type ACTIVATE_VERSION' warnings not shown (kept in $log)." \
            "Harmless: this old target does not know the message that lets a target drop the rows a full-table" \
            "pass no longer has; it skips it and writes every record (the table_version column tells the current rows)."
    fi
}

# ---- 1. sandbox ----------------------------------------------------------------
# Unbuffered, so its first stdout line (the base URL) reaches the file at once.
PYTHONUNBUFFERED=1 "$PY" -m tap_autopilot.sandbox --port 0 \
    --contacts "$CONTACTS" --lists "$LISTS" --segments "$SEGMENTS" --seed "$SEED" \
    >"$OUT/sandbox.out" 2>"$OUT/sandbox.log" &
SANDBOX_PID=$!

BASE_URL=
for _ in $(seq 600); do   # up to 60 s
    if [[ $(wc -l <"$OUT/sandbox.out") -ge 1 ]]; then
        BASE_URL=$(head -n 1 "$OUT/sandbox.out" | tr -d '\r')
        break
    fi
    kill -0 "$SANDBOX_PID" 2>/dev/null || fail "sandbox exited before printing its URL" "$OUT/sandbox.out" "$OUT/sandbox.log"
    sleep 0.1
done
[[ $BASE_URL == http* ]] || fail "sandbox did not print a base URL (got: '${BASE_URL}')" "$OUT/sandbox.out" "$OUT/sandbox.log"
echo "sandbox: $BASE_URL (pid $SANDBOX_PID; $CONTACTS contacts, $LISTS lists, $SEGMENTS segments, seed $SEED)"

# ---- 2. config, discovery, selection ---------------------------------------------
"$PY" - "$OUT/config.json" "$BASE_URL" <<'EOF'
import json, sys
path, url = sys.argv[1:3]
with open(path, "w") as fh:
    json.dump({"api_key": "sandbox-key", "start_date": "2015-01-01T00:00:00Z", "base_url": url}, fh, indent=2)
EOF
"$PY" - "$OUT/target-jsonl.json" "$OUT/data" <<'EOF'
import json, sys
path, dest = sys.argv[1:3]
with open(path, "w") as fh:
    json.dump({"destination_path": dest, "do_timestamp_file": False}, fh, indent=2)
EOF

"$TAP" --config "$OUT/config.json" --discover >"$OUT/catalog.discovered.json" 2>"$OUT/discover.log" \
    || fail "tap --discover failed" "$OUT/discover.log"

# Select every stream: metadata entry with breadcrumb [] gets selected: true.
STREAMS=$("$PY" - "$OUT/catalog.discovered.json" "$OUT/catalog.json" <<'EOF'
import json, sys
src, dst = sys.argv[1:3]
with open(src) as fh:
    catalog = json.load(fh)
for stream in catalog["streams"]:
    metadata = stream.setdefault("metadata", [])
    top = next((m for m in metadata if m.get("breadcrumb") == []), None)
    if top is None:
        top = {"breadcrumb": [], "metadata": {}}
        metadata.insert(0, top)
    top.setdefault("metadata", {})["selected"] = True
    print(stream["tap_stream_id"])
with open(dst, "w") as fh:
    json.dump(catalog, fh, indent=2)
EOF
)
[[ -n $STREAMS ]] || fail "discovery returned no streams" "$OUT/discover.log"
echo "streams: $(echo $STREAMS)"

# ---- 3. sync -------------------------------------------------------------------
STATE_ARGS=()
[[ -n $STATE_IN ]] && STATE_ARGS=(--state "$STATE_IN") && echo "starting from state: $DEMO_STATE"

START=$(date +%s.%N)
if ! "$TAP" --config "$OUT/config.json" --catalog "$OUT/catalog.json" "${STATE_ARGS[@]}" 2>"$OUT/tap.log" \
        | tee "$OUT/tap-output.jsonl" \
        | "$TARGET_JSONL" --config "$OUT/target-jsonl.json" >"$OUT/target-state.jsonl" 2>"$OUT/target.log"; then
    fail "sync failed (tap | target-jsonl)" "$OUT/tap.log" "$OUT/target.log"
fi
END=$(date +%s.%N)
show_target_log "$OUT/target.log"

# ---- 4. report -----------------------------------------------------------------
"$PY" - "$OUT" "$START" "$END" $STREAMS <<'EOF'
import collections, json, os, sys
out, start, end, *streams = sys.argv[1:]
records = collections.Counter()
state = None
n_state = 0
with open(os.path.join(out, "tap-output.jsonl")) as fh:
    for line in fh:
        msg = json.loads(line)
        if msg.get("type") == "RECORD":
            records[msg["stream"]] += 1
        elif msg.get("type") == "STATE":
            state, n_state = msg["value"], n_state + 1
print(f"\nsync took {float(end) - float(start):.2f}s; rows per stream (lines in {out}/data/<stream>.jsonl):")
total = 0
for name in streams:
    path = os.path.join(out, "data", f"{name}.jsonl")
    rows = sum(1 for _ in open(path)) if os.path.exists(path) else 0
    total += rows
    note = "" if rows == records[name] else f"  (tap emitted {records[name]} RECORD messages)"
    print(f"  {name:<28} {rows:>8}{note}")
print(f"  {'total':<28} {total:>8}")
with open(os.path.join(out, "state.json"), "w") as fh:
    json.dump(state, fh, indent=2)
print(f"\nfinal state (last of {n_state} STATE messages; saved to {out}/state.json):")
print(json.dumps(state, indent=2, sort_keys=True))
EOF

[[ $WAREHOUSE == 0 ]] && exit 0

# ---- 5. warehouse: target-duckdb, then the dbt package --------------------------
# The same messages the JSONL files came from, loaded into an embedded DuckDB file.
seconds_since() { local ms=$((($(date +%s%N) - $1) / 1000000)); printf '%d.%02d' $((ms / 1000)) $((ms % 1000 / 10)); }

echo
"$PY" - "$OUT/target-duckdb.json" "$OUT/warehouse.duckdb" <<'EOF'
import json, sys
path, db = sys.argv[1:3]
with open(path, "w") as fh:
    json.dump({"path": db, "default_target_schema": "autopilot", "add_metadata_columns": True}, fh, indent=2)
EOF
START=$(date +%s%N)
"$TARGET_DUCKDB" --config "$OUT/target-duckdb.json" <"$OUT/tap-output.jsonl" >"$OUT/target-duckdb-state.jsonl" \
    2>"$OUT/target-duckdb.log" || fail "target-duckdb failed" "$OUT/target-duckdb.log"
echo "target-duckdb: loaded $OUT/warehouse.duckdb (schema autopilot) in $(seconds_since "$START")s"

mkdir -p "$OUT/dbt"
cat >"$OUT/dbt/profiles.yml" <<EOF
autopilot:
  target: demo
  outputs:
    demo:
      type: duckdb
      path: $OUT/warehouse.duckdb
      threads: 2
EOF
START=$(date +%s%N)
if ! DBT_SEND_ANONYMOUS_USAGE_STATS=false "$DBT" build --project-dir "$ROOT/dbt" --profiles-dir "$OUT/dbt" \
        --target-path "$OUT/dbt/target" --log-path "$OUT/dbt/logs" >"$OUT/dbt/build.log" 2>&1; then
    fail "dbt build failed" "$OUT/dbt/build.log"
fi
echo "dbt build (models and their tests): $(grep -o 'PASS=[0-9]* WARN=[0-9]* ERROR=[0-9]*' "$OUT/dbt/build.log" | tail -n 1)" \
    "in $(seconds_since "$START")s (log: $OUT/dbt/build.log)"

# A few answers from the models, through the duckdb module of dbt's own virtualenv.
"$(dirname "$DBT")/python" - "$OUT/warehouse.duckdb" <<'EOF'
import sys
import unicodedata

import duckdb

con = duckdb.connect(sys.argv[1], read_only=True)


def padded(text, width):
    """text cut or padded to `width` terminal columns: CJK and other wide characters take two."""
    out, used = "", 0
    for char in text or "":
        size = 2 if unicodedata.east_asian_width(char) in "WF" else 1
        if used + size > width:
            break
        out, used = out + char, used + size
    return out + " " * (width - used)


def show(title, table):
    print(f"\n{title} (main.{table}):")
    sql = f"select title, member_count, unsubscribed_member_count from main.{table} order by member_count desc, title"
    for name, members, unsubscribed in con.execute(sql).fetchall():
        print(f"  {padded(name, 36)} {members:>6} members  {unsubscribed:>5} unsubscribed")


show("members per list", "autopilot__lists")
show("contacts per smart segment", "autopilot__smart_segments")
contacts, bounced = con.execute("select count(*), count(*) filter (where has_bounced) from main.autopilot__contacts").fetchone()
values = con.execute("select count(*) from main.autopilot__contact_custom_fields").fetchone()[0]
print(f"\n{contacts} contacts, {bounced} with a bounced mail; {values} custom field values, typed")
EOF
cat <<EOF

The warehouse is $OUT/warehouse.duckdb: the raw tables in schema autopilot, the models in
schema main (docs/analytics.md). Open it with any DuckDB client, e.g. the duckdb module of
dbt's virtualenv:
  .tools/dbt/bin/python -c "import duckdb; duckdb.connect('$OUT/warehouse.duckdb', read_only=True).sql('from main.autopilot__lists').show()"
EOF
