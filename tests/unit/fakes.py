"""What the unit tests of the streams and of the runner share: a fake HTTP client serving
documents in pages, catalogs, and FakeRun, the streams' view of a run (streams.base.Run)
without the runner: a stream's test needs nothing else."""

import datetime
import gc
import io
import time
import weakref
from collections import deque
from typing import Any

import orjson

from tap_autopilot.catalog import selected_streams
from tap_autopilot.errors import NotFoundError
from tap_autopilot.http.client import RequestStats
from tap_autopilot.http.pagination import Page
from tap_autopilot.http.rate_limit import RateLimiter
from tap_autopilot.http.read_ahead import read_ahead
from tap_autopilot.output import record_line_maker
from tap_autopilot.runner import Runner
from tap_autopilot.schema_files import load_schema
from tap_autopilot.state.document import State
from tap_autopilot.streams import STREAMS
from tap_autopilot.streams.base import VERSION_COLUMN, VERSION_COLUMN_SCHEMA, PageResult, PageScan
from tap_autopilot.streams.contacts import ContactsScan, plan_contacts_scan_first
from tap_autopilot.streams.listings import ListingStream
from tap_autopilot.values.cleaning import Note, ValueChanges
from tap_autopilot.values.converters import to_datetime

from .support import Items

UTC = datetime.UTC


NOW = datetime.datetime(2026, 1, 2, tzinfo=UTC)


LISTS = ["list_a", "list_b", "list_empty"]


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


def members_of(docs):
    return {f"/list/{lid}/contacts": [d for d in docs if lid in (d.get("lists") or [])] for lid in LISTS}


DOCS = [
    doc(1, ["list_a", "list_b"]),
    doc(2),
    doc(3, ["list_b", "gone_list", "list_b"]),
    doc(4, []),
    doc(5, ["list_a"], updated="2025-06-01T00:00:00Z"),
]


TRUTH = {("list_a", "person_0001"), ("list_b", "person_0001"), ("list_b", "person_0003"), ("list_a", "person_0005")}


START = {"start_date": "2015-01-01T00:00:00Z"}


class FakeRun:
    """streams.base.Run without a runner: what the streams return is applied on this thread,
    one scan after another, and kept as Singer messages (dicts) in `messages`."""

    def __init__(self, client, streams, state=None, config=None, methods=None) -> None:
        self.client = client
        self.config = dict(START, **(config or {}))
        self.state = State(state or {})
        start_date = to_datetime(self.config["start_date"])
        assert start_date is not None
        self.start_date = start_date
        selected = selected_streams(catalog(streams, methods))
        self.selected = {s.tap_stream_id: s for s in selected}
        self.order = [s.tap_stream_id for s in selected]
        self.messages: list[dict[str, Any]] = []
        self.completed: set[str] = set()
        self.scans: deque[PageScan] = deque()
        self._listings: dict[str, list[dict[str, Any]]] = {}
        self.value_changes = ValueChanges()

    # --- streams.base.Run

    def is_selected(self, stream_id):
        return stream_id in self.selected

    def selection(self, stream_id):
        return self.selected[stream_id]

    def listing(self, stream_id):
        if stream_id not in self._listings:
            stream = STREAMS[stream_id]
            assert isinstance(stream, ListingStream)
            self._listings[stream_id] = stream.fetch(self.client)
        return self._listings[stream_id]

    def begin_version(self, stream_id):
        version, first = self.state.begin_version(stream_id, time.time() * 1000)
        if first:
            self.messages.append({"type": "ACTIVATE_VERSION", "stream": stream_id, "version": version})
        return version

    def record_line_maker(self, stream_id, version=None):
        columns = self.selected[stream_id].columns
        return record_line_maker(stream_id, version, VERSION_COLUMN in columns, self.value_reporter(stream_id))

    def value_reporter(self, stream_id) -> Note:
        return self.value_changes.reporter(stream_id)

    # --- what the runner would do, in the same order, on one thread

    def apply(self, result: PageResult) -> None:
        if result.records or result.state_changes:
            for part in result.records:
                self.messages += [orjson.loads(line) for line in part.lines]
            self.state.apply(result.state_changes)
            self._state_message()
        for done in result.completed:
            self.state.apply((done.state_change,))
            if done.activate_version is not None:
                self.messages.append(
                    {"type": "ACTIVATE_VERSION", "stream": done.stream_id, "version": done.activate_version}
                )
            self.completed.add(done.stream_id)
            self._state_message()
        self.scans.extend(result.new_scans)

    def _state_message(self):
        remaining = [s for s in self.order if s not in self.completed]
        self.state.set_currently_syncing(remaining[0] if remaining else None)
        self.messages.append({"type": "STATE", "value": self.state.to_dict()})

    def run(self) -> None:
        """Plan every selected stream (the contacts scan's readers first), then run each scan to its end."""
        planned, rest = plan_contacts_scan_first(self, [self.selected[s].stream for s in self.order])
        for result in planned:
            self.apply(result)
        for stream in rest:
            self.apply(stream.sync(self))
        while self.scans:
            for _ in self.scans.popleft().steps(self.apply):
                pass


def fake_run(client, streams, state=None, config=None, methods=None) -> FakeRun:
    return FakeRun(client, streams, state, config, methods)


def runner(client, streams, state=None, config=None, methods=None):
    """The real runner, two workers, its output caught."""
    config = dict(START, **(config or {}))
    return Runner(
        client, config, State(state or {}), selected_streams(catalog(streams, methods)), workers=2, out=io.BytesIO()
    )


def messages(run):
    if isinstance(run, FakeRun):
        return run.messages
    return [orjson.loads(line) for line in run.output.out.getvalue().splitlines()]


def records(run, stream):
    return [m["record"] for m in messages(run) if m["type"] == "RECORD" and m["stream"] == stream]


def pairs(run):
    return {(r["list_id"], r["contact_id"]) for r in records(run, "lists_contacts")}


def contacts_scan(run) -> ContactsScan:
    """Plan the streams that read the contacts scan, as a run does: the one scan they read."""
    planned, _ = plan_contacts_scan_first(run, [run.selected[stream_id].stream for stream_id in run.order])
    [scan] = [scan for result in planned for scan in result.new_scans]
    assert isinstance(scan, ContactsScan)
    return scan


def planned(run, *stream_ids):
    """Plan the streams' work as a run does, without running it: the steps of the scans each added."""
    results = [STREAMS[stream_id].sync(run) for stream_id in stream_ids]
    return [scan.steps(run.apply) for result in results for scan in result.new_scans]


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
