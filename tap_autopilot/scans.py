"""The scan contract: one walk through a cursor-paged endpoint (/contacts, one list's
or one segment's contacts), as steps the scheduler (scheduler.py) advances one page
at a time.

A *cursor* is the API's page position, the contact id a page ends with (the API
names it "bookmark"; here a bookmark is only ever a Singer state bookmark).
"""

import logging
from abc import ABC, abstractmethod
from collections.abc import Iterator
from typing import TYPE_CHECKING

from tap_autopilot.errors import NotFoundError, RestartScan
from tap_autopilot.http.client import PAGE_SIZE, Page
from tap_autopilot.scheduler import Steps

if TYPE_CHECKING:  # for annotations only: sync imports the streams, which import this module
    from tap_autopilot.sync import SyncContext

LOGGER = logging.getLogger("tap_autopilot")


class PageScan(ABC):
    """One scan, as steps for the scheduler (see scheduler.py). The contract, kept here
    so that no stream can get it wrong:

    - one page per step: each step reads one page, then yields; a scan that reads ahead
      (reads_ahead_from) has its next page's request sent as soon as its cursor is known, while
      the step takes the page (client.paginate): at most one request ahead, never a
      page requested twice, and the state is what it would be without (the cursor
      committed is the page written; a page ahead is lost on a stop, so a resumed run
      requests it again);
    - a page's records and the state change that accounts for them are written by
      one ctx.commit (take() makes exactly that call);
    - the page is dropped before the step yields: a suspended scan holds no page
      (reading ahead, at most the next one on its way);
    - each step yields the pages left (None while unknown), which orders the scheduler;
    - finish() runs exactly once, after the last page (or after gone()).

    A subclass says where it starts (start_cursor), what a page becomes (take), how
    it starts over when its saved cursor vanished (restart), and what it does when
    the endpoint itself is gone (gone)."""

    path: str  # set by each subclass, or per scan in __init__
    data_key = "contacts"
    total_key = "total_contacts"  # the page's count of everything the scan will read

    def __init__(self, ctx: "SyncContext") -> None:
        self.ctx = ctx

    @abstractmethod
    def start_cursor(self) -> str | None:
        """The cursor the scan continues after (None: from its first page)."""

    @abstractmethod
    def take(self, page: Page) -> bool:
        """Commit the page through the context. Returns False to stop the scan here
        (without finish): nothing reads it any more."""

    @abstractmethod
    def restart(self) -> None:
        """Forget the saved cursor: the scan starts over from its first page."""

    def reads_ahead_from(self) -> int | None:
        """From which page on the next page's request goes out while the scan takes a page
        (None: never): for the scan whose pages are the sync's critical path (the contacts
        scan). Not for every scan: a scan waiting in the scheduler's queue would then hold a
        page each."""
        return None

    def gone(self) -> None:
        """404 on a scan that did not resume from a saved cursor."""
        raise NotFoundError(f"Autopilot has no {self.path} (404).")

    @abstractmethod
    def finish(self) -> None:
        """After the last page (or gone()), exactly once."""

    def steps(self) -> Steps:
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

    def _pages(self, cursor: str | None) -> Iterator[Page]:
        """The client's pages; a saved cursor that vanished between runs means the
        scan has to start over from its first page."""
        try:
            yield from self.ctx.client.paginate(self.path, self.data_key, cursor, ahead_from=self.reads_ahead_from())
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
