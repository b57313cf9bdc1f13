"""Cursor pagination: the one path every paged scan reads its pages through
(AutopilotClient.paginate).

A page that has a next one ends with its cursor, `"bookmark":"<id>"}` (autopilot-api.md).
The loop takes the cursor from there, so that a scan reading ahead sends the next request
before this page is parsed; the page is then parsed on the caller's thread, off the
critical path. A body that ends with its cursor but is not a page is read again.
"""

import contextlib
import datetime
import logging
import re
from collections.abc import Generator, Iterator
from typing import Any, NamedTuple, Protocol
from urllib.parse import quote

from tap_autopilot.errors import RetryableError, TapError
from tap_autopilot.http.rate_limit import RateLimiter
from tap_autopilot.http.read_ahead import read_ahead

LOGGER = logging.getLogger("tap_autopilot")

PAGE_SIZE = 100  # documents per page, the API's
# The end of a page that has a next one. A body that ends any other way (the key elsewhere,
# an escape in the id, the last page) is parsed first, as any other answer.
CURSOR_AT_END = re.compile(rb'"bookmark"\s*:\s*"([^"\\]+)"\s*}\s*$')
CURSOR_AT_END_BYTES = 256  # the tail searched (ids are about 40 bytes)


class Page(NamedTuple):
    items: list
    next_cursor: str | None  # None on the last page
    meta: dict  # the rest of the body (e.g. total_contacts)
    server_time: datetime.datetime | None


class UnparsedPage(NamedTuple):
    """A page whose next cursor was read from its body's end, its body not parsed yet
    (paginate parses it on the caller's thread)."""

    path: str  # the request's, to read the page again if its body is not a page
    data_key: str
    content: bytes
    next_cursor: str
    server_time: datetime.datetime | None


class PageSource(Protocol):
    """What pagination needs of the client (AutopilotClient)."""

    limiter: RateLimiter

    def request(
        self, path: str, data_key: str | None = None, expect_list: bool = False, cursor_first: bool = False
    ) -> tuple[Any, datetime.datetime | None]: ...

    def parse(self, path: str, content: bytes, data_key: str | None, expect_list: bool = False) -> Any: ...


def paginate(
    client: PageSource, path: str, data_key: str, cursor: str | None = None, ahead_from: int | None = None
) -> Iterator[Page]:
    """A Page for each page of a cursor-paged endpoint, starting after `cursor` if given;
    next_cursor is None on the last page. A cursor the API has already given is an error
    (following it would loop for ever).

    From page `ahead_from` on (1: the first), the next page's request goes out as soon as
    its cursor is known, while the caller takes the page before it (read_ahead)."""
    pages = _pages(client, path, data_key, cursor)
    if ahead_from is not None:
        pages = read_ahead(pages, client.limiter, ahead_from)
    return _parsed(client, pages)


def _pages(
    client: PageSource, path: str, data_key: str, cursor: str | None
) -> Generator[Page | UnparsedPage, None, None]:
    """The pagination loop: each page as it came, one whose body ends with its next cursor
    unparsed (an UnparsedPage, parsed by _parsed)."""
    seen = set()
    while True:
        page_path = path if cursor is None else f"{path}/{quote(str(cursor), safe='')}"
        body, server_time = client.request(page_path, data_key, cursor_first=True)
        held = [body if isinstance(body, UnparsedPage) else _page(body, data_key, server_time)]
        del body
        next_cursor = held[0].next_cursor
        if next_cursor is not None:
            if next_cursor in seen or next_cursor == cursor:
                raise TapError(
                    f"Autopilot repeated the page bookmark {next_cursor} on {path}; stopping to avoid an endless loop."
                )
            seen.add(next_cursor)
        yield held.pop()  # popped, not named: a suspended scan holds no page
        if next_cursor is None:
            return
        cursor = next_cursor


def _parsed(client: PageSource, pages: Generator[Page | UnparsedPage, None, None]) -> Iterator[Page]:
    """`pages`, each UnparsedPage parsed (_parse_page)."""
    with contextlib.closing(pages):
        while (page := next(pages, None)) is not None:
            held = [_parse_page(client, page) if isinstance(page, UnparsedPage) else page]
            del page
            yield held.pop()  # popped, not named: a suspended scan holds no page


def _parse_page(client: PageSource, page: UnparsedPage) -> Page:
    """The page an UnparsedPage holds. A body that ended with its cursor but is not the
    page it should be (not JSON, no contacts) is read again, parsed first, with the usual
    retries; the page ahead, already asked for with that cursor, stays valid only if the
    page read again names the same one."""
    try:
        return _page(client.parse(page.path, page.content, page.data_key), page.data_key, page.server_time)
    except RetryableError as error:
        LOGGER.warning("%s; reading that page again", error)
        again = _page(client.request(page.path, page.data_key)[0], page.data_key, page.server_time)
        if again.next_cursor != page.next_cursor:
            raise TapError(
                f"{error}, and read again it ends elsewhere, while the next page was already asked for "
                "after its first ending; stopping. Run again with the last state."
            ) from None
        return again


def _page(body: dict[str, Any], data_key: str, server_time: datetime.datetime | None) -> Page:
    """A parsed page's body as a Page: its cursor and its documents taken out, the rest its meta."""
    next_cursor = body.pop("bookmark", None) or None
    items = body.pop(data_key, None) or []
    return Page(items=items, next_cursor=next_cursor, meta=body, server_time=server_time)


def cursor_at_end(content: bytes) -> str | None:
    """The next cursor a body ends with ("bookmark":"<id>"}), or None when it does not end so."""
    match = CURSOR_AT_END.search(content, max(0, len(content) - CURSOR_AT_END_BYTES))
    if match is None:
        return None
    try:
        return match.group(1).decode("utf-8")
    except UnicodeDecodeError:
        return None  # parsed first: the parser repairs it as it does any other text
