"""The scan contract (scans.PageScan) and the streams that read the contacts scan, on a
fake client: no server, no sockets."""

import datetime
import gc
import io
import threading
import weakref

import orjson
import pytest

from tap_autopilot.client import Page, RateLimiter, RequestStats, read_ahead
from tap_autopilot.readers import ContactsScan, estimate_membership_requests
from tap_autopilot.scans import PageScan
from tap_autopilot.schema_files import load_schema
from tap_autopilot.state import State
from tap_autopilot.streams import STREAMS, VERSION_COLUMN, VERSION_COLUMN_SCHEMA
from tap_autopilot.sync import SyncContext, selected_streams

UTC = datetime.UTC
NOW = datetime.datetime(2026, 1, 2, tzinfo=UTC)
LISTS = ["list_a", "list_b", "list_empty"]


class Items(list):
    """A page's documents, weakly referenceable so a test can see it was dropped."""


def doc(n, lists=None, updated="2020-01-01T00:00:00Z"):
    d = {"contact_id": f"person_{n:04d}", "updated_at": updated}
    if lists is not None:
        d["lists"] = lists
    return d


class FakeClient:
    """Serves documents in pages of `page_size`, counting every request by path."""

    def __init__(self, docs, page_size=2, members=None):
        self.docs = docs
        self.page_size = page_size
        self.members = members or {}
        self.stats = RequestStats()
        self.limiter = RateLimiter(1000)  # the scheduler sets each worker's priority on it
        self.requests = []

    def get(self, path, data_key=None, expect_list=False):
        self.requests.append(path)
        if path == "/lists":
            return {"lists": [{"list_id": lid, "title": lid} for lid in LISTS]}
        if path == "/smart_segments":
            return {"segments": []}
        raise AssertionError(path)

    def paginate(self, path, data_key, cursor=None, ahead=False):
        pages = self._pages(path, cursor)
        return read_ahead(pages, self.limiter) if ahead else pages  # as the real client does

    def _pages(self, path, cursor):
        docs = self.docs if path == "/contacts" else self.members[path]
        ids = [d["contact_id"] for d in docs]
        start = 0 if cursor is None else ids.index(cursor) + 1
        while True:
            self.requests.append(path)
            end = min(start + self.page_size, len(docs))
            more = end < len(docs)
            # Like the real client, keep no reference to a page once it is handed over.
            yield Page(
                items=Items(docs[start:end]),
                next_cursor=ids[end - 1] if more else None,
                meta={"total_contacts": len(docs)},
                server_time=NOW,
            )
            if not more:
                return
            start += self.page_size


def catalog(streams, methods=None):
    entries = []
    for stream_id in streams:
        schema = load_schema(stream_id)
        schema["properties"][VERSION_COLUMN] = dict(VERSION_COLUMN_SCHEMA)
        root = {"selected": True}
        if methods and stream_id in methods:
            root["replication-method"] = methods[stream_id]
        entries.append(
            {"tap_stream_id": stream_id, "schema": schema, "metadata": [{"breadcrumb": [], "metadata": root}]}
        )
    return {"streams": entries}


def interrupted_incremental_scan():
    """A fresh contacts entry of a run stopped after the page that ended with person_0002."""
    return {
        "scan": {
            "threshold": "2015-01-01T00:00:00Z",
            "cursor": "person_0002",
            "max_updated_at": None,
            "started_at": None,
        }
    }


def context(client, streams, state=None, config=None, methods=None):
    config = dict({"start_date": "2015-01-01T00:00:00Z"}, **(config or {}))
    return SyncContext(
        client, config, State(state or {}), selected_streams(catalog(streams, methods)), workers=2, out=io.BytesIO()
    )


def messages(ctx):
    return [orjson.loads(line) for line in ctx.out.getvalue().splitlines()]


def records(ctx, stream):
    return [m["record"] for m in messages(ctx) if m["type"] == "RECORD" and m["stream"] == stream]


def pairs(ctx):
    return {(r["list_id"], r["contact_id"]) for r in records(ctx, "lists_contacts")}


