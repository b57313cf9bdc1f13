"""The streams, and the scans that read the API's cursor-paged endpoints.

Words used throughout:
- a *scan* is one walk through a cursor-paged endpoint (/contacts, one list's or
  one segment's contacts), run by the scheduler one page per step (PageScan);
- a *cursor* is the API's page position, the contact id a page ends with (the API
  names it "bookmark"; here a bookmark is only ever a Singer state bookmark);
- a *pass* is one full-table read of a stream under one table version.

Streams:
- contacts: INCREMENTAL on updated_at (default) or FULL_TABLE (versioned), both
  over the contacts scan, which reads every page (the API cannot filter by date).
- lists, smart_segments: a versioned full-table listing, one request each.
- lists_contacts: versioned; from the `lists` of every document of the contacts
  scan, or from each list's own scan (ListsContacts.sync decides).
- smart_segments_contacts: versioned; each segment's own scan.

A stream's sync() plans its work on the SyncContext (sync.py), which owns the
output, the thread pool and the HTTP client; state.py owns the state document.
"""

import datetime
import logging
from typing import ClassVar
from urllib.parse import quote

from tap_autopilot.client import PAGE_SIZE, NotFoundError, TapError
from tap_autopilot.transform import ContactTransformer, source_keys, to_string

LOGGER = logging.getLogger("tap_autopilot")

INCREMENTAL, FULL_TABLE = "INCREMENTAL", "FULL_TABLE"

# The column each record of a versioned full-table pass carries its table version in:
# with a target that ignores ACTIVATE_VERSION, a stream's current rows are those of its
# highest version (README: "Removals").
VERSION_COLUMN = "table_version"
VERSION_COLUMN_SCHEMA = {"type": ["null", "integer"]}

# Where lists_contacts rows come from (config `lists_contacts_source`).
MEMBERSHIP_SOURCES = ("auto", "contacts", "lists")

_CONTACT_ID_KEYS = source_keys("contact_id")


def membership_source(config):
    """The config's `lists_contacts_source` (TapError if it is not one of MEMBERSHIP_SOURCES)."""
    source = config.get("lists_contacts_source", "auto")
    if source not in MEMBERSHIP_SOURCES:
        raise TapError(
            f"Config 'lists_contacts_source' must be one of {', '.join(MEMBERSHIP_SOURCES)}, not {source!r}."
        )
    return source


def contact_id(doc):
    """A raw document's contact id, under whichever spelling it has, or None."""
    for key in _CONTACT_ID_KEYS:
        value = doc.get(key)
        if value:
            return value if isinstance(value, str) else to_string(value)
    return None


class Stream:
    tap_stream_id: ClassVar[str]
    key_properties: ClassVar[list[str]] = []
    replication_methods: ClassVar[tuple[str, ...]] = (FULL_TABLE,)  # the ones allowed; the first is the default
    replication_key: ClassVar[str | None] = None
    parent: ClassVar[str | None] = None  # tap_stream_id of the parent stream, for membership streams

    def sync(self, ctx):
        raise NotImplementedError


# --- the scan contract -----------------------------------------------------------------


class RestartScan(Exception):
    """The cursor a scan resumed after no longer exists (its contact was deleted)."""


