"""Pagination (http/pagination.py): the cursor followed and checked, the next cursor read from
a page's end and the page read again when it is no page, the page ahead through the client,
and no page held while the caller is suspended. Fake clock and session, as test_client's."""

import datetime
import gc
import json
import threading
import time
import weakref

import pytest

from tap_autopilot.errors import AuthError, TapError
from tap_autopilot.http.pagination import cursor_at_end

from ..support import Items
from .support import TIMEOUT, FakeResponse, FakeSession, FakeTime, make_client, pages_session


def contacts_page(ids, bookmark=None):
    body = {"contacts": [{"contact_id": cid} for cid in ids], "total_contacts": 6}
    if bookmark is not None:
        body["bookmark"] = bookmark
    return FakeResponse(200, json.dumps(body))


THREE_PAGES = (
    contacts_page(["p1", "p2"], "p2"),
    contacts_page(["p3", "p4"], "p4"),
    contacts_page(["p5", "p6"]),
)


class SignallingSession(FakeSession):
    """A FakeSession that tells a waiting test each time it is asked for a page."""

    def __init__(self, *script):
        super().__init__(*script)
        self.asked = threading.Semaphore(0)

    def get(self, url, timeout=None, stream=False, allow_redirects=True):
        try:
            return super().get(url, timeout, stream, allow_redirects)
        finally:
            self.asked.release()

    def wait_for_request(self):
        # A bound only so that a broken implementation fails instead of hanging: nothing is timed.
        assert self.asked.acquire(timeout=30), "the request never went out"


class PathSession(FakeSession):
    """Answers each GET from the script of its path (each script's last answer repeats), so that
    the page ahead and a page read again on the caller's thread need no order between them."""

    def __init__(self, scripts):
        super().__init__(FakeResponse(500))
        self.scripts = {path: list(answers) for path, answers in scripts.items()}
        self._lock = threading.Lock()

    def get(self, url, timeout=None, stream=False, allow_redirects=True):
        with self._lock:
            self.urls.append(url)
            script = self.scripts[url.removeprefix("http://autopilot.invalid/v1")]
            answer = script.pop(0) if len(script) > 1 else script[0]
        return FakeResponse(answer.status_code, answer.content, answer.headers)


# ----- following the cursor --------------------------------------------------------------------


def test_paginate_follows_the_bookmark_until_a_page_has_none():
    session = pages_session(
        b'{"contacts": [{"id": 1}], "bookmark": "person_a/b", "total_contacts": 3}',
        b'{"contacts": [{"id": 2}], "bookmark": "person_c"}',
        b'{"contacts": [{"id": 3}]}',
        headers={"Date": "Sun, 06 Dec 2026 03:00:00 +0100"},
    )
    pages = list(make_client(session, FakeTime()).paginate("/contacts", "contacts"))
    assert [page.items for page in pages] == [[{"id": 1}], [{"id": 2}], [{"id": 3}]]
    assert [page.next_cursor for page in pages] == ["person_a/b", "person_c", None]
    assert pages[0].meta == {"total_contacts": 3}, "the page's meta keeps the rest of the body, not items or bookmark"
    # Page 1's cursor is not at its end (parsed first); page 2 ends with it (its cursor read first,
    # parsed after): each page carries its Date header's time either way.
    assert [page.server_time for page in pages] == [datetime.datetime(2026, 12, 6, 2, tzinfo=datetime.UTC)] * 3
    base = "http://autopilot.invalid/v1/contacts"
    assert session.urls == [base, base + "/person_a%2Fb", base + "/person_c"], "the cursor is one quoted segment"


def test_paginate_starts_after_the_given_cursor():
    session = pages_session(b'{"contacts": []}')
    pages = list(make_client(session, FakeTime()).paginate("/contacts", "contacts", cursor="person_x"))
    assert session.urls == ["http://autopilot.invalid/v1/contacts/person_x"]
    assert pages[0].items == [] and pages[0].next_cursor is None


