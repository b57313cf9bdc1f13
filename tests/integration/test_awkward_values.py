"""One bad value never stops a pipeline (docs/values.md): the sandbox's awkward_values
knob serves what real accounts hold and warehouses refuse as it is (a lone surrogate
escape, 1e400, bytes that are not UTF-8, NULs, integers beyond 64 bits, two custom
fields whose names agree in their first 70 characters); the tap, run as a user runs it,
syncs every record, and the whole output loads into PostgreSQL, twice."""

from __future__ import annotations

import re
from collections import Counter

import helpers
import pytest
import tools

LONG_PREFIX = "Preferred channel for the quarterly business review and renewal call ("


@pytest.fixture
def awkward(sandbox_factory):
    return sandbox_factory(contacts=300, lists=3, segments=2, seed=5, awkward_values=True)


def awkward_ids(sb):
    """(the contact with the cut FirstName, the one with bytes that are not UTF-8)."""
    docs = list(sb.dataset.iter_contacts())
    cut = next(d["contact_id"] for d in docs if d.get("FirstName") == "Ann\ud83d")
    latin1 = next(d["contact_id"] for d in docs if d.get("LastName") == "M\udcfcller")
    return cut, latin1


def long_columns(catalog):
    """{field name: column} of the two long-named custom fields."""
    contacts = next(s for s in catalog["streams"] if s["tap_stream_id"] == "contacts")
    columns = {}
    for entry in contacts["metadata"]:
        name = entry["metadata"].get("tap-autopilot.custom-field-name")
        if name and name.startswith(LONG_PREFIX):
            columns[name] = entry["breadcrumb"][1]
    return columns


def custom_value(record, kind):
    return next(f["value"] for f in record["custom_fields"] if f["kind"] == kind)


def test_every_awkward_value_syncs_valid_records_with_one_warning_each_and_never_the_value(tmp_path, awkward):
    config = helpers.write_config(tmp_path, awkward)
    catalog = helpers.select(helpers.discover(config))
    columns = long_columns(catalog)
    assert len(columns) == 2 and len(set(columns.values())) == 2
    for column in columns.values():
        assert len(column.encode()) <= 63 and re.fullmatch(r"[a-z][a-z0-9_]*", column), column

    run = helpers.run_tap(helpers.tap_args(tmp_path, config, catalog))
    assert run.returncode == 0, run
    helpers.validate_records(run.messages)
    expected = helpers.expected_keys(awkward)
    for stream in helpers.STREAM_NAMES:
        assert set(run.keys(stream)) == expected[stream], stream

    contacts = {r["contact_id"]: r for r in run.records("contacts")}
    cut, latin1 = (contacts[cid] for cid in awkward_ids(awkward))
    assert cut["first_name"] == "Ann\ufffd"  # the lost half of the emoji: U+FFFD
    assert cut["number_of_employees"] is None and cut["custom_seats"] is None
    assert custom_value(cut, "Seats") == "15551234567890123456789"  # as sent, as text
    assert cut["custom_lifetime_value"] is None and custom_value(cut, "Lifetime Value") == "1e400"
    assert latin1["last_name"] == "M\ufffdller"
    assert latin1["company"] == "Acme Corp" and latin1["custom_favorite_color"] == "Blue"
    assert custom_value(latin1, "Favorite Color") == "Blue"
    assert (cut[columns[LONG_PREFIX + "primary contact)"]], cut[columns[LONG_PREFIX + "backup contact)"]]) == (
        "email",
        "phone",
    )
    titles = {r["title"] for r in run.records("lists")}
    assert "Newsletter Subscribers (imported)" in titles
    assert not any("\x00" in line for line in run.stdout.splitlines())

    warnings = run.lines("WARNING")
    assert len(warnings) == len(set(warnings))  # at most one per stream, column and kind
    assert any("contacts.first_name:" in w and "U+FFFD" in w for w in warnings)
    assert any("contacts.company:" in w and "NUL" in w for w in warnings)
    assert any("lists.title:" in w for w in warnings)
    # one per page that held the bytes (the contacts scan's, and the lists' or segments' it is on), naming it
    repaired = [w for w in warnings if "not valid UTF-8" in w]
    assert sum(w.startswith("WARNING GET /contacts") for w in repaired) == 1
    for secret in ("Acme", "Blue", "ller", "Ann", "15551234567890123456789", "1e400", "Newsletter"):
        assert not any(secret in w for w in warnings), secret
    summary = run.stderr[run.stderr.index("Values changed so that every warehouse accepts them") :]
    for kind in ("NULs removed", "surrogates replaced", "integers out of range", "numbers out of range"):
        assert re.search(rf"contacts\s+{kind}\s+\d", summary), kind
    assert re.search(r"lists\s+NULs removed\s+1", summary)
    assert re.search(r"contacts\s+invalid UTF-8 pages\s+1", summary)


