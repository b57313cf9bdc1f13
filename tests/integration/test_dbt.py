"""The dbt package (dbt/) on what real targets load: sandbox -> tap-autopilot -> target ->
`dbt build`, compared with the sandbox's own truth, twice.

Each test runs the installed tap CLI into one target (its own virtualenv, `make tools`), runs
`dbt build` (models and their dbt tests) from .tools/dbt with a profiles.yml written into
tmp_path, and compares every model with the sandbox's account: members per list and segment
(all and unsubscribed), each contact's lists and segments, flags and counts, and every custom
field value, typed. Then the account changes (contacts leave a list and a segment, a list is
deleted, custom field values change, one is deleted), the tap syncs again from the state the
target emitted, dbt builds again, and the models must show exactly the new account. Then a
third sync is stopped by SIGTERM in the middle of a membership pass and what it wrote is
loaded: the models must still show that account (the last complete pass, by completed_passes).

Targets: target-duckdb into a DuckDB file (with its _sdc_* columns), meltanolabs-target-postgres
with hard deletes, and pipelinewise-target-postgres (no _sdc_* columns; it ignores
ACTIVATE_VERSION, so the package finds the current rows by table_version alone).

Every change goes through the sandbox's admin API (custom field values by set_custom_fields).
"""

from __future__ import annotations

import datetime
import json
import os
import signal
import subprocess
from collections.abc import Callable
from pathlib import Path

import helpers
import pytest
import tools

DBT_PROJECT = tools.REPO_ROOT / "dbt"
DBT = tools.TOOLS_DIR / "dbt" / "bin" / "dbt"
DBT_PYTHON = tools.TOOLS_DIR / "dbt" / "bin" / "python"  # has duckdb, to read the models back
TARGET_DUCKDB = tools.TOOLS_DIR / "target-duckdb" / "bin" / "target-duckdb"
PIPELINEWISE = tools.TOOLS_DIR / "pipelinewise-target-postgres" / "bin" / "target-postgres"
SOURCE_SCHEMA = helpers.SCHEMA  # where each target loads ("autopilot")

Rows = list[tuple[str | None, ...]]


# ---- the sandbox's truth ---------------------------------------------------------------------

KINDS = {"integer": "number", "float": "number", "boolean": "boolean", "date": "timestamp"}


def _typed(field_type: str, value) -> tuple:
    """(kind, value) as the custom fields model must type a raw custom field value."""
    kind = KINDS.get(field_type.lower(), "text")
    if value is None or value == "":
        return (kind, None)
    if kind == "number":
        return (kind, float(value))
    if kind == "boolean":
        return (kind, value is True or str(value).lower() == "true")
    if kind == "timestamp":
        return (kind, helpers.instant(value).replace(tzinfo=None))
    return (kind, str(value))


def truth(sb) -> dict:
    """What every model must hold, read from the sandbox's account."""
    ds = sb.dataset
    docs = list(ds.iter_contacts())
    unsubscribed = {}
    for doc in docs:
        raw = helpers.raw_value(doc, ("Unsubscribed", "unsubscribed"))
        unsubscribed[doc["contact_id"]] = raw is True or str(raw).lower() == "true"
    lists = {g["list_id"]: set(ds.list_members(g["list_id"])) for g in ds.lists()}
    segments = {g["segment_id"]: set(ds.segment_members(g["segment_id"])) for g in ds.segments()}

    def counts(groups):
        return {gid: (len(members), sum(unsubscribed[c] for c in members)) for gid, members in groups.items()}

    contacts = {}
    for doc in docs:
        cid = doc["contact_id"]
        contacts[cid] = (
            sum(cid in members for members in lists.values()),
            sum(cid in members for members in segments.values()),
            unsubscribed[cid],
            bool(doc.get("mail_bounced") or doc.get("mail_hardbounced")),
            bool(doc.get("mail_hardbounced")),
        )
    custom = {
        (doc["contact_id"], entry["kind"]): _typed(entry["fieldType"], entry.get("value"))
        for doc in docs
        for entry in doc.get("custom_fields") or []
        if not entry.get("deleted")
    }
    return {
        "lists": counts(lists),
        "segments": counts(segments),
        "list_memberships": {(g, c) for g, members in lists.items() for c in members},
        "segment_memberships": {(g, c) for g, members in segments.items() for c in members},
        "contacts": contacts,
        "custom_fields": custom,
    }


