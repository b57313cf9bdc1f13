"""lists and smart_segments: one request returns every object, written as a versioned
full-table pass. The membership streams read the same listings (the runner fetches each
once per run)."""

from typing import Any, ClassVar

from tap_autopilot.http.client import AutopilotClient
from tap_autopilot.state.changes import CompleteVersion
from tap_autopilot.streams.base import VERSION_COLUMN, PageResult, PassCompleted, Run, Stream, StreamRecords
from tap_autopilot.values.transform import converter_for


class ListingStream(Stream):
    """A stream whose objects all come in one request: a subclass says where they are."""

    path: ClassVar[str]
    data_key: ClassVar[str]
    id_key: ClassVar[str]

    def listings_read(self) -> tuple[str, ...]:
        return (self.tap_stream_id,)

    def fetch(self, client: AutopilotClient) -> list[dict[str, Any]]:
        """Every object with an id, as the API returns them. Cached per run by the runner."""
        items = client.get(self.path, self.data_key)[self.data_key] or []
        return [item for item in items if isinstance(item, dict) and item.get(self.id_key)]

    def sync(self, run: Run) -> PageResult:
        stream_id = self.tap_stream_id
        version = run.begin_version(stream_id)
        emit = run.record_line_maker(stream_id, version)
        # Each column by its schema type, as contacts' are: a new column is a schema change only.
        converters = [
            (column, converter_for(column, schema))
            for column, schema in run.selection(stream_id).columns.items()
            if column != VERSION_COLUMN
        ]
        rows = [
            {column: None if (value := item.get(column)) is None else convert(value) for column, convert in converters}
            for item in run.listing(stream_id)
        ]
        return PageResult(
            records=(StreamRecords(stream_id, [emit(row) for row in rows], len(rows), len(rows)),),
            completed=(PassCompleted(stream_id, CompleteVersion(stream_id), version),),
        )


class Lists(ListingStream):
    tap_stream_id = "lists"
    key_properties: ClassVar[list[str]] = ["list_id"]
    path = "/lists"
    data_key = "lists"
    id_key = "list_id"


class SmartSegments(ListingStream):
    tap_stream_id = "smart_segments"
    key_properties: ClassVar[list[str]] = ["segment_id"]
    path = "/smart_segments"
    data_key = "segments"
    id_key = "segment_id"
