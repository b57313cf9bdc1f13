"""Values every warehouse accepts (docs/values.md, values/cleaning.py): one test per rule,
no server.

Every emitted value passes transform.serialize, which writes a row needing it cleaned
(cleaning.clean_row); typed columns get null for what they cannot hold (the converters), and
every change is counted per stream, column and kind (ValueChanges)."""

import logging
import re

import orjson
import pytest

from tap_autopilot.discover import custom_field_columns
from tap_autopilot.http.client import RequestStats
from tap_autopilot.progress import Progress
from tap_autopilot.schema_files import load_schema
from tap_autopilot.values.cleaning import (
    DATES_OUT_OF_RANGE,
    INTEGERS_OUT_OF_RANGE,
    NUL_REMOVED,
    NUMBERS_OUT_OF_RANGE,
    SURROGATES_REPLACED,
    ValueChanges,
    clean_row,
    clean_value,
    out_of_range,
    parse_body,
)
from tap_autopilot.values.converters import to_integer, to_number
from tap_autopilot.values.transform import ContactTransformer, serialize

from .support import contact


class Notes:
    """A note(column, kind) that keeps what it hears."""

    def __init__(self):
        self.heard = []

    def __call__(self, column, kind):
        self.heard.append((column, kind))


def written(row, note=None):
    return orjson.loads(serialize(row, note))


def transformer(note, *fields):
    """A ContactTransformer over every standard column (extra_fields too) and the given custom fields."""
    properties = dict(load_schema("contacts")["properties"])
    kinds = {}
    for column, name, schema in custom_field_columns(list(fields)):
        properties[column] = schema
        kinds[column] = name
    return ContactTransformer(properties, kinds, note)


# ----- strings: no NUL, no lone surrogate, at every depth --------------------------------------


def test_nul_is_removed_from_every_string_at_every_depth_keys_included():
    notes = Notes()
    transform = transformer(notes, {"name": "Color", "fieldType": "string"})
    doc = contact(
        FirstName="Ann\x00",
        custom_fields=[{"kind": "Color", "value": "Bl\x00ue", "fieldType": "string"}],
        anywhere_page_visits={"https://x.test/\x00a": True},
        mail_opened={"mail\x00_1": 1430349325347},
        lists=["contactlist_\x001"],
        Undocumented={"deep": ["a\x00", {"k\x00": "v\x00"}]},
    )
    out = serialize(transform(doc), notes)
    assert b"\\u0000" not in out
    row = orjson.loads(out)
    assert row["first_name"] == "Ann" and row["custom_color"] == "Blue"
    assert row["custom_fields"][0]["value"] == "Blue"
    assert row["anywhere_page_visits"] == [{"url": "https://x.test/a", "value": True}]
    assert row["mail_opened"][0]["id"] == "mail_1" and row["lists"] == ["contactlist_1"]
    assert row["extra_fields"] == {"Undocumented": {"deep": ["a", {"k": "v"}]}}
    assert {column for column, kind in notes.heard if kind == NUL_REMOVED} == {
        "first_name",
        "custom_color",
        "custom_fields",
        "anywhere_page_visits",
        "mail_opened",
        "lists",
        "extra_fields",
    }


def test_lone_surrogates_become_fffd_at_every_depth_and_pairs_stay():
    notes = Notes()
    row = {"first_name": "Ann\ud83d", "title": "\ude00 ok 😀", "extra_fields": {"k\udfff": ["\ud800x"]}, "n": 1}
    assert written(row, notes) == {
        "first_name": "Ann\ufffd",
        "title": "\ufffd ok 😀",
        "extra_fields": {"k\ufffd": ["\ufffdx"]},
        "n": 1,
    }
    assert sorted(notes.heard) == [(c, SURROGATES_REPLACED) for c in ("extra_fields", "first_name", "title")]


def test_list_titles_and_membership_ids_pass_the_same_cleaning():
    notes = Notes()
    assert written({"list_id": "contactlist_1", "title": "VIP\x00 \ud83c"}, notes) == {
        "list_id": "contactlist_1",
        "title": "VIP \ufffd",
    }
    assert written({"segment_id": "seg\x00", "contact_id": "person_\ud83d"}, notes) == {
        "segment_id": "seg",
        "contact_id": "person_\ufffd",
    }
    assert set(notes.heard) == {
        ("title", NUL_REMOVED),
        ("title", SURROGATES_REPLACED),
        ("segment_id", NUL_REMOVED),
        ("contact_id", SURROGATES_REPLACED),
    }


def test_clean_rows_are_written_unchanged_and_report_nothing():
    notes = Notes()
    row = {"a": 'quote " backslash \\ tab \t', "b": "\\u0000 as text", "c": 2**63 - 1, "d": "é😀"}
    assert written(row, notes) == row
    assert notes.heard == []


# ----- integers: signed 64 bits ----------------------------------------------------------------


