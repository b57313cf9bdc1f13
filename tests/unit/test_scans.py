"""The scan contract (scans.PageScan), the streams that read the contacts scan, and what
the sync context writes, on a fake client: no server, no sockets."""

import datetime
import gc
import io
import re
import threading
import time
import weakref

import orjson
import pytest

from tap_autopilot.catalog import selected_streams
from tap_autopilot.errors import NotFoundError
from tap_autopilot.http.client import Page, RateLimiter, RequestStats, read_ahead
from tap_autopilot.runner import Runner, sync
from tap_autopilot.schema_files import load_schema
from tap_autopilot.state.changes import CompleteVersion
from tap_autopilot.state.document import State
from tap_autopilot.streams import STREAMS, Lists
from tap_autopilot.streams.base import (
    NOTHING,
    VERSION_COLUMN,
    VERSION_COLUMN_SCHEMA,
    PageResult,
    PageScan,
    PassCompleted,
    StreamRecords,
)
from tap_autopilot.streams.contacts import plan_contacts_scan_first
from tap_autopilot.streams.memberships import estimate_membership_requests

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

    answered = True  # as the real client after its first 200: the output is not held back

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

    def paginate(self, path, data_key, cursor=None, ahead_from=None):
        pages = self._pages(path, cursor)
        return pages if ahead_from is None else read_ahead(pages, self.limiter, ahead_from)  # as the real client does

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
    return Runner(
        client, config, State(state or {}), selected_streams(catalog(streams, methods)), workers=2, out=io.BytesIO()
    )


def messages(ctx):
    return [orjson.loads(line) for line in ctx.output.out.getvalue().splitlines()]


def contacts_scan(ctx):
    """Plan the streams that read the contacts scan, as run() does: the one scan they read."""
    planned, _ = plan_contacts_scan_first(ctx, [ctx.selected[stream_id].stream for stream_id in ctx.order])
    [scan] = [scan for result in planned for scan in result.new_scans]
    return scan


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


def pages_held_while_suspended(ctx, steps, client):
    """Run a scan's steps by hand; after each step, whether the page it read is still alive."""
    original, seen = client.paginate, []

    def track(page):
        seen.append(weakref.ref(page.items))
        return page

    def paginate(path, data_key, cursor=None, ahead_from=None):
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
    assert pages_held_while_suspended(ctx, contacts_scan(ctx).steps(ctx.apply), client) == [False, False, False]


def test_a_membership_scan_holds_no_page_while_suspended():
    docs = [doc(n, ["list_a"]) for n in range(250)]
    client = FakeClient(docs, page_size=100, members=members_of(docs))
    ctx = context(client, ["lists_contacts"], config={"lists_contacts_source": "lists"})
    scans = planned(ctx, "lists_contacts")
    held = [pages_held_while_suspended(ctx, steps, client) for steps in scans]
    assert held and not any(any(h) for h in held), held


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
    steps = contacts_scan(ctx).steps(ctx.apply)
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


def test_list_by_list_memberships_do_not_hold_back_the_contacts_scan():
    """lists_contacts_source lists with contacts selected: the contacts scan's first request
    goes out while the lists listing is still on its way (the scan is the critical path)."""
    scan_started = threading.Event()

    class SlowListing(FakeClient):
        def get(self, path, data_key=None, expect_list=False):
            if path == "/lists":
                assert scan_started.wait(10), "the contacts scan waited for the lists listing"
            return super().get(path, data_key, expect_list)

        def _pages(self, path, cursor):
            if path == "/contacts":
                scan_started.set()
            yield from super()._pages(path, cursor)

    client = SlowListing(DOCS, members=members_of(DOCS))
    ctx = context(client, ["contacts", "lists_contacts"], config={"lists_contacts_source": "lists"})
    ctx.run()
    assert pairs(ctx) == TRUTH


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
    ctx = Runner(client, config, State({}), selected_streams(lists), workers=1, out=io.BytesIO())  # type: ignore[arg-type]
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
    scan = contacts_scan(ctx)
    assert [reader.stream_id for reader in scan.readers] == ["contacts", "lists_contacts"]
    assert set(STREAMS) == {"contacts", "lists", "lists_contacts", "smart_segments", "smart_segments_contacts"}


# ---- the sync context: what it writes, and in which order -----------------------------------


