"""contacts: INCREMENTAL on updated_at (the default) or FULL_TABLE (versioned), both read
from the contacts scan, which reads every page (the API cannot filter by date).

A run makes at most one scan of /contacts (ContactsScan), shared by its readers: the
contacts stream, incremental (IncrementalContacts) or full table (FullTableContacts), and
lists_contacts when its rows come from the documents' `lists` (memberships.py). Each page
is one PageResult, with every reader's records and state change.
"""

import dataclasses
import datetime
import logging
from collections.abc import Sequence
from typing import ClassVar

from tap_autopilot.http.pagination import Page
from tap_autopilot.state.changes import (
    CompleteVersion,
    FinishIncrementalScan,
    ForgetScanCursor,
    SaveIncrementalScan,
    SaveScanCursor,
    StateChange,
)
from tap_autopilot.streams.base import (
    FULL_TABLE,
    INCREMENTAL,
    VERSION_COLUMN,
    PageResult,
    PageScan,
    PassCompleted,
    Run,
    ScanReader,
    Selection,
    Stream,
    StreamRecords,
)
from tap_autopilot.values.cleaning import Note
from tap_autopilot.values.transform import ContactTransformer

LOGGER = logging.getLogger("tap_autopilot")


class Contacts(Stream):
    tap_stream_id = "contacts"
    key_properties: ClassVar[list[str]] = ["contact_id"]
    replication_methods = (INCREMENTAL, FULL_TABLE)
    replication_key = "updated_at"

    def reads_contacts_scan(self, run: Run) -> bool:
        return True

    def transformer(self, selection: Selection, note: Note | None = None) -> ContactTransformer:
        """note(column, kind): hears of values out of their column's range (ValueChanges.reporter)."""
        columns = {column: schema for column, schema in selection.columns.items() if column != VERSION_COLUMN}
        return ContactTransformer(columns, selection.custom_field_kinds, note)

    def sync(self, run: Run) -> PageResult:
        method = run.selection(self.tap_stream_id).replication_method
        reader = FullTableContacts(run, self) if method == FULL_TABLE else IncrementalContacts(run, self)
        return PageResult(contacts_readers=(reader,))


def plan_contacts_scan_first(run: Run, streams: Sequence[Stream]) -> tuple[list[PageResult], list[Stream]]:
    """Plan the streams that read the contacts scan, and the scan itself, before the others.

    The contacts scan is usually the longest, and its pages come one after another, so a late
    start lengthens the whole sync (rate_limit.py): the streams that read it plan first (they
    only add readers to it), and it starts before the other streams wait for their listings.
    Returns what those streams planned, the scan among the new scans, and the streams left."""
    first = [stream for stream in streams if stream.reads_contacts_scan(run)]
    planned: list[PageResult] = []
    readers: list[ScanReader] = []
    for stream in first:
        result = stream.sync(run)
        readers += result.contacts_readers
        planned.append(dataclasses.replace(result, contacts_readers=()))
    if readers:
        planned.append(PageResult(new_scans=(ContactsScan(run, readers),)))
    return planned, [stream for stream in streams if stream not in first]