def test_integers_beyond_64_bits_are_null_in_typed_columns_and_as_sent_in_custom_fields():
    notes = Notes()
    transform = transformer(notes, {"name": "Seats", "fieldType": "integer"})
    doc = contact(
        NumberOfEmployees=10**20,
        custom_fields=[{"kind": "Seats", "value": 15551234567890123456789, "fieldType": "integer"}],
        Undocumented=-(2**64),
    )
    row = written(transform(doc), notes)
    assert row["number_of_employees"] is None and row["custom_seats"] is None
    assert row["custom_fields"][0]["value"] == "15551234567890123456789"
    assert row["extra_fields"] == {"Undocumented": str(-(2**64))}  # a JSON column: its text
    assert set(notes.heard) == {
        ("number_of_employees", INTEGERS_OUT_OF_RANGE),
        ("custom_seats", INTEGERS_OUT_OF_RANGE),
        ("extra_fields", INTEGERS_OUT_OF_RANGE),
    }
    assert written(transformer(None)(contact(NumberOfEmployees=2**63 - 1)))["number_of_employees"] == 2**63 - 1


@pytest.mark.parametrize(
    "raw", [10**20, "100000000000000000000", 1e20, "-9223372036854775809", "1e19", "100,000,000,000,000,000,000"]
)
def test_every_form_of_an_integer_beyond_64_bits_is_counted(raw):
    notes = Notes()
    assert transformer(notes)(contact(NumberOfEmployees=raw))["number_of_employees"] is None
    assert notes.heard == [("number_of_employees", INTEGERS_OUT_OF_RANGE)]


@pytest.mark.parametrize("raw", ["twelve", "", 3.5, True, [1], "nan"])
def test_a_value_that_is_not_an_integer_is_null_but_not_counted_as_out_of_range(raw):
    notes = Notes()
    assert transformer(notes)(contact(NumberOfEmployees=raw))["number_of_employees"] is None
    assert notes.heard == []


# ----- numbers: finite -------------------------------------------------------------------------


def test_numbers_no_double_holds_are_null_and_counted():
    notes = Notes()
    transform = transformer(notes, {"name": "Value", "fieldType": "float"})
    # "1e400" is how the page parser hands over a JSON number no double holds (values.parse_body).
    doc = contact(custom_fields=[{"kind": "Value", "value": "1e400", "fieldType": "float"}])
    row = written(transform(doc), notes)
    assert row["custom_value"] is None and row["custom_fields"][0]["value"] == "1e400"
    assert notes.heard == [("custom_value", NUMBERS_OUT_OF_RANGE)]
    assert to_number(float("inf")) is None and to_number(float("nan")) is None and to_number(10**400) is None
    assert to_number(10**20) == 1e20  # a double holds it
    assert written({"x": [float("inf")]}, notes) == {"x": [None]}


# ----- date-times: 0001-01-01 .. 9999-12-31 UTC ------------------------------------------------


@pytest.mark.parametrize(
    "raw",
    [
        10**30,
        "99999999999999999999",
        "0001-01-01T00:00:00+01:00",
        "9999-12-31T23:59:59-01:00",
        -(10**17),
        "Fri, 31 Dec 9999 23:59:59 -0100",  # RFC 2822, the form of the Date header
    ],
)
def test_datetimes_outside_what_warehouses_hold_are_null_and_counted(raw):
    notes = Notes()
    row = written(transformer(notes)(contact(first_visit_at=raw)))
    assert row["first_visit_at"] is None
    assert notes.heard == [("first_visit_at", DATES_OUT_OF_RANGE)]


def test_datetimes_at_the_edges_stay_and_text_that_is_no_date_is_not_counted():
    notes = Notes()
    transform = transformer(notes)
    assert written(transform(contact(first_visit_at="0001-01-01T00:00:00Z")))["first_visit_at"] == (
        "0001-01-01T00:00:00Z"
    )
    assert written(transform(contact(first_visit_at="9999-12-31T23:59:59.999Z")))["first_visit_at"] == (
        "9999-12-31T23:59:59.999000Z"
    )
    assert transform(contact(first_visit_at="soon"))["first_visit_at"] is None
    assert notes.heard == []


# ----- visible, never noisy, never personal ----------------------------------------------------


def test_one_warning_per_stream_column_and_kind_per_run_never_the_value(caplog):
    changes = ValueChanges()
    note = changes.reporter("contacts")
    for _ in range(3):
        written({"first_name": "Secret\x00Name", "last_name": "Hidden\ud83d"}, note)
    written({"title": "VIP\x00"}, changes.reporter("lists"))
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 3
    assert any(w.startswith("contacts.first_name:") for w in warnings)
    assert any(w.startswith("contacts.last_name:") for w in warnings)
    assert any(w.startswith("lists.title:") for w in warnings)
    assert not any(secret in w for w in warnings for secret in ("Secret", "Name", "Hidden", "VIP"))
    assert changes.totals() == {
        ("contacts", NUL_REMOVED): 3,
        ("contacts", SURROGATES_REPLACED): 3,
        ("lists", NUL_REMOVED): 1,
    }