def test_schema_messages_come_first_one_per_selected_stream_in_order():
    ctx = context(FakeClient(DOCS), ["contacts", "lists"])
    ctx.run()
    out = messages(ctx)
    schemas = [m for m in out if m["type"] == "SCHEMA"]
    assert out[: len(schemas)] == schemas
    assert [(m["stream"], m["key_properties"], m.get("bookmark_properties")) for m in schemas] == [
        ("contacts", ["contact_id"], ["updated_at"]),
        ("lists", ["list_id"], None),
    ]
    assert schemas[1]["schema"]["properties"] == ctx.selected["lists"].columns


def test_state_names_the_first_stream_not_yet_complete_then_none():
    ctx = context(FakeClient(DOCS), ["lists", "smart_segments"])
    ctx.output.complete(PassCompleted("lists", CompleteVersion("lists")))
    assert messages(ctx)[-1]["value"]["currently_syncing"] == "smart_segments"
    ctx.output.complete(PassCompleted("smart_segments", CompleteVersion("smart_segments")))
    assert messages(ctx)[-1]["value"]["currently_syncing"] is None
    assert ctx.progress.streams["lists"].done


def test_a_first_pass_activates_its_version_up_front_and_versions_are_the_clock_in_ms():
    ctx = context(FakeClient(DOCS), ["lists"])
    before = int(time.time() * 1000)
    version = ctx.begin_version("lists")
    assert before <= version <= time.time() * 1000
    assert messages(ctx) == [{"type": "ACTIVATE_VERSION", "stream": "lists", "version": version}]
    ctx.state.complete_version("lists")
    assert ctx.begin_version("lists") > version and len(messages(ctx)) == 1, "only the very first pass"


def test_records_carry_the_version_and_the_version_column_only_when_selected():
    ctx = context(FakeClient(DOCS), ["lists"])
    ctx.selected["lists"].columns.pop(VERSION_COLUMN)
    line = orjson.loads(ctx.record_line_maker("lists", 7)({"list_id": "list_a"}))
    assert line["version"] == 7 and line["record"] == {"list_id": "list_a"}
    assert datetime.datetime.fromisoformat(line["time_extracted"]).tzinfo is not None
    unversioned = orjson.loads(context(FakeClient(DOCS), ["lists"]).record_line_maker("lists")({"list_id": "x"}))
    assert "version" not in unversioned and unversioned["record"] == {"list_id": "x"}


def test_parents_are_fetched_once_per_run():
    client = FakeClient(DOCS)
    ctx = context(client, ["lists", "lists_contacts"])
    first = ctx.listing("lists")
    assert ctx.listing("lists") is first
    assert [item["list_id"] for item in first] == LISTS and client.requests == ["/lists"]


def test_each_step_gives_the_rate_limiter_its_scan_s_pages_left():
    client = FakeClient([doc(n) for n in range(250)], page_size=100)
    priorities: list[float] = []

    def set_priority(priority: float) -> None:
        if not threading.current_thread().name.endswith("-ahead"):  # the scheduler's step, not the read-ahead
            priorities.append(priority)

    client.limiter.set_priority = set_priority  # type: ignore[method-assign]
    ctx = context(client, ["contacts"])
    ctx.run()
    assert priorities == [float("inf"), 2, 1, 0], "a scan not yet started goes first, then by pages left"


def assert_workers_stopped(ctx):
    for thread in ctx._scheduler._threads:
        thread.join(5)
        assert not thread.is_alive()


def test_a_failing_stream_stops_every_worker_and_the_run_raises_its_error():
    from tap_autopilot.http.client import TapError

    class FailingClient(FakeClient):
        def paginate(self, path, data_key, cursor=None, ahead_from=None):
            raise TapError("the API went away")
            yield

    ctx = context(FailingClient(DOCS), ["contacts"])
    with pytest.raises(TapError, match="the API went away"):
        ctx.run()
    assert_workers_stopped(ctx)


def test_a_stream_failing_while_it_plans_stops_the_workers_too():
    ctx = context(FakeClient(DOCS), ["contacts", "lists_contacts"], config={"lists_contacts_source": "both"})
    with pytest.raises(Exception, match="lists_contacts_source"):
        ctx.run()
    assert_workers_stopped(ctx)