# ---- the models, read back -------------------------------------------------------------------


def _bool(text: str | None) -> bool | None:
    return None if text is None else text in ("true", "t")


def models(query: Callable[[str], Rows], schema: str) -> dict:
    """Every mart, in the shape of truth(); values cast to text in SQL, the same on every warehouse."""

    def rows(sql: str) -> Rows:
        return query(sql.replace("{s}", schema))

    def counts(table, key):
        return {
            r[0]: (int(r[1] or 0), int(r[2] or 0))
            for r in rows(f"select {key}, member_count, unsubscribed_member_count from {{s}}.{table}")
        }

    contacts = {
        r[0]: (int(r[1] or 0), int(r[2] or 0), _bool(r[3]), _bool(r[4]), _bool(r[5]))
        for r in rows(
            "select contact_id, list_count, segment_count, cast(is_unsubscribed as varchar),"
            " cast(has_bounced as varchar), cast(has_hard_bounced as varchar) from {s}.autopilot__contacts"
        )
    }
    custom = {}
    for cid, name, kind, text, number, boolean, stamp in rows(
        "select contact_id, field_name, kind, value_text, cast(value_number as varchar),"
        " cast(value_boolean as varchar), cast(value_timestamp as varchar) from {s}.autopilot__contact_custom_fields"
    ):
        value: object = {
            "text": text,
            "number": None if number is None else float(number),
            "boolean": _bool(boolean),
            "timestamp": None if stamp is None else datetime.datetime.fromisoformat(stamp),
        }[kind or "text"]
        custom[(cid, name)] = (kind, value)
    return {
        "lists": counts("autopilot__lists", "list_id"),
        "segments": counts("autopilot__smart_segments", "segment_id"),
        "list_memberships": set(rows("select list_id, contact_id from {s}.autopilot__list_memberships")),
        "segment_memberships": set(rows("select segment_id, contact_id from {s}.autopilot__segment_memberships")),
        "contacts": contacts,
        "custom_fields": custom,
    }


def write_row_counts(tmp_path: Path, step: str, found: dict, expected: dict) -> None:
    """Each model's rows beside the account's, one line per step in tmp_path/row-counts.jsonl
    (read with --basetemp: docs/analytics.md, Tested)."""
    counts = {name: [len(found[name]), len(expected[name])] for name in expected}
    with open(tmp_path / "row-counts.jsonl", "a", encoding="utf-8") as out:
        out.write(json.dumps({"step": step, "model rows, account rows": counts}) + "\n")


def assert_models_match(found: dict, expected: dict) -> None:
    for name in expected:
        want, got = expected[name], found[name]
        if isinstance(want, dict):
            assert set(got) == set(want), f"{name}: keys differ: {sorted(set(got) ^ set(want))[:5]}"
            wrong = [(key, got[key], want[key]) for key in want if got[key] != want[key]]
            assert not wrong, f"{name}: {len(wrong)} rows differ (model, truth): {wrong[:5]}"
        else:
            assert got == want, f"{name}: differ: {sorted(got ^ want)[:5]}"


# ---- running the pipeline ----------------------------------------------------------------------


def sync(tmp_path: Path, name: str, target_argv: list[str], config: str, catalog: str, state: dict | None) -> dict:
    """tap stdout -> target stdin (an OS pipe), from `state`; the last state the target emitted."""
    argv = tools.tap_cmd() + ["--config", config, "--catalog", catalog]
    if state is not None:
        argv += ["--state", helpers.write_json(tmp_path / f"{name}-state-in.json", state)]
    return helpers.pipe_into_target(tmp_path, name, argv, target_argv, timeout=300)


