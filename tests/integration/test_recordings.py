"""The installed tap against the sandbox's default data, shaped like the live
API's recorded responses: pages in contact_id order, sparse documents (some only
{contact_id, created_at, api_originated}, one in five without updated_at), `lists` absent
rather than [], empty strings, numbers as strings, RFC 1123 timestamps, custom values
flagged deleted, non-ASCII and colliding custom field names, undocumented extras, 429s
without Retry-After.

Expected values are computed here from the raw documents, field by field, without the
tap's transform code.
"""

from __future__ import annotations

import datetime
import re
from collections import Counter
from email.utils import parsedate_to_datetime

import helpers
import pytest
import tools

UTC = datetime.UTC
CUSTOM_FIELD_KEY = "tap-autopilot.custom-field-name"
# The sandbox's custom fields -> their columns as a user would name them (the second
# "favorite color", newer, gets a suffix; the one with an unknown type is text).
NAMED_COLUMNS = {
    "Favorite Color": "custom_favorite_color",
    "Seats": "custom_seats",
    "Lifetime Value": "custom_lifetime_value",
    "Is Partner": "custom_is_partner",
    "Renewal Date": "custom_renewal_date",
    "Größe": "custom_grosse",
    "Region": "custom_region",
}
INTEGERS = {"number_of_employees"}
BOOLEANS = {"unsubscribed", "company_priority"}
TEXT = set(helpers.STANDARD) - INTEGERS - BOOLEANS - {"contact_id"}


# ---- independent expectations ----------------------------------------------------


def typed(raw, kind):
    """A raw custom or standard value -> what its column must hold ('' is null everywhere)."""
    if raw is None or raw == "":
        return None
    if kind == "integer":
        return int(raw)
    if kind == "float":
        return float(raw)
    if kind == "boolean":
        return raw if isinstance(raw, bool) else raw == "true"
    if kind == "date":
        return helpers.raw_instant(raw)
    return raw


def custom_columns(catalog):
    entry = next(e for e in catalog["streams"] if e["tap_stream_id"] == "contacts")
    return {
        m["metadata"][CUSTOM_FIELD_KEY]: m["breadcrumb"][1]
        for m in entry["metadata"]
        if CUSTOM_FIELD_KEY in m["metadata"]
    }


def mismatches(doc, record, definitions, columns):
    out = []

    def check(column, expected, got):
        if not (expected == got and type(expected) is type(got)):
            out.append(f"{doc['contact_id']} {column}: expected {expected!r}, got {got!r}")

    for column, keys in helpers.STANDARD.items():
        raw = helpers.raw_value(doc, keys)
        kind = "integer" if column in INTEGERS else "boolean" if column in BOOLEANS else "string"
        check(column, typed(raw, kind), record.get(column))
    for column in helpers.TIMESTAMPS:
        expected, got = helpers.raw_instant(doc.get(column)), record.get(column)
        if expected != (None if got is None else helpers.emitted_instant(got)):
            out.append(f"{doc['contact_id']} {column}: expected {expected}, got {got!r}")
    got = record.get("lists")  # absent in the document: on no list, []
    check("lists", sorted(doc.get("lists", [])), sorted(got) if isinstance(got, list) else got)
    fields = doc.get("custom_fields", [])
    for definition in definitions:
        live = [f for f in fields if f["kind"] == definition["name"] and not f["deleted"]]
        expected = typed(live[-1]["value"], definition["fieldType"]) if live else None
        got = record.get(columns[definition["name"]])
        if definition["fieldType"] == "date":
            got = None if got is None else helpers.emitted_instant(got)
        check(columns[definition["name"]], expected, got)
    check(
        "custom_fields",
        [(f["kind"], f["fieldType"], f["deleted"]) for f in fields],
        [(f["kind"], f["field_type"], f["deleted"]) for f in record.get("custom_fields") or []],
    )
    return out


# ---- fixtures ----------------------------------------------------------------------


@pytest.fixture(scope="module")
def synced(tmp_path_factory):
    """A full sync of every stream from a 600-contact default sandbox: (sandbox truth, catalog, messages)."""
    tmp = tmp_path_factory.mktemp("recordings")
    with helpers.sandbox(contacts=600, lists=4, segments=3, seed=8) as sb:
        truth = sb.dataset.dump()
        config = helpers.write_config(tmp, sb)
        catalog = helpers.discover(config)
        selected = helpers.select(catalog)
        run = helpers.run_tap(["--config", config, "--catalog", helpers.write_json(tmp / "catalog.json", selected)])
        assert run.returncode == 0, run
    return truth, catalog, run.messages