def test_stop_before_the_sync_started_writes_the_state_and_keeps_the_output_lock():
    ctx = context(FakeClient(DOCS), ["lists"], state={"bookmarks": {"lists": {"version": 3, "complete": True}}})
    ctx.stop(KeyboardInterrupt())
    assert messages(ctx) == [
        {
            "type": "STATE",
            "value": {"currently_syncing": "lists", "bookmarks": {"lists": {"version": 3, "complete": True}}},
        }
    ]
    taken = []
    other = threading.Thread(target=lambda: taken.append(ctx.output.lock.acquire(blocking=False)))
    other.start()
    other.join(5)
    assert taken == [False], "another thread could write after the stop"
    ctx.output.lock.release()


class FirstAnswerClient(FakeClient):
    """Has not answered yet: its first request decides (the real client's `answered`)."""

    answered = False

    def __init__(self, docs, fail_with=None):
        super().__init__(docs)
        self.fail_with = fail_with

    def get(self, path, data_key=None, expect_list=False):
        if self.fail_with is not None:
            raise self.fail_with
        self.answered = True
        return super().get(path, data_key, expect_list)

    def paginate(self, path, data_key, cursor=None, ahead_from=None):
        if self.fail_with is not None:
            raise self.fail_with
        self.answered = True
        return super().paginate(path, data_key, cursor, ahead_from)


def _comparable(ctx):
    """The messages without what differs from run to run (the clock's times and versions)."""
    text = re.sub(rb'"time_extracted":"[^"]*"', b"", ctx.output.out.getvalue())
    return re.sub(rb"\b1\d{12}\b", b"V", text)  # a version: the clock in ms


def test_the_output_is_held_until_the_api_first_answers_then_written_in_the_same_order():
    held = context(FirstAnswerClient(DOCS), ["lists"])
    assert not held.output_started
    held.run()
    plain = context(FakeClient(DOCS), ["lists"])
    plain.run()
    assert held.output_started and _comparable(held) == _comparable(plain)
    # SCHEMA and the first pass's ACTIVATE_VERSION, written before the listing was asked for, come first
    assert [m["type"] for m in messages(held)][:3] == ["SCHEMA", "ACTIVATE_VERSION", "RECORD"]


def test_a_run_whose_first_request_fails_writes_nothing_at_all():
    from tap_autopilot.errors import ConfigError

    failure = ConfigError("Config 'base_url' http://x answered 404 for /contacts")
    ctx = context(FirstAnswerClient(DOCS, fail_with=failure), ["contacts", "lists", "lists_contacts"])
    with pytest.raises(ConfigError, match="base_url"):
        ctx.run()
    assert ctx.output.out.getvalue() == b"" and not ctx.output_started


def test_a_stop_before_the_api_answered_writes_nothing():
    ctx = context(FirstAnswerClient(DOCS), ["lists"], state={"bookmarks": {"lists": {"version": 3, "complete": True}}})
    ctx.stop(KeyboardInterrupt())
    assert ctx.output.out.getvalue() == b"" and not ctx.output_started
    ctx.output.lock.release()


@pytest.fixture
def sync_output(monkeypatch):
    """sync() as the CLI calls it, its output caught; gc settings restored afterwards."""
    threshold = gc.get_threshold()
    contexts = []

    def run(state, streams, config=None):
        config = dict({"start_date": "2015-01-01T00:00:00Z"}, **(config or {}))

        def on_start(ctx):
            ctx.output.out = io.BytesIO()
            contexts.append(ctx)

        sync(FakeClient(DOCS), config, state, catalog(streams), on_start=on_start)  # type: ignore[arg-type]  # a fake client
        return contexts[-1] if contexts else None

    yield run
    gc.unfreeze()
    gc.set_threshold(*threshold)


def test_a_resumed_sync_starts_with_the_stream_the_last_run_did_not_finish(sync_output, caplog):
    ctx = sync_output(
        {"currently_syncing": "smart_segments"}, ["lists", "smart_segments"], {"max_concurrent_requests": 3}
    )
    assert [m["stream"] for m in messages(ctx) if m["type"] == "SCHEMA"] == ["smart_segments", "lists"]
    assert "Resuming with smart_segments, which the last run did not finish." in caplog.messages
    assert ctx.workers == 3 and len(ctx._scheduler._threads) == 3


def test_a_currently_syncing_stream_that_is_not_selected_is_ignored(sync_output, caplog):
    ctx = sync_output({"currently_syncing": "contacts"}, ["smart_segments", "lists"])
    assert [m["stream"] for m in messages(ctx) if m["type"] == "SCHEMA"] == ["lists", "smart_segments"]
    assert (
        "State names 'contacts' as currently syncing, which is not a selected stream; ignoring it." in caplog.messages
    )
    assert ctx.workers == 4