@pytest.mark.parametrize("body", [b'{"contacts": null, "bookmark": ""}', b'{"contacts": [], "bookmark": null}'])
def test_paginate_an_empty_bookmark_is_the_last_page(body):
    pages = list(make_client(pages_session(body), FakeTime()).paginate("/contacts", "contacts"))
    assert len(pages) == 1 and pages[0].items == [] and pages[0].next_cursor is None


def test_paginate_stops_on_a_cursor_cycle():
    """The published tap looped forever when the API gave a bookmark it had given before."""
    session = pages_session(
        b'{"contacts": [], "bookmark": "person_a"}',
        b'{"contacts": [], "bookmark": "person_b"}',
        b'{"contacts": [], "bookmark": "person_a"}',
    )
    with pytest.raises(
        TapError, match=r"repeated the page bookmark person_a on /contacts; stopping to avoid an endless loop\."
    ):
        list(make_client(session, FakeTime()).paginate("/contacts", "contacts"))
    assert len(session.urls) == 3


def test_paginate_stops_when_a_page_points_at_itself():
    session = pages_session(b'{"contacts": [], "bookmark": "person_x"}')
    with pytest.raises(TapError, match="repeated the page bookmark person_x"):
        list(make_client(session, FakeTime()).paginate("/contacts", "contacts", cursor="person_x"))
    assert len(session.urls) == 1


def test_a_page_without_its_data_key_is_retried():
    session = pages_session(b'{"bookmark": null}', b'{"contacts": [{"id": 1}]}')
    pages = list(make_client(session, FakeTime()).paginate("/contacts", "contacts"))
    assert [page.items for page in pages] == [[{"id": 1}]] and len(session.urls) == 2


# ----- reading ahead: the next page requested while the caller takes the current one -----------


def test_the_next_page_is_requested_before_the_current_one_is_written():
    session = SignallingSession(*THREE_PAGES)
    pages = make_client(session, FakeTime()).paginate("/contacts", "contacts", ahead_from=1)
    first = next(pages)
    session.wait_for_request()
    session.wait_for_request()  # the second page's request, while the caller still holds the first
    assert [doc["contact_id"] for doc in first.items] == ["p1", "p2"]
    assert session.urls == ["http://autopilot.invalid/v1/contacts", "http://autopilot.invalid/v1/contacts/p2"]
    assert [[doc["contact_id"] for doc in page.items] for page in pages] == [["p3", "p4"], ["p5", "p6"]]
    assert len(session.urls) == 3  # no page requested twice, nothing after the last


def test_a_prefetched_page_that_fails_is_retried_as_before():
    first, second, last = THREE_PAGES
    outcomes = {}
    for ahead in (False, True):
        session = FakeSession(first, FakeResponse(500), second, last)
        client = make_client(session, FakeTime(), uniform=lambda low, high: 0.0)
        pages = client.paginate("/contacts", "contacts", ahead_from=1 if ahead else None)
        ids = [doc["contact_id"] for page in pages for doc in page.items]
        outcomes[ahead] = (ids, session.urls, client.stats["retries"])
    assert outcomes[True] == outcomes[False]
    assert outcomes[True][0] == ["p1", "p2", "p3", "p4", "p5", "p6"]
    assert outcomes[True][2] == 1


def test_an_error_on_the_page_ahead_is_raised_when_that_page_is_read():
    session = SignallingSession(THREE_PAGES[0], FakeResponse(401))
    pages = make_client(session, FakeTime()).paginate("/contacts", "contacts", ahead_from=1)
    first = next(pages)
    session.wait_for_request()
    session.wait_for_request()  # the page ahead has failed, the caller still has its page
    assert [doc["contact_id"] for doc in first.items] == ["p1", "p2"]
    with pytest.raises(AuthError):
        next(pages)


