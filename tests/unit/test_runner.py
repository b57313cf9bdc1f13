"""The runner (runner.py): dispatch, the order scans start in, the listings' cache, failures
and the stop, the sync thread's setup; on a fake client, with its real threads."""

import datetime
import gc
import io
import itertools
import signal
import sys
import threading
import time
import types

import pytest

import tap_autopilot.runner as runner_module
from tap_autopilot.errors import Interrupted, TapError
from tap_autopilot.runner import exit_code_for, sync
from tap_autopilot.streams import STREAMS
from tap_autopilot.streams.base import VERSION_COLUMN
from tap_autopilot.values.cleaning import NUL_REMOVED

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


START_CONFIG = {"start_date": "2015-01-01T00:00:00Z"}


@pytest.fixture
def sync_output(monkeypatch):
    """sync() as the CLI calls it, its output caught; gc settings restored afterwards."""
    threshold = gc.get_threshold()
    contexts = []

    def run(state, streams, config=None, run_began=None):
        config = {key: value for key, value in dict(START_CONFIG, **(config or {})).items() if value is not None}

        def on_start(ctx):
            ctx.output.out = io.BytesIO()
            contexts.append(ctx)

        sync(FakeClient(DOCS), config, state, catalog(streams), on_start=on_start, run_began=run_began)  # type: ignore[arg-type]  # a fake client
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


@pytest.mark.parametrize("missing", [TypeError("CDLL(None): no dlopen(NULL) there")])
def test_where_the_process_cannot_be_opened_as_a_library_the_tap_runs_as_it_is(monkeypatch, missing):
    def cdll(name):
        raise missing

    monkeypatch.setattr(runner_module.ctypes, "CDLL", cdll)
    runner_module.share_one_malloc_arena()


# --- what the streams see of the run, and what the runner writes for them ----------------


def test_the_streams_see_which_streams_the_catalog_selects():
    # ListsContacts reads the contacts scan when contacts are selected (streams/memberships.py).
    ctx = context(FakeClient(DOCS), ["lists", "lists_contacts"])
    assert [stream_id for stream_id in STREAMS if ctx.is_selected(stream_id)] == ["lists", "lists_contacts"]


def test_a_versioned_stream_s_records_carry_their_version_in_the_version_column():
    ctx = context(FakeClient(DOCS), ["lists"])
    ctx.run()
    [version] = {m["version"] for m in messages(ctx) if m["type"] == "ACTIVATE_VERSION"}
    assert [r[VERSION_COLUMN] for r in records(ctx, "lists")] == [version] * len(LISTS)


def test_a_value_cleaned_in_a_record_is_counted_for_its_stream():
    class NulTitles(FakeClient):
        def get(self, path, data_key=None, expect_list=False):
            listing = super().get(path, data_key, expect_list)
            if path == "/lists":
                listing["lists"][0]["title"] = "a\x00b"
            return listing

    ctx = context(NulTitles(DOCS), ["lists"])
    ctx.run()
    assert records(ctx, "lists")[0]["title"] == "ab"
    assert ctx.value_changes.totals() == {("lists", NUL_REMOVED): 1}


def test_each_page_s_state_change_goes_out_after_its_records():
    # A run stopped after any page resumes after that page's last record.
    ctx = context(FakeClient(DOCS), ["contacts"])
    ctx.run()
    out = messages(ctx)
    after_records = [m for before, m in itertools.pairwise(out) if (before["type"], m["type"]) == ("RECORD", "STATE")]
    assert [m["value"]["bookmarks"]["contacts"]["scan"]["cursor"] for m in after_records] == [
        "person_0002",
        "person_0004",
        None,
    ]
    assert out[-1]["value"]["bookmarks"] == {"contacts": {"updated_at": "2025-06-01T00:00:00.000000Z"}}


def test_the_listings_are_fetched_ahead_on_daemon_threads():
    # A listing request still on its way when the run fails must not keep the process alive.
    class Recording(FakeClient):
        def get(self, path, data_key=None, expect_list=False):
            asked_from.append(threading.current_thread())
            return super().get(path, data_key, expect_list)

    asked_from: list[threading.Thread] = []
    ctx = context(Recording(DOCS), ["lists", "lists_contacts"])
    ctx.fetch_listings_ahead()
    assert [item["list_id"] for item in ctx.listing("lists")] == LISTS
    [thread] = asked_from
    assert thread is not threading.current_thread() and thread.daemon


def test_the_rate_limiter_sees_the_pages_every_scan_has_left():
    ctx = context(FakeClient(DOCS), ["contacts"])
    ctx.run()
    assert ctx.client.limiter.all_pages_left == ctx._scheduler.pages_left


