"""Memberships from the contacts scan, removals for every target, contacts in
full-table mode. The real CLI against the sandbox (its request counters say which
endpoints were read), into meltanolabs-target-postgres and target-jsonl.

The documented current-rows query for targets that ignore ACTIVATE_VERSION (docs/state.md) is evaluated
in PostgreSQL, over the rows target-jsonl appended, loaded as they are.
"""

from __future__ import annotations

import json
import re
import subprocess
from collections import Counter
from pathlib import Path

import helpers
import tools

STATE_PAGE = tools.REPO_ROOT / "docs" / "state.md"
TIMEOUT = 600


def pairs(records, parent_key):
    return Counter((r[parent_key], r["contact_id"]) for r in records)


def catalog_file(tmp_path, config, streams=None, contacts_method=None, name="catalog.json"):
    catalog = helpers.select(helpers.discover(config), streams=streams)
    if contacts_method:
        entry = next(e for e in catalog["streams"] if e["tap_stream_id"] == "contacts")
        root = next(m for m in entry["metadata"] if m["breadcrumb"] == [])
        root["metadata"]["replication-method"] = contacts_method  # what Meltano's `metadata:` extra sets
    return helpers.write_json(Path(tmp_path) / name, catalog)


def run(config, catalog, state=None, tmp_path=None, name="run"):
    done = helpers.run_tap(helpers.tap_args(tmp_path, config, catalog, state, name), timeout=TIMEOUT)
    assert done.returncode == 0, done
    assert "Traceback" not in done.stderr
    return done.stdout, done.messages