def test_the_default_data_is_sparse_like_the_recordings(synced):
    """The sample really holds what the tests below are about."""
    truth = synced[0]
    docs = truth["contacts"]
    assert sum(set(d) == {"contact_id", "created_at", "api_originated"} for d in docs) > 20
    assert sum("updated_at" not in d for d in docs) > 80
    assert sum("lists" not in d for d in docs) > 50 and all(d.get("lists") != [] for d in docs)
    assert sum(helpers.RFC1123.match(str(d.get("updated_at"))) is not None for d in docs) > 10
    assert sum(isinstance(d.get("NumberOfEmployees"), str) for d in docs) > 10
    assert sum(f["deleted"] for d in docs for f in d.get("custom_fields", [])) > 10


def test_full_sync_is_exact_against_the_sandbox(synced):
    truth, catalog, messages = synced
    records = helpers.records_by_stream(messages)
    contacts = {r["contact_id"]: r for r in records["contacts"]}
    assert len(contacts) == len(records["contacts"]) == len(truth["contacts"])
    columns = custom_columns(catalog)
    problems = [
        p
        for doc in truth["contacts"]
        for p in mismatches(doc, contacts[doc["contact_id"]], truth["custom_fields"], columns)
    ]
    assert not problems, f"{len(problems)} mismatches, first ones:\n" + "\n".join(problems[:15])
    assert {(r["list_id"], r["contact_id"]) for r in records["lists_contacts"]} == helpers.membership_pairs(
        truth["list_members"]
    )
    assert {(r["segment_id"], r["contact_id"]) for r in records["smart_segments_contacts"]} == helpers.membership_pairs(
        truth["segment_members"]
    )
    assert {r["list_id"] for r in records["lists"]} == {g["list_id"] for g in truth["lists"]}
    assert {r["segment_id"] for r in records["smart_segments"]} == {g["segment_id"] for g in truth["segments"]}


def test_custom_field_columns_are_readable_distinct_and_typed(synced):
    truth, catalog, _ = synced
    columns = custom_columns(catalog)
    assert set(columns) == {d["name"] for d in truth["custom_fields"]}
    for name, column in NAMED_COLUMNS.items():
        assert columns[name] == column, name
    assert re.fullmatch(r"custom_favorite_color_[0-9a-f]{6}", columns["favorite-color"])
    properties = next(e for e in catalog["streams"] if e["tap_stream_id"] == "contacts")["schema"]["properties"]
    assert properties["custom_region"]["type"] == ["null", "string"]  # fieldType 'picklist'
    assert properties["custom_grosse"]["type"] == ["null", "number"]


def test_every_rfc1123_date_survives(synced):
    truth, catalog, messages = synced
    contacts = {r["contact_id"]: r for r in helpers.records_by_stream(messages)["contacts"]}
    columns = custom_columns(catalog)
    seen = 0
    for doc in truth["contacts"]:
        record = contacts[doc["contact_id"]]
        for column in ("created_at", "updated_at"):
            if helpers.RFC1123.match(str(doc.get(column))):
                seen += 1
                assert helpers.emitted_instant(record[column]) == parsedate_to_datetime(doc[column]), (
                    doc["contact_id"],
                    column,
                )
        for field in doc.get("custom_fields", []):
            if field["fieldType"] == "date" and helpers.RFC1123.match(str(field["value"])) and not field["deleted"]:
                seen += 1
                got = record[columns[field["kind"]]]
                assert helpers.emitted_instant(got) == parsedate_to_datetime(field["value"]), doc["contact_id"]
    assert seen > 20


def test_every_record_valid_against_its_schema(synced):
    counts = helpers.validate_records(synced[2])
    assert set(counts) == set(helpers.ALL_STREAMS)


def test_final_bookmark_is_the_newest_change_seen(synced):
    truth, _, messages = synced
    newest = max(helpers.last_changed(d) for d in truth["contacts"])
    assert helpers.emitted_instant(helpers.last_state(messages)["bookmarks"]["contacts"]["updated_at"]) == newest


