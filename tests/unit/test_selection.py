"""Choosing streams and columns without editing JSON (tap_autopilot/selection.py), and
a sync with no catalog taking every stream: one rule per test, no server."""

import copy
from typing import Any

import pytest
from singer import metadata

from tap_autopilot.catalog import SelectionError, check_names, given_names, select, selected_streams, split_names
from tap_autopilot.streams import STREAMS

CATALOG = {
    "streams": [
        {
            "tap_stream_id": "contacts",
            "key_properties": ["contact_id"],
            "schema": {"properties": {"contact_id": {}, "email": {}, "updated_at": {}, "extra_fields": {}}},
            "metadata": [
                {"breadcrumb": [], "metadata": {"selected-by-default": True}},
                {"breadcrumb": ["properties", "contact_id"], "metadata": {"inclusion": "automatic"}},
                {"breadcrumb": ["properties", "email"], "metadata": {"selected-by-default": True}},
                {"breadcrumb": ["properties", "updated_at"], "metadata": {"inclusion": "automatic"}},
                {"breadcrumb": ["properties", "extra_fields"], "metadata": {"selected-by-default": False}},
            ],
        },
        {
            "tap_stream_id": "lists",
            "key_properties": ["list_id"],
            "schema": {"properties": {"list_id": {}, "title": {}}},
            "metadata": [
                {"breadcrumb": ["properties", "list_id"], "metadata": {}},
                {"breadcrumb": ["properties", "title"], "metadata": {"selected-by-default": True}},
            ],
        },
    ]
}


def _selected(catalog):
    return {s.tap_stream_id: sorted(s.columns) for s in selected_streams(catalog)}


def test_select_all_takes_every_stream_with_its_default_columns():
    assert _selected(select(copy.deepcopy(CATALOG))) == {
        "contacts": ["contact_id", "email", "updated_at"],
        "lists": ["list_id", "title"],
    }


def test_select_named_streams_only_and_leave_out_named_columns():
    catalog = select(copy.deepcopy(CATALOG), ["contacts"], ["contacts.email"])
    assert _selected(catalog) == {"contacts": ["contact_id", "updated_at"]}
    lists = metadata.to_map(catalog["streams"][1]["metadata"])
    assert lists[()]["selected"] is False  # written, not just left out: the catalog says so


@pytest.mark.parametrize(
    ("streams", "exclude", "message"),
    [
        (["contact"], [], "--select contact: there is no such stream. The streams are contacts, lists."),
        (None, ["contacts"], "--exclude contacts: write STREAM.COLUMN, such as contacts.email."),
        (["lists"], ["contacts.email"], "--exclude contacts.email: the stream contacts is not selected."),
        (None, ["contacts.mail"], "--exclude contacts.mail: contacts has no column mail (see --discover)."),
        (None, ["contacts.updated_at"], "is always replicated (a key or the replication key)."),
        (None, ["lists.list_id"], "is always replicated (a key or the replication key)."),
    ],
)
def test_a_name_that_cannot_be_selected_is_refused_with_what_to_write(streams, exclude, message):
    with pytest.raises(SelectionError) as raised:
        select(copy.deepcopy(CATALOG), streams, exclude)
    assert str(raised.value).endswith(message)


def test_options_may_repeat_and_hold_commas():
    assert split_names(["contacts, lists", "smart_segments"]) == ["contacts", "lists", "smart_segments"]
    assert split_names(None) == []


def test_a_hand_written_entry_without_column_metadata_or_keys_can_still_leave_a_column_out():
    """A catalog entry may lack key_properties, and a breadcrumb its metadata object."""
    catalog: dict[str, Any] = copy.deepcopy(CATALOG)
    lists = catalog["streams"][1]
    del lists["key_properties"]
    del lists["metadata"][1]["metadata"]  # the title column's
    select(catalog, ["lists"], ["lists.title"])
    assert metadata.to_map(lists["metadata"])[("properties", "title")] == {"selected": False}


def test_the_stream_s_own_metadata_is_written_first_when_the_catalog_had_none():
    catalog = select(copy.deepcopy(CATALOG), ["lists"])
    assert catalog["streams"][1]["metadata"][0] == {"breadcrumb": [], "metadata": {"selected": True}}


# ---- the empty-select rule -------------------------------------------------------------------


@pytest.mark.parametrize("values", [[""], [" "], [","], [" , ,"], ["", ""]])
def test_empty_select_rule_refuses_a_select_given_no_stream(values):
    """`--select "$STREAMS"` with the variable empty would select every stream."""
    with pytest.raises(SelectionError) as raised:
        given_names("--select", values)
    assert str(raised.value) == (
        "--select was given no name (an empty variable?): name at least one stream, or leave --select out to "
        "select every stream."
    )


def test_empty_select_rule_refuses_an_exclude_given_no_column():
    """`--exclude "$PRIVATE_COLUMNS"` with the variable empty would keep the columns meant to be left out."""
    with pytest.raises(SelectionError) as raised:
        given_names("--exclude", [" "])
    assert str(raised.value) == (
        "--exclude was given no name (an empty variable?): name at least one STREAM.COLUMN, such as contacts.email, "
        "or leave --exclude out to keep every column."
    )


def test_empty_select_rule_takes_an_option_not_given_or_given_names():
    assert given_names("--select", None) is None
    assert given_names("--select", ["contacts,", " lists"]) == ["contacts", "lists"]
    assert given_names("--exclude", ["contacts.email", ""]) == ["contacts.email"]


# ---- the table_version rule ------------------------------------------------------------------


@pytest.mark.parametrize("stream", list(STREAMS))
def test_table_version_rule_refuses_leaving_out_the_column_that_carries_removals(stream):
    with pytest.raises(SelectionError) as raised:
        check_names(list(STREAMS), None, [f"{stream}.table_version"])
    assert str(raised.value) == (
        f"--exclude {stream}.table_version: table_version carries removals (with a target that ignores "
        "ACTIVATE_VERSION, a stream's current rows are those of its highest table_version: docs/state.md, "
        "Removals), so it cannot be left out."
    )