def pages(n):
    return max(1, -(-n // 100))


# ---- memberships from the scan ----------------------------------------------------------------


def test_memberships_from_the_scan_equal_each_lists_members_without_a_list_request(tmp_path, sandbox_factory):
    # 7 lists: one nobody is on, one whose id needs escaping; 2 segments, one escaped too.
    sb = sandbox_factory(contacts=450, lists=7, segments=2, seed=51, awkward_ids=True)
    expected = helpers.expected_keys(sb)
    sizes = {g["list_id"]: len(sb.dataset.list_members(g["list_id"])) for g in sb.dataset.lists()}
    assert 0 in sizes.values(), "the dataset should have a list nobody is on"
    awkward = [lid for lid in sizes if "/" in lid]
    assert awkward and sizes[awkward[0]], "the list whose id needs escaping should have members"
    config = helpers.write_config(tmp_path, sb)
    catalog = catalog_file(tmp_path, config)
    sb.reset_stats()

    _, messages = run(config, catalog)
    helpers.validate_records(messages)
    records = helpers.records_by_stream(messages)
    got = pairs(records["lists_contacts"], "list_id")
    assert set(got) == expected["lists_contacts"] and set(got.values()) == {1}
    assert {lid for lid, _ in got} == {lid for lid, n in sizes.items() if n}
    assert set(pairs(records["smart_segments_contacts"], "segment_id")) == expected["smart_segments_contacts"]

    stats = sb.stats()
    assert stats["by_endpoint"]["list_contacts"] == 0
    assert not [path for path in stats["paths"] if path.startswith("/v1/list/")], stats["paths"]
    # The requests the sync needs and no more: contact pages, segment pages, the two listings.
    segment_pages = sum(pages(len(sb.dataset.segment_members(g["segment_id"]))) for g in sb.dataset.segments())
    assert stats["requests"] == pages(len(sb.dataset)) + segment_pages + 2, stats["paths"]


def test_memberships_without_contacts_selected_take_the_cheaper_way(tmp_path, sandbox_factory):
    # 300 contacts on 3 lists (shares 0.45, 0.1, 0): 3 scan pages against 4 list pages.
    sb = sandbox_factory(contacts=300, lists=3, segments=1, seed=52)
    config = helpers.write_config(tmp_path, sb)
    catalog = catalog_file(tmp_path, config, streams=["lists_contacts"])
    sb.reset_stats()
    _, messages = run(config, catalog)
    assert (
        set(pairs(helpers.records_by_stream(messages)["lists_contacts"], "list_id"))
        == helpers.expected_keys(sb)["lists_contacts"]
    )
    by_endpoint = sb.stats()["by_endpoint"]
    assert (by_endpoint["contacts"], by_endpoint["list_contacts"], by_endpoint["lists"]) == (3, 0, 1)

    # Forced list by list: the same rows, from the lists' pages.
    config = helpers.write_config(tmp_path, sb, lists_contacts_source="lists")
    sb.reset_stats()
    _, messages = run(config, catalog)
    assert (
        set(pairs(helpers.records_by_stream(messages)["lists_contacts"], "list_id"))
        == helpers.expected_keys(sb)["lists_contacts"]
    )
    assert sb.stats()["by_endpoint"]["contacts"] == 0 and sb.stats()["by_endpoint"]["list_contacts"] == 4


# ---- removals through both kinds of target -------------------------------------------------------


def load(target_argv, stdout: str, log: Path) -> str:
    with open(log, "wb") as err:
        proc = subprocess.run(target_argv, input=stdout.encode(), stdout=subprocess.PIPE, stderr=err, timeout=TIMEOUT)
    assert proc.returncode == 0, log.read_text()[-3000:]
    return proc.stdout.decode()


def documented_query(table):
    """docs/state.md's current-rows query for `table` (its first sql block names lists_contacts)."""
    text = STATE_PAGE.read_text(encoding="utf-8")
    section = text[text.index("## Removals") :]
    sql = re.search(r"```sql\n(.*?)```", section, re.S)
    assert sql, "no sql block in the Removals section of docs/state.md"
    return sql.group(1).replace("lists_contacts", table)


def test_removed_memberships_leave_postgres_and_the_documented_query_over_appended_rows(
    tmp_path, sandbox_factory, postgres
):
    tools.require(tools.TARGET_POSTGRES, tools.TARGET_JSONL)
    sb = sandbox_factory(contacts=300, lists=4, segments=2, seed=53, awkward_ids=True)
    dbname = postgres.create_database("memberships")
    pg_config = helpers.write_target_postgres_config(tmp_path, postgres, dbname)
    jsonl_dir = tmp_path / "jsonl"
    jsonl_dir.mkdir()
    jsonl_config = helpers.write_json(
        tmp_path / "target-jsonl.json", {"destination_path": str(jsonl_dir), "do_timestamp_file": False}
    )
    config = helpers.write_config(tmp_path, sb)
    catalog = catalog_file(tmp_path, config)

    def sync(name, state=None):
        stdout, messages = run(config, catalog, state, tmp_path, name)
        load([str(tools.TARGET_POSTGRES), "--config", pg_config], stdout, tmp_path / f"{name}.pg.log")
        load([str(tools.TARGET_JSONL), "--config", jsonl_config], stdout, tmp_path / f"{name}.jsonl.log")
        return helpers.last_state(messages)

    state = sync("run1")
    ds = sb.dataset
    awkward = next(g["list_id"] for g in ds.lists() if "/" in g["list_id"])
    other = max(
        (g["list_id"] for g in ds.lists() if g["list_id"] != awkward), key=lambda lid: len(ds.list_members(lid))
    )
    off = {awkward: ds.list_members(awkward)[:7], other: ds.list_members(other)[-5:]}
    for list_id, contact_ids in off.items():
        ds.remove_from_list(list_id, contact_ids)
    segment = ds.segments()[0]["segment_id"]
    off_segment = ds.segment_members(segment)[:3]
    ds.remove_from_segment(segment, off_segment)
    removed = {(lid, cid) for lid, cids in off.items() for cid in cids}
    sync("run2", state)
    current = helpers.expected_keys(sb)
    assert not removed & current["lists_contacts"]

    # meltanolabs-target-postgres honours ACTIVATE_VERSION: the rows are gone.
    in_pg = set(postgres.query(f"select list_id, contact_id from {helpers.SCHEMA}.lists_contacts", dbname=dbname))
    assert in_pg == current["lists_contacts"]
    in_pg = set(
        postgres.query(f"select segment_id, contact_id from {helpers.SCHEMA}.smart_segments_contacts", dbname=dbname)
    )
    assert in_pg == current["smart_segments_contacts"]

    # target-jsonl ignores it and appends: both runs' rows are there, removed ones included...
    appended = {}
    for stream, key in (("lists_contacts", "list_id"), ("smart_segments_contacts", "segment_id")):
        rows = [json.loads(line) for line in (jsonl_dir / f"{stream}.jsonl").read_text().splitlines()]
        appended[stream] = rows
        assert {(r[key], r["contact_id"]) for r in rows} >= current[stream] | (removed if key == "list_id" else set())
    # ...and the documented query, run in PostgreSQL over those rows as they are, returns exactly
    # the current memberships.
    postgres.psql(
        "create schema loaded; "
        "create table loaded.lists_contacts (list_id text, contact_id text, table_version bigint); "
        "create table loaded.smart_segments_contacts (segment_id text, contact_id text, "
        "table_version bigint); "
        "create table loaded.completed_passes (stream_name text, table_version bigint, completed_at text);",
        dbname=dbname,
    )
    passes = [json.loads(line) for line in (jsonl_dir / "completed_passes.jsonl").read_text().splitlines()]
    assert len(passes) == 8, "two runs, four versioned passes each"
    values = ",".join(
        "(%s, %d, %s)" % (_sql_text(r["stream_name"]), r["table_version"], _sql_text(r["completed_at"])) for r in passes
    )
    postgres.psql(f"insert into loaded.completed_passes values {values};", dbname=dbname)
    for stream, key in (("lists_contacts", "list_id"), ("smart_segments_contacts", "segment_id")):
        values = ",".join(
            "(%s, %s, %d)" % (_sql_text(r[key]), _sql_text(r["contact_id"]), r["table_version"])
            for r in appended[stream]
        )
        postgres.psql(f"insert into loaded.{stream} values {values};", dbname=dbname)
        query = documented_query(stream).replace("list_id", key).rstrip().rstrip(";")
        got = postgres.query(f"set search_path to loaded; {query}", dbname=dbname)
        assert len(got) == len(set(got)) and set(got) == current[stream], stream


def _sql_text(value):
    return "'" + value.replace("'", "''") + "'"


# ---- contacts in full-table mode -------------------------------------------------------------------


def test_contacts_full_table_deleted_contacts_leave_postgres(tmp_path, sandbox_factory, postgres):
    tools.require(tools.TARGET_POSTGRES)
    sb = sandbox_factory(contacts=300, lists=3, segments=1, seed=54)
    dbname = postgres.create_database("contacts_full_table")
    pg_config = helpers.write_target_postgres_config(tmp_path, postgres, dbname)
    config = helpers.write_config(tmp_path, sb)
    catalog = catalog_file(tmp_path, config, streams=["contacts", "lists_contacts"], contacts_method="FULL_TABLE")

    sb.reset_stats()
    stdout, messages = run(config, catalog, tmp_path=tmp_path, name="run1")
    assert sb.stats()["requests"] == pages(len(sb.dataset)) + 1  # no extra request: the scan and /lists
    load([str(tools.TARGET_POSTGRES), "--config", pg_config], stdout, tmp_path / "run1.pg.log")
    state = helpers.last_state(messages)
    version1 = state["bookmarks"]["contacts"]["version"]
    assert state["bookmarks"]["contacts"] == {"version": version1, "complete": True}
    assert {m["version"] for m in messages if m.get("stream") == "contacts" and m["type"] == "RECORD"} == {version1}
    activate = max(
        i
        for i, m in enumerate(messages)
        if m == {"type": "ACTIVATE_VERSION", "stream": "contacts", "version": version1}
    )
    assert activate > max(i for i, m in enumerate(messages) if m.get("stream") == "contacts" and m["type"] == "RECORD")

    doomed = sb.dataset.contact_ids()[10:300:29]
    helpers.admin(sb, "delete_contacts", {"contact_ids": doomed})
    stdout, messages = run(config, catalog, state, tmp_path, "run2")
    load([str(tools.TARGET_POSTGRES), "--config", pg_config], stdout, tmp_path / "run2.pg.log")
    # every contact again (not only the changed ones), under a new version
    assert {r["contact_id"] for r in helpers.records_by_stream(messages)["contacts"]} == set(sb.dataset.contact_ids())
    version2 = helpers.last_state(messages)["bookmarks"]["contacts"]["version"]
    assert version2 > version1
    in_pg = {row[0] for row in postgres.query(f"select contact_id from {helpers.SCHEMA}.contacts", dbname=dbname)}
    assert in_pg == set(sb.dataset.contact_ids()) and not in_pg & set(doomed)
    assert postgres.query(f"select distinct table_version from {helpers.SCHEMA}.contacts", dbname=dbname) == [
        (str(version2),)
    ]
    in_pg = set(postgres.query(f"select list_id, contact_id from {helpers.SCHEMA}.lists_contacts", dbname=dbname))
    assert in_pg == helpers.expected_keys(sb)["lists_contacts"]


def test_killed_full_table_contacts_run_resumes_its_scan_under_the_same_version(tmp_path, sandbox_factory):
    sb = sandbox_factory(contacts=3000, lists=3, segments=1, seed=55)
    expected = helpers.expected_keys(sb)
    config = helpers.write_config(tmp_path, sb, max_requests_per_second=10)
    catalog = catalog_file(tmp_path, config, streams=["contacts", "lists_contacts"], contacts_method="FULL_TABLE")
    sb.set_faults(latency_ms=60)

    def mid_scan(messages):
        if sum(1 for m in messages if m.get("type") == "RECORD" and m["stream"] == "contacts") < 800:
            return False
        last = messages[-1]
        return last.get("type") == "STATE" and (last["value"]["bookmarks"]["contacts"].get("scan") or {}).get("cursor")

    first = helpers.run_and_kill(["--config", config, "--catalog", catalog], mid_scan, secret=helpers.API_KEY)
    interrupted = first.state
    entry = interrupted["bookmarks"]["contacts"]
    assert entry["complete"] is False and entry["scan"]["cursor"], entry
    assert interrupted["bookmarks"]["lists_contacts"]["scan"] == entry["scan"]  # one scan, one cursor
    # Not activated (the first pass ever only announces its version before its first record).
    first_record = next(i for i, m in enumerate(first.messages) if m["type"] == "RECORD" and m["stream"] == "contacts")
    assert not [
        m for m in first.messages[first_record:] if m["type"] == "ACTIVATE_VERSION" and m["stream"] == "contacts"
    ]
    version = entry["version"]

    _, messages = run(config, catalog, interrupted, tmp_path, "resume")
    second = helpers.records_by_stream(messages)
    ids_second = [r["contact_id"] for r in second["contacts"]]
    assert len(ids_second) == len(set(ids_second)) < len(expected["contacts"])  # resumed, not restarted
    assert {r["contact_id"] for r in first.records("contacts")} | set(ids_second) == expected["contacts"]
    assert {m["version"] for m in messages if m.get("stream") == "contacts" and m["type"] == "RECORD"} == {version}
    assert {r["table_version"] for r in second["contacts"]} == {version}
    assert {"type": "ACTIVATE_VERSION", "stream": "contacts", "version": version} in messages
    union = set(pairs(first.records("lists_contacts"), "list_id")) | set(pairs(second["lists_contacts"], "list_id"))
    assert union == expected["lists_contacts"]
    final = helpers.last_state(messages)["bookmarks"]
    assert final["contacts"] == {"version": version, "complete": True}
    assert final["lists_contacts"] == {
        "version": interrupted["bookmarks"]["lists_contacts"]["version"],
        "complete": True,
    }