def test_a_stop_during_the_run_ends_the_run_with_the_stop_not_with_the_rest_of_the_scan():
    class HeldAfterFirstPage(FakeClient):
        def __init__(self, docs, **kwargs):
            super().__init__(docs, **kwargs)
            self.second_page_asked = threading.Event()
            self.may_answer = threading.Event()

        def _pages(self, path, cursor):
            for number, page in enumerate(super()._pages(path, cursor)):
                if number == 1:
                    self.second_page_asked.set()
                    assert self.may_answer.wait(10), "the test never let the page answer"
                yield page

    client = HeldAfterFirstPage([doc(n) for n in range(20)])
    ctx = context(client, ["contacts"])
    ended: list[BaseException | None] = []

    def run() -> None:
        try:
            ctx.run()
            ended.append(None)
        except BaseException as error:
            ended.append(error)

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    assert client.second_page_asked.wait(10)
    stop = Interrupted(signal.SIGTERM)
    ctx.stop(stop)
    client.may_answer.set()
    ctx.output.lock.release()  # the process would exit here; the test lets the run unwind instead
    thread.join(10)
    assert ended == [stop]


# --- sync(): what it hands the runner ------------------------------------------------------


def test_a_bookmark_later_than_the_run_s_start_is_not_trusted(sync_output, caplog):
    state = {"bookmarks": {"contacts": {"updated_at": "2021-01-01T00:00:00Z"}}}
    ctx = sync_output(state, ["contacts"], run_began=datetime.datetime(2020, 6, 1, tzinfo=datetime.UTC))
    assert any(
        m.startswith("contacts: the state's updated_at 2021-01-01T00:00:00Z is later than this run's start (2020-06-01")
        for m in caplog.messages
    )
    assert len(records(ctx, "contacts")) == len(DOCS)  # started over


def test_a_run_without_a_given_start_begins_now(sync_output, caplog):
    state = {"bookmarks": {"contacts": {"updated_at": "2999-01-01T00:00:00Z"}}}
    sync_output(state, ["contacts"])
    assert any(m.startswith("contacts: the state's updated_at 2999-01-01T00:00:00Z is later") for m in caplog.messages)


def test_without_a_start_date_streams_start_a_year_before_the_run_began(sync_output):
    began = datetime.datetime(2024, 3, 1, 12, tzinfo=datetime.UTC)
    ctx = sync_output({}, ["contacts"], run_began=began, config={"start_date": None})
    assert ctx.start_date == datetime.datetime(2023, 3, 1, 12, tzinfo=datetime.UTC)


# --- the stop signals --------------------------------------------------------------------


class Exited(BaseException):
    """os._exit, faked: ends the handler as the real one ends the process."""


def test_the_first_stop_signal_raises_interrupted_and_a_second_exits_at_once(monkeypatch):
    monkeypatch.setattr(runner_module, "_stop_signal_received", None)
    written: list[tuple[int, bytes]] = []
    codes: list[int] = []

    def exit_now(code: int) -> None:
        codes.append(code)
        raise Exited

    monkeypatch.setattr(
        runner_module, "os", types.SimpleNamespace(write=lambda fd, data: written.append((fd, data)), _exit=exit_now)
    )
    with pytest.raises(Interrupted) as first:
        runner_module._on_stop_signal(signal.SIGTERM, None)
    assert first.value.signum == signal.SIGTERM and (written, codes) == ([], [])
    with pytest.raises(Exited):
        runner_module._on_stop_signal(signal.SIGINT, None)
    assert written == [(2, b"CRITICAL SIGINT again: exiting at once.\n")]  # stderr, whatever holds the logging lock
    assert codes == [130]


@pytest.mark.parametrize("ignored", [signal.SIGTERM, signal.SIGINT])
def test_the_stop_signals_are_taken_unless_the_tap_was_started_with_them_ignored(ignored):
    saved = {signum: signal.getsignal(signum) for signum in (signal.SIGTERM, signal.SIGINT)}
    try:
        for signum in saved:
            signal.signal(signum, signal.SIG_IGN if signum == ignored else signal.SIG_DFL)
        runner_module.install_stop_signals()
        handlers = {signum: signal.getsignal(signum) for signum in saved}
    finally:
        for signum, handler in saved.items():
            signal.signal(signum, handler)
    assert handlers == {
        signum: signal.SIG_IGN if signum == ignored else runner_module._on_stop_signal for signum in saved
    }


# --- sync_until_stopped: the sync on its own thread, the stop from the main thread -------


class StoppableRunner:
    """What sync_until_stopped uses of the Runner: stop() (blocking while `blocked` is set,
    as a stop does while the target does not read) and output_started."""

    def __init__(self, output_started: bool = True, blocked: bool = False, closed: bool = False) -> None:
        self.output_started = output_started
        self.closed = closed
        self.stops: list[tuple[BaseException, threading.Thread]] = []
        self.released = threading.Event()
        if not blocked:
            self.released.set()

    def stop(self, error: BaseException) -> None:
        self.stops.append((error, threading.current_thread()))
        self.released.wait(5)
        if self.closed:
            raise BrokenPipeError(32, "Broken pipe")