class PageScan:
    """One scan, as steps for the scheduler (see scheduler.py). The contract, kept here
    so that no stream can get it wrong:

    - one request per step: each step reads one page, then yields;
    - a page's records and the state change that accounts for them are written by
      one ctx.commit (take() makes exactly that call);
    - the page is dropped before the step yields: a suspended scan holds no page;
    - each step yields the pages left (None while unknown), which orders the scheduler;
    - finish() runs exactly once, after the last page (or after gone()).

    A subclass says where it starts (start_cursor), what a page becomes (take), how
    it starts over when its saved cursor vanished (restart), and what it does when
    the endpoint itself is gone (gone)."""

    path: str  # set by each subclass, or per scan in __init__
    data_key = "contacts"
    total_key = "total_contacts"  # the page's count of everything the scan will read

    def __init__(self, ctx):
        self.ctx = ctx

    def start_cursor(self):
        raise NotImplementedError

    def take(self, page):
        """Commit the page through the context. Returns False to stop the scan here
        (without finish): nothing reads it any more."""
        raise NotImplementedError

    def restart(self):
        raise NotImplementedError

    def gone(self):
        """404 on a scan that did not resume from a saved cursor."""
        raise NotFoundError(f"Autopilot has no {self.path} (404).")

    def finish(self):
        raise NotImplementedError

    def steps(self):
        cursor = self.start_cursor()
        read = 0
        try:
            for page in self._pages(cursor):
                read += len(page.items)
                total = page.meta.get(self.total_key)
                if self.take(page) is False:
                    return
                del page  # hold no page while other scans run
                yield pages_left(total, read)
        except RestartScan:
            self.restart()
            yield from self.steps()
            return
        except NotFoundError:
            self.gone()
        self.finish()

    def _pages(self, cursor):
        """The client's pages; a saved cursor that vanished between runs means the
        scan has to start over from its first page."""
        try:
            yield from self.ctx.client.paginate(self.path, self.data_key, cursor)
        except NotFoundError:
            if cursor is None:
                raise
            LOGGER.warning(
                "%s: the saved page cursor no longer exists; restarting this scan from the "
                "first page (records may repeat, none are lost).",
                self.path,
            )
            raise RestartScan() from None


