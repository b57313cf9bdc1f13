"""End to end into a real warehouse: sandbox -> tap-autopilot -> target-postgres -> PostgreSQL.

The installed tap CLI's stdout is piped straight into meltanolabs-target-postgres
(its own virtualenv, `make tools`), loading a throw-away PostgreSQL server (the
`postgres` fixture) with `load_method: upsert` and `hard_delete: true`, the way
a user runs them. The state the target emits after the first run is fed to the
second, as a scheduler would.

What a user sees in PostgreSQL (asserted below):
- one table per stream in the target schema, a primary key on the stream's key
  properties, plus the SDK's _sdc_* columns (_sdc_table_version among them);
- timestamps as `timestamp without time zone` in UTC;
- arrays of strings (`lists`) as text[], arrays of objects (mail_*, anywhere_*,
  custom_fields) as jsonb[]: read them with unnest() or array_to_json();
- after the second run: contacts upserted by contact_id, and the memberships
  (and lists) that vanished at the source deleted, because the tap activates
  each full-table pass's version and the target deletes rows of older versions.
"""

from __future__ import annotations

import datetime
import json

import helpers
import pytest
import tools

# ---- the sandbox's raw documents, read independently of the tap ----------------------------


def _field(doc: dict, pascal: str, snake: str):
    """Some raw documents spell standard fields in snake_case."""
    return doc[pascal] if pascal in doc else doc.get(snake)


def _custom(doc: dict, kind: str):
    for entry in doc.get("custom_fields") or []:
        if entry.get("kind") == kind:
            return entry.get("value")
    return None


def _raw_time(value) -> datetime.datetime | None:
    """A raw timestamp (ISO string or epoch milliseconds) as a naive UTC datetime."""
    if value is None:
        return None
    if isinstance(value, (int, float)):
        return datetime.datetime(1970, 1, 1) + datetime.timedelta(milliseconds=value)
    parsed = datetime.datetime.fromisoformat(value.replace("Z", "+00:00"))
    return parsed.astimezone(datetime.UTC).replace(tzinfo=None) if parsed.tzinfo else parsed


def _pg_time(text: str | None) -> datetime.datetime | None:
    return None if text is None else datetime.datetime.fromisoformat(text)


def _assert_contact_matches(row: dict, doc: dict):
    cid = doc["contact_id"]
    assert row["email"] == _field(doc, "Email", "email"), cid
    assert row["first_name"] == _field(doc, "FirstName", "first_name"), cid
    assert row["title"] == _field(doc, "Title", "title"), cid
    assert row["custom_favorite_color"] == _custom(doc, "Favorite Color"), cid
    seats = _custom(doc, "Seats")
    assert row["custom_seats"] == (None if seats is None else str(seats)), cid
    assert _pg_time(row["updated_at"]) == _raw_time(doc["updated_at"]), cid
    assert _pg_time(row["created_at"]) == _raw_time(doc["created_at"]), cid
    # Nested arrays: strings -> text[], objects -> jsonb[] (read back through array_to_json).
    assert json.loads(row["lists"] or "[]") == doc["lists"], cid
    visits = json.loads(row["anywhere_page_visits"] or "[]")
    assert {v["url"]: v["value"] for v in visits} == doc["anywhere_page_visits"], cid


# ---- the test ----------------------------------------------------------------------------------


@pytest.fixture
def sb():
    # Dense documents: the checks below read the raw documents field by field.
    with helpers.sandbox(
        contacts=300, lists=3, segments=2, seed=31, dense=True, epoch_ms_share=0.03, snake_case_share=0.03
    ) as sandbox:
        yield sandbox