def test_nothing_selected_syncs_nothing_and_says_how_to_select(sync_output, caplog):
    assert sync_output({}, []) is None
    assert caplog.messages == [
        "No streams are selected in the catalog: nothing to sync. Mark streams with metadata 'selected': true."
    ]


# ---- the incremental reader: threshold, bookmark, scan state ------------------------------------


def test_a_contact_exactly_at_the_threshold_is_emitted():
    """updated_at >= threshold: the bookmark is the last scan's start (minus skew), and a contact
    changed at that very instant may not have been read then."""
    state = {"bookmarks": {"contacts": {"updated_at": "2025-06-01T00:00:00.000000Z"}}}
    ctx = context(FakeClient(DOCS), ["contacts"], state)
    ctx.run()
    assert [r["contact_id"] for r in records(ctx, "contacts")] == ["person_0005"]  # updated 2025-06-01T00:00:00Z


def test_a_completed_scan_moves_the_bookmark_to_the_newest_updated_at_it_saw():
    ctx = context(FakeClient(DOCS), ["contacts"])
    ctx.run()
    assert ctx.state.entry("contacts") == {"updated_at": "2025-06-01T00:00:00.000000Z"}
    assert messages(ctx)[-1]["value"]["bookmarks"]["contacts"] == {"updated_at": "2025-06-01T00:00:00.000000Z"}


def test_the_bookmark_stays_before_the_scan_began_by_the_api_s_clock():
    """A contact changed while the scan ran (its updated_at after the server's Date of the first
    page) must be read again next run: the bookmark is at most that Date minus CLOCK_SKEW."""
    changed_during_scan = doc(6, updated="2026-01-02T00:30:00Z")  # NOW (the Date header) is 2026-01-02T00:00
    ctx = context(FakeClient(DOCS + [changed_during_scan]), ["contacts"])
    ctx.run()
    assert ctx.state.entry("contacts") == {"updated_at": "2026-01-01T23:55:00.000000Z"}


def test_an_interrupted_incremental_scan_keeps_its_threshold_cursor_newest_and_start_in_state():
    ctx = context(FakeClient(DOCS), ["contacts"])
    steps = contacts_scan(ctx).steps(ctx.apply)
    next(steps)  # one page: person_0001, person_0002
    next(steps)  # two: person_0003, person_0004
    assert ctx.state.entry("contacts") == {
        "scan": {
            "threshold": "2015-01-01T00:00:00.000000Z",
            "cursor": "person_0004",
            "max_updated_at": "2020-01-01T00:00:00.000000Z",
            "started_at": "2026-01-02T00:00:00.000000Z",
        }
    }
    assert messages(ctx)[-1]["value"]["bookmarks"]["contacts"]["scan"]["cursor"] == "person_0004"


def test_a_resumed_scan_carries_on_with_the_newest_updated_at_and_start_it_had():
    state = {
        "bookmarks": {
            "contacts": {
                "scan": {
                    "threshold": "2015-01-01T00:00:00Z",
                    "cursor": "person_0004",
                    "max_updated_at": "2025-12-01T00:00:00Z",
                    "started_at": "2025-12-31T00:00:00Z",
                }
            }
        }
    }
    ctx = context(FakeClient(DOCS), ["contacts"], state)
    ctx.run()
    assert [r["contact_id"] for r in records(ctx, "contacts")] == ["person_0005"]
    # not person_0005's 2025-06-01: the newest seen before the interruption wins
    assert ctx.state.entry("contacts") == {"updated_at": "2025-12-01T00:00:00.000000Z"}


def test_a_restarted_incremental_scan_forgets_only_its_cursor():
    ctx = context(FakeClient(DOCS), ["contacts"], {"bookmarks": {"contacts": interrupted_incremental_scan()}})
    scan = contacts_scan(ctx)
    scan.restart()
    assert scan.readers[0].saved_cursor() is None
    assert ctx.state.entry("contacts")["scan"] == dict(interrupted_incremental_scan()["scan"], cursor=None)


def test_a_versioned_pass_over_the_scan_keeps_its_cursor_and_forgets_it_on_restart():
    ctx = context(FakeClient(DOCS), ["lists_contacts"], config={"lists_contacts_source": "contacts"})
    scan = contacts_scan(ctx)
    steps = scan.steps(ctx.apply)
    next(steps)
    version = ctx.state.entry("lists_contacts")["version"]
    assert ctx.state.entry("lists_contacts") == {
        "version": version,
        "complete": False,
        "scan": {"cursor": "person_0002"},
    }
    scan.restart()
    assert ctx.state.entry("lists_contacts")["scan"] == {"cursor": None}
    assert scan.readers[0].saved_cursor() is None