def test_a_repeated_bookmark_still_stops_a_scan_that_reads_ahead():
    session = FakeSession(contacts_page(["p1", "p2"], "p2"), contacts_page(["p3"], "p2"))
    pages = make_client(session, FakeTime()).paginate("/contacts", "contacts", ahead_from=1)
    next(pages)
    with pytest.raises(TapError, match="repeated the page bookmark"):
        next(pages)
    assert len(session.urls) == 2


def test_a_caller_that_stops_early_leaves_at_most_the_page_ahead_requested():
    session = SignallingSession(*THREE_PAGES)
    pages = make_client(session, FakeTime()).paginate("/contacts", "contacts", ahead_from=1)
    next(pages)
    pages.close()
    session.wait_for_request()
    session.wait_for_request()
    assert len(session.urls) == 2  # the first page and the one ahead; the thread asks for nothing after


def test_paginate_reads_ahead_from_the_page_the_scan_names():
    """A scan whose first page decides whether it goes on (ahead_from=2): page 2 is not asked
    for while the caller holds page 1 (the mutation run found ahead_from unchecked here)."""
    session = SignallingSession(*THREE_PAGES)
    pages = make_client(session, FakeTime()).paginate("/contacts", "contacts", ahead_from=2)
    first = next(pages)
    assert [doc["contact_id"] for doc in first.items] == ["p1", "p2"]
    assert session.urls == ["http://autopilot.invalid/v1/contacts"]
    assert [doc["contact_id"] for page in pages for doc in page.items] == ["p3", "p4", "p5", "p6"]


# ----- the next cursor from a page's end, the page parsed after, or read again -----------------


@pytest.mark.parametrize(
    "body, cursor",
    [
        (b'{"contacts": [], "total_contacts": 2, "bookmark": "person_1"}', "person_1"),
        (b'{"contacts":[],"bookmark" : "person_\xc3\xa9"}\r\n', "person_\u00e9"),
        (b'{"bookmark": "person_1", "contacts": []}', None),  # the key elsewhere: parsed first
        (b'{"contacts": [], "meta": {"bookmark": "person_1"}}', None),  # not the page's own
        (b'{"contacts": [], "bookmark": "person_\\"1"}', None),  # an escape: only the parser reads it
        (b'{"contacts": [], "bookmark": ""}', None),
        (b'{"contacts": [], "bookmark": "person_\xff"}', None),  # not UTF-8: the parser repairs it
        (b'{"contacts": []}', None),
    ],
)
def test_cursor_at_end_reads_the_next_cursor_only_from_a_body_that_ends_with_it(body, cursor):
    assert cursor_at_end(body) == cursor


def test_reading_ahead_the_next_request_goes_out_before_the_page_is_parsed_on_the_caller_s_thread():
    session = SignallingSession(*THREE_PAGES)
    client = make_client(session, FakeTime())
    parse, caller = client.parse, threading.current_thread()
    parsed_on: list[tuple[str, bool]] = []  # (path, on the caller's thread)

    def parse_once_the_next_request_went_out(path, content, data_key, expect_list=False):
        if not parsed_on:  # page 1: a parse before page 2's request would wait here for ever
            session.wait_for_request()
            session.wait_for_request()
        parsed_on.append((path, threading.current_thread() is caller))
        return parse(path, content, data_key, expect_list)

    client.parse = parse_once_the_next_request_went_out
    pages = client.paginate("/contacts", "contacts", ahead_from=1)
    assert [doc["contact_id"] for page in pages for doc in page.items] == ["p1", "p2", "p3", "p4", "p5", "p6"]
    # pages 1 and 2 end with their cursors: parsed by the caller; the last page has none: parsed first
    assert sorted(parsed_on) == [("/contacts", True), ("/contacts/p2", True), ("/contacts/p4", False)]
    assert len(session.urls) == 3


