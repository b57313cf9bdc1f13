"""Which streams and columns a catalog selects (sync.selected_streams): Singer metadata,
the legacy --properties style, and the columns the tap keeps whatever the catalog says.
Catalogs come from discover() on a fake client: no server."""

import copy

import pytest
from singer import metadata

from tap_autopilot.catalog import selected_streams
from tap_autopilot.discover import CUSTOM_FIELD_KEY, discover
from tap_autopilot.streams.base import VERSION_COLUMN

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


def test_the_version_column_is_selected_like_any_other():
    assert VERSION_COLUMN in only(entry("lists")).columns
    assert VERSION_COLUMN not in only(entry("lists", columns={VERSION_COLUMN: {"selected": False}})).columns


def test_a_deselected_key_keeps_its_schema_and_the_stream_schema_keeps_its_other_keywords():
    selected = only(entry("lists", columns={"list_id": {"inclusion": "available", "selected": False}}))
    assert selected.columns["list_id"] == entry("lists")["schema"]["properties"]["list_id"]
    assert selected.schema["type"] == entry("lists")["schema"]["type"]


def test_a_stream_without_a_replication_method_takes_its_default_silently(caplog):
    assert only(entry("contacts")).replication_method == "INCREMENTAL"
    assert only(entry("lists")).replication_method == "FULL_TABLE"
    assert caplog.messages == []
