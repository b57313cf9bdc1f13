"""The scan contract (streams.base.PageScan): one page per step, the page dropped before the
step yields, pages left, finish once, a vanished cursor, a missing endpoint. On FakeRun."""

import gc
import weakref

import pytest

from tap_autopilot.errors import NotFoundError
from tap_autopilot.streams.base import (
    NOTHING,
    PageResult,
    PageScan,
    StreamRecords,
)

from ..fakes import (
    DOCS,
    FakeClient,
    doc,
    interrupted_incremental_scan,
    messages,
    records,
)
from ..fakes import fake_run as context


class RecordingScan(PageScan):
    path = "/contacts"

    def __init__(self, ctx):
        super().__init__(ctx)
        self.taken, self.finished, self.pages = [], 0, []

    def start_cursor(self):
        return None

    def read_page(self, page):
        self.pages.append(weakref.ref(page.items))
        self.taken.append(len(self.run.client.requests))  # type: ignore[attr-defined]  # the FakeClient's
        return PageResult(records=(StreamRecords("contacts", [], len(page.items)),))

    def restart(self):
        raise AssertionError("not expected")

    def finish(self):
        self.finished += 1
        return NOTHING


def test_scan_contract_one_request_per_step_page_dropped_pages_left_finish_once():
    client = FakeClient([doc(n) for n in range(250)], page_size=100)  # the API's 100 a page
    ctx = context(client, ["contacts"])
    scan = RecordingScan(ctx)
    steps = scan.steps(ctx.apply)
    left = []
    for remaining in steps:
        left.append(remaining)
        gc.collect()
        assert scan.pages[-1]() is None, "the step yielded while still holding its page"
        assert len(client.requests) == len(scan.taken)  # one request per step, nothing ahead
    assert left == [2, 1, 0]
    assert scan.finished == 1
    states = [m for m in messages(ctx) if m["type"] == "STATE"]
    assert len(states) == 3  # one commit, so one STATE, per page


def test_a_vanished_cursor_restarts_the_scan_from_its_first_page():
    from tap_autopilot.errors import NotFoundError

    class VanishingCursorClient(FakeClient):
        def paginate(self, path, data_key, cursor=None, ahead_from=None):
            if cursor == "person_0002":
                raise NotFoundError("gone")
            yield from super().paginate(path, data_key, cursor)

    client = VanishingCursorClient(DOCS)
    state = {"bookmarks": {"contacts": interrupted_incremental_scan()}}
    ctx = context(client, ["contacts"], state)
    ctx.run()
    assert [r["contact_id"] for r in records(ctx, "contacts")] == [d["contact_id"] for d in DOCS]


def test_a_vanished_cursor_is_logged_with_the_scan_s_path(caplog):
    class VanishingCursorClient(FakeClient):
        def paginate(self, path, data_key, cursor=None, ahead_from=None):
            if cursor == "person_0002":
                raise NotFoundError("gone")
            yield from super().paginate(path, data_key, cursor)

    ctx = context(
        VanishingCursorClient(DOCS), ["contacts"], {"bookmarks": {"contacts": interrupted_incremental_scan()}}
    )
    ctx.run()
    assert (
        "/contacts: the saved page cursor no longer exists; restarting this scan from the first page "
        "(records may repeat, none are lost)." in caplog.messages
    )


def test_a_scan_asks_the_client_for_its_data_key_and_counts_pages_left_from_0():
    asked = []

    class RecordingClient(FakeClient):
        def paginate(self, path, data_key, cursor=None, ahead_from=None):
            asked.append(data_key)
            yield from super().paginate(path, data_key, cursor)

    client = RecordingClient([doc(n) for n in range(200)], page_size=100)
    ctx = context(client, ["contacts"])
    scan = RecordingScan(ctx)
    assert list(scan.steps(ctx.apply)) == [1, 0] and asked == ["contacts"]


def test_a_scan_whose_endpoint_is_gone_says_which():
    class GoneClient(FakeClient):
        def paginate(self, path, data_key, cursor=None, ahead_from=None):
            raise NotFoundError("404")
            yield

    ctx = context(GoneClient(DOCS), ["contacts"])
    scan = RecordingScan(ctx)
    with pytest.raises(NotFoundError, match="Autopilot has no /contacts"):
        list(scan.steps(ctx.apply))


def test_pages_left_counts_the_documents_read_from_0():
    """201 documents: 2 pages left after the first 100 (the scheduler orders scans by this)."""
    ctx = context(FakeClient([doc(n) for n in range(201)], page_size=100), ["contacts"])
    scan = RecordingScan(ctx)
    assert list(scan.steps(ctx.apply)) == [2, 1, 0]
