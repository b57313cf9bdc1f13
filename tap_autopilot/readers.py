"""The contacts scan and the streams that read it.

A run makes at most one scan of /contacts (ContactsScan), shared by its readers:
the contacts stream, incremental (IncrementalContacts) or full table
(FullTableContacts), and lists_contacts when its rows come from the documents'
`lists` (MembershipsFromScan). Each page is committed once, with every reader's
records and state.
"""

import datetime
import functools
import logging
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING

from tap_autopilot.http.client import Page
from tap_autopilot.scans import PageScan, pages_for, pages_left
from tap_autopilot.values.transform import contact_id

if TYPE_CHECKING:  # for annotations only: sync and streams import this module
    from tap_autopilot.streams import Contacts, ListsContacts
    from tap_autopilot.sync import SyncContext

LOGGER = logging.getLogger("tap_autopilot")


class ContactsScan(PageScan):
    """The one scan of /contacts a run makes, shared by its readers: the contacts
    stream (incremental or full table) and lists_contacts when its rows come from the
    documents' `lists`. Each page is committed once, with every reader's records and
    state."""

    path = "/contacts"

    def __init__(self, ctx: "SyncContext") -> None:
        super().__init__(ctx)
        self.readers: list[ScanReader] = []

    def start_cursor(self) -> str | None:
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

    def reads_ahead_from(self) -> int:
        # Usually the longest scan, its pages one after another (rate_limit.py); from its
        # second page on while its first decides whether it goes on (MembershipsFromScan's
        # probe): page 2 asked for before that would be a request for nothing.
        return 2 if any(isinstance(reader, MembershipsFromScan) and reader.probe for reader in self.readers) else 1

    def take(self, page: Page) -> bool:
        self.readers = [reader for reader in self.readers if reader.keep_reading(page)]
        if not self.readers:
            return False
        items, cursor, total = page.items, page.next_cursor, page.meta.get(self.total_key)
        parts = [(reader.stream_id, reader.read(page), len(items), total) for reader in self.readers]
        readers = list(self.readers)

        def save() -> None:
            for reader in readers:
                reader.save(cursor)

        self.ctx.commit(parts, save)
        return True

    def restart(self) -> None:
        with self.ctx.lock:
            for reader in self.readers:
                reader.restart()

    def finish(self) -> None:
        for reader in self.readers:
            reader.complete()


class ScanReader(ABC):
    """One stream's use of the contacts scan."""

    def __init__(self, ctx: "SyncContext", stream_id: str) -> None:
        self.ctx = ctx
        self.stream_id = stream_id

    @abstractmethod
    def saved_cursor(self) -> str | None:
        """Where this stream's scan stopped last run (None: from the first page)."""

    def keep_reading(self, page: Page) -> bool:
        """Called with each page before read(); False detaches the reader from the scan."""
        return True

    @abstractmethod
    def read(self, page: Page) -> list[bytes]:
        """This page's RECORD lines for the stream (no state change: that is save())."""

    @abstractmethod
    def save(self, cursor: str | None) -> None:
        """Record in the state that every page up to `cursor` is read (under the lock)."""

    @abstractmethod
    def restart(self) -> None:
        """Forget the saved cursor: the scan starts over from its first page."""

    @abstractmethod
    def complete(self) -> None:
        """The scan read its last page: the stream's pass is complete."""


# How far the API's clock (the Date header) may be from the clock that stamps
# updated_at: the next scan starts this much before this scan began.
CLOCK_SKEW = datetime.timedelta(minutes=5)


def next_threshold(
    threshold: datetime.datetime, max_seen: datetime.datetime | None, started: datetime.datetime | None
) -> datetime.datetime:
    """The updated_at the next incremental scan filters with, once this one completed.

    Not simply the newest updated_at seen: pages are not in updated_at order, so a
    contact changed during the scan on a page already read would fall below it while
    a later change on a page still ahead raised it. Anything changed after the scan
    began is taken again next time (at-least-once). Never past the scan's start either
    (docs/state.md): a threshold ahead of the API's clock (the tap's clock ahead of it)
    is not kept."""
    if max_seen is not None:
        if started is not None:
            max_seen = min(max_seen, started - CLOCK_SKEW)
        threshold = max(threshold, max_seen)
    return threshold if started is None else min(threshold, started)


