"""Syncs of the installed tap against the sandbox, compared with the sandbox's own data.

The expected values are computed here from the raw documents, field by field, without
the tap's transform code: if both were wrong the same way, nothing would notice.
"""

import datetime
import json
from types import SimpleNamespace

import helpers
import pytest

UTC = datetime.UTC

ANYWHERE = ("anywhere_page_visits", "anywhere_form_submits", "anywhere_utm")
MAIL = (
    "mail_received",
    "mail_opened",
    "mail_clicked",
    "mail_bounced",
    "mail_complained",
    "mail_unsubscribed",
    "mail_hardbounced",
)
DENSE = {"dense": True, "epoch_ms_share": 0.03, "snake_case_share": 0.03}
LATE_FIELD = "Late Field"  # a custom field the sandbox's /contacts/custom_fields does not define


# ---- independent expectations ---------------------------------------------------


def same_pairs(pairs, expected):
    """An array column's (key, value) pairs against the raw map's: both absent, or the
    same pairs with none repeated."""
    return (pairs is None and expected is None) or (
        pairs is not None
        and expected is not None
        and len(pairs) == len(set(pairs)) == len(expected)
        and set(pairs) == expected
    )


def rfc3339(instant, offset_minutes=0):
    """An instant as RFC 3339 with milliseconds, in the given UTC offset."""
    local = instant.astimezone(datetime.timezone(datetime.timedelta(minutes=offset_minutes)))
    sign, minutes = "+-"[offset_minutes < 0], abs(offset_minutes)
    zone = "Z" if not offset_minutes else "%s%02d:%02d" % (sign, minutes // 60, minutes % 60)
    return local.strftime("%Y-%m-%dT%H:%M:%S.") + "%03d" % (local.microsecond // 1000) + zone


def same_typed(expected, got):
    """Equal, and of the same JSON type (True is not 1, 1.5 is not '1.5')."""
    if expected is None or isinstance(expected, bool):
        return got is expected
    if isinstance(expected, int):
        return type(got) is int and got == expected
    if isinstance(expected, float):
        return isinstance(got, (int, float)) and not isinstance(got, bool) and got == expected
    return got == expected


def same_loose(raw, got):
    """For custom_fields[].value, whose column type is the tap's choice: the same value,
    possibly as its string form."""
    if raw is None or isinstance(raw, str) or not isinstance(got, str):
        return same_typed(raw, got)
    if isinstance(raw, bool):
        return got.lower() == str(raw).lower()
    try:
        return float(got) == raw
    except ValueError:
        return False


def contact_mismatches(doc, record, custom_definitions):
    """[(column, expected, got)] for one contact's record against its raw document."""
    out = []

    def check(column, ok, expected, got):
        if not ok:
            out.append((column, expected, got))

    for column, keys in helpers.STANDARD.items():
        expected, got = helpers.raw_value(doc, keys), record.get(column)
        check(column, same_typed(expected, got), expected, got)
    for column in helpers.TIMESTAMPS:
        expected, got = helpers.raw_instant(doc.get(column)), record.get(column)
        check(column, expected == helpers.emitted_instant(got), expected, got)
    expected, got = doc.get("lists"), record.get("lists")
    check(
        "lists",
        (expected is None and got is None)
        or (expected is not None and isinstance(got, list) and sorted(got) == sorted(expected)),
        expected,
        got,
    )
    for column in ANYWHERE:
        raw, got = doc.get(column), record.get(column)
        expected = None if raw is None else set(raw.items())
        pairs = None if got is None else [(item.get("url"), item.get("value")) for item in got]
        check(
            column,
            same_pairs(pairs, expected) and (pairs is None or all(type(v) is bool for _, v in pairs)),
            expected,
            got,
        )
    for column in MAIL:
        raw, got = doc.get(column), record.get(column)
        expected = None if raw is None else {(k, helpers.raw_instant(v)) for k, v in raw.items()}
        pairs = None if got is None else [(i.get("id"), helpers.emitted_instant(i.get("timestamp"))) for i in got]
        check(column, same_pairs(pairs, expected), expected, got)
    fields = doc.get("custom_fields") or []
    for definition in custom_definitions:
        column = helpers.custom_column(definition["name"])
        raw = next((f["value"] for f in fields if f["kind"] == definition["name"]), None)
        got = record.get(column)
        if definition["fieldType"] == "date":
            check(column, helpers.raw_instant(raw) == helpers.emitted_instant(got), raw, got)
        else:
            check(column, same_typed(raw, got), raw, got)
    got = record.get("custom_fields")
    expected = sorted((f["kind"], f["fieldType"]) for f in fields)
    emitted = sorted((f.get("kind"), f.get("field_type")) for f in got or [])
    values_ok = len(emitted) == len(expected) and all(
        any(g.get("kind") == f["kind"] and same_loose(f["value"], g.get("value")) for g in got) for f in fields
    )
    check("custom_fields", emitted == expected and values_ok, fields, got)
    return out


def all_mismatches(docs, records, custom_definitions):
    by_id = {r["contact_id"]: r for r in records}
    out = []
    for doc in docs:
        for column, expected, got in contact_mismatches(doc, by_id[doc["contact_id"]], custom_definitions):
            out.append(f"{doc['contact_id']} {column}: expected {expected!r}, got {got!r}")
    return out


def ids(records, key="contact_id"):
    """The ids of the records, asserting none repeats."""
    values = [r[key] for r in records]
    assert len(values) == len(set(values)), "a record was emitted twice"
    return set(values)


def pairs(records, parent_key):
    values = [(r[parent_key], r["contact_id"]) for r in records]
    assert len(values) == len(set(values)), "a membership pair was emitted twice"
    return set(values)


def without_version(records):
    """The records without the table_version column, which the version tests check."""
    return [{k: v for k, v in r.items() if k != "table_version"} for r in records]


def max_updated(docs):
    return max(helpers.instant(d["updated_at"]) for d in docs)


def bookmark(state):
    at = helpers.emitted_instant(state["bookmarks"]["contacts"]["updated_at"])
    assert at is not None, state
    return at


# ---- fixtures ---------------------------------------------------------------------


@pytest.fixture(scope="module")
def env(tmp_path_factory):
    """A 300-contact sandbox (not mutated by the tests that share it), its config,
    the discovered catalog and the sandbox's data as dumped before any sync."""
    # The shape first assumed (dense documents, some epoch-ms and snake_case ones): the
    # expectations below are computed for it; test_recordings.py covers the default shape.
    with helpers.sandbox(contacts=300, lists=4, segments=3, seed=7, **DENSE) as sb:
        tmp = tmp_path_factory.mktemp("sync")
        config = helpers.write_config(tmp, sb)
        data = sb.dataset.dump()
        # What the tests rely on to mean anything: paging and every raw oddity happen.
        docs = data["contacts"]
        assert max(len(m) for m in data["list_members"].values()) > 100
        assert max(len(m) for m in data["segment_members"].values()) > 100
        assert any(isinstance(d["updated_at"], int) for d in docs)
        assert any("email" in d for d in docs) and any("Email" in d for d in docs)
        assert any(f["kind"] == LATE_FIELD for d in docs for f in d["custom_fields"])
        yield SimpleNamespace(sb=sb, tmp=tmp, config=config, data=data, catalog=helpers.discover(config))


def run(env, catalog, name, flag="--catalog", state=None, config=None):
    args = ["--config", config or env.config, flag, helpers.write_json(env.tmp / f"{name}.json", catalog)]
    if state is not None:
        args += ["--state", helpers.write_json(env.tmp / f"{name}-state.json", state)]
    done = helpers.run_tap(args)
    assert done.returncode == 0, done
    return SimpleNamespace(
        messages=done.messages,
        stderr=done.stderr,
        records=helpers.records_by_stream(done.messages),
        schemas=helpers.schemas_by_stream(done.messages),
        state=helpers.last_state(done.messages),
    )


@pytest.fixture(scope="module")
def full(env):
    """Every stream selected, run with --catalog."""
    return run(env, helpers.select(env.catalog), "full")


# ---- a full sync ------------------------------------------------------------------


def test_every_stream_emits_and_never_the_api_key(full):
    assert set(full.records) == set(helpers.ALL_STREAMS)
    assert set(full.schemas) == set(helpers.ALL_STREAMS)
    everything = json.dumps(full.messages, ensure_ascii=False) + full.stderr
    assert helpers.API_KEY not in everything


def test_every_contact_exactly_once(env, full):
    assert ids(full.records["contacts"]) == {d["contact_id"] for d in env.data["contacts"]}


def test_contact_values_match_the_raw_documents(env, full):
    problems = all_mismatches(env.data["contacts"], full.records["contacts"], env.data["custom_fields"])
    assert not problems, f"{len(problems)} wrong values, e.g.:\n" + "\n".join(problems[:15])


def test_custom_field_unknown_to_discovery_is_kept(env, full):
    late = {d["contact_id"] for d in env.data["contacts"] if any(f["kind"] == LATE_FIELD for f in d["custom_fields"])}
    kept = {
        r["contact_id"]
        for r in full.records["contacts"]
        if any(
            f.get("kind") == LATE_FIELD and f.get("value") == "added after discovery"
            for f in r.get("custom_fields") or []
        )
    }
    assert late and kept == late


def test_list_memberships_exactly(env, full):
    assert pairs(full.records["lists_contacts"], "list_id") == helpers.membership_pairs(env.data["list_members"])


def test_smart_segment_memberships_exactly(env, full):
    assert pairs(full.records["smart_segments_contacts"], "segment_id") == helpers.membership_pairs(
        env.data["segment_members"]
    )


def test_lists_and_smart_segments_rows(env, full):
    assert sorted(without_version(full.records["lists"]), key=lambda r: r["list_id"]) == sorted(
        env.data["lists"], key=lambda r: r["list_id"]
    )
    assert sorted(without_version(full.records["smart_segments"]), key=lambda r: r["segment_id"]) == sorted(
        env.data["segments"], key=lambda r: r["segment_id"]
    )


def test_every_record_valid_against_its_schema(full):
    counts = helpers.validate_records(full.messages)
    assert set(counts) == set(helpers.ALL_STREAMS)


def test_final_state(env, full):
    assert full.messages[-1]["type"] == "STATE"
    assert full.state["currently_syncing"] is None
    assert bookmark(full.state) == max_updated(env.data["contacts"])


def test_properties_flag_syncs_the_same(env, full):
    legacy = run(env, helpers.select(env.catalog), "properties", flag="--properties")

    def as_text(records):  # each run has its own table versions
        return sorted(json.dumps(r, sort_keys=True) for r in without_version(records))

    for stream in helpers.STREAM_NAMES:
        assert as_text(legacy.records[stream]) == as_text(full.records[stream]), stream
    assert legacy.state["bookmarks"]["contacts"] == full.state["bookmarks"]["contacts"]


# ---- selection --------------------------------------------------------------------

DESELECTED = ["email", "first_name", "anywhere_utm", "mail_opened", "custom_seats", "custom_fields", "created_at"]


@pytest.fixture(scope="module")
def selective(env):
    """contacts with some columns deselected, lists_contacts without its parent stream,
    smart_segments without its title; lists and smart_segments_contacts not selected.
    Deselecting a key or the replication key must not drop it: they are automatic; nor
    table_version, which carries removals."""
    catalog = helpers.select(
        env.catalog,
        streams=["contacts", "lists_contacts", "smart_segments"],
        deselect_columns={
            "contacts": DESELECTED + ["contact_id", "updated_at"],
            "smart_segments": ["title", "segment_id", "table_version"],
        },
    )
    return run(env, catalog, "selective")


def test_only_selected_streams_emit(selective):
    emitting = {m["stream"] for m in selective.messages if "stream" in m}  # SCHEMA, RECORD, ACTIVATE_VERSION
    assert emitting == {"contacts", "lists_contacts", "smart_segments"}
    assert set(selective.records) == emitting
    assert selective.state["currently_syncing"] is None


def test_selective_records_valid_against_their_schemas(selective):
    assert set(helpers.validate_records(selective.messages)) == {"contacts", "lists_contacts", "smart_segments"}


def test_membership_stream_without_its_parent(env, selective):
    assert pairs(selective.records["lists_contacts"], "list_id") == helpers.membership_pairs(env.data["list_members"])


def test_deselected_columns_absent_keys_always_present(env, selective):
    schema = set(selective.schemas["contacts"]["properties"])
    assert not schema & set(DESELECTED)
    assert {"contact_id", "updated_at", "last_name", "custom_favorite_color", "mail_received"} <= schema
    for record in selective.records["contacts"]:
        assert not set(record) & set(DESELECTED), sorted(set(record) & set(DESELECTED))
        assert record["contact_id"] and record["updated_at"]

    # segment_id is a key; table_version carries removals (the table_version rule): both stay, the
    # latter with one warning
    assert set(selective.schemas["smart_segments"]["properties"]) == {"segment_id", "table_version"}
    assert all(set(r) == {"segment_id", "table_version"} for r in selective.records["smart_segments"])
    assert [line for line in selective.stderr.splitlines() if line.startswith("WARNING ")] == [
        "WARNING The catalog leaves out smart_segments.table_version, which carries removals (docs/state.md, "
        "Removals): replicating it anyway."
    ]
    assert ids(selective.records["smart_segments"], "segment_id") == {s["segment_id"] for s in env.data["segments"]}


def test_selected_columns_keep_their_values(env, selective):
    docs = {d["contact_id"]: d for d in env.data["contacts"]}
    assert ids(selective.records["contacts"]) == set(docs)
    for record in selective.records["contacts"]:
        doc = docs[record["contact_id"]]
        assert record["last_name"] == helpers.raw_value(doc, helpers.STANDARD["last_name"])
        assert helpers.emitted_instant(record["updated_at"]) == helpers.instant(doc["updated_at"])


# ---- incremental ------------------------------------------------------------------


def test_start_date_filters_the_first_run(env, tmp_path):
    docs = sorted(env.data["contacts"], key=lambda d: helpers.instant(d["updated_at"]))
    boundary = docs[len(docs) // 2]
    start = helpers.instant(boundary["updated_at"])
    # Exactly the boundary contact's instant (>= keeps it), written in another offset.
    config = helpers.write_config(tmp_path, env.sb, start_date=rfc3339(start, offset_minutes=330))
    out = run(env, helpers.select(env.catalog, streams=["contacts"]), "start", config=config)
    expected = {d["contact_id"] for d in docs if helpers.instant(d["updated_at"]) >= start}
    assert boundary["contact_id"] in expected and len(expected) < len(docs)
    assert ids(out.records["contacts"]) == expected
    assert bookmark(out.state) == max_updated(docs)
    assert out.state["currently_syncing"] is None


def test_second_run_emits_only_contacts_updated_since(env, sandbox_factory, tmp_path):
    sb = sandbox_factory(contacts=250, lists=2, segments=1, seed=11, **DENSE)  # its own: this test mutates it
    config = helpers.write_config(tmp_path, sb)
    catalog = helpers.select(env.catalog, streams=["contacts"])

    first = run(env, catalog, "incremental-1", config=config)
    before = sb.dataset.dump()["contacts"]
    assert ids(first.records["contacts"]) == {d["contact_id"] for d in before}
    assert bookmark(first.state) == max_updated(before)

    all_ids = [d["contact_id"] for d in before]
    touched = set(sb.dataset.touch(contact_ids=[all_ids[3], all_ids[120], all_ids[-1]]))
    after = sb.dataset.dump()["contacts"]

    second = run(env, catalog, "incremental-2", state=first.state, config=config)
    since = bookmark(first.state)
    expected = {d["contact_id"] for d in after if helpers.instant(d["updated_at"]) >= since}
    emitted = ids(second.records["contacts"])
    assert emitted == expected
    assert touched <= emitted
    # Beyond the touched ones, only contacts exactly at the old bookmark come again.
    assert {helpers.instant(d["updated_at"]) for d in after if d["contact_id"] in emitted - touched} <= {since}
    problems = all_mismatches(
        [d for d in after if d["contact_id"] in emitted], second.records["contacts"], env.data["custom_fields"]
    )
    assert not problems, "\n".join(problems[:15])
    assert second.state["currently_syncing"] is None
    # The bookmark moves forward, but never past the time the scan began (less the
    # clock-skew margin): a change made during a scan must not fall behind it.
    assert since < bookmark(second.state) <= max_updated(after)
    assert bookmark(second.state) <= min(helpers.instant(d["updated_at"]) for d in after if d["contact_id"] in touched)