def _main_thread() -> int:
    main = threading.main_thread().ident
    assert main is not None
    return main


def _main_thread_waiting_for(deadline: float = 10) -> None:
    """Wait until the main thread is blocked in Thread.join (3.13: join; 3.11: _wait_for_tstate_lock)."""
    main = _main_thread()
    end = time.monotonic() + deadline
    while sys._current_frames()[main].f_code.co_name not in ("join", "_wait_for_tstate_lock"):
        assert time.monotonic() < end, "the main thread never waited for the sync"
        time.sleep(0.001)


@pytest.fixture
def stopped_sync(monkeypatch):
    """sync_until_stopped with a fake sync that hands over `runner` (None: stopped before
    the sync began) and then has the main thread interrupted as the first SIGTERM does it:
    by a signal, the only thing that ends a wait in Thread.join (_thread.interrupt_main does
    not), here SIGUSR1 sent to the main thread, its handler raising Interrupted as
    _on_stop_signal does. Returns (Interrupted raised, the sync thread)."""
    ending = threading.Event()

    def raise_interrupted(signum, frame):
        raise Interrupted(signal.SIGTERM)

    previous = signal.signal(signal.SIGUSR1, raise_interrupted)

    def run(runner):
        threads = []

        def fake_sync(client, config, state, catalog, on_start=None, run_began=None):
            threads.append(threading.current_thread())
            if runner is not None:
                on_start(runner)
            _main_thread_waiting_for()
            signal.pthread_kill(_main_thread(), signal.SIGUSR1)
            ending.wait(10)  # the sync goes on until the process exits

        monkeypatch.setattr(runner_module, "sync", fake_sync)
        with pytest.raises(Interrupted) as raised:
            runner_module.sync_until_stopped(None, {}, {}, {})  # type: ignore[arg-type]  # sync is replaced
        return raised.value, threads[0]

    yield run
    ending.set()
    signal.signal(signal.SIGUSR1, previous)


def test_the_sync_runs_on_a_daemon_thread_given_all_the_run_needs(monkeypatch):
    client, config, state, the_catalog = object(), {"a": 1}, {"b": 2}, {"streams": [{"tap_stream_id": "lists"}]}
    began = datetime.datetime(2024, 1, 1, tzinfo=datetime.UTC)
    calls = []

    def fake_sync(*args, on_start=None, run_began=None):
        calls.append((args, run_began, threading.current_thread()))

    monkeypatch.setattr(runner_module, "sync", fake_sync)
    runner_module.sync_until_stopped(client, config, state, the_catalog, began)  # type: ignore[arg-type]
    [(args, run_began, thread)] = calls
    assert [id(given) for given in args] == [id(client), id(config), id(state), id(the_catalog)]  # the same objects
    assert run_began is began
    # Neither the sync nor the stop keeps the process alive at exit (a request or a target stuck).
    assert thread is not threading.main_thread() and thread.daemon


class SyncFailure(BaseException):
    """Not even an Exception: whatever ends the sync thread reaches the caller."""


def test_a_failure_on_the_sync_thread_is_raised_on_the_caller_s(monkeypatch):
    failure = SyncFailure("the API went away")

    def fake_sync(*args, **kwargs):
        raise failure

    monkeypatch.setattr(runner_module, "sync", fake_sync)
    with pytest.raises(SyncFailure) as raised:
        runner_module.sync_until_stopped(None, {}, {}, {})  # type: ignore[arg-type]  # sync is replaced
    assert raised.value is failure


def test_a_stop_before_the_sync_began_says_nothing_was_written(stopped_sync):
    stop, _ = stopped_sync(None)
    assert stop.signum == signal.SIGTERM
    assert (stop.sync_started, stop.final_state_written) == (False, False)


def test_a_stop_during_the_sync_stops_the_runner_from_a_thread_of_its_own(stopped_sync):
    runner = StoppableRunner(output_started=True)
    stop, sync_thread = stopped_sync(runner)
    assert (stop.sync_started, stop.final_state_written) == (True, True)
    [(error, stopper)] = runner.stops
    assert stopper not in (threading.main_thread(), sync_thread) and stopper.daemon
    assert error is stop


def test_a_stop_before_the_api_answered_wrote_nothing_but_the_final_state(stopped_sync):
    runner = StoppableRunner(output_started=False)
    stop, _ = stopped_sync(runner)
    assert (stop.sync_started, stop.final_state_written) == (False, True)