DOCS = [
    doc(1, ["list_a", "list_b"]),
    doc(2),
    doc(3, ["list_b", "gone_list", "list_b"]),
    doc(4, []),
    doc(5, ["list_a"], updated="2025-06-01T00:00:00Z"),
]
TRUTH = {("list_a", "person_0001"), ("list_b", "person_0001"), ("list_b", "person_0003"), ("list_a", "person_0005")}


# ---- the contract -------------------------------------------------------------------------


class RecordingScan(PageScan):
    path = "/contacts"

    def __init__(self, ctx):
        super().__init__(ctx)
        self.taken, self.finished, self.pages = [], 0, []

    def start_cursor(self):
        return None

    def take(self, page):
        self.pages.append(weakref.ref(page.items))
        self.taken.append(len(self.ctx.client.requests))  # type: ignore[attr-defined]  # the FakeClient's
        self.ctx.commit([("contacts", [], len(page.items), None)], None)
        return True

    def restart(self):
        raise AssertionError("not expected")

    def finish(self):
        self.finished += 1


def test_scan_contract_one_request_per_step_page_dropped_pages_left_finish_once():
    client = FakeClient([doc(n) for n in range(250)], page_size=100)  # the API's 100 a page
    ctx = context(client, ["contacts"])
    scan = RecordingScan(ctx)
    steps = scan.steps()
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


def pages_held_while_suspended(ctx, steps, client):
    """Run a scan's steps by hand; after each step, whether the page it read is still alive."""
    original, seen = client.paginate, []

    def track(page):
        seen.append(weakref.ref(page.items))
        return page

    def paginate(path, data_key, cursor=None, ahead=False):
        pages = original(path, data_key, cursor)
        while True:  # (a for loop would itself hold the page while suspended)
            try:
                yield track(next(pages))
            except StopIteration:
                return

    client.paginate = paginate
    held = []
    for _ in steps:
        gc.collect()
        held.append(seen[-1]() is not None)
    return held


def test_the_contacts_scan_holds_no_page_while_suspended():
    client = FakeClient([doc(n, ["list_a"]) for n in range(250)], page_size=100)
    ctx = context(client, ["contacts", "lists_contacts"])
    for stream_id in ctx.order:
        STREAMS[stream_id].sync(ctx)
    assert pages_held_while_suspended(ctx, ctx.shared_scan(ContactsScan).steps(), client) == [False, False, False]


def test_a_membership_scan_holds_no_page_while_suspended():
    docs = [doc(n, ["list_a"]) for n in range(250)]
    client = FakeClient(docs, page_size=100, members=members_of(docs))
    ctx = context(client, ["lists_contacts"], config={"lists_contacts_source": "lists"})
    scans: list = []
    ctx.add_scan = scans.append
    STREAMS["lists_contacts"].sync(ctx)
    held = [pages_held_while_suspended(ctx, steps, client) for steps in scans]
    assert held and not any(any(h) for h in held), held


def test_a_vanished_cursor_restarts_the_scan_from_its_first_page():
    from tap_autopilot.errors import NotFoundError

    class VanishingCursorClient(FakeClient):
        def paginate(self, path, data_key, cursor=None, ahead=False):
            if cursor == "person_0002":
                raise NotFoundError("gone")
            yield from super().paginate(path, data_key, cursor)

    client = VanishingCursorClient(DOCS)
    state = {"bookmarks": {"contacts": interrupted_incremental_scan()}}
    ctx = context(client, ["contacts"], state)
    ctx.run()
    assert [r["contact_id"] for r in records(ctx, "contacts")] == [d["contact_id"] for d in DOCS]


# ---- lists_contacts from the contacts scan ---------------------------------------------------


def test_memberships_from_the_scan_are_the_lists_of_every_document_on_lists():
    client = FakeClient(DOCS)
    ctx = context(client, ["contacts", "lists_contacts"])
    ctx.run()
    assert pairs(ctx) == TRUTH  # absent lists = none; ids not on /lists dropped; each pair once
    assert len(records(ctx, "lists_contacts")) == len(TRUTH)
    assert not [path for path in client.requests if path.startswith("/list/")]
    assert client.requests.count("/contacts") == 3 and client.requests.count("/lists") == 1


