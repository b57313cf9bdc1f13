"""The five streams (STREAMS).

Words used throughout:
- a *scan* is one walk through a cursor-paged endpoint (/contacts, one list's or
  one segment's contacts), run by the scheduler one page per step (scans.PageScan);
- a *cursor* is the API's page position, the contact id a page ends with (the API
  names it "bookmark"; here a bookmark is only ever a Singer state bookmark);
- a *pass* is one full-table read of a stream under one table version.

Streams:
- contacts: INCREMENTAL on updated_at (default) or FULL_TABLE (versioned), both
  over the contacts scan (readers.py), which reads every page (the API cannot filter by date).
- lists, smart_segments: a versioned full-table listing, one request each.
- lists_contacts: versioned; from the `lists` of every document of the contacts
  scan, or from each list's own scan (ListsContacts.sync decides).
- smart_segments_contacts: versioned; each segment's own scan.

A stream's sync() plans its work on the SyncContext (sync.py), which owns the
output, the thread pool and the HTTP client; state.py owns the state document.
"""

import functools
import logging
from abc import ABC, abstractmethod
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, ClassVar
from urllib.parse import quote

from tap_autopilot.config import membership_source
from tap_autopilot.http.client import AutopilotClient, Page
from tap_autopilot.readers import ContactsScan, FullTableContacts, IncrementalContacts, MembershipsFromScan
from tap_autopilot.scans import PageScan
from tap_autopilot.state.document import MembershipPass
from tap_autopilot.values.cleaning import Note
from tap_autopilot.values.transform import ContactTransformer, contact_id, converter_for

if TYPE_CHECKING:  # for annotations only: sync imports this module
    from tap_autopilot.sync import SelectedStream, SyncContext

LOGGER = logging.getLogger("tap_autopilot")

INCREMENTAL, FULL_TABLE = "INCREMENTAL", "FULL_TABLE"

# The column each record of a versioned full-table pass carries its table version in:
# with a target that ignores ACTIVATE_VERSION, a stream's current rows are those of its
# highest version (docs/state.md, "Removals").
VERSION_COLUMN = "table_version"
VERSION_COLUMN_SCHEMA = {"type": ["null", "integer"]}


class Stream(ABC):
    """A stream of the catalog; STREAMS holds one instance of each."""

    tap_stream_id: ClassVar[str]
    key_properties: ClassVar[list[str]] = []
    replication_methods: ClassVar[tuple[str, ...]] = (FULL_TABLE,)  # the ones allowed; the first is the default
    replication_key: ClassVar[str | None] = None
    parent: ClassVar[str | None] = None  # tap_stream_id of the parent stream, for membership streams

    def reads_contacts_scan(self, ctx: "SyncContext") -> bool:
        """Whether this run's sync() adds a reader to the contacts scan: such streams plan
        first, so that the scan starts before the other streams wait for their listings
        (SyncContext.run)."""
        return False

    @abstractmethod
    def sync(self, ctx: "SyncContext") -> None:
        """Plan this run's work for the stream on the context (scans, commits)."""


class Contacts(Stream):
    tap_stream_id = "contacts"
    key_properties: ClassVar[list[str]] = ["contact_id"]
    replication_methods = (INCREMENTAL, FULL_TABLE)
    replication_key = "updated_at"

    def reads_contacts_scan(self, ctx: "SyncContext") -> bool:
        return True

    def transformer(self, selected: "SelectedStream", note: Note | None = None) -> ContactTransformer:
        """note(column, kind): hears of values out of their column's range (ValueChanges.reporter)."""
        columns = {column: schema for column, schema in selected.columns.items() if column != VERSION_COLUMN}
        return ContactTransformer(columns, selected.custom_field_kinds, note)

    def sync(self, ctx: "SyncContext") -> None:
        method = ctx.selected[self.tap_stream_id].replication_method
        reader = FullTableContacts(ctx, self) if method == FULL_TABLE else IncrementalContacts(ctx, self)
        ctx.shared_scan(ContactsScan).readers.append(reader)


class ParentStream(Stream):
    """lists / smart_segments: one request returns them all."""

    path: ClassVar[str]
    data_key: ClassVar[str]
    id_key: ClassVar[str]

    def fetch(self, client: AutopilotClient) -> list[dict[str, Any]]:
        """Every parent object, as the API returns them. Cached per run by the context."""
        items = client.get(self.path, self.data_key)[self.data_key] or []
        return [item for item in items if isinstance(item, dict) and item.get(self.id_key)]

    def sync(self, ctx: "SyncContext") -> None:
        stream_id = self.tap_stream_id
        version = ctx.begin_version(stream_id)
        emit = ctx.record_line_maker(stream_id, version)
        # Each column by its schema type, as contacts' are: a new column is a schema change only.
        converters = [
            (column, converter_for(column, schema))
            for column, schema in ctx.selected[stream_id].columns.items()
            if column != VERSION_COLUMN
        ]
        rows = [
            {column: None if (value := item.get(column)) is None else convert(value) for column, convert in converters}
            for item in ctx.parents(self)
        ]
        ctx.commit([(stream_id, [emit(row) for row in rows], len(rows), len(rows))])
        ctx.complete(stream_id, lambda: ctx.state.complete_version(stream_id), activate=version)


