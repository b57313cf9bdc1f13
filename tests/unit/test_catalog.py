"""The catalog (catalog.py): streams and columns chosen without editing JSON (--select,
--exclude), and the selected catalog entries as the sync takes them."""

import copy
from typing import Any

import pytest
from singer import metadata

from tap_autopilot.catalog import (
    SelectedStream,
    SelectionError,
    check_names,
    given_names,
    select,
    selected_streams,
    split_names,
)
from tap_autopilot.discover import CUSTOM_FIELD_KEY, discover
from tap_autopilot.streams import STREAMS
from tap_autopilot.streams.base import FULL_TABLE, VERSION_COLUMN

from .fakes import DOCS, FakeClient
from .fakes import fake_run as context


def test_incremental_is_the_default_and_an_unknown_method_falls_back_to_it(caplog):
    ctx = context(FakeClient(DOCS), ["contacts"], methods={"contacts": "LOG_BASED"})
    assert ctx.selected["contacts"].replication_method == "INCREMENTAL"
    assert "LOG_BASED" in caplog.text
    assert context(FakeClient(DOCS), ["contacts"]).selected["contacts"].replication_method == "INCREMENTAL"


CUSTOM_FIELDS = [{"name": "Seats", "fieldType": "integer"}]


class CustomFieldsClient:
    def get(self, path, data_key=None, expect_list=False):
        assert path == "/contacts/custom_fields"
        return copy.deepcopy(CUSTOM_FIELDS)


DISCOVERED = discover(CustomFieldsClient())  # type: ignore[arg-type]  # a fake client


def entry(stream_id, root=None, columns=None, catalog=DISCOVERED):
    """The discovered entry of a stream with metadata changed: `root` on the stream's
    breadcrumb, `columns` {column: {key: value}} on the columns'."""
    found = copy.deepcopy(next(e for e in catalog["streams"] if e["tap_stream_id"] == stream_id))
    mdata = metadata.to_map(found["metadata"])
    mdata[()].update(root if root is not None else {"selected": True})
    for column, values in (columns or {}).items():
        mdata.setdefault(("properties", column), {}).update(values)
    found["metadata"] = metadata.to_list(mdata)
    return found


def only(*entries):
    (selected,) = selected_streams({"streams": list(entries)})
    return selected


def test_streams_come_in_canonical_order_and_unknown_or_unselected_ones_are_left_out(caplog):
    streams = [
        dict(entry("lists_contacts"), tap_stream_id="no_such_stream"),
        entry("smart_segments"),
        entry("lists", root={"selected": False}),
        entry("contacts"),
        entry("smart_segments_contacts", root={}),  # selected-by-default alone does not select
    ]
    assert [s.tap_stream_id for s in selected_streams({"streams": streams})] == ["contacts", "smart_segments"]
    assert caplog.messages == ["The catalog names an unknown stream 'no_such_stream'; ignoring it."]


def test_a_catalog_entry_named_by_stream_alone_is_read():
    named = entry("lists")
    del named["tap_stream_id"]
    assert only(named).tap_stream_id == "lists"


def test_legacy_properties_style_selects_by_the_schema_s_selected():
    legacy = entry("lists", root={})
    legacy["schema"] = dict(legacy["schema"], selected=True)
    legacy["schema"]["properties"]["title"] = dict(legacy["schema"]["properties"]["title"], selected=False)
    selected = only(legacy)
    assert selected.tap_stream_id == "lists" and "title" not in selected.columns
    assert "selected" not in selected.schema, "the stream's selected flag is not a schema keyword"
    assert selected_streams({"streams": [entry("lists", root={})]}) == []


def test_column_metadata_selected_wins_over_the_schema_and_selected_by_default():
    selected = only(
        entry(
            "contacts",
            columns={
                "first_name": {"selected": False},
                "extra_fields": {"selected": True},  # not selected by default
                "last_name": {"selected-by-default": False},  # nothing else says: the default decides
            },
        )
    )
    assert "first_name" not in selected.columns and "last_name" not in selected.columns
    assert "extra_fields" in selected.columns and "email" in selected.columns
    assert set(selected.schema["properties"]) == set(selected.columns)


def test_unsupported_columns_are_never_selected():
    selected = only(entry("contacts", columns={"email": {"inclusion": "unsupported", "selected": True}}))
    assert "email" not in selected.columns


@pytest.mark.parametrize("method", ["INCREMENTAL", "FULL_TABLE"])
def test_automatic_columns_marked_selected_false_are_kept_in_either_mode(method):
    """Keys and updated_at are `inclusion: automatic`: a catalog cannot drop them, in FULL_TABLE
    mode too (where updated_at is not the replication key)."""
    selected = only(
        entry(
            "contacts",
            root={"selected": True, "replication-method": method},
            columns={"contact_id": {"selected": False}, "updated_at": {"selected": False}},
        )
    )
    assert selected.replication_method == method
    assert {"contact_id", "updated_at"} <= set(selected.columns)
    discovered = next(e for e in DISCOVERED["streams"] if e["tap_stream_id"] == "contacts")["schema"]["properties"]
    assert selected.columns["updated_at"] == discovered["updated_at"], "the column keeps its schema"