# ---- lists, smart_segments and memberships read parent by parent --------------------------------


class SegmentsClient(FakeClient):
    """FakeClient with smart segments, one of which (`segment_gone`) answers 404 on its contacts."""

    def get(self, path, data_key=None, expect_list=False):
        if path == "/smart_segments":
            self.requests.append(path)
            return {
                "segments": [
                    {"segment_id": "segment_b", "title": 7},
                    {"segment_id": "segment_a", "title": "A"},
                    {"segment_id": "segment_gone", "title": "Gone"},
                    {"segment_id": "", "title": "no id"},
                    "not an object",
                ]
            }
        return super().get(path, data_key, expect_list)

    def paginate(self, path, data_key, cursor=None, ahead_from=None):
        if path == "/smart_segments/segment_gone/contacts":
            self.requests.append(path)
            raise NotFoundError(f"Autopilot has no {path} (404).")
        if path == "/smart_segments/segment_b/contacts":  # one page, ids in every shape
            self.requests.append(path)
            items = SEGMENT_B if cursor is None else SEGMENT_B[SEGMENT_B.index(doc(2)) + 1 :]
            yield Page(items=Items(items), next_cursor=None, meta={}, server_time=NOW)
            return
        yield from super().paginate(path, data_key, cursor)


SEGMENT_B = [doc(2), {"id": 9}, "junk", {"contact_id": ""}]
SEGMENT_MEMBERS = {"/smart_segments/segment_a/contacts": [doc(1), doc(2), doc(3)]}


def test_a_listing_is_one_versioned_pass_of_text_columns_for_parents_with_an_id():
    ctx = context(SegmentsClient(DOCS, members=SEGMENT_MEMBERS), ["smart_segments"])
    ctx.run()
    version = ctx.state.entry("smart_segments")["version"]
    assert records(ctx, "smart_segments") == [
        {"segment_id": "segment_b", "title": "7", VERSION_COLUMN: version},
        {"segment_id": "segment_a", "title": "A", VERSION_COLUMN: version},
        {"segment_id": "segment_gone", "title": "Gone", VERSION_COLUMN: version},
    ]
    out = messages(ctx)
    assert [m["type"] for m in out if m["type"] != "STATE"][-1] == "ACTIVATE_VERSION"
    assert ctx.state.entry("smart_segments") == {"version": version, "complete": True}
    assert ctx.client.requests == ["/smart_segments"]


def test_memberships_read_each_parent_and_skip_one_that_disappeared(caplog):
    client = SegmentsClient(DOCS, members=SEGMENT_MEMBERS)
    ctx = context(client, ["smart_segments_contacts"])
    ctx.run()
    version = ctx.state.entry("smart_segments_contacts")["version"]
    rows = records(ctx, "smart_segments_contacts")
    assert {(r["segment_id"], r["contact_id"]) for r in rows} == {
        ("segment_a", "person_0001"),
        ("segment_a", "person_0002"),
        ("segment_a", "person_0003"),
        ("segment_b", "person_0002"),
        ("segment_b", "9"),
    }
    assert {r[VERSION_COLUMN] for r in rows} == {version}
    assert (
        "smart_segments_contacts: segment_id segment_gone disappeared during the sync (404); skipping it."
        in caplog.messages
    )
    assert ctx.state.entry("smart_segments_contacts") == {"version": version, "complete": True}
    assert messages(ctx)[-1]["value"]["currently_syncing"] is None


def test_an_interrupted_membership_pass_resumes_where_each_parent_stood():
    state = {
        "bookmarks": {
            "smart_segments_contacts": {
                "version": 42,
                "complete": False,
                "done_through": "segment_a",
                "done_beyond": [],
                "in_progress": {"segment_b": "person_0002"},
            }
        }
    }
    client = SegmentsClient(DOCS, members=SEGMENT_MEMBERS)
    ctx = context(client, ["smart_segments_contacts"], state)
    ctx.run()
    assert {(r["segment_id"], r["contact_id"], r[VERSION_COLUMN]) for r in records(ctx, "smart_segments_contacts")} == {
        ("segment_b", "9", 42)
    }
    assert "/smart_segments/segment_a/contacts" not in client.requests