def dbt_build(tmp_path: Path, name: str, profile: dict) -> None:
    """`dbt build` of the package (every model, then its tests) with profile as its one output."""
    profiles = tmp_path / "dbt-profiles"
    profiles.mkdir(exist_ok=True)
    helpers.write_json(profiles / "profiles.yml", {"autopilot": {"target": "test", "outputs": {"test": profile}}})
    env = dict(os.environ, DBT_SEND_ANONYMOUS_USAGE_STATS="false", DO_NOT_TRACK="1")
    proc = subprocess.run(
        [
            str(DBT),
            "build",
            "--project-dir",
            str(DBT_PROJECT),
            "--profiles-dir",
            str(profiles),
            "--target-path",
            str(tmp_path / "dbt-target"),
            "--log-path",
            str(tmp_path / "dbt-logs"),
            "--vars",
            json.dumps({"autopilot_schema": SOURCE_SCHEMA}),
        ],
        capture_output=True,
        text=True,
        timeout=300,
        env=env,
        cwd=tmp_path,
    )
    (tmp_path / f"{name}.dbt.log").write_text(proc.stdout + proc.stderr)
    assert proc.returncode == 0, f"dbt build failed ({proc.returncode}):\n{proc.stdout[-6000:]}\n{proc.stderr[-2000:]}"
    assert "ERROR=0" in proc.stdout and "WARN=0" in proc.stdout, proc.stdout[-3000:]


def _change_custom_fields(sb, changes: dict[str, dict[str, tuple[str, object]]]) -> None:
    """Give contacts new custom field values ({contact_id: {field name: (fieldType, raw value)}};
    a value of DELETED marks the field's value deleted) through the sandbox's admin API, which
    touches them as an edit in Autopilot would."""
    body = {
        cid: {
            kind: {"fieldType": field_type, "value": None, "deleted": True}
            if value is DELETED
            else {"fieldType": field_type, "value": value}
            for kind, (field_type, value) in fields.items()
        }
        for cid, fields in changes.items()
    }
    helpers.admin(sb, "set_custom_fields", {"contacts": body})


DELETED = object()


def change_the_account(sb) -> dict:
    """Contacts leave the biggest list and segment, another list is deleted, custom field values
    change and one is deleted. Returns what changed, for the checks that it did."""
    ds = sb.dataset
    lists = sorted(ds.lists(), key=lambda g: len(ds.list_members(g["list_id"])), reverse=True)
    big_list, gone_list = lists[0]["list_id"], lists[1]["list_id"]
    assert ds.list_members(gone_list), "the dataset should have a second non-empty list"
    off_list = ds.list_members(big_list)[:4]
    helpers.admin(sb, "remove_from_list", {"list_id": big_list, "contact_ids": off_list})
    helpers.admin(sb, "delete_list", {"list_id": gone_list})
    segment = max(ds.segments(), key=lambda g: len(ds.segment_members(g["segment_id"])))["segment_id"]
    off_segment = ds.segment_members(segment)[-3:]
    helpers.admin(sb, "remove_from_segment", {"segment_id": segment, "contact_ids": off_segment})
    ids = ds.contact_ids()
    changes: dict[str, dict[str, tuple[str, object]]] = {
        ids[1]: {"Favorite Color": ("string", "ultraviolet"), "Seats": ("integer", 4321)},
        ids[2]: {"Lifetime Value": ("float", "12.5"), "Is Partner": ("Boolean", True)},  # a type in another case
        ids[3]: {"Renewal Date": ("date", "Tue, 12 May 2015 21:41:31 GMT"), "Region": ("picklist", "north")},
        ids[4]: {"Favorite Color": ("string", DELETED)},
    }
    _change_custom_fields(sb, changes)
    return {"big_list": big_list, "gone_list": gone_list, "off_list": off_list, "changed": ids[1:4]}