class IncrementalContacts(ScanReader):
    """A contact is emitted when its updated_at >= the threshold. The bookmark
    `updated_at` only advances when the scan completes (next_threshold)."""

    def __init__(self, ctx: "SyncContext", stream: "Contacts") -> None:
        super().__init__(ctx, stream.tap_stream_id)
        self.transform = stream.transformer(ctx.selected[self.stream_id], ctx.value_changes.reporter(self.stream_id))
        self.threshold, self.cursor, self.max_seen, self.started = ctx.state.incremental_scan(
            self.stream_id, ctx.start_date
        )
        if self.cursor is not None:
            LOGGER.info(
                "contacts: resuming the interrupted scan after page cursor %s (updated_at >= %s).",
                self.cursor,
                self.threshold,
            )

    def saved_cursor(self) -> str | None:
        return self.cursor

    def read(self, page: Page) -> list[bytes]:
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

    def save(self, cursor: str | None) -> None:
        self.cursor = cursor
        self.ctx.state.save_incremental_scan(self.stream_id, self.threshold, cursor, self.max_seen, self.started)

    def restart(self) -> None:
        self.cursor = None
        self.ctx.state.forget_scan(self.stream_id)

    def complete(self) -> None:
        final = next_threshold(self.threshold, self.max_seen, self.started)
        self.ctx.complete(self.stream_id, lambda: self.ctx.state.finish_incremental_scan(self.stream_id, final))


class VersionedScanReader(ScanReader):
    """A versioned full-table pass over the contacts scan: every record under the
    pass's version, ACTIVATE_VERSION when the scan completes; a killed run resumes the
    scan, and the pass, under the same version."""

    def __init__(self, ctx: "SyncContext", stream_id: str) -> None:
        super().__init__(ctx, stream_id)
        self.version = ctx.begin_version(stream_id)
        self.cursor = ctx.state.scan_cursor(stream_id)

    def saved_cursor(self) -> str | None:
        return self.cursor

    def save(self, cursor: str | None) -> None:
        self.cursor = cursor
        self.ctx.state.save_scan_cursor(self.stream_id, cursor)

    def restart(self) -> None:
        self.cursor = None
        self.ctx.state.save_scan_cursor(self.stream_id, None)

    def complete(self) -> None:
        self.ctx.complete(
            self.stream_id, lambda: self.ctx.state.complete_version(self.stream_id), activate=self.version
        )


class FullTableContacts(VersionedScanReader):
    """Every contact, whatever its updated_at, so that a target honouring
    ACTIVATE_VERSION drops the contacts deleted in Autopilot."""

    def __init__(self, ctx: "SyncContext", stream: "Contacts") -> None:
        super().__init__(ctx, stream.tap_stream_id)
        self.transform = stream.transformer(ctx.selected[self.stream_id], ctx.value_changes.reporter(self.stream_id))

    def read(self, page: Page) -> list[bytes]:
        emit = self.ctx.record_line_maker(self.stream_id, self.version)
        transform = self.transform
        return [emit(transform(doc)) for doc in page.items]


class MembershipsFromScan(VersionedScanReader):
    """lists_contacts from the `lists` of every document the scan reads (ids that are
    on /lists; an absent `lists` means none): no request of its own. In incremental
    mode the contacts stream filters by updated_at; this reads every document.

    With probe, the first page decides whether the scan is worth it (contacts not
    selected, `lists_contacts_source` auto): see keep_reading."""

    def __init__(
        self,
        ctx: "SyncContext",
        stream: "ListsContacts",
        list_ids: Callable[[], Iterable[str]],
        probe: bool = False,
    ) -> None:
        super().__init__(ctx, stream.tap_stream_id)
        self.stream = stream
        self._list_ids = list_ids
        self.parent_key = stream.parent_key
        self.probe = probe

    @functools.cached_property
    def list_ids(self) -> frozenset[str]:
        """The ids on /lists, asked for when the first page is read: the scan's first request
        goes out while the listing is on its way (sync.SyncContext.run)."""
        return frozenset(self._list_ids())

    def keep_reading(self, page: Page) -> bool:
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

    def read(self, page: Page) -> list[bytes]:
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


def estimate_membership_requests(page: Page, list_ids: Iterable[str]) -> tuple[int, int]:
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