def test_sandbox_to_postgres_upserts_and_removals(tmp_path, sb, postgres):
    tools.require(tools.TARGET_POSTGRES)
    wh, target_config, config = helpers.postgres_pipeline(tmp_path, postgres, sb, "autopilot_e2e")
    catalog = helpers.write_json(tmp_path / "catalog.json", helpers.select(helpers.discover(config)))

    # ---- first run -----------------------------------------------------------------------
    state1 = helpers.sync_into_postgres(tmp_path, "run1", config, catalog, target_config)
    ds = sb.dataset
    tables = {
        r[0]
        for r in wh.query(f"select table_name from information_schema.tables where table_schema = '{helpers.SCHEMA}'")
    }
    assert tables == set(helpers.ALL_STREAMS)
    primary_keys = {
        r[0]: r[1]
        for r in wh.query(f"""
        select tc.table_name, string_agg(kcu.column_name, ',' order by kcu.ordinal_position)
        from information_schema.table_constraints tc
        join information_schema.key_column_usage kcu using (constraint_schema, constraint_name)
        where tc.table_schema = '{helpers.SCHEMA}' and tc.constraint_type = 'PRIMARY KEY'
        group by tc.table_name""")
    }
    assert primary_keys == {
        "contacts": "contact_id",
        "lists": "list_id",
        "smart_segments": "segment_id",
        "lists_contacts": "list_id,contact_id",
        "smart_segments_contacts": "segment_id,contact_id",
        "completed_passes": "stream_name,table_version",
    }
    column_types = dict(
        wh.query(f"""select column_name, udt_name from information_schema.columns
                                     where table_schema = '{helpers.SCHEMA}' and table_name = 'contacts'""")
    )
    assert column_types["updated_at"] == "timestamp"
    assert column_types["lists"] == "_text"
    assert column_types["mail_received"] == "_jsonb"
    assert column_types["custom_seats"] == "int8"

    assert wh.count("contacts") == len(ds) == 300
    assert set(wh.query(f"select list_id, title from {helpers.SCHEMA}.lists")) == {
        (g["list_id"], g["title"]) for g in ds.lists()
    }
    assert set(wh.query(f"select segment_id, title from {helpers.SCHEMA}.smart_segments")) == {
        (g["segment_id"], g["title"]) for g in ds.segments()
    }
    members = helpers.expected_keys(sb)
    assert wh.count("lists_contacts") == len(members["lists_contacts"])
    assert wh.pairs("lists_contacts", "list_id") == members["lists_contacts"]
    assert wh.count("smart_segments_contacts") == len(members["smart_segments_contacts"])
    assert wh.pairs("smart_segments_contacts", "segment_id") == members["smart_segments_contacts"]
    # each versioned pass, complete, recorded under the version its rows carry
    passes = wh.query(f"select stream_name, table_version::text from {helpers.SCHEMA}.completed_passes")
    assert sorted(passes) == sorted(
        (stream, str(state1["bookmarks"][stream]["version"])) for stream in helpers.FULL_TABLE_STREAMS
    )

    rows = wh.contacts()
    docs = {doc["contact_id"]: doc for doc in ds.iter_contacts()}
    assert set(rows) == set(docs)
    for cid, doc in docs.items():
        _assert_contact_matches(rows[cid], doc)
    # the sample really covers the odd documents: snake_case fields, epoch-ms times, custom values
    assert any("email" in d for d in docs.values()) and any("Email" in d for d in docs.values())
    assert any(isinstance(d["updated_at"], int) for d in docs.values())
    assert any(_custom(d, "Favorite Color") for d in docs.values())

    for stream in helpers.FULL_TABLE_STREAMS:
        version = state1["bookmarks"][stream]["version"]
        assert state1["bookmarks"][stream]["complete"] is True
        assert wh.query(f"select distinct _sdc_table_version from {helpers.SCHEMA}.{stream}") == [(str(version),)]

    # ---- change the source ---------------------------------------------------------------------
    touched = ds.touch(count=12)
    added = ds.add_contacts(6)
    lists = sorted(ds.lists(), key=lambda g: len(ds.list_members(g["list_id"])), reverse=True)
    big_list, small_list = lists[0]["list_id"], lists[1]["list_id"]
    off_list = ds.list_members(big_list)[:5]
    ds.remove_from_list(big_list, off_list)
    segment = max(ds.segments(), key=lambda g: len(ds.segment_members(g["segment_id"])))["segment_id"]
    off_segment = ds.segment_members(segment)[-4:]
    ds.remove_from_segment(segment, off_segment)
    small_members = ds.list_members(small_list)
    assert small_members, "the dataset should have a second non-empty list"
    ds.delete_list(small_list)

    # ---- second run, from the state the target emitted -------------------------------------------
    state_file = helpers.write_json(tmp_path / "state1.json", state1)
    state2 = helpers.sync_into_postgres(tmp_path, "run2", config, catalog, target_config, state=state_file)

    # upserts: one row per contact, touched rows changed, new ones present
    assert wh.count("contacts") == len(ds) == 306
    assert wh.query(f"select count(distinct contact_id) from {helpers.SCHEMA}.contacts") == [("306",)]
    rows = wh.contacts()
    docs = {doc["contact_id"]: doc for doc in ds.iter_contacts()}
    assert set(rows) == set(docs)
    for cid in touched + added:
        _assert_contact_matches(rows[cid], docs[cid])
    for cid in touched:
        assert "(touched 1)" in rows[cid]["title"]
        updated = _pg_time(rows[cid]["updated_at"])
        # past every generated updated_at (all before 2026-01-01; a change is stamped after them)
        assert updated is not None and updated >= datetime.datetime(2026, 1, 1)

    # removals: memberships gone, the deleted list and its memberships gone
    members = helpers.expected_keys(sb)
    wh_lists = wh.pairs("lists_contacts", "list_id")
    assert not {(big_list, c) for c in off_list} & wh_lists
    assert not {(small_list, c) for c in small_members} & wh_lists
    assert wh_lists == members["lists_contacts"]
    wh_segments = wh.pairs("smart_segments_contacts", "segment_id")
    assert not {(segment, c) for c in off_segment} & wh_segments
    assert wh_segments == members["smart_segments_contacts"]
    assert {r[0] for r in wh.query(f"select list_id from {helpers.SCHEMA}.lists")} == {g["list_id"] for g in ds.lists()}
    assert small_list not in {r[0] for r in wh.query(f"select list_id from {helpers.SCHEMA}.lists")}

    # hard delete: nothing soft-deleted is left behind, every full-table row is of the new version
    for stream in helpers.FULL_TABLE_STREAMS:
        old, new = state1["bookmarks"][stream]["version"], state2["bookmarks"][stream]["version"]
        assert new > old
        assert wh.query(f"select distinct _sdc_table_version from {helpers.SCHEMA}.{stream}") == [(str(new),)]
        assert wh.query(f"select count(*) from {helpers.SCHEMA}.{stream} where _sdc_deleted_at is not null") == [("0",)]