def test_extras_are_offered_not_selected_and_kept_when_selected(tmp_path, sandbox_factory):
    sb = sandbox_factory(contacts=300, lists=1, segments=1, seed=9)
    config = helpers.write_config(tmp_path, sb)
    catalog = helpers.discover(config)
    contacts_only = helpers.write_json(tmp_path / "c1.json", helpers.select(catalog, ["contacts"]))
    run = helpers.run_tap(["--config", config, "--catalog", contacts_only])
    assert run.returncode == 0, run
    assert all("extra_fields" not in r for r in helpers.records_by_stream(run.messages)["contacts"])
    selected = helpers.select(catalog, ["contacts"])
    entry = selected["streams"][[e["tap_stream_id"] for e in selected["streams"]].index("contacts")]
    for m in entry["metadata"]:
        if m["breadcrumb"] == ["properties", "extra_fields"]:
            m["metadata"]["selected"] = True
    run = helpers.run_tap(["--config", config, "--catalog", helpers.write_json(tmp_path / "c2.json", selected)])
    assert run.returncode == 0, run
    helpers.validate_records(run.messages)
    records = {r["contact_id"]: r for r in helpers.records_by_stream(run.messages)["contacts"]}
    for doc in sb.dataset.iter_contacts():
        extras = {k: v for k, v in doc.items() if k in ("_rev", "api_originated", "employeesRange")}
        assert records[doc["contact_id"]]["extra_fields"] == (extras or None), doc["contact_id"]


def test_incremental_run_after_k_changes_emits_about_k(tmp_path, sandbox_factory):
    """Touched contacts (sparse ones without updated_at among them) and new ones (some
    without updated_at): the next run emits those and at most a few more, created_at
    deselected (the filter reads the document, not the row)."""
    sb = sandbox_factory(contacts=1000, lists=2, segments=1, seed=12)
    config = helpers.write_config(tmp_path, sb)
    catalog = helpers.select(helpers.discover(config), ["contacts"], deselect_columns={"contacts": ["created_at"]})
    catalog_path = helpers.write_json(tmp_path / "catalog.json", catalog)
    run = helpers.run_tap(["--config", config, "--catalog", catalog_path])
    assert run.returncode == 0, run
    assert len(helpers.records_by_stream(run.messages)["contacts"]) == 1000
    state = helpers.last_state(run.messages)

    docs = list(sb.dataset.iter_contacts())
    sparse = [d["contact_id"] for d in docs if "updated_at" not in d][:10]
    touched = set(sb.dataset.touch(contact_ids=sparse)) | set(sb.dataset.touch(count=20))
    added = set(sb.dataset.add_contacts(17))
    assert any("updated_at" not in sb.dataset.contact(c) for c in added)
    changed = touched | added
    run = helpers.run_tap(
        ["--config", config, "--catalog", catalog_path, "--state", helpers.write_json(tmp_path / "state.json", state)]
    )
    assert run.returncode == 0, run
    emitted_ids = Counter(r["contact_id"] for r in helpers.records_by_stream(run.messages)["contacts"])
    assert max(emitted_ids.values()) == 1
    assert changed <= set(emitted_ids), f"lost: {sorted(changed - set(emitted_ids))[:5]}"
    assert len(emitted_ids) <= len(changed) + 10, f"{len(emitted_ids)} emitted after {len(changed)} changes"
    assert all("created_at" not in r for r in helpers.records_by_stream(run.messages)["contacts"])


def test_429_with_both_bodies_and_no_retry_after_is_retried(tmp_path, sandbox_factory):
    """What the live API sends when throttling: either documented body, no Retry-After."""
    sb = sandbox_factory(contacts=400, lists=3, segments=2, seed=5, rate_limit=5)
    assert sb.faults()["retry_after"] is False
    config = helpers.write_config(tmp_path, sb, max_requests_per_second=25)
    catalog = helpers.write_json(tmp_path / "catalog.json", helpers.select(helpers.discover(config)))
    truth = sb.dataset.dump()
    sb.reset_stats()
    run = helpers.run_tap(["--config", config, "--catalog", catalog])
    assert run.returncode == 0, run
    throttled = sb.stats()["status"].get("429", 0)
    assert throttled >= 2, "both bodies take turns: two 429s at least are needed to see both"
    warned = [
        line
        for line in run.stderr.splitlines()
        if line.startswith("WARNING") and re.search(r"throttled GET /\S+ \(429\); retrying in", line)
    ]
    assert len(warned) == throttled
    assert "Traceback" not in run.stderr
    helpers.validate_records(run.messages)
    records = helpers.records_by_stream(run.messages)
    assert sorted(r["contact_id"] for r in records["contacts"]) == sorted(d["contact_id"] for d in truth["contacts"])
    assert {(r["list_id"], r["contact_id"]) for r in records["lists_contacts"]} == helpers.membership_pairs(
        truth["list_members"]
    )


