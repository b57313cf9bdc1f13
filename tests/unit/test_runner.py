"""The runner (runner.py): dispatch, the order scans start in, the listings' cache, failures
and the stop, the sync thread's setup; on a fake client, with its real threads."""

import gc
import io
import signal
import threading

import pytest

import tap_autopilot.runner as runner_module
from tap_autopilot.errors import TapError
from tap_autopilot.runner import exit_code_for, sync

from .fakes import (
    DOCS,
    LISTS,
    SEGMENT_MEMBERS,
    TRUTH,
    FakeClient,
    SegmentsClient,
    catalog,
    doc,
    members_of,
    messages,
    pairs,
    records,
)
from .fakes import runner as context


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


def test_full_table_contacts_have_no_bookmark_properties_in_their_schema():
    ctx = context(FakeClient(DOCS), ["contacts"], methods={"contacts": "FULL_TABLE"})
    ctx.run()
    schema = next(m for m in messages(ctx) if m["type"] == "SCHEMA")
    assert "bookmark_properties" not in schema or not schema["bookmark_properties"]


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


def test_parents_are_fetched_once_per_run():
    client = FakeClient(DOCS)
    ctx = context(client, ["lists", "lists_contacts"])
    first = ctx.listing("lists")
    assert ctx.listing("lists") is first
    assert [item["list_id"] for item in first] == LISTS and client.requests == ["/lists"]


def test_parents_are_cached_per_parent_stream():
    client = SegmentsClient(DOCS, members=SEGMENT_MEMBERS)
    ctx = context(client, ["lists", "smart_segments"])
    lists, segments = ctx.listing("lists"), ctx.listing("smart_segments")
    assert [item["list_id"] for item in lists] == LISTS
    assert [item["segment_id"] for item in segments] == ["segment_b", "segment_a", "segment_gone"]


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


def test_bad_lists_contacts_source_is_a_clear_error():
    from tap_autopilot.errors import TapError

    with pytest.raises(TapError, match="lists_contacts_source"):
        sync(
            FakeClient([]),  # type: ignore[arg-type]  # a fake client
            {"start_date": "2015-01-01T00:00:00Z", "lists_contacts_source": "both"},
            {},
            catalog(["lists_contacts"]),
        )


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


def test_signal_exit_codes_follow_the_shell_convention():
    assert exit_code_for(signal.SIGTERM) == 143
    assert exit_code_for(signal.SIGINT) == 130


class _FakeLibc:
    def __init__(self) -> None:
        self.calls: list[tuple[int, int]] = []

    def mallopt(self, parameter: int, value: int) -> int:
        self.calls.append((parameter, value))
        return 1


def test_one_malloc_arena_for_every_thread_where_glibc_has_mallopt(monkeypatch):
    # The page-ahead thread's and the workers' own arenas kept memory (runner.share_one_malloc_arena).
    libc = _FakeLibc()
    monkeypatch.setattr(runner_module.ctypes, "CDLL", lambda name: libc)
    runner_module.share_one_malloc_arena()
    assert libc.calls == [(-8, 1)]  # glibc's M_ARENA_MAX, one arena


@pytest.mark.parametrize("missing", [OSError("no such library"), AttributeError("mallopt")])
def test_without_mallopt_the_tap_runs_as_it_is(monkeypatch, missing):
    def cdll(name):
        raise missing

    monkeypatch.setattr(runner_module.ctypes, "CDLL", cdll)
    runner_module.share_one_malloc_arena()  # no error: nothing to do there


def test_the_sync_shares_one_arena_before_any_thread_of_the_run_starts(monkeypatch):
    order = []
    monkeypatch.setattr(runner_module, "share_one_malloc_arena", lambda: order.append("arena"))
    monkeypatch.setattr(runner_module, "sync", lambda *args, **kwargs: order.append("run"))
    runner_module.sync_until_stopped(None, {}, {}, {})  # type: ignore[arg-type]  # sync is replaced
    assert order == ["arena", "run"]