class MembershipStream(Stream):
    """{parent id, contact id} pairs, read from each parent's own scan.

    Parents are scanned concurrently in order of id; state.MembershipPass keeps
    which are done and where the others stand."""

    parent_stream: ClassVar[ParentStream]
    member_path: ClassVar[str]
    parent_key: ClassVar[str]

    def sync(self, ctx: "SyncContext") -> None:
        self.read_by_parents(ctx, ctx.begin_version(self.tap_stream_id))

    def parent_ids(self, ctx: "SyncContext") -> list[str]:
        """The ids in this run's parent listing (fetched once per run)."""
        return [item[self.parent_stream.id_key] for item in ctx.parents(self.parent_stream)]

    def read_by_parents(self, ctx: "SyncContext", version: int) -> None:
        stream_id = self.tap_stream_id
        if ctx.state.reads_scan(stream_id):
            ctx.state.drop_progress(stream_id)
        membership = ctx.state.membership_pass(stream_id, self.parent_ids(ctx))
        todo = membership.todo()

        def complete() -> None:
            ctx.complete(stream_id, lambda: ctx.state.complete_version(stream_id), activate=version)

        if not todo:
            complete()
            return
        remaining = {"count": len(todo)}

        def parent_done() -> None:
            with ctx.lock:
                remaining["count"] -= 1
                last = remaining["count"] == 0
            if last:
                complete()

        for parent_id in todo:
            ctx.add_scan(ParentScan(ctx, self, parent_id, membership, version, parent_done).steps())


class ParentScan(PageScan):
    """One parent's contacts, for a membership pass."""

    def __init__(
        self,
        ctx: "SyncContext",
        stream: MembershipStream,
        parent_id: str,
        membership: MembershipPass,
        version: int,
        on_done: Callable[[], None],
    ) -> None:
        super().__init__(ctx)
        self.stream = stream
        self.parent_id = parent_id
        self.membership = membership
        self.version = version
        self.on_done = on_done
        self.path = stream.member_path.format(quote(parent_id, safe=""))

    def start_cursor(self) -> str | None:
        return self.membership.cursor(self.parent_id)

    def take(self, page: Page) -> bool:
        stream_id, parent_id, key = self.stream.tap_stream_id, self.parent_id, self.stream.parent_key
        emit = self.ctx.record_line_maker(stream_id, self.version)  # per page: time_extracted is now
        lines = []
        for doc in page.items:
            cid = contact_id(doc) if isinstance(doc, dict) else None
            if cid:
                lines.append(emit({key: parent_id, "contact_id": cid}))
        cursor = page.next_cursor

        def change() -> None:
            if cursor is None:
                self.membership.done(parent_id)
            else:
                self.membership.advance(parent_id, cursor)

        self.ctx.commit([(stream_id, lines, len(page.items), None)], change)
        return True

    def restart(self) -> None:
        self.membership.restart(self.parent_id)

    def gone(self) -> None:
        stream_id = self.stream.tap_stream_id
        LOGGER.warning(
            "%s: %s %s disappeared during the sync (404); skipping it.",
            stream_id,
            self.stream.parent_key,
            self.parent_id,
        )
        self.ctx.commit([(stream_id, [], 0, None)], lambda: self.membership.done(self.parent_id))

    def finish(self) -> None:
        self.on_done()


class Lists(ParentStream):
    tap_stream_id = "lists"
    key_properties: ClassVar[list[str]] = ["list_id"]
    path = "/lists"
    data_key = "lists"
    id_key = "list_id"


class SmartSegments(ParentStream):
    tap_stream_id = "smart_segments"
    key_properties: ClassVar[list[str]] = ["segment_id"]
    path = "/smart_segments"
    data_key = "segments"
    id_key = "segment_id"


class ListsContacts(MembershipStream):
    """Every contact document carries the ids of the lists it is on, so when the
    contacts scan runs anyway its documents give the memberships for free. When
    contacts are not selected, whichever reading needs fewer requests (decided on the
    scan's first page). `lists_contacts_source` forces one way."""

    tap_stream_id = "lists_contacts"
    key_properties: ClassVar[list[str]] = ["list_id", "contact_id"]
    parent_stream = Lists()
    parent = parent_stream.tap_stream_id
    member_path = "/list/{}/contacts"
    parent_key = "list_id"

    def source(self, ctx: "SyncContext") -> str:
        """How this run reads the memberships: "lists" (list by list), "probe" (the contacts
        scan's first page decides) or through the contacts scan ("contacts", "auto")."""
        source = membership_source(ctx.config)
        if source == "auto" and "contacts" not in ctx.selected:
            if ctx.state.reads_parents(self.tap_stream_id):
                return "lists"  # carry on the interrupted pass the way it went
            if not ctx.state.reads_scan(self.tap_stream_id):
                return "probe"
        return source

    def reads_contacts_scan(self, ctx: "SyncContext") -> bool:
        return self.source(ctx) != "lists"

    def sync(self, ctx: "SyncContext") -> None:
        stream_id = self.tap_stream_id
        version = ctx.begin_version(stream_id)
        source = self.source(ctx)
        if source == "lists":
            self.read_by_parents(ctx, version)
            return
        if ctx.state.reads_parents(stream_id):
            ctx.state.drop_progress(stream_id)

        reader = MembershipsFromScan(ctx, self, functools.partial(self.parent_ids, ctx), probe=source == "probe")
        ctx.shared_scan(ContactsScan).readers.append(reader)


class SmartSegmentsContacts(MembershipStream):
    """Segment membership is not on the contact document: each segment's own scan."""

    tap_stream_id = "smart_segments_contacts"
    key_properties: ClassVar[list[str]] = ["segment_id", "contact_id"]
    parent_stream = SmartSegments()
    parent = parent_stream.tap_stream_id
    member_path = "/smart_segments/{}/contacts"
    parent_key = "segment_id"


STREAMS = {
    stream.tap_stream_id: stream
    for stream in (Contacts(), Lists(), ListsContacts(), SmartSegments(), SmartSegmentsContacts())
}