def pages_for(count):
    """Pages of PAGE_SIZE that `count` documents take (rounded up)."""
    return -(-count // PAGE_SIZE)


def pages_left(total, read):
    """Pages a scan still has to read, from the page's total."""
    if not isinstance(total, int) or isinstance(total, bool):
        return None
    return max(0, pages_for(total - read))


# --- the contacts scan and what reads it ------------------------------------------------


class ContactsScan(PageScan):
    """The one scan of /contacts a run makes, shared by its readers: the contacts
    stream (incremental or full table) and lists_contacts when its rows come from the
    documents' `lists`. Each page is committed once, with every reader's records and
    state."""

    path = "/contacts"

    def __init__(self, ctx):
        super().__init__(ctx)
        self.readers = []

    def start_cursor(self):
        with self.ctx.lock:
            cursors = {reader.saved_cursor() for reader in self.readers}
            if len(cursors) == 1:
                return cursors.pop()
            # Readers stopped at different pages (the catalog changed between runs):
            # each must see every document, so all start over.
            LOGGER.info(
                "contacts: %s stopped at different pages; the scan starts from the first page.",
                " and ".join(reader.stream_id for reader in self.readers),
            )
            for reader in self.readers:
                reader.restart()
            return None

    def take(self, page):
        self.readers = [reader for reader in self.readers if reader.keep_reading(page)]
        if not self.readers:
            return False
        items, cursor, total = page.items, page.next_cursor, page.meta.get(self.total_key)
        parts = [(reader.stream_id, reader.read(page), len(items), total) for reader in self.readers]
        readers = list(self.readers)

        def save():
            for reader in readers:
                reader.save(cursor)

        self.ctx.commit(parts, save)
        return True

    def restart(self):
        with self.ctx.lock:
            for reader in self.readers:
                reader.restart()

    def finish(self):
        for reader in self.readers:
            reader.complete()


class ScanReader:
    """One stream's use of the contacts scan."""

    def __init__(self, ctx, stream_id):
        self.ctx = ctx
        self.stream_id = stream_id

    def saved_cursor(self):
        """Where this stream's scan stopped last run (None: from the first page)."""
        raise NotImplementedError

    def keep_reading(self, page):
        """Called with each page before read(); False detaches the reader from the scan."""
        return page is not None

    def read(self, page):
        """This page's RECORD lines for the stream (no state change: that is save())."""
        raise NotImplementedError

    def save(self, cursor):
        """Record in the state that every page up to `cursor` is read (under the lock)."""
        raise NotImplementedError

    def restart(self):
        raise NotImplementedError

    def complete(self):
        raise NotImplementedError


# How far the API's clock (the Date header) may be from the clock that stamps
# updated_at: the next scan starts this much before this scan began.
CLOCK_SKEW = datetime.timedelta(minutes=5)


def next_threshold(threshold, max_seen, started):
    """The updated_at the next incremental scan filters with, once this one completed.

    Not simply the newest updated_at seen: pages are not in updated_at order, so a
    contact changed during the scan on a page already read would fall below it while
    a later change on a page still ahead raised it. Anything changed after the scan
    began is taken again next time (at-least-once)."""
    if max_seen is None:
        return threshold
    if started is not None:
        max_seen = min(max_seen, started - CLOCK_SKEW)
    return max(threshold, max_seen)


class IncrementalContacts(ScanReader):
    """A contact is emitted when its updated_at >= the threshold. The bookmark
    `updated_at` only advances when the scan completes (next_threshold)."""

    def __init__(self, ctx, stream):
        super().__init__(ctx, stream.tap_stream_id)
        self.transform = stream.transformer(ctx.selected[self.stream_id])
        self.threshold, self.cursor, self.max_seen, self.started = ctx.state.incremental_scan(
            self.stream_id, ctx.start_date
        )
        if self.cursor is not None:
            LOGGER.info(
                "contacts: resuming the interrupted scan after page cursor %s (updated_at >= %s).",
                self.cursor,
                self.threshold,
            )

    def saved_cursor(self):
        return self.cursor

    def read(self, page):
        if self.started is None:
            self.started = page.server_time or datetime.datetime.now(datetime.UTC)
        emit = self.ctx.record_line_maker(self.stream_id)  # per page: time_extracted is now
        transform, threshold, max_seen, lines = self.transform, self.threshold, self.max_seen, []
        for doc in page.items:
            # From the document, not the row (created_at may be deselected): updated_at,
            # else created_at for a contact never updated.
            updated_at = transform.replication_instant(doc)
            if updated_at is None or updated_at >= threshold:
                lines.append(emit(transform(doc)))
                if updated_at is not None and (max_seen is None or updated_at > max_seen):
                    max_seen = updated_at
        self.max_seen = max_seen
        return lines

    def save(self, cursor):
        self.cursor = cursor
        self.ctx.state.save_incremental_scan(self.stream_id, self.threshold, cursor, self.max_seen, self.started)

    def restart(self):
        self.cursor = None
        self.ctx.state.forget_scan(self.stream_id)

    def complete(self):
        final = next_threshold(self.threshold, self.max_seen, self.started)
        self.ctx.complete(self.stream_id, lambda: self.ctx.state.finish_incremental_scan(self.stream_id, final))


class VersionedScanReader(ScanReader):
    """A versioned full-table pass over the contacts scan: every record under the
    pass's version, ACTIVATE_VERSION when the scan completes; a killed run resumes the
    scan, and the pass, under the same version."""

    def __init__(self, ctx, stream_id):
        super().__init__(ctx, stream_id)
        self.version = ctx.begin_version(stream_id)
        self.cursor = ctx.state.scan_cursor(stream_id)

    def saved_cursor(self):
        return self.cursor

    def save(self, cursor):
        self.cursor = cursor
        self.ctx.state.save_scan_cursor(self.stream_id, cursor)

    def restart(self):
        self.cursor = None
        self.ctx.state.save_scan_cursor(self.stream_id, None)

    def complete(self):
        self.ctx.complete(
            self.stream_id, lambda: self.ctx.state.complete_version(self.stream_id), activate=self.version
        )


class FullTableContacts(VersionedScanReader):
    """Every contact, whatever its updated_at, so that a target honouring
    ACTIVATE_VERSION drops the contacts deleted in Autopilot."""

    def __init__(self, ctx, stream):
        super().__init__(ctx, stream.tap_stream_id)
        self.transform = stream.transformer(ctx.selected[self.stream_id])

    def read(self, page):
        emit = self.ctx.record_line_maker(self.stream_id, self.version)
        transform = self.transform
        return [emit(transform(doc)) for doc in page.items]


class MembershipsFromScan(VersionedScanReader):
    """lists_contacts from the `lists` of every document the scan reads (ids that are
    on /lists; an absent `lists` means none): no request of its own. In incremental
    mode the contacts stream filters by updated_at; this reads every document.

    With probe, the first page decides whether the scan is worth it (contacts not
    selected, `lists_contacts_source` auto): see keep_reading."""

    def __init__(self, ctx, stream, list_ids, probe=False):
        super().__init__(ctx, stream.tap_stream_id)
        self.stream = stream
        self.list_ids = frozenset(list_ids)
        self.parent_key = stream.parent_key
        self.probe = probe

    def keep_reading(self, page):
        if not self.probe:
            return True
        self.probe = False
        scan_pages, list_pages = estimate_membership_requests(page, self.list_ids)
        if scan_pages <= list_pages:
            LOGGER.info(
                "%s: from the contacts scan (about %d more pages, against about %d reading list by list).",
                self.stream_id,
                scan_pages,
                list_pages,
            )
            return True
        LOGGER.info(
            "%s: list by list (about %d pages, against %d more pages of the contacts scan).",
            self.stream_id,
            list_pages,
            scan_pages,
        )
        self.stream.read_by_parents(self.ctx, self.version)
        return False

    def read(self, page):
        emit = self.ctx.record_line_maker(self.stream_id, self.version)
        list_ids, key, lines = self.list_ids, self.parent_key, []
        for doc in page.items:
            on_lists = doc.get("lists")
            if not on_lists or not isinstance(on_lists, list):
                continue
            cid = contact_id(doc)
            if cid is None:
                continue
            for list_id in dict.fromkeys(on_lists):  # once per list, in the document's order
                if list_id in list_ids:
                    lines.append(emit({key: list_id, "contact_id": cid}))
        return lines


def estimate_membership_requests(page, list_ids):
    """(pages the contacts scan still needs, pages reading list by list would need),
    the second estimated from how many of this first page's documents are on each list."""
    total = page.meta.get("total_contacts")
    docs = page.items
    if not isinstance(total, int) or isinstance(total, bool) or total < len(docs):
        total = len(docs)
    scan_pages = pages_left(total, len(docs)) or 0
    on_list = dict.fromkeys(list_ids, 0)
    for doc in docs:
        lists = doc.get("lists")
        for list_id in set(lists) if isinstance(lists, list) else ():
            if list_id in on_list:
                on_list[list_id] += 1
    list_pages = sum(max(1, pages_for(round(total * count / max(1, len(docs))))) for count in on_list.values())
    return scan_pages, list_pages


# --- the streams ----------------------------------------------------------------------


class Contacts(Stream):
    tap_stream_id = "contacts"
    key_properties: ClassVar[list[str]] = ["contact_id"]
    replication_methods = (INCREMENTAL, FULL_TABLE)
    replication_key = "updated_at"

    def transformer(self, selected):
        columns = {column: schema for column, schema in selected.columns.items() if column != VERSION_COLUMN}
        return ContactTransformer(columns, selected.custom_field_kinds)

    def sync(self, ctx):
        method = ctx.selected[self.tap_stream_id].replication_method
        reader = FullTableContacts(ctx, self) if method == FULL_TABLE else IncrementalContacts(ctx, self)
        ctx.shared_scan(ContactsScan).readers.append(reader)


class ParentStream(Stream):
    """lists / smart_segments: one request returns them all."""

    path: ClassVar[str]
    data_key: ClassVar[str]
    id_key: ClassVar[str]

    def fetch(self, client):
        """Every parent object, as the API returns them. Cached per run by the context."""
        items = client.get(self.path, self.data_key)[self.data_key] or []
        return [item for item in items if isinstance(item, dict) and item.get(self.id_key)]

    def sync(self, ctx):
        stream_id = self.tap_stream_id
        version = ctx.begin_version(stream_id)
        emit = ctx.record_line_maker(stream_id, version)
        columns = [column for column in ctx.selected[stream_id].columns if column != VERSION_COLUMN]
        # Every column of lists and segments is a string (ids and titles).
        rows = [{column: to_string(item.get(column)) for column in columns} for item in ctx.parents(self)]
        ctx.commit([(stream_id, [emit(row) for row in rows], len(rows), len(rows))])
        ctx.complete(stream_id, lambda: ctx.state.complete_version(stream_id), activate=version)


class MembershipStream(Stream):
    """{parent id, contact id} pairs, read from each parent's own scan.

    Parents are scanned concurrently in order of id; state.MembershipPass keeps
    which are done and where the others stand."""

    parent_stream: ClassVar[ParentStream]
    member_path: ClassVar[str]
    parent_key: ClassVar[str]

    def sync(self, ctx):
        self.read_by_parents(ctx, ctx.begin_version(self.tap_stream_id))

    def read_by_parents(self, ctx, version):
        stream_id = self.tap_stream_id
        if ctx.state.reads_scan(stream_id):
            ctx.state.drop_progress(stream_id)
        parent_ids = [item[self.parent_stream.id_key] for item in ctx.parents(self.parent_stream)]
        membership = ctx.state.membership_pass(stream_id, parent_ids)
        todo = membership.todo()

        def complete():
            ctx.complete(stream_id, lambda: ctx.state.complete_version(stream_id), activate=version)

        if not todo:
            complete()
            return
        remaining = {"count": len(todo)}

        def parent_done():
            with ctx.lock:
                remaining["count"] -= 1
                last = remaining["count"] == 0
            if last:
                complete()

        for parent_id in todo:
            ctx.add_scan(ParentScan(ctx, self, parent_id, membership, version, parent_done).steps())


class ParentScan(PageScan):
    """One parent's contacts, for a membership pass."""

    def __init__(self, ctx, stream, parent_id, membership, version, on_done):
        super().__init__(ctx)
        self.stream = stream
        self.parent_id = parent_id
        self.membership = membership
        self.version = version
        self.on_done = on_done
        self.path = stream.member_path.format(quote(parent_id, safe=""))

    def start_cursor(self):
        return self.membership.cursor(self.parent_id)

    def take(self, page):
        stream_id, parent_id, key = self.stream.tap_stream_id, self.parent_id, self.stream.parent_key
        emit = self.ctx.record_line_maker(stream_id, self.version)  # per page: time_extracted is now
        lines = []
        for doc in page.items:
            cid = contact_id(doc) if isinstance(doc, dict) else None
            if cid:
                lines.append(emit({key: parent_id, "contact_id": cid}))
        cursor = page.next_cursor

        def change():
            if cursor is None:
                self.membership.done(parent_id)
            else:
                self.membership.advance(parent_id, cursor)

        self.ctx.commit([(stream_id, lines, len(page.items), None)], change)
        return True

    def restart(self):
        self.membership.restart(self.parent_id)

    def gone(self):
        stream_id = self.stream.tap_stream_id
        LOGGER.warning(
            "%s: %s %s disappeared during the sync (404); skipping it.",
            stream_id,
            self.stream.parent_key,
            self.parent_id,
        )
        self.ctx.commit([(stream_id, [], 0, None)], lambda: self.membership.done(self.parent_id))

    def finish(self):
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

    def sync(self, ctx):
        stream_id = self.tap_stream_id
        source = membership_source(ctx.config)
        version = ctx.begin_version(stream_id)
        if source == "auto" and "contacts" not in ctx.selected:
            if ctx.state.reads_parents(stream_id):
                source = "lists"  # carry on the interrupted pass the way it went
            elif not ctx.state.reads_scan(stream_id):
                source = "probe"
        if source == "lists":
            self.read_by_parents(ctx, version)
            return
        if ctx.state.reads_parents(stream_id):
            ctx.state.drop_progress(stream_id)
        list_ids = [item[self.parent_stream.id_key] for item in ctx.parents(self.parent_stream)]
        reader = MembershipsFromScan(ctx, self, list_ids, probe=source == "probe")
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
