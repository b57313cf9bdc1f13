"""lists_contacts and smart_segments_contacts (streams/memberships.py): from the contacts
scan, list by list, the first page deciding, each parent's scan. On FakeRun, no runner."""

import threading

import orjson
import pytest

from tap_autopilot.errors import NotFoundError
from tap_autopilot.http.pagination import Page
from tap_autopilot.streams import STREAMS
from tap_autopilot.streams.base import (
    VERSION_COLUMN,
)
from tap_autopilot.streams.memberships import estimate_membership_requests

from ..fakes import (
    DOCS,
    LISTS,
    SEGMENT_MEMBERS,
    TRUTH,
    FakeClient,
    SegmentsClient,
    doc,
    members_of,
    messages,
    pages_held_while_suspended,
    pairs,
    planned,
    records,
)
from ..fakes import fake_run as context


def test_a_membership_scan_holds_no_page_while_suspended():
    docs = [doc(n, ["list_a"]) for n in range(250)]
    client = FakeClient(docs, page_size=100, members=members_of(docs))
    ctx = context(client, ["lists_contacts"], config={"lists_contacts_source": "lists"})
    scans = planned(ctx, "lists_contacts")
    held = [pages_held_while_suspended(ctx, steps, client) for steps in scans]
    assert held and not any(any(h) for h in held), held


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


@pytest.mark.parametrize("source", ["auto", "contacts"])
def test_memberships_from_the_scan_without_contacts_selected(source):
    client = FakeClient(DOCS, page_size=100)  # one page: the scan is cheapest
    ctx = context(client, ["lists_contacts"], config={"lists_contacts_source": source})
    ctx.run()
    assert pairs(ctx) == TRUTH
    assert not records(ctx, "contacts") and not [p for p in client.requests if p.startswith("/list/")]


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


def test_a_one_document_first_page_scales_the_estimate_by_the_total():
    page = Page(items=[doc(1, ["a"])], next_cursor="x", meta={"total_contacts": 1000}, server_time=None)
    assert estimate_membership_requests(page, {"a"}) == (10, 10)


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