def test_a_membership_pass_with_every_parent_done_completes_at_once():
    state = {"bookmarks": {"smart_segments_contacts": {"version": 42, "complete": False, "done_through": "z"}}}
    client = SegmentsClient(DOCS, members=SEGMENT_MEMBERS)
    ctx = context(client, ["smart_segments_contacts"], state)
    ctx.run()
    assert client.requests == ["/smart_segments"]
    assert ctx.state.entry("smart_segments_contacts") == {"version": 42, "complete": True}
    assert {"type": "ACTIVATE_VERSION", "stream": "smart_segments_contacts", "version": 42} in messages(ctx)


def test_a_vanished_parent_cursor_restarts_that_parent_from_its_first_page():
    class VanishingCursorClient(SegmentsClient):
        def paginate(self, path, data_key, cursor=None, ahead_from=None):
            if cursor == "person_0001":
                self.requests.append(path)
                raise NotFoundError("gone")
            yield from super().paginate(path, data_key, cursor)

    state = {
        "bookmarks": {
            "smart_segments_contacts": {
                "version": 42,
                "complete": False,
                "in_progress": {"segment_a": "person_0001"},
                "done_beyond": ["segment_b", "segment_gone"],
            }
        }
    }
    ctx = context(VanishingCursorClient(DOCS, members=SEGMENT_MEMBERS), ["smart_segments_contacts"], state)
    ctx.run()
    assert sorted(r["contact_id"] for r in records(ctx, "smart_segments_contacts")) == [
        "person_0001",
        "person_0002",
        "person_0003",
    ]


def test_auto_lists_contacts_carries_on_an_interrupted_pass_the_way_it_went():
    """Reading list by list last run: go on list by list, not probe the scan again."""
    client = FakeClient(DOCS, page_size=100, members=members_of(DOCS))
    state = {"bookmarks": {"lists_contacts": {"version": 42, "complete": False, "done_through": "list_a"}}}
    ctx = context(client, ["lists_contacts"], state)
    ctx.run()
    assert "/contacts" not in client.requests
    assert pairs(ctx) == {p for p in TRUTH if p[0] == "list_b"}


def test_auto_lists_contacts_carries_on_an_interrupted_scan_without_probing():
    docs = [doc(n, ["list_a"] if n < 3 else None) for n in range(2000)]  # list by list would be cheaper
    client = FakeClient(docs, page_size=100, members=members_of(docs))
    state = {"bookmarks": {"lists_contacts": {"version": 42, "complete": False, "scan": {"cursor": "person_1899"}}}}
    ctx = context(client, ["lists_contacts"], state)
    ctx.run()
    assert client.requests.count("/contacts") == 1 and not [p for p in client.requests if p.startswith("/list/")]
    assert ctx.state.entry("lists_contacts") == {"version": 42, "complete": True}


def test_a_pass_that_switches_from_lists_to_the_scan_drops_the_lists_progress():
    state = {"bookmarks": {"lists_contacts": {"version": 42, "complete": False, "done_through": "list_a"}}}
    ctx = context(FakeClient(DOCS), ["lists_contacts"], state, config={"lists_contacts_source": "contacts"})
    ctx.run()
    assert pairs(ctx) == TRUTH  # every list again, from the scan, under the same version
    assert {r[VERSION_COLUMN] for r in records(ctx, "lists_contacts")} == {42}


def test_the_probe_reads_the_scan_when_both_ways_cost_the_same():
    docs = [doc(n, ["list_a"] if n < 3 else None) for n in range(400)]  # 3 more scan pages; 3 lists of 1 page
    client = FakeClient(docs, page_size=100, members=members_of(docs))
    first = next(client.paginate("/contacts", "contacts"))
    assert estimate_membership_requests(first, LISTS) == (3, 3)
    client.requests.clear()
    ctx = context(client, ["lists_contacts"])
    ctx.run()
    assert client.requests.count("/contacts") == 4 and not [p for p in client.requests if p.startswith("/list/")]
    assert pairs(ctx) == {("list_a", d["contact_id"]) for d in docs[:3]}


def test_once_the_probe_keeps_the_scan_its_later_pages_are_read_ahead():
    """The first page decides (nothing asked for ahead of it); from the second on, the scan is
    the long one and each next page is requested from the thread that reads ahead."""
    docs = [doc(n, ["list_a"] if n < 3 else None) for n in range(400)]
    threads: list[str] = []

    class NamingClient(FakeClient):
        def _pages(self, path, cursor):
            for page in super()._pages(path, cursor):
                threads.append(threading.current_thread().name)
                yield page

    ctx = context(NamingClient(docs, page_size=100, members=members_of(docs)), ["lists_contacts"])
    ctx.run()
    assert len(threads) == 4
    assert [name.endswith("-ahead") for name in threads[2:]] == [True, True]