def test_memberships_come_from_every_document_even_when_contacts_are_filtered_by_updated_at():
    client = FakeClient(DOCS)
    state = {"bookmarks": {"contacts": {"updated_at": "2025-01-01T00:00:00.000000Z"}}}
    ctx = context(client, ["contacts", "lists_contacts"], state)
    ctx.run()
    assert [r["contact_id"] for r in records(ctx, "contacts")] == ["person_0005"]
    assert pairs(ctx) == TRUTH


def test_memberships_from_the_scan_one_version_activated_at_the_end_and_in_each_record():
    ctx = context(FakeClient(DOCS), ["contacts", "lists_contacts"])
    ctx.run()
    out = messages(ctx)
    version = ctx.state.entry("lists_contacts")["version"]
    assert {m["version"] for m in out if m.get("stream") == "lists_contacts" and m["type"] == "RECORD"} == {version}
    assert {r[VERSION_COLUMN] for r in records(ctx, "lists_contacts")} == {version}
    last = [i for i, m in enumerate(out) if m["type"] == "ACTIVATE_VERSION" and m["stream"] == "lists_contacts"]
    assert last and last[-1] > max(
        i for i, m in enumerate(out) if m.get("stream") == "lists_contacts" and m["type"] == "RECORD"
    )
    assert ctx.state.entry("lists_contacts") == {"version": version, "complete": True}


def test_an_interrupted_scan_resumes_for_both_streams_at_the_shared_cursor_with_the_same_version():
    state = {
        "bookmarks": {
            "contacts": interrupted_incremental_scan(),
            "lists_contacts": {"version": 42, "complete": False, "scan": {"cursor": "person_0002"}},
        }
    }
    client = FakeClient(DOCS)
    ctx = context(client, ["contacts", "lists_contacts"], state)
    ctx.run()
    assert [r["contact_id"] for r in records(ctx, "contacts")] == ["person_0003", "person_0004", "person_0005"]
    assert pairs(ctx) == {p for p in TRUTH if p[1] > "person_0002"}
    assert {r[VERSION_COLUMN] for r in records(ctx, "lists_contacts")} == {42}
    assert client.requests.count("/contacts") == 2


def test_a_stop_while_the_next_page_is_requested_ahead_leaves_the_state_at_the_page_written():
    docs = [doc(n, ["list_a"]) for n in range(1, 8)]
    first_run = FakeClient(docs)  # pages of 2: 4 pages
    ctx = context(first_run, ["contacts", "lists_contacts"])
    for stream_id in ctx.order:
        STREAMS[stream_id].sync(ctx)
    steps = ctx.shared_scan(ContactsScan).steps()
    next(steps)  # the first page written, the second requested ahead
    steps.close()  # the run stops here (SIGTERM, or another scan's fatal error)
    written = [r["contact_id"] for r in records(ctx, "contacts")]
    state = [m for m in messages(ctx) if m["type"] == "STATE"][-1]["value"]
    assert written == ["person_0001", "person_0002"]
    assert state["bookmarks"]["contacts"]["scan"]["cursor"] == "person_0002"
    assert state["bookmarks"]["lists_contacts"]["scan"]["cursor"] == "person_0002"

    second_run = FakeClient(docs)
    resumed = context(second_run, ["contacts", "lists_contacts"], state)
    resumed.run()
    assert written + [r["contact_id"] for r in records(resumed, "contacts")] == [d["contact_id"] for d in docs]
    assert {r["contact_id"] for r in records(resumed, "lists_contacts")} == {d["contact_id"] for d in docs[2:]}
    assert second_run.requests.count("/contacts") == 3  # pages 2-4: the page dropped ahead is read once more


def test_streams_stopped_at_different_pages_scan_from_the_first_page():
    state = {"bookmarks": {"contacts": interrupted_incremental_scan()}}
    ctx = context(FakeClient(DOCS), ["contacts", "lists_contacts"], state)  # lists_contacts: a new pass
    ctx.run()
    assert pairs(ctx) == TRUTH
    assert len(records(ctx, "contacts")) == len(DOCS)


