"""lists_contacts and smart_segments_contacts: {parent id, contact id} pairs, versioned.

smart_segments_contacts reads each segment's own pages (ParentMembersScan). lists_contacts
reads either each list's pages the same way, or the `lists` of every document of the
contacts scan (MembershipsFromScan, no request of its own): ListsContacts.reading decides.
"""

import enum
import functools
import logging
from collections.abc import Callable, Iterable
from typing import ClassVar
from urllib.parse import quote

from tap_autopilot.config import SOURCE_AUTO, SOURCE_LISTS, membership_source
from tap_autopilot.http.pagination import Page
from tap_autopilot.state.changes import CompleteVersion, ParentAdvanced, ParentDone, ParentRestarted
from tap_autopilot.state.document import MembershipPass
from tap_autopilot.streams.base import (
    NOTHING,
    PageResult,
    PageScan,
    PassCompleted,
    Run,
    Stream,
    StreamRecords,
    pages_for,
    pages_left,
)
from tap_autopilot.streams.contacts import Contacts, VersionedScanReader
from tap_autopilot.streams.listings import ListingStream, Lists, SmartSegments
from tap_autopilot.values.transform import contact_id

LOGGER = logging.getLogger("tap_autopilot")


class MembershipStream(Stream):
    """{parent id, contact id} pairs, read from each parent's own scan.

    Parents are scanned concurrently in order of id; state.MembershipPass keeps
    which are done and where the others stand."""

    parent_stream: ClassVar[ListingStream]
    member_path: ClassVar[str]  # a parent's members, {} for its id
    parent_key: ClassVar[str]

    def listings_read(self) -> tuple[str, ...]:
        return (self.parent_stream.tap_stream_id,)

    def sync(self, run: Run) -> PageResult:
        return self.read_by_parents(run, run.begin_version(self.tap_stream_id))

    def parent_ids(self, run: Run) -> list[str]:
        """The ids in this run's parent listing (fetched once per run)."""
        return [item[self.parent_stream.id_key] for item in run.listing(self.parent_stream.tap_stream_id)]

    def read_by_parents(self, run: Run, version: int) -> PageResult:
        """A scan for each parent not done yet (the pass completes when the last one finishes)."""
        stream_id = self.tap_stream_id
        if run.state.reads_scan(stream_id):
            run.state.drop_progress(stream_id)
        membership = run.state.membership_pass(stream_id, self.parent_ids(run))
        todo = membership.todo()
        if not todo:
            return PageResult(completed=(PassCompleted(stream_id, CompleteVersion(stream_id), version),))
        return PageResult(
            new_scans=tuple(ParentMembersScan(run, self, parent_id, membership, version) for parent_id in todo)
        )


class ParentMembersScan(PageScan):
    """One parent's (a list's or a segment's) contacts, for a membership pass."""

    def __init__(
        self, run: Run, stream: MembershipStream, parent_id: str, membership: MembershipPass, version: int
    ) -> None:
        super().__init__(run)
        self.stream = stream
        self.parent_id = parent_id
        self.membership = membership
        self.version = version
        self.path = stream.member_path.format(quote(parent_id, safe=""))

    def start_cursor(self) -> str | None:
        return self.membership.cursor(self.parent_id)

    def read_page(self, page: Page) -> PageResult:
        stream_id, parent_id, key = self.stream.tap_stream_id, self.parent_id, self.stream.parent_key
        emit = self.run.record_line_maker(stream_id, self.version)  # per page: time_extracted is now
        lines = []
        for doc in page.items:
            cid = contact_id(doc) if isinstance(doc, dict) else None
            if cid:
                lines.append(emit({key: parent_id, "contact_id": cid}))
        cursor = page.next_cursor
        change = ParentDone(stream_id, parent_id) if cursor is None else ParentAdvanced(stream_id, parent_id, cursor)
        return PageResult(records=(StreamRecords(stream_id, lines, len(page.items)),), state_changes=(change,))

    def restart(self) -> None:
        self.run.state.apply([ParentRestarted(self.stream.tap_stream_id, self.parent_id)])

    def not_found(self) -> PageResult:
        stream_id = self.stream.tap_stream_id
        LOGGER.warning(
            "%s: %s %s disappeared during the sync (404); skipping it.",
            stream_id,
            self.stream.parent_key,
            self.parent_id,
        )
        return PageResult(
            records=(StreamRecords(stream_id, [], 0),), state_changes=(ParentDone(stream_id, self.parent_id),)
        )

    def finish(self) -> PageResult:
        if not self.membership.scan_finished():
            return NOTHING
        stream_id = self.stream.tap_stream_id
        return PageResult(completed=(PassCompleted(stream_id, CompleteVersion(stream_id), self.version),))


