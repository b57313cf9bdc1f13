"""What every stream shares: the Stream base, the scan contract (PageScan, ScanReader),
what a stream or a scan returns (PageResult), and the narrow view of the run they get (Run).

Words used throughout:
- a *scan* is one walk through a cursor-paged endpoint (/contacts, one list's or one
  segment's contacts), run by the scheduler one page per step;
- a *cursor* is the API's page position, the contact id a page ends with (the API names
  it "bookmark"; here a bookmark is only ever a Singer state bookmark);
- a *pass* is one full-table read of a stream under one table version.

Streams never write: planning a stream (Stream.sync) and reading a page (PageScan.read_page)
return what they produced, and the runner writes it (records, then the state change, then
STATE). Streams see the runner only through Run, which the runner implements.
"""

import datetime
import logging
from abc import ABC, abstractmethod
from collections.abc import Callable, Generator, Iterator, Mapping
from dataclasses import dataclass
from typing import Any, ClassVar, Protocol

from tap_autopilot.errors import NotFoundError, RestartScan
from tap_autopilot.http.client import AutopilotClient
from tap_autopilot.http.pagination import PAGE_SIZE, Page
from tap_autopilot.state.changes import StateChange
from tap_autopilot.state.document import State
from tap_autopilot.values.cleaning import Note

LOGGER = logging.getLogger("tap_autopilot")

# Singer's replication methods.
INCREMENTAL, FULL_TABLE = "INCREMENTAL", "FULL_TABLE"

# The column each record of a versioned full-table pass carries its table version in:
# with a target that ignores ACTIVATE_VERSION, a stream's current rows are those of its last
# completed version (in completed_passes) or a later one (docs/state.md, "Removals").
VERSION_COLUMN = "table_version"
VERSION_COLUMN_SCHEMA = {"type": ["null", "integer"]}

# A scan's steps: each advance reads and writes one page, then yields the pages left (None: unknown).
Steps = Iterator[int | None]


class Selection(Protocol):
    """A stream as the catalog selected it (catalog.SelectedStream)."""

    columns: dict[str, dict[str, Any]]
    custom_field_kinds: dict[str, str]
    replication_method: str


class Run(Protocol):
    """The run as a stream sees it; the runner (runner.Runner) implements it, a test fakes it."""

    @property
    def client(self) -> AutopilotClient: ...

    @property
    def config(self) -> Mapping[str, Any]: ...

    @property
    def state(self) -> State: ...

    @property
    def start_date(self) -> datetime.datetime:
        """Where streams without a bookmark start."""
        ...

    def is_selected(self, stream_id: str) -> bool: ...

    def selection(self, stream_id: str) -> Selection: ...

    def listing(self, stream_id: str) -> list[dict[str, Any]]:
        """The objects of a listing stream (lists, smart_segments), fetched once per run."""
        ...

    def begin_version(self, stream_id: str) -> int:
        """The table version of a full-table pass (State.begin_version); the very first pass's
        ACTIVATE_VERSION is written at once, so that the target creates the table."""
        ...

    def record_line_maker(self, stream_id: str, version: int | None = None) -> Callable[[dict[str, Any]], bytes]:
        """A function row -> one RECORD line. Made per page: its time_extracted is now."""
        ...

    def value_reporter(self, stream_id: str) -> Note:
        """Hears of values changed so that every warehouse accepts them (docs/values.md)."""
        ...


@dataclass(frozen=True)
class StreamRecords:
    """One stream's share of a page: its RECORD lines, the documents read, the total if known."""

    stream_id: str
    lines: list[bytes]
    documents_read: int
    total: int | None = None


@dataclass(frozen=True)
class PassCompleted:
    """A stream's work for this run is done: its last state change, and the version to activate."""

    stream_id: str
    state_change: StateChange
    activate_version: int | None = None


@dataclass(frozen=True)
class PageResult:
    """What planning a stream or reading a page produced, applied by the runner in this order:
    the records and the state change that accounts for them, then STATE (when there are either);
    then each completed pass (ACTIVATE_VERSION, STATE); then the new scans start."""

    records: tuple[StreamRecords, ...] = ()
    state_changes: tuple[StateChange, ...] = ()
    completed: tuple[PassCompleted, ...] = ()
    new_scans: tuple["PageScan", ...] = ()
    # Readers this stream adds to the contacts scan (contacts.plan_contacts_scan_first).
    contacts_readers: tuple["ScanReader", ...] = ()
    # The scan stops after this page, without finish(): nothing reads it any more.
    scan_ends: bool = False


NOTHING = PageResult()


class Stream(ABC):
    """A stream of the catalog; streams.STREAMS holds one instance of each."""

    tap_stream_id: ClassVar[str]
    key_properties: ClassVar[list[str]] = []
    replication_methods: ClassVar[tuple[str, ...]] = (FULL_TABLE,)  # the ones allowed; the first is the default
    replication_key: ClassVar[str | None] = None
    parent: ClassVar[str | None] = None  # tap_stream_id of the parent stream, for membership streams
    # Its records come from the run itself (completed_passes), not from the API: it has no
    # work of its own, so STATE's currently_syncing never names it.
    from_the_run: ClassVar[bool] = False

    def listings_read(self) -> tuple[str, ...]:
        """The listing streams (lists, smart_segments) it reads: the runner requests them ahead."""
        return ()

    def reads_contacts_scan(self, run: Run) -> bool:
        """Whether this run's sync() adds a reader to the contacts scan: such streams plan
        first (contacts.plan_contacts_scan_first)."""
        return False

    @abstractmethod
    def sync(self, run: Run) -> PageResult:
        """Plan this run's work for the stream: the records of a listing, the scans to start,
        the readers of the contacts scan."""