@pytest.mark.parametrize("source", ["auto", "contacts"])
def test_memberships_from_the_scan_without_contacts_selected(source):
    client = FakeClient(DOCS, page_size=100)  # one page: the scan is cheapest
    ctx = context(client, ["lists_contacts"], config={"lists_contacts_source": source})
    ctx.run()
    assert pairs(ctx) == TRUTH
    assert not records(ctx, "contacts") and not [p for p in client.requests if p.startswith("/list/")]


def members_of(docs):
    return {f"/list/{lid}/contacts": [d for d in docs if lid in (d.get("lists") or [])] for lid in LISTS}


def test_forced_lists_source_reads_list_by_list_even_with_contacts_selected():
    client = FakeClient(DOCS, members=members_of(DOCS))
    ctx = context(client, ["contacts", "lists_contacts"], config={"lists_contacts_source": "lists"})
    ctx.run()
    assert pairs(ctx) == TRUTH
    assert [p for p in client.requests if p.startswith("/list/")]


def test_auto_reads_list_by_list_when_that_takes_fewer_requests():
    docs = [doc(n, ["list_a"] if n < 3 else None) for n in range(2000)]  # 20 scan pages; lists: 3 pages
    client = FakeClient(docs, page_size=100, members=members_of(docs))
    ctx = context(client, ["lists_contacts"])
    ctx.run()
    assert pairs(ctx) == {("list_a", d["contact_id"]) for d in docs[:3]}
    assert client.requests.count("/contacts") == 1  # the first page decided


def test_estimate_of_membership_requests_from_the_first_page():
    page = Page(
        items=[doc(n, ["a"] if n % 2 else []) for n in range(100)],
        next_cursor="x",
        meta={"total_contacts": 1000},
        server_time=None,
    )
    # 9 more scan pages; list a ~500 members = 5 pages, list b (nobody on it) 1 page
    assert estimate_membership_requests(page, {"a", "b"}) == (9, 6)


def test_bad_lists_contacts_source_is_a_clear_error():
    from tap_autopilot.errors import TapError
    from tap_autopilot.sync import sync

    with pytest.raises(TapError, match="lists_contacts_source"):
        sync(
            FakeClient([]),  # type: ignore[arg-type]  # a fake client
            {"start_date": "2015-01-01T00:00:00Z", "lists_contacts_source": "both"},
            {},
            catalog(["lists_contacts"]),
        )


# ---- lists and smart_segments --------------------------------------------------------------------


def test_a_new_column_on_lists_is_a_schema_change_only():
    """lists and smart_segments convert each column by its schema type, the way contacts do."""

    class ListsWithCounts(FakeClient):
        def get(self, path, data_key=None, expect_list=False):
            assert path == "/lists"
            return {"lists": [{"list_id": "list_a", "title": "", "contact_count": "1,200", "archived": "yes"}]}

    lists = catalog(["lists"])
    properties = lists["streams"][0]["schema"]["properties"]
    properties["contact_count"] = {"type": ["null", "integer"]}
    properties["archived"] = {"type": ["null", "boolean"]}
    config = {"start_date": "2015-01-01T00:00:00Z"}
    client = ListsWithCounts([])
    ctx = SyncContext(client, config, State({}), selected_streams(lists), workers=1, out=io.BytesIO())  # type: ignore[arg-type]
    ctx.run()
    [row] = records(ctx, "lists")
    assert row == {
        "list_id": "list_a",
        "title": None,  # "" is null, as in every text column
        "contact_count": 1200,
        "archived": True,
        VERSION_COLUMN: ctx.state.entry("lists")["version"],
    }


# ---- contacts in FULL_TABLE mode ----------------------------------------------------------------