def test_kill_mid_scan_add_contacts_before_the_saved_position_resume_and_run_again(tmp_path, sandbox_factory):
    """No contact is ever missing from the union of the runs: contacts added between the
    kill and the resume land before the saved position (the id order), the resumed scan
    does not see them, and the run after it takes them."""
    key = helpers.SECRET_API_KEY
    sb = sandbox_factory(contacts=1500, lists=1, segments=1, seed=13, api_key=key)
    config = helpers.write_secret_config(tmp_path, sb)
    catalog = helpers.select(helpers.discover(config), streams=["contacts"])
    sb.set_faults(latency_ms=60)

    first = helpers.run_and_kill(
        helpers.tap_args(tmp_path, config, catalog, name="first"),
        lambda messages: messages[-1].get("type") == "STATE" and helpers.contacts_scan_position(sb, messages) >= 600,
        secret=key,
    )
    sb.set_faults(latency_ms=None)
    position = sb.dataset.position_of(first.state["bookmarks"]["contacts"]["scan"]["cursor"])
    added = sb.dataset.add_contacts(40)
    before = [c for c in added if sb.dataset.position_of(c) <= position]
    assert len(before) >= 5, "the test needs contacts that land before the saved position"

    second = helpers.run_tap(
        helpers.tap_args(tmp_path, config, catalog, state=first.state, name="second"), timeout=180, secret=key
    )
    assert second.returncode == 0, second
    third = helpers.run_tap(
        helpers.tap_args(tmp_path, config, catalog, state=second.state, name="third"), timeout=180, secret=key
    )
    assert third.returncode == 0, third

    union = set(first.keys("contacts")) | set(second.keys("contacts")) | set(third.keys("contacts"))
    everyone = set(sb.dataset.contact_ids())
    assert everyone - union == set(), f"{len(everyone - union)} contacts never emitted"
    assert set(added) <= set(second.keys("contacts")) | set(third.keys("contacts"))
    for out in (second, third):
        helpers.assert_exactly_once(out, "contacts")


def test_recordings_shaped_data_with_extras_loads_into_postgres(tmp_path, sandbox_factory, postgres):
    """meltanolabs-target-postgres takes the sparse rows, RFC 1123 instants and the
    extra_fields object (selected here) as they are."""
    tools.require(tools.TARGET_POSTGRES)
    sb = sandbox_factory(contacts=300, lists=2, segments=1, seed=14)
    wh, target_config, config = helpers.postgres_pipeline(tmp_path, postgres, sb, "autopilot_recordings")
    catalog = helpers.select(helpers.discover(config))
    entry = next(e for e in catalog["streams"] if e["tap_stream_id"] == "contacts")
    next(m for m in entry["metadata"] if m["breadcrumb"] == ["properties", "extra_fields"])["metadata"]["selected"] = (
        True
    )
    helpers.sync_into_postgres(
        tmp_path, "run", config, helpers.write_json(tmp_path / "catalog.json", catalog), target_config
    )
    docs = {d["contact_id"]: d for d in sb.dataset.iter_contacts()}
    assert wh.count("contacts") == len(docs) == 300
    types = dict(
        wh.query(f"""select column_name, udt_name from information_schema.columns
                              where table_schema = '{helpers.SCHEMA}' and table_name = 'contacts'""")
    )
    assert types["extra_fields"] == "jsonb" and types["updated_at"] == "timestamp"
    rows = {
        cid: (updated, extras)
        for cid, updated, extras in wh.query(
            f"select contact_id, to_char(updated_at, 'YYYY-MM-DD HH24:MI:SS'), extra_fields::text "
            f"from {helpers.SCHEMA}.contacts"
        )
    }
    for cid, doc in docs.items():
        updated, extras = rows[cid]
        expected = helpers.raw_instant(doc.get("updated_at"))
        assert updated == (None if expected is None else expected.strftime("%Y-%m-%d %H:%M:%S")), cid
        if "_rev" in doc:
            assert doc["_rev"] in extras, cid