class MembershipReading(enum.Enum):
    """How lists_contacts reads its rows this run."""

    LIST_BY_LIST = "each list's own pages"
    CONTACTS_SCAN = "the lists of every document of the contacts scan"
    FIRST_PAGE_DECIDES = "the contacts scan's first page decides which of the two needs fewer requests"


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

    def reading(self, run: Run) -> MembershipReading:
        """How this run reads the memberships (lists_contacts_source, what is selected, the state)."""
        source = membership_source(run.config)  # ConfigError for a value it does not take
        if source == SOURCE_LISTS:
            return MembershipReading.LIST_BY_LIST
        if source == SOURCE_AUTO and not run.is_selected(Contacts.tap_stream_id):
            if run.state.reads_parents(self.tap_stream_id):
                return MembershipReading.LIST_BY_LIST  # carry on the interrupted pass the way it went
            if not run.state.reads_scan(self.tap_stream_id):
                return MembershipReading.FIRST_PAGE_DECIDES
        return MembershipReading.CONTACTS_SCAN

    def reads_contacts_scan(self, run: Run) -> bool:
        return self.reading(run) != MembershipReading.LIST_BY_LIST

    def sync(self, run: Run) -> PageResult:
        stream_id = self.tap_stream_id
        # Decided before begin_version, which clears an entry without a usable version: decided
        # after, it could differ from reads_contacts_scan's answer, by which the runner planned.
        reading = self.reading(run)
        if reading == MembershipReading.LIST_BY_LIST:
            return self.read_by_parents(run, run.begin_version(stream_id))
        if run.state.reads_parents(stream_id):
            run.state.drop_progress(stream_id)
        first_page_decides = reading == MembershipReading.FIRST_PAGE_DECIDES
        reader = MembershipsFromScan(run, self, functools.partial(self.parent_ids, run), first_page_decides)
        return PageResult(contacts_readers=(reader,))


class SmartSegmentsContacts(MembershipStream):
    """Segment membership is not on the contact document: each segment's own scan."""

    tap_stream_id = "smart_segments_contacts"
    key_properties: ClassVar[list[str]] = ["segment_id", "contact_id"]
    parent_stream = SmartSegments()
    parent = parent_stream.tap_stream_id
    member_path = "/smart_segments/{}/contacts"
    parent_key = "segment_id"


class MembershipsFromScan(VersionedScanReader):
    """lists_contacts from the `lists` of every document the scan reads (ids that are
    on /lists; an absent `lists` means none): no request of its own. In incremental
    mode the contacts stream filters by updated_at; this reads every document.

    With first_page_decides, the first page decides whether the scan is worth it (contacts
    not selected, `lists_contacts_source` auto): see leave_scan."""

    def __init__(
        self,
        run: Run,
        stream: ListsContacts,
        list_ids: Callable[[], Iterable[str]],
        first_page_decides: bool = False,
    ) -> None:
        super().__init__(run, stream.tap_stream_id)
        self.stream = stream
        self._list_ids = list_ids
        self.parent_key = stream.parent_key
        self.decides_on_first_page = first_page_decides

    @functools.cached_property
    def list_ids(self) -> frozenset[str]:
        """The ids on /lists, asked for when the first page is read: the scan's first request
        goes out while the listing is on its way."""
        return frozenset(self._list_ids())

    def leave_scan(self, page: Page) -> PageResult | None:
        if not self.decides_on_first_page:
            return None
        self.decides_on_first_page = False
        scan_pages, list_pages = estimate_membership_requests(page, self.list_ids)
        if scan_pages <= list_pages:
            LOGGER.info(
                "%s: from the contacts scan (about %d more pages, against about %d reading list by list).",
                self.stream_id,
                scan_pages,
                list_pages,
            )
            return None
        LOGGER.info(
            "%s: list by list (about %d pages, against %d more pages of the contacts scan).",
            self.stream_id,
            list_pages,
            scan_pages,
        )
        return self.stream.read_by_parents(self.run, self.version)

    def read(self, page: Page) -> list[bytes]:
        emit = self.run.record_line_maker(self.stream_id, self.version)
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