def test_full_table_contacts_emit_every_contact_under_one_version_then_activate_it():
    state = {"bookmarks": {"contacts": {"updated_at": "2025-01-01T00:00:00.000000Z"}}}
    client = FakeClient(DOCS)
    ctx = context(client, ["contacts"], state, methods={"contacts": "FULL_TABLE"})
    ctx.run()
    out = messages(ctx)
    version = ctx.state.entry("contacts")["version"]
    assert [r["contact_id"] for r in records(ctx, "contacts")] == [d["contact_id"] for d in DOCS]
    assert {r[VERSION_COLUMN] for r in records(ctx, "contacts")} == {version}
    activations = [m for m in out if m["type"] == "ACTIVATE_VERSION"]
    assert activations == [{"type": "ACTIVATE_VERSION", "stream": "contacts", "version": version}]
    assert out.index(activations[0]) > max(i for i, m in enumerate(out) if m["type"] == "RECORD")
    assert ctx.state.entry("contacts") == {"version": version, "complete": True}
    assert client.requests == ["/contacts"] * 3  # no extra request
    schema = next(m for m in out if m["type"] == "SCHEMA")
    assert "bookmark_properties" not in schema or not schema["bookmark_properties"]


def test_full_table_contacts_resume_under_the_same_version():
    state = {"bookmarks": {"contacts": {"version": 42, "complete": False, "scan": {"cursor": "person_0004"}}}}
    ctx = context(FakeClient(DOCS), ["contacts"], state, methods={"contacts": "FULL_TABLE"})
    ctx.run()
    assert [(r["contact_id"], r[VERSION_COLUMN]) for r in records(ctx, "contacts")] == [("person_0005", 42)]
    assert ctx.state.entry("contacts") == {"version": 42, "complete": True}


def test_incremental_is_the_default_and_an_unknown_method_falls_back_to_it(caplog):
    ctx = context(FakeClient(DOCS), ["contacts"], methods={"contacts": "LOG_BASED"})
    assert ctx.selected["contacts"].replication_method == "INCREMENTAL"
    assert "LOG_BASED" in caplog.text
    assert context(FakeClient(DOCS), ["contacts"]).selected["contacts"].replication_method == "INCREMENTAL"


def test_contacts_scan_readers_share_one_scan():
    ctx = context(FakeClient(DOCS), ["contacts", "lists_contacts"])
    assert ctx.shared_scan(ContactsScan) is ctx.shared_scan(ContactsScan)
    assert set(STREAMS) == {"contacts", "lists", "lists_contacts", "smart_segments", "smart_segments_contacts"}


# ---- the listings and the contacts scan start together ---------------------------------------


class SlowListingsClient(FakeClient):
    """A FakeClient whose listings answer only once the test lets them."""

    def __init__(self, docs, **kwargs):
        super().__init__(docs, **kwargs)
        self.listings_may_answer = threading.Event()
        self.contacts_asked = threading.Event()

    def get(self, path, data_key=None, expect_list=False):
        # A bound only so that a broken implementation fails instead of hanging: nothing is timed.
        assert self.listings_may_answer.wait(30), "the test never let the listings answer"
        return super().get(path, data_key, expect_list)

    def _pages(self, path, cursor):
        self.contacts_asked.set()
        yield from super()._pages(path, cursor)


def test_the_contacts_scan_is_requested_before_the_lists_listing_answers():
    client = SlowListingsClient(DOCS)
    ctx = context(client, ["contacts", "lists", "lists_contacts"])
    run = threading.Thread(target=ctx.run)
    run.start()
    try:
        assert client.contacts_asked.wait(30), "the contacts scan waited for the listing"
        assert "/contacts" in client.requests and "/lists" not in client.requests
    finally:
        client.listings_may_answer.set()
        run.join()
    assert pairs(ctx) == TRUTH  # the first page's memberships waited for the list ids
    assert len(records(ctx, "lists")) == len(LISTS)
    assert client.requests.count("/lists") == 1  # asked for by two streams, requested once


def test_a_listing_that_fails_fails_the_run_with_its_own_error():
    from tap_autopilot.errors import AuthError

    class RefusingClient(FakeClient):
        def get(self, path, data_key=None, expect_list=False):
            self.requests.append(path)
            raise AuthError("Autopilot rejected the API key (401). Check api_key.")

    client = RefusingClient(DOCS)
    ctx = context(client, ["contacts", "lists_contacts", "smart_segments_contacts"])
    with pytest.raises(AuthError, match="rejected the API key"):
        ctx.run()
    assert sorted(p for p in client.requests if p != "/contacts") == ["/lists", "/smart_segments"]  # each once