def test_a_stop_the_output_blocks_waits_only_the_grace_period(stopped_sync, monkeypatch):
    monkeypatch.setattr(runner_module, "STOP_WRITE_GRACE_SECONDS", 0.2)
    runner = StoppableRunner(output_started=False, blocked=True)  # the target does not read
    began = time.monotonic()
    try:
        stop, _ = stopped_sync(runner)
    finally:
        runner.released.set()
    assert time.monotonic() - began < 4  # the stop itself would block 5 s
    # Still writing: whatever went out before may be cut, so it is not "nothing was written".
    assert (stop.sync_started, stop.final_state_written) == (True, False)


def test_a_stop_whose_final_state_meets_a_closed_output_says_so_without_a_traceback(stopped_sync):
    runner = StoppableRunner(closed=True)  # the target has exited: the final write breaks the pipe
    hooked: list[object] = []
    previous, threading.excepthook = threading.excepthook, hooked.append
    try:
        stop, _ = stopped_sync(runner)
        for _, stop_thread in runner.stops:
            stop_thread.join(5)
    finally:
        threading.excepthook = previous
    assert (stop.sync_started, stop.final_state_written, stop.output_closed) == (True, False, True)
    assert hooked == [], "the stop thread let an exception out (a traceback on stderr)"


def _pass_records(ctx):
    """(index in the output, record) of each completed_passes record."""
    out = messages(ctx)
    return [(i, m["record"]) for i, m in enumerate(out) if m["type"] == "RECORD" and m["stream"] == "completed_passes"]


def test_completed_passes_rule_one_record_right_after_each_activate_version_that_ends_a_pass():
    ctx = context(SegmentsClient(DOCS), ["contacts", "lists", "lists_contacts", "smart_segments", "completed_passes"])
    ctx.run()
    out = messages(ctx)
    passes = _pass_records(ctx)
    assert sorted(r["stream_name"] for _, r in passes) == ["lists", "lists_contacts", "smart_segments"]
    for index, record in passes:
        activated = out[index - 1]
        assert activated == {
            "type": "ACTIVATE_VERSION",
            "stream": record["stream_name"],
            "version": record["table_version"],
        }, "each record follows the ACTIVATE_VERSION that ended its pass"
        assert out[index + 1]["type"] == "STATE"
        assert out[index + 1]["value"]["bookmarks"][record["stream_name"]]["complete"] is True
        assert datetime.datetime.fromisoformat(record["completed_at"]).tzinfo is not None
        # The first pass's version was activated up front too: that one has no record.
        firsts = [i for i, m in enumerate(out) if m == activated]
        assert len(firsts) == 2 and firsts[1] == index - 1
    assert "completed_passes" not in out[-1]["value"]["bookmarks"], "it keeps no state"


def test_completed_passes_rule_none_for_an_incremental_scan_nor_when_not_selected():
    ctx = context(FakeClient(DOCS), ["contacts", "completed_passes"])
    ctx.run()
    assert _pass_records(ctx) == [], "an incremental scan has no version: no pass to record"
    ctx = context(FakeClient(DOCS), ["contacts", "completed_passes"], methods={"contacts": "FULL_TABLE"})
    ctx.run()
    [(_, record)] = _pass_records(ctx)
    assert (
        record["stream_name"] == "contacts"
        and record["table_version"] == ctx.state.to_dict()["bookmarks"]["contacts"]["version"]
    )
    unselected = context(FakeClient(DOCS), ["lists"])
    unselected.run()
    assert not [m for m in messages(unselected) if m.get("stream") == "completed_passes"]


def test_currently_syncing_never_names_completed_passes_which_has_no_work_of_its_own():
    ctx = context(FakeClient(DOCS), ["lists", "completed_passes"])
    ctx.run()
    states = [m["value"]["currently_syncing"] for m in messages(ctx) if m["type"] == "STATE"]
    assert "completed_passes" not in states and states[-1] is None
    assert ctx.progress.streams["completed_passes"].records == 1
    assert ctx.progress.streams["completed_passes"].pages == 0


def test_a_membership_pass_without_a_version_is_read_as_planned_not_half_planned_twice():
    """An entry with a list-by-list pass's keys but no version (a hand edit): the runner plans
    lists_contacts list by list, and its sync must read it so, not switch to the contacts scan
    once begin_version has cleared the entry."""
    state: dict = {"bookmarks": {"lists_contacts": {"done_through": None, "done_beyond": [], "in_progress": {}}}}
    ctx = context(FakeClient(DOCS, members=members_of(DOCS)), ["lists", "lists_contacts"], state=state)
    ctx.run()
    assert pairs(ctx) == TRUTH
    assert ctx.state.to_dict()["bookmarks"]["lists_contacts"]["complete"] is True