MEMBERSHIPS = ("lists_contacts", "smart_segments_contacts")


def interrupted_sync(tmp_path: Path, sb, target_argv: list[str], config: str, catalog: str, state: dict) -> list[dict]:
    """A sync stopped by SIGTERM once it wrote its first membership record (each request slowed
    down, so that no membership pass can complete before), then everything it wrote loaded by
    the target. Returns the tap's messages."""
    helpers.admin(sb, "faults", {"latency_ms": 1500})
    argv = tools.tap_cmd() + ["--config", config, "--catalog", catalog, "--state"]
    argv.append(helpers.write_json(tmp_path / "run3-state-in.json", state))
    written = tmp_path / "run3.tap.jsonl"
    with (
        open(tmp_path / "run3.tap.log", "wb") as log,
        open(written, "wb") as out,
        subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=log) as tap,
    ):
        assert tap.stdout is not None
        stopped = False
        for line in tap.stdout:  # read on to the end after the stop: the final STATE
            out.write(line)
            message = json.loads(line)
            if not stopped and message["type"] == "RECORD" and message["stream"] in MEMBERSHIPS:
                tap.send_signal(signal.SIGTERM)
                stopped = True
        assert tap.wait(timeout=60) == 143, (tmp_path / "run3.tap.log").read_text()[-3000:]
    helpers.admin(sb, "faults", {"latency_ms": None})
    with open(written, "rb") as tap_output, open(tmp_path / "run3.target.log", "wb") as log:
        loaded = subprocess.run(target_argv, stdin=tap_output, stdout=subprocess.PIPE, stderr=log, timeout=300)
    assert loaded.returncode == 0, (tmp_path / "run3.target.log").read_text()[-5000:]
    return [json.loads(line) for line in written.read_text().splitlines()]


def scenario(tmp_path: Path, sb, target_argv: list[str], profile: dict, query: Callable[[str], Rows], schema: str):
    """Sync, build, compare; change the account; sync from the state, build, compare; sync again
    but stop it mid-pass, load what it wrote, build, compare: the last complete pass."""
    for exe in (DBT, Path(target_argv[0])):
        tools.require(exe)
    config = helpers.write_config(tmp_path, sb)
    catalog = helpers.write_json(tmp_path / "catalog.json", helpers.select(helpers.discover(config)))

    assert '"completed_passes"' in Path(catalog).read_text()
    state = sync(tmp_path, "run1", target_argv, config, catalog, None)
    dbt_build(tmp_path, "run1", profile)
    before = truth(sb)
    found = models(query, schema)
    write_row_counts(tmp_path, "first sync", found, before)
    assert_models_match(found, before)
    # the sample covers what the models compute: unsubscribed members, bounces, every kind
    assert any(unsub for _, unsub in before["lists"].values())
    assert any(c[3] for c in before["contacts"].values())
    assert {kind for kind, _ in before["custom_fields"].values()} == {"text", "number", "boolean", "timestamp"}

    changed = change_the_account(sb)
    state = sync(tmp_path, "run2", target_argv, config, catalog, state)
    dbt_build(tmp_path, "run2", profile)
    after = truth(sb)
    found = models(query, schema)
    write_row_counts(tmp_path, "after the changes", found, after)
    assert_models_match(found, after)
    # and the changes really reached the models
    assert changed["gone_list"] not in found["lists"]
    assert found["lists"][changed["big_list"]][0] == before["lists"][changed["big_list"]][0] - 4
    assert not {(changed["big_list"], c) for c in changed["off_list"]} & found["list_memberships"]
    assert found["custom_fields"][(changed["changed"][0], "Favorite Color")] == ("text", "ultraviolet")
    assert found["custom_fields"][(changed["changed"][0], "Seats")] == ("number", 4321.0)
    assert found["custom_fields"][(changed["changed"][2], "Renewal Date")] == (
        "timestamp",
        datetime.datetime(2015, 5, 12, 21, 41, 31),
    )
    assert after != before

    written = interrupted_sync(tmp_path, sb, target_argv, config, catalog, state)
    dbt_build(tmp_path, "run3", profile)
    found = models(query, schema)
    write_row_counts(tmp_path, "after a sync stopped mid-pass", found, after)
    assert_models_match(found, after)
    # The stop left a membership pass incomplete, with rows under a version above its last
    # complete one: what the highest-version rule would have taken for current.
    completed = {
        m["record"]["stream_name"] for m in written if m["type"] == "RECORD" and m["stream"] == "completed_passes"
    }
    # (A pass whose last parent answered before the stop took effect may have completed: one
    # that did not is enough.)
    unfinished = sorted(
        {m["stream"] for m in written if m["type"] == "RECORD" and m["stream"] in MEMBERSHIPS} - completed
    )
    assert unfinished, completed
    ahead = query(
        f"select count(*) from {SOURCE_SCHEMA}.{unfinished[0]} where table_version > (select max(table_version)"
        f" from {SOURCE_SCHEMA}.completed_passes where stream_name = '{unfinished[0]}')"
    )
    assert int(str(ahead[0][0])) > 0