def test_a_page_that_ends_with_its_cursor_but_is_not_json_is_read_again_and_its_page_ahead_kept(caplog):
    broken = FakeResponse(200, b'{"contacts": [{"contact_id": "p1"}, oops], "bookmark": "p2"}')
    session = PathSession(
        {"/contacts": [broken, THREE_PAGES[0]], "/contacts/p2": [THREE_PAGES[1]], "/contacts/p4": [THREE_PAGES[2]]}
    )
    pages = make_client(session, FakeTime()).paginate("/contacts", "contacts", ahead_from=1)
    assert [doc["contact_id"] for page in pages for doc in page.items] == ["p1", "p2", "p3", "p4", "p5", "p6"]
    assert sorted(session.urls).count("http://autopilot.invalid/v1/contacts") == 2  # page 1 read again
    assert session.urls.count("http://autopilot.invalid/v1/contacts/p2") == 1  # the page ahead kept
    assert "not valid JSON; reading that page again" in caplog.text


def test_a_page_read_again_that_ends_elsewhere_stops_the_scan():
    broken = FakeResponse(200, b'{"contacts": [oops], "bookmark": "p2"}')
    session = PathSession({"/contacts": [broken, contacts_page(["p1", "p9"], "p9")], "/contacts/p2": [THREE_PAGES[1]]})
    pages = make_client(session, FakeTime()).paginate("/contacts", "contacts", ahead_from=1)
    with pytest.raises(TapError, match=r"ends elsewhere.*Run again with the last state"):
        next(pages)


def test_a_page_read_again_is_checked_like_any_page_and_keeps_its_first_reading_s_server_time():
    """Read again, a page must be a page: a body without its documents' key is retried (not
    taken as an empty last page). The page keeps the server time of its first reading, the
    earlier one."""
    first = {"Date": "Sun, 06 Dec 2026 03:00:00 GMT"}
    later = {"Date": "Sun, 06 Dec 2026 03:00:05 GMT"}
    broken = FakeResponse(200, b'{"contacts": [{"contact_id": "p1"}, oops], "bookmark": "p2"}', first)
    keyless = FakeResponse(200, b'{"unexpected": true}', later)
    again = FakeResponse(200, THREE_PAGES[0].content, later)
    session = PathSession(
        {"/contacts": [broken, keyless, again], "/contacts/p2": [THREE_PAGES[1]], "/contacts/p4": [THREE_PAGES[2]]}
    )
    pages = list(make_client(session, FakeTime()).paginate("/contacts", "contacts", ahead_from=1))
    assert [doc["contact_id"] for page in pages for doc in page.items] == ["p1", "p2", "p3", "p4", "p5", "p6"]
    assert session.urls.count("http://autopilot.invalid/v1/contacts") == 3  # broken, keyless, the page
    assert pages[0].server_time == datetime.datetime(2026, 12, 6, 3, tzinfo=datetime.UTC)


@pytest.mark.parametrize("ahead_from", [None, 1])
def test_paginate_holds_no_page_while_the_caller_is_suspended(ahead_from):
    """A scan waiting in the scheduler's queue holds no page: the client's generators keep no
    reference to a page they handed over (one held by each of 8 waiting segment scans was
    4 MB of peak RSS in scenario 9)."""
    client = make_client(FakeSession(*THREE_PAGES), FakeTime())
    parse = client.parse

    def parse_into_items(path, content, data_key, expect_list=False):
        body = parse(path, content, data_key, expect_list)
        body[data_key] = Items(body[data_key])
        return body

    client.parse = parse_into_items
    pages = client.paginate("/contacts", "contacts", ahead_from=ahead_from)
    taken = 0
    for _ in range(3):
        page = next(pages)
        items = weakref.ref(page.items)
        taken += len(page.items)
        del page
        # The page-ahead thread drops its own name for a page just after handing it over.
        deadline = time.monotonic() + TIMEOUT  # a safety net only: the reference goes within microseconds
        gc.collect()
        while items() is not None and time.monotonic() < deadline:
            time.sleep(0.001)
            gc.collect()
        assert items() is None, "the client kept a page it handed over"
    assert taken == 6
