"""lists and smart_segments (streams/listings.py): one request, one versioned pass. On FakeRun."""

from tap_autopilot.catalog import selected_streams
from tap_autopilot.streams import Lists
from tap_autopilot.streams.base import (
    VERSION_COLUMN,
)

from ..fakes import (
    DOCS,
    SEGMENT_MEMBERS,
    FakeClient,
    SegmentsClient,
    catalog,
    messages,
    records,
)
from ..fakes import fake_run as context


def test_a_new_column_on_lists_is_a_schema_change_only():
    """lists and smart_segments convert each column by its schema type, the way contacts do."""

    class ListsWithCounts(FakeClient):
        def get(self, path, data_key=None, expect_list=False):
            assert path == "/lists"
            return {"lists": [{"list_id": "list_a", "title": "", "contact_count": "1,200", "archived": "yes"}]}

    lists = catalog(["lists"])
    properties = lists["streams"][0]["schema"]["properties"]
    properties["contact_count"] = {"type": ["null", "integer"]}
    properties["archived"] = {"type": ["null", "boolean"]}
    ctx = context(ListsWithCounts([]), ["lists"])
    ctx.selected = {s.tap_stream_id: s for s in selected_streams(lists)}  # with the two columns added
    ctx.run()
    [row] = records(ctx, "lists")
    assert row == {
        "list_id": "list_a",
        "title": None,  # "" is null, as in every text column
        "contact_count": 1200,
        "archived": True,
        VERSION_COLUMN: ctx.state.entry("lists")["version"],
    }


def test_a_listing_is_one_versioned_pass_of_text_columns_for_parents_with_an_id():
    ctx = context(SegmentsClient(DOCS, members=SEGMENT_MEMBERS), ["smart_segments"])
    ctx.run()
    version = ctx.state.entry("smart_segments")["version"]
    assert records(ctx, "smart_segments") == [
        {"segment_id": "segment_b", "title": "7", VERSION_COLUMN: version},
        {"segment_id": "segment_a", "title": "A", VERSION_COLUMN: version},
        {"segment_id": "segment_gone", "title": "Gone", VERSION_COLUMN: version},
    ]
    out = messages(ctx)
    assert [m["type"] for m in out if m["type"] != "STATE"][-1] == "ACTIVATE_VERSION"
    assert ctx.state.entry("smart_segments") == {"version": version, "complete": True}
    assert ctx.client.requests == ["/smart_segments"]


def test_a_listing_asks_the_client_to_check_its_data_key():
    asked = []

    class RecordingClient(FakeClient):
        def get(self, path, data_key=None, expect_list=False):
            asked.append((path, data_key))
            return super().get(path, data_key, expect_list)

    Lists().fetch(RecordingClient(DOCS))  # type: ignore[arg-type]  # a fake client
    assert asked == [("/lists", "lists")]