def test_the_summary_counts_changed_values_per_stream_and_kind_and_repaired_pages(caplog):
    caplog.set_level(logging.INFO)
    changes = ValueChanges()
    stats = RequestStats()
    stats.count("invalid UTF-8 pages: contacts", 2)
    for _ in range(2):
        written({"number": None, "first_name": "a\x00"}, changes.reporter("contacts"))
    changes.note("contacts", "custom_seats", INTEGERS_OUT_OF_RANGE)
    Progress(["contacts"], stats, changes, interval=3600).summary()
    lines = [r.getMessage() for r in caplog.records if r.levelno == logging.INFO]
    assert any(re.fullmatch(r"\s*contacts\s+NULs removed\s+2", line) for line in lines), lines
    assert any(re.fullmatch(r"\s*contacts\s+integers out of range\s+1", line) for line in lines), lines
    assert any(re.fullmatch(r"\s*contacts\s+invalid UTF-8 pages\s+2", line) for line in lines), lines


def test_the_summary_says_nothing_of_changes_when_there_were_none(caplog):
    caplog.set_level(logging.INFO)
    Progress(["contacts"], RequestStats(), ValueChanges(), interval=3600).summary()
    assert not any("warehouse" in r.getMessage() for r in caplog.records)


# ----- the limits exactly, and what is no value of a type at all -------------------------------


def test_a_json_column_keeps_every_signed_64_bit_integer_and_writes_the_first_beyond_as_text():
    changes: set[str] = set()
    assert clean_value([-(2**63), 2**63 - 1], changes) == [-(2**63), 2**63 - 1] and changes == set()
    assert clean_value([2**63, -(2**63) - 1], changes) == [str(2**63), str(-(2**63) - 1)]
    assert changes == {INTEGERS_OUT_OF_RANGE}


def test_a_written_row_holds_unsigned_64_bit_integers_in_json_columns_as_text_and_counts_them():
    """orjson alone would write 2^63 .. 2^64 - 1 as numbers, which a signed 64-bit column refuses."""
    note = Notes()
    row = written({"extra_fields": {"big": 2**63, "max": 2**64 - 1, "fine": 2**63 - 1, "small": 2**53 + 1}}, note)
    assert row == {"extra_fields": {"big": str(2**63), "max": str(2**64 - 1), "fine": 2**63 - 1, "small": 2**53 + 1}}
    assert note.heard == [("extra_fields", INTEGERS_OUT_OF_RANGE)]


def test_the_first_integer_beyond_64_bits_is_counted_out_of_range_in_an_integer_column():
    assert out_of_range(to_integer, 2**63) == INTEGERS_OUT_OF_RANGE
    assert out_of_range(to_integer, -(2**63) - 1) == INTEGERS_OUT_OF_RANGE


def test_an_integer_no_double_holds_is_counted_as_a_number_out_of_range_in_a_number_column():
    assert out_of_range(to_number, 10**400) == NUMBERS_OUT_OF_RANGE
    assert out_of_range(to_number, "1e400") == NUMBERS_OUT_OF_RANGE


def test_a_json_column_keeps_finite_numbers_and_writes_infinite_ones_as_null_counted():
    notes = Notes()
    assert clean_row({"a": [1.5, -0.25], "b": {"x": float("inf")}}, notes) == {"a": [1.5, -0.25], "b": {"x": None}}
    assert notes.heard == [("b", NUMBERS_OUT_OF_RANGE)]


def test_keys_that_are_not_text_are_kept_as_they_are():
    changes: set[str] = set()
    assert clean_value({1: "a\x00", None: "b"}, changes) == {1: "a", None: "b"}
    assert changes == {NUL_REMOVED}


@pytest.mark.parametrize("raw", [True, False, [2020], {"at": "2020-01-01"}])
def test_a_value_that_is_no_date_at_all_is_null_in_a_date_column_but_not_counted(raw):
    notes = Notes()
    assert transformer(notes)(contact(first_visit_at=raw))["first_visit_at"] is None
    assert notes.heard == []


def test_an_integer_longer_than_python_converts_parses_as_its_text():
    digits = "9" * 5000  # beyond sys.int_info.default_max_str_digits (4300)
    assert parse_body(b'{"a": ' + digits.encode() + b"}") == ({"a": digits}, False)


def test_nan_and_infinity_are_not_json_and_the_error_names_them():
    for constant in ("NaN", "Infinity", "-Infinity"):
        with pytest.raises(ValueError, match=f"^{constant} is not JSON$"):
            parse_body(b'{"a": [' + constant.encode() + b"]}")


def test_the_warning_says_what_was_changed_and_why_in_words(caplog):
    changes = ValueChanges()
    changes.note("contacts", "first_name", NUL_REMOVED)
    changes.note("contacts", "seats", INTEGERS_OUT_OF_RANGE)
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert warnings == [
        "contacts.first_name: NUL characters removed (PostgreSQL refuses them in text and JSON); the value is not "
        "logged, the end-of-run summary counts every such change.",
        "contacts.seats: an integer beyond signed 64 bits written as null; the value is not logged, the end-of-run "
        "summary counts every such change.",
    ]


def test_the_totals_add_up_every_column_of_a_stream_and_kind():
    changes = ValueChanges()
    for column in ("first_name", "first_name", "last_name"):
        changes.note("contacts", column, NUL_REMOVED)
    assert changes.totals() == {("contacts", NUL_REMOVED): 3}