class ScanReader(ABC):
    """One stream's use of the contacts scan (contacts.ContactsScan), which several streams share."""

    # Whether the first page decides if the stream keeps reading the scan (leave_scan).
    decides_on_first_page = False

    def __init__(self, run: Run, stream_id: str) -> None:
        self.run = run
        self.stream_id = stream_id

    @abstractmethod
    def saved_cursor(self) -> str | None:
        """Where this stream's scan stopped last run (None: from the first page)."""

    def leave_scan(self, page: Page) -> PageResult | None:
        """Called with each page before read(). None: read on; else the stream stops reading the
        scan, and reads instead as the result says (the scans it starts)."""
        return None

    @abstractmethod
    def read(self, page: Page) -> list[bytes]:
        """This page's RECORD lines for the stream (no state change: that is save())."""

    @abstractmethod
    def save(self, cursor: str | None) -> StateChange:
        """The state change saying that every page up to `cursor` is read."""

    @abstractmethod
    def restart(self) -> StateChange:
        """Forget the saved cursor (the scan starts over from its first page): the state change."""

    @abstractmethod
    def completed(self) -> PassCompleted:
        """The scan read its last page: the stream's pass is complete."""


class PageScan(ABC):
    """One scan, as steps for the scheduler (see scheduler.py). The contract, kept here
    so that no stream can get it wrong:

    - one page per step: each step reads one page, then yields; a scan that reads ahead
      (reads_ahead_from) has its next page's request sent as soon as its cursor is known, while
      the step reads the page (client.paginate): at most one request ahead, never a
      page requested twice, and the state is what it would be without (the cursor
      committed is the page written; a page ahead is lost on a stop, so a resumed run
      requests it again);
    - a page's records and the state change that accounts for them are one PageResult,
      which read_page returns and the step hands to the runner;
    - the page is dropped before the step yields: a suspended scan holds no page
      (reading ahead, at most the next one on its way);
    - each step yields the pages left (None while unknown), which orders the scheduler;
    - finish() runs exactly once, after the last page (or after not_found()).

    A subclass says where it starts (start_cursor), what a page becomes (read_page), how
    it starts over when its saved cursor vanished (restart), and what it does when
    the endpoint itself is gone (not_found)."""

    path: str  # set by each subclass, or per scan in __init__
    data_key = "contacts"
    total_key = "total_contacts"  # the page's count of everything the scan will read

    def __init__(self, run: Run) -> None:
        self.run = run

    @abstractmethod
    def start_cursor(self) -> str | None:
        """The cursor the scan continues after (None: from its first page)."""

    @abstractmethod
    def read_page(self, page: Page) -> PageResult:
        """What the page produced (scan_ends: stop the scan here, without finish)."""

    @abstractmethod
    def restart(self) -> None:
        """Forget the saved cursor: the scan starts over from its first page."""

    def reads_ahead_from(self) -> int | None:
        """From which page on the next page's request goes out while the scan reads a page
        (None: never): for the scan whose pages are the sync's critical path (the contacts
        scan). Not for every scan: a scan waiting in the scheduler's queue would then hold a
        page each."""
        return None

    def not_found(self) -> PageResult:
        """404 on a scan that did not resume from a saved cursor."""
        raise NotFoundError(f"Autopilot has no {self.path} (404).")

    @abstractmethod
    def finish(self) -> PageResult:
        """After the last page (or not_found()), exactly once."""

    def steps(self, apply: Callable[[PageResult], None]) -> Generator[int | None, None, None]:
        """The scan as the scheduler runs it; apply (the runner's) writes what each page produced."""
        cursor = self.start_cursor()
        read = 0
        try:
            for page in self._pages(cursor):
                read += len(page.items)
                total = page.meta.get(self.total_key)
                result = self.read_page(page)
                del page  # hold no page while other scans run
                apply(result)
                if result.scan_ends:
                    return
                del result
                yield pages_left(total, read)
        except RestartScan:
            self.restart()
            yield from self.steps(apply)
            return
        except NotFoundError:
            apply(self.not_found())
        apply(self.finish())

    def _pages(self, cursor: str | None) -> Iterator[Page]:
        """The client's pages; a saved cursor that vanished between runs means the
        scan has to start over from its first page."""
        try:
            yield from self.run.client.paginate(self.path, self.data_key, cursor, ahead_from=self.reads_ahead_from())
        except NotFoundError:
            if cursor is None:
                raise
            LOGGER.warning(
                "%s: the saved page cursor no longer exists; restarting this scan from the "
                "first page (records may repeat, none are lost).",
                self.path,
            )
            raise RestartScan() from None


def pages_for(count: int) -> int:
    """Pages of PAGE_SIZE that `count` documents take (rounded up)."""
    return -(-count // PAGE_SIZE)


def pages_left(total: object, read: int) -> int | None:
    """Pages a scan still has to read, from the page's total."""
    if not isinstance(total, int) or isinstance(total, bool):
        return None
    return max(0, pages_for(total - read))