def test_every_awkward_value_loads_into_postgres_and_so_does_the_next_incremental_run(tmp_path, awkward, postgres):
    tools.require(tools.TARGET_POSTGRES)
    wh, target_config, config = helpers.postgres_pipeline(tmp_path, postgres, awkward, "autopilot_values")
    discovered = helpers.select(helpers.discover(config))
    columns = long_columns(discovered)
    catalog = helpers.write_json(tmp_path / "catalog.json", discovered)
    ds = awkward.dataset
    cut, latin1 = awkward_ids(awkward)

    state1 = helpers.sync_into_postgres(tmp_path, "run1", config, catalog, target_config)
    assert wh.count("contacts") == len(ds) == 300
    assert {r[0] for r in wh.query(f"select contact_id from {helpers.SCHEMA}.contacts")} == set(ds.contact_ids())
    expected = helpers.expected_keys(awkward)
    assert wh.pairs("lists_contacts", "list_id") == expected["lists_contacts"]
    assert wh.pairs("smart_segments_contacts", "segment_id") == expected["smart_segments_contacts"]
    table_columns = Counter(
        r[0]
        for r in wh.query(
            "select column_name from information_schema.columns "
            f"where table_schema = '{helpers.SCHEMA}' and table_name = 'contacts'"
        )
    )
    assert all(table_columns[column] == 1 for column in columns.values()), (columns, table_columns)
    primary, backup = columns[LONG_PREFIX + "primary contact)"], columns[LONG_PREFIX + "backup contact)"]
    rows = {
        r[0]: r[1:]
        for r in wh.query(
            f"select contact_id, first_name, last_name, company, number_of_employees, custom_seats, {primary}, "
            f"{backup} from {helpers.SCHEMA}.contacts where contact_id in ('{cut}', '{latin1}')"
        )
    }
    assert rows[cut][0] == "Ann\ufffd" and rows[cut][3:] == (None, None, "email", "phone")
    assert rows[latin1][1:3] == ("M\ufffdller", "Acme Corp") and rows[latin1][5:] == ("phone", "email")
    assert "Newsletter Subscribers (imported)" in {r[0] for r in wh.query(f"select title from {helpers.SCHEMA}.lists")}

    # ---- the source changes, the awkward contacts among them; the next run starts from the target's state ----
    touched = ds.touch(contact_ids=[cut, latin1, ds.contact_ids()[150]])
    added = ds.add_contacts(4)
    state_file = helpers.write_json(tmp_path / "state1.json", state1)
    helpers.sync_into_postgres(tmp_path, "run2", config, catalog, target_config, state=state_file)
    assert wh.count("contacts") == len(ds) == 304
    titles = dict(
        wh.query(
            f"select contact_id, title from {helpers.SCHEMA}.contacts "
            f"where contact_id in ({', '.join(repr(c) for c in touched + added)})"
        )
    )
    assert set(titles) == set(touched + added)
    assert all("(touched 1)" in (titles[cid] or "") for cid in touched)
    first_names = dict(wh.query(f"select contact_id, first_name from {helpers.SCHEMA}.contacts"))
    assert first_names[cut] == "Ann\ufffd"