@pytest.mark.parametrize(
    "meta, expected",
    [
        ({"total_contacts": True}, (0, 3)),
        ({"total_contacts": 1}, (0, 3)),
        ({}, (0, 3)),
        ({"total_contacts": "9"}, (0, 3)),
    ],
)
def test_estimate_of_membership_requests_trusts_only_a_usable_total(meta, expected):
    page = Page(items=[doc(n, ["a"]) for n in range(3)], next_cursor=None, meta=meta, server_time=None)
    assert estimate_membership_requests(page, {"a", "b", "c"}) == expected


def test_memberships_from_documents_whose_lists_or_id_are_unusable_are_skipped():
    from tap_autopilot.streams.memberships import MembershipsFromScan

    docs = [
        {"contact_id": "person_0001", "lists": "list_a"},  # not a list
        {"lists": ["list_a"]},  # no id
        {"id": 7, "lists": ["list_a", "list_b"]},  # another spelling, a number
        {"contact_id": "person_0009", "lists": {"list_a": True}},  # an object, not a list
    ]
    ctx = context(FakeClient(DOCS), ["lists_contacts"])
    reader = MembershipsFromScan(ctx, STREAMS["lists_contacts"], lambda: LISTS)  # type: ignore[arg-type]  # STREAMS is typed by its base class
    lines = reader.read(Page(items=docs, next_cursor=None, meta={}, server_time=None))
    assert [orjson.loads(line)["record"] for line in lines] == [
        {"list_id": "list_a", "contact_id": "7", VERSION_COLUMN: reader.version},
        {"list_id": "list_b", "contact_id": "7", VERSION_COLUMN: reader.version},
    ]


def test_parents_are_cached_per_parent_stream():
    client = SegmentsClient(DOCS, members=SEGMENT_MEMBERS)
    ctx = context(client, ["lists", "smart_segments"])
    lists, segments = ctx.listing("lists"), ctx.listing("smart_segments")
    assert [item["list_id"] for item in lists] == LISTS
    assert [item["segment_id"] for item in segments] == ["segment_b", "segment_a", "segment_gone"]


def test_a_listing_asks_the_client_to_check_its_data_key():
    asked = []

    class RecordingClient(FakeClient):
        def get(self, path, data_key=None, expect_list=False):
            asked.append((path, data_key))
            return super().get(path, data_key, expect_list)

    Lists().fetch(RecordingClient(DOCS))  # type: ignore[arg-type]  # a fake client
    assert asked == [("/lists", "lists")]


def planned(ctx, *stream_ids):
    """Plan the streams' work as run() does, without running it: the scans each added."""
    results = [STREAMS[stream_id].sync(ctx) for stream_id in stream_ids]
    return [scan.steps(ctx.apply) for result in results for scan in result.new_scans]


def test_a_parent_scan_saves_its_cursor_after_each_page_and_marks_itself_done_at_the_end():
    ctx = context(SegmentsClient(DOCS, members=SEGMENT_MEMBERS), ["smart_segments_contacts"])
    scans = planned(ctx, "smart_segments_contacts")
    segment_a = scans[0]  # parents in order of id
    next(segment_a)
    assert ctx.state.entry("smart_segments_contacts")["in_progress"] == {"segment_a": "person_0002"}
    list(segment_a)
    entry = ctx.state.entry("smart_segments_contacts")
    assert entry["in_progress"] == {} and entry["done_through"] == "segment_a"


def test_a_parent_that_disappeared_is_marked_done():
    ctx = context(SegmentsClient(DOCS, members=SEGMENT_MEMBERS), ["smart_segments_contacts"])
    scans = planned(ctx, "smart_segments_contacts")
    list(scans[2])  # segment_gone
    assert ctx.state.entry("smart_segments_contacts")["done_beyond"] == ["segment_gone"]


def test_a_parent_id_is_one_quoted_path_segment():
    from tap_autopilot.streams.memberships import ParentMembersScan

    scan = ParentMembersScan(context(FakeClient(DOCS), ["lists_contacts"]), STREAMS["lists_contacts"], "a/b c", None, 1)  # type: ignore[arg-type]  # only its path is read
    assert scan.path == "/list/a%2Fb%20c/contacts"