@pytest.fixture
def sb():
    # The recordings-like default shape: sparse documents, deleted custom field values, RFC 1123
    # dates, a field unknown to discovery.
    with helpers.sandbox(contacts=200, lists=3, segments=2, seed=28) as sandbox:
        yield sandbox


# ---- one test per target ----------------------------------------------------------------------


def test_dbt_on_target_duckdb(tmp_path, sb):
    warehouse = tmp_path / "warehouse.duckdb"
    target_config = helpers.write_json(
        tmp_path / "target-duckdb.json",
        {"path": str(warehouse), "default_target_schema": SOURCE_SCHEMA, "add_metadata_columns": True},
    )

    def query(sql: str) -> Rows:
        script = (
            "import duckdb, json, sys\n"
            "con = duckdb.connect(sys.argv[1], read_only=True)\n"
            "print(json.dumps(con.execute(sys.argv[2]).fetchall()))\n"
        )
        proc = subprocess.run(
            [str(DBT_PYTHON), "-c", script, str(warehouse), sql], capture_output=True, text=True, timeout=60
        )
        assert proc.returncode == 0, proc.stderr[-3000:]
        return [tuple(row) for row in json.loads(proc.stdout)]

    profile = {"type": "duckdb", "path": str(warehouse), "threads": 2}
    scenario(tmp_path, sb, [str(TARGET_DUCKDB), "--config", target_config], profile, query, "main")


def test_dbt_on_meltanolabs_target_postgres_hard_delete(tmp_path, sb, postgres):
    wh, target_config, _ = helpers.postgres_pipeline(tmp_path, postgres, sb, "dbt_meltanolabs")
    scenario(
        tmp_path,
        sb,
        [str(tools.TARGET_POSTGRES), "--config", target_config],
        postgres.dbt_profile("dbt_meltanolabs"),
        wh.query,
        "analytics",
    )


def test_dbt_on_pipelinewise_target_postgres(tmp_path, sb, postgres):
    postgres.create_database("dbt_pipelinewise")
    target_config = helpers.write_json(
        tmp_path / "pipelinewise.json",
        {
            "host": postgres.host,
            "port": postgres.port,
            "user": postgres.user,
            "password": postgres.password,
            "dbname": "dbt_pipelinewise",
            "default_target_schema": SOURCE_SCHEMA,
        },
    )
    scenario(
        tmp_path,
        sb,
        [str(PIPELINEWISE), "--config", target_config],
        postgres.dbt_profile("dbt_pipelinewise"),
        lambda sql: postgres.query(sql, dbname="dbt_pipelinewise"),
        "analytics",
    )