class ContactsScan(PageScan):
    """The one scan of /contacts a run makes, shared by its readers: the contacts
    stream (incremental or full table) and lists_contacts when its rows come from the
    documents' `lists`. Each page is one result, with every reader's records and state."""

    path = "/contacts"

    def __init__(self, run: Run, readers: Sequence[ScanReader] = ()) -> None:
        super().__init__(run)
        self.readers: list[ScanReader] = list(readers)

    def start_cursor(self) -> str | None:
        cursors = {reader.saved_cursor() for reader in self.readers}
        if len(cursors) == 1:
            return cursors.pop()
        # Readers stopped at different pages (the catalog changed between runs):
        # each must see every document, so all start over.
        LOGGER.info(
            "contacts: %s stopped at different pages; the scan starts from the first page.",
            " and ".join(reader.stream_id for reader in self.readers),
        )
        self.restart()
        return None

    def reads_ahead_from(self) -> int:
        # Usually the longest scan, its pages one after another (rate_limit.py); from its
        # second page on while its first decides whether it goes on (leave_scan): page 2
        # asked for before that would be a request for nothing.
        return 2 if any(reader.decides_on_first_page for reader in self.readers) else 1

    def read_page(self, page: Page) -> PageResult:
        kept, instead = [], []
        for reader in self.readers:
            elsewhere = reader.leave_scan(page)
            if elsewhere is None:
                kept.append(reader)
            else:
                instead.append(elsewhere)
        self.readers = kept
        completed = tuple(done for result in instead for done in result.completed)
        new_scans = tuple(scan for result in instead for scan in result.new_scans)
        if not kept:
            return PageResult(completed=completed, new_scans=new_scans, scan_ends=True)
        items, cursor, total = page.items, page.next_cursor, page.meta.get(self.total_key)
        return PageResult(
            records=tuple(StreamRecords(reader.stream_id, reader.read(page), len(items), total) for reader in kept),
            state_changes=tuple(reader.save(cursor) for reader in kept),
            completed=completed,
            new_scans=new_scans,
        )

    def restart(self) -> None:
        self.run.state.apply([reader.restart() for reader in self.readers])  # all readers at once

    def finish(self) -> PageResult:
        return PageResult(completed=tuple(reader.completed() for reader in self.readers))


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

    def __init__(self, run: Run, stream: Contacts) -> None:
        super().__init__(run, stream.tap_stream_id)
        self.transform = stream.transformer(run.selection(self.stream_id), run.value_reporter(self.stream_id))
        self.threshold, self.cursor, self.max_seen, self.started = run.state.incremental_scan(
            self.stream_id, run.start_date
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
        emit = self.run.record_line_maker(self.stream_id)  # per page: time_extracted is now
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

    def save(self, cursor: str | None) -> StateChange:
        self.cursor = cursor
        return SaveIncrementalScan(self.stream_id, self.threshold, cursor, self.max_seen, self.started)

    def restart(self) -> StateChange:
        self.cursor = None
        return ForgetScanCursor(self.stream_id)

    def completed(self) -> PassCompleted:
        final = next_threshold(self.threshold, self.max_seen, self.started)
        return PassCompleted(self.stream_id, FinishIncrementalScan(self.stream_id, final))


class VersionedScanReader(ScanReader):
    """A versioned full-table pass over the contacts scan: every record under the
    pass's version, ACTIVATE_VERSION when the scan completes; a killed run resumes the
    scan, and the pass, under the same version."""

    def __init__(self, run: Run, stream_id: str) -> None:
        super().__init__(run, stream_id)
        self.version = run.begin_version(stream_id)
        self.cursor = run.state.scan_cursor(stream_id)

    def saved_cursor(self) -> str | None:
        return self.cursor

    def save(self, cursor: str | None) -> StateChange:
        self.cursor = cursor
        return SaveScanCursor(self.stream_id, cursor)

    def restart(self) -> StateChange:
        self.cursor = None
        return SaveScanCursor(self.stream_id, None)

    def completed(self) -> PassCompleted:
        return PassCompleted(self.stream_id, CompleteVersion(self.stream_id), self.version)


class FullTableContacts(VersionedScanReader):
    """Every contact, whatever its updated_at, so that a target honouring
    ACTIVATE_VERSION drops the contacts deleted in Autopilot."""

    def __init__(self, run: Run, stream: Contacts) -> None:
        super().__init__(run, stream.tap_stream_id)
        self.transform = stream.transformer(run.selection(self.stream_id), run.value_reporter(self.stream_id))

    def read(self, page: Page) -> list[bytes]:
        emit = self.run.record_line_maker(self.stream_id, self.version)
        transform = self.transform
        return [emit(transform(doc)) for doc in page.items]