def test_reading_list_by_list_drops_the_scan_progress_and_keeps_the_version():
    state = {"bookmarks": {"lists_contacts": {"version": 42, "complete": False, "scan": {"cursor": "person_0002"}}}}
    ctx = context(
        FakeClient(DOCS, members=members_of(DOCS)), ["lists_contacts"], state, {"lists_contacts_source": "lists"}
    )
    planned(ctx, "lists_contacts")
    assert ctx.state.entry("lists_contacts") == {"version": 42, "complete": False}


def test_with_contacts_selected_auto_reads_the_scan_and_drops_a_list_pass_s_progress():
    state = {"bookmarks": {"lists_contacts": {"version": 42, "complete": False, "done_through": "list_a"}}}
    ctx = context(FakeClient(DOCS, members=members_of(DOCS)), ["contacts", "lists_contacts"], state)
    assert planned(ctx, "contacts", "lists_contacts") == []  # no parent scan
    assert ctx.state.entry("lists_contacts") == {"version": 42, "complete": False}


def test_list_by_list_records_carry_the_pass_s_version():
    for config in ({"lists_contacts_source": "lists"}, {}):
        docs = [doc(n, ["list_a"] if n < 3 else None) for n in range(2000)]  # auto: the probe picks lists
        client = FakeClient(docs, page_size=100, members=members_of(docs))
        ctx = context(client, ["lists_contacts"], config=config)
        ctx.run()
        version = ctx.state.entry("lists_contacts")["version"]
        rows = records(ctx, "lists_contacts")
        assert rows and {r[VERSION_COLUMN] for r in rows} == {version}
        assert {m["version"] for m in messages(ctx) if m["type"] == "RECORD"} == {version}


def test_the_probe_decides_once_and_says_so(caplog):
    docs = [doc(n, ["list_a"] if n < 3 else None) for n in range(400)]
    ctx = context(FakeClient(docs, page_size=100, members=members_of(docs)), ["lists_contacts"])
    ctx.run()
    assert [m for m in caplog.messages if "lists_contacts: " in m and "done" not in m] == [
        "lists_contacts: from the contacts scan (about 3 more pages, against about 3 reading list by list)."
    ]
    caplog.clear()
    docs = [doc(n, ["list_a"] if n < 3 else None) for n in range(2000)]
    ctx = context(FakeClient(docs, page_size=100, members=members_of(docs)), ["lists_contacts"])
    ctx.run()
    assert [m for m in caplog.messages if "lists_contacts: " in m and "done" not in m] == [
        "lists_contacts: list by list (about 3 pages, against 19 more pages of the contacts scan)."
    ]


def test_a_one_document_first_page_scales_the_estimate_by_the_total():
    page = Page(items=[doc(1, ["a"])], next_cursor="x", meta={"total_contacts": 1000}, server_time=None)
    assert estimate_membership_requests(page, {"a"}) == (10, 10)


def test_resuming_an_interrupted_scan_says_where_and_from_what_threshold(caplog):
    ctx = context(FakeClient(DOCS), ["contacts"], {"bookmarks": {"contacts": interrupted_incremental_scan()}})
    planned(ctx, "contacts")
    assert caplog.messages == [
        "contacts: resuming the interrupted scan after page cursor person_0002 "
        "(updated_at >= 2015-01-01 00:00:00+00:00)."
    ]


def test_readers_stopped_at_different_pages_say_so(caplog):
    ctx = context(
        FakeClient(DOCS), ["contacts", "lists_contacts"], {"bookmarks": {"contacts": interrupted_incremental_scan()}}
    )
    scan = contacts_scan(ctx)
    caplog.clear()
    assert scan.start_cursor() is None
    assert caplog.messages == [
        "contacts: contacts and lists_contacts stopped at different pages; the scan starts from the first page."
    ]


def test_without_the_api_s_clock_a_scan_starts_by_the_machine_s_clock_in_utc():
    class NoDateClient(FakeClient):
        def paginate(self, path, data_key, cursor=None, ahead_from=None):
            for page in super().paginate(path, data_key, cursor):
                yield page._replace(server_time=None)

    ctx = context(NoDateClient([doc(1, updated="2020-01-01T00:00:00Z")]), ["contacts"])
    ctx.run()
    assert ctx.state.entry("contacts") == {"updated_at": "2020-01-01T00:00:00.000000Z"}


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