def test_bookmark_properties_only_for_incremental():
    incremental = only(entry("contacts"))
    assert incremental.replication_method == "INCREMENTAL" and incremental.bookmark_properties == ["updated_at"]
    full = only(entry("contacts", root={"selected": True, "replication-method": "full_table"}))
    assert full.replication_method == "FULL_TABLE" and full.bookmark_properties is None
    assert only(entry("lists")).bookmark_properties is None


def test_the_replication_key_and_keys_are_added_when_a_catalog_left_them_out():
    trimmed = entry("contacts")
    del trimmed["schema"]["properties"]["updated_at"]
    del trimmed["schema"]["properties"]["contact_id"]
    selected = only(trimmed)
    assert selected.columns["contact_id"] == {"type": ["null", "string"]}
    assert selected.columns["updated_at"] == {"type": ["null", "string"]}


def test_custom_field_columns_keep_their_autopilot_name():
    selected = only(entry("contacts"))
    assert selected.custom_field_kinds == {"custom_seats": "Seats"}
    assert "custom_seats" in selected.columns
    renamed = only(entry("contacts", columns={"custom_seats": {CUSTOM_FIELD_KEY: None}}))
    assert renamed.custom_field_kinds == {}


def test_a_replication_method_the_stream_does_not_allow_falls_back_to_its_default(caplog):
    selected = only(entry("lists", root={"selected": True, "replication-method": "INCREMENTAL"}))
    assert selected.replication_method == "FULL_TABLE"
    assert caplog.messages == [
        "The catalog sets replication-method 'INCREMENTAL' for lists, which allows only FULL_TABLE; using FULL_TABLE."
    ]
    caplog.clear()
    selected = only(entry("contacts", root={"selected": True, "replication-method": 7}))
    assert selected.replication_method == "INCREMENTAL"
    assert "allows only INCREMENTAL or FULL_TABLE; using INCREMENTAL" in caplog.text


def test_the_version_column_is_kept_when_a_catalog_deselects_it_unless_the_pass_has_no_version(caplog):
    assert VERSION_COLUMN in only(entry("lists")).columns
    assert VERSION_COLUMN in only(entry("lists", columns={VERSION_COLUMN: {"selected": False}})).columns
    assert len(caplog.messages) == 1  # the table_version rule's warning
    # contacts replicated incrementally have no version: the column may go like any other
    assert VERSION_COLUMN not in only(entry("contacts", columns={VERSION_COLUMN: {"selected": False}})).columns


def test_a_deselected_key_keeps_its_schema_and_the_stream_schema_keeps_its_other_keywords():
    selected = only(entry("lists", columns={"list_id": {"inclusion": "available", "selected": False}}))
    assert selected.columns["list_id"] == entry("lists")["schema"]["properties"]["list_id"]
    assert selected.schema["type"] == entry("lists")["schema"]["type"]


def test_a_stream_without_a_replication_method_takes_its_default_silently(caplog):
    assert only(entry("contacts")).replication_method == "INCREMENTAL"
    assert only(entry("lists")).replication_method == "FULL_TABLE"
    assert caplog.messages == []


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


@pytest.mark.parametrize("stream", [s for s in STREAMS if FULL_TABLE in STREAMS[s].replication_methods])
def test_table_version_rule_refuses_leaving_out_the_column_that_carries_removals(stream):
    with pytest.raises(SelectionError) as raised:
        check_names(list(STREAMS), None, [f"{stream}.table_version"])
    assert str(raised.value) == (
        f"--exclude {stream}.table_version: table_version carries removals (with a target that ignores "
        "ACTIVATE_VERSION, a stream's current rows are told by their table_version: docs/state.md, "
        "Removals), so it cannot be left out."
    )


def test_table_version_rule_repairs_a_catalog_that_deselects_the_column_with_a_warning(caplog):
    entry = {
        "tap_stream_id": "lists",
        "schema": {"properties": {"list_id": {"type": ["string"]}, VERSION_COLUMN: {"type": ["null", "integer"]}}},
        "metadata": [
            {"breadcrumb": [], "metadata": {"selected": True}},
            {"breadcrumb": ["properties", VERSION_COLUMN], "metadata": {"selected": False}},
        ],
    }
    assert VERSION_COLUMN in SelectedStream(entry).columns
    assert caplog.messages == [
        "The catalog leaves out lists.table_version, which carries removals (docs/state.md, Removals): "
        "replicating it anyway."
    ]
