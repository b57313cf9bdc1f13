"""The runner: a sync from its start to its end or its stop.

Streams plan their work and their scans read pages (streams/); what they return, the
runner has written (output.py): records, then the state change, then STATE. The scans
run on a scheduler (scheduler.py) that advances several at once on a few worker threads,
so that requests overlap while the shared rate limiter keeps the API's pace. The sync
itself runs on a thread of its own, so that the main thread is free for the stop signals.
"""

import contextlib
import ctypes
import datetime
import gc
import logging
import os
import signal
import sys
import threading
from collections.abc import Callable
from concurrent.futures import Future
from types import FrameType
from typing import Any, BinaryIO

import singer

from tap_autopilot.catalog import SelectedStream, selected_streams
from tap_autopilot.config import DEFAULT_MAX_CONCURRENT_REQUESTS
from tap_autopilot.errors import Interrupted
from tap_autopilot.http.client import AutopilotClient
from tap_autopilot.output import Output, record_line_maker
from tap_autopilot.progress import Progress
from tap_autopilot.run_start import trusted_state
from tap_autopilot.scheduler import Scheduler
from tap_autopilot.state.document import State
from tap_autopilot.streams import STREAMS
from tap_autopilot.streams.base import VERSION_COLUMN, PageResult, PageScan, PassCompleted, StreamRecords
from tap_autopilot.streams.contacts import plan_contacts_scan_first
from tap_autopilot.streams.listings import ListingStream
from tap_autopilot.streams.passes import CompletedPasses, completed_pass
from tap_autopilot.values.cleaning import Note, ValueChanges
from tap_autopilot.values.converters import to_datetime

LOGGER = logging.getLogger("tap_autopilot")

Listing = list[dict[str, Any]]


class Runner:
    """One sync: implements streams.base.Run, the streams' view of it."""

    def __init__(
        self,
        client: AutopilotClient,
        config: dict[str, Any],
        state: State,
        selected: list[SelectedStream],
        workers: int = DEFAULT_MAX_CONCURRENT_REQUESTS,
        out: BinaryIO | None = None,
        start_date: datetime.datetime | None = None,
    ) -> None:
        self.client = client
        self.config = config
        self.state = state
        # where streams without a bookmark start (run_start.start_date_for)
        start_date = start_date or to_datetime(config.get("start_date"))
        assert start_date is not None, "sync() passes start_date_for's date; validate_config normalizes start_date"
        self.start_date = start_date
        self.selected = {s.tap_stream_id: s for s in selected}
        self.order = [s.tap_stream_id for s in selected]
        self.workers = workers
        self._scheduler: Scheduler | None = None  # set by run()
        self._listings: dict[str, Future[Listing]] = {}
        # Values changed so that every warehouse accepts them (docs/values.md).
        self.value_changes = ValueChanges()
        self.progress = Progress(self.order, client.stats, self.value_changes)
        work = [stream_id for stream_id in self.order if not STREAMS[stream_id].from_the_run]
        self.output = Output(out or sys.stdout.buffer, state, work, self.progress, lambda: client.answered)

    # --- the streams' view of the run (streams.base.Run) ------------------------------

    def is_selected(self, stream_id: str) -> bool:
        return stream_id in self.selected

    def selection(self, stream_id: str) -> SelectedStream:
        return self.selected[stream_id]

    def listing(self, stream_id: str) -> Listing:
        """A listing (lists or segments), fetched once per run: by the first thread that asks,
        or already on its way (fetch_listings_ahead); a failure is raised to each asker."""
        listing, fetch = self._listing(stream_id)
        if fetch:
            self._fetch_listing(stream_id, listing)
        return listing.result()

    def begin_version(self, stream_id: str) -> int:
        return self.output.begin_version(stream_id)

    def record_line_maker(self, stream_id: str, version: int | None = None) -> Callable[[dict[str, Any]], bytes]:
        with_version_column = VERSION_COLUMN in self.selected[stream_id].columns
        return record_line_maker(stream_id, version, with_version_column, self.value_reporter(stream_id))

    def value_reporter(self, stream_id: str) -> Note:
        return self.value_changes.reporter(stream_id)

    # --- the listings' cache ----------------------------------------------------------

    def fetch_listings_ahead(self) -> None:
        """Send the request of every listing the selected streams read, each on a thread of its
        own: the listings come in one round trip, while the streams plan and the contacts scan starts."""
        needed = dict.fromkeys(stream_id for s in self.selected.values() for stream_id in s.stream.listings_read())
        for stream_id in needed:
            listing, fetch = self._listing(stream_id)
            if fetch:
                threading.Thread(
                    target=self._fetch_listing,
                    args=(stream_id, listing),
                    name=f"{stream_id}-listing",
                    daemon=True,
                ).start()

    def _listing(self, stream_id: str) -> tuple[Future[Listing], bool]:
        """The listing's future, and whether the caller is the one to fetch it."""
        new: Future[Listing] = Future()
        listing = self._listings.setdefault(stream_id, new)  # one step: two askers get the same future
        return listing, listing is new

    def _fetch_listing(self, stream_id: str, listing: Future[Listing]) -> None:
        stream = STREAMS[stream_id]
        assert isinstance(stream, ListingStream), f"{stream_id} is not a listing"
        try:
            listing.set_result(stream.fetch(self.client))
        except BaseException as error:  # raised to whoever asks for the listing
            listing.set_exception(error)

    # --- what the streams return ------------------------------------------------------

    def apply(self, result: PageResult) -> None:
        """Write what a stream or a page produced, and start the scans it asks for."""
        assert not result.contacts_readers, "plan_contacts_scan_first gathers them"
        if result.records or result.state_changes:
            self.output.commit(result.records, result.state_changes)
        for done in result.completed:
            self.output.complete(done, self.completed_pass_record(done))
        for scan in result.new_scans:
            self.add_scan(scan)

    def completed_pass_record(self, done: PassCompleted) -> StreamRecords | None:
        """The completed_passes record of a pass that completed under a version, if that
        stream is selected (streams/passes.py)."""
        if done.activate_version is None or CompletedPasses.tap_stream_id not in self.selected:
            return None
        row = completed_pass(done.stream_id, done.activate_version, datetime.datetime.now(datetime.UTC))
        line = self.record_line_maker(CompletedPasses.tap_stream_id)(row)
        return StreamRecords(CompletedPasses.tap_stream_id, [line], 0)

    def add_scan(self, scan: PageScan) -> None:
        assert self._scheduler is not None, "scans are added by the streams run() starts"
        self._scheduler.add(scan.steps(self.apply))

    # --- dispatch ---------------------------------------------------------------------

    @property
    def output_started(self) -> bool:
        return self.output.started

    def run(self) -> None:
        self.output.schemas(
            [
                singer.SchemaMessage(
                    stream=stream_id,
                    schema=self.selected[stream_id].schema,
                    key_properties=self.selected[stream_id].stream.key_properties,
                    bookmark_properties=self.selected[stream_id].bookmark_properties,
                )
                for stream_id in self.order
            ]
        )
        self.progress.start()
        # Before each step, its scan's pages left are the worker's priority in the rate limiter.
        self._scheduler = Scheduler(self.workers, before_step=self.client.limiter.set_priority)
        self.client.limiter.all_pages_left = self._scheduler.pages_left
        try:
            self.fetch_listings_ahead()
            streams = [self.selected[stream_id].stream for stream_id in self.order]
            planned, rest = plan_contacts_scan_first(self, streams)
            for result in planned:
                self.apply(result)
            for stream in rest:
                self.apply(stream.sync(self))
            self._scheduler.wait()
        except BaseException as error:
            self.progress.stop()
            self._scheduler.fail(error)
            # Workers finish their page and stop; hold the output lock from here
            # to exit so that no worker starts a page we would cut off mid-line.
            self.output.hold_for_good()
            self.output.flush()
            self.progress.log_record_counts()
            raise
        self.output.end()
        self.progress.summary()

    def stop(self, error: BaseException) -> None:
        """Stop from another thread (SIGTERM, SIGINT): no page starts after this
        and pages in flight are dropped; a page being written is finished, then
        the STATE covering everything written goes out. Returns holding the
        output lock, so the process can exit without cutting a line. Blocks
        while the reader of the output does not read: the caller bounds it."""
        # The lock first: once the scheduler fails, run() takes it for good on the sync thread.
        self.output.hold_for_good()
        self.progress.stop()
        if self._scheduler is not None:
            self._scheduler.fail(error)
        # Before the final STATE, which a target that does not read would keep from going out:
        # every page committed is written, so the counts are the records on the output.
        self.progress.log_record_counts()
        self.output.write_state()


def sync(
    client: AutopilotClient,
    config: dict[str, Any],
    state: object,
    catalog: dict[str, Any],
    on_start: Callable[[Runner], None] | None = None,
    run_began: datetime.datetime | None = None,
) -> None:
    """on_start(Runner), if given, is called before the sync begins (for stop()).
    run_began: when the run began (an aware datetime; now if not given)."""
    run_began = run_began or datetime.datetime.now(datetime.UTC)
    selected = selected_streams(catalog)
    if not selected:
        LOGGER.warning(
            "No streams are selected in the catalog: nothing to sync. Mark streams with metadata 'selected': true."
        )
        return
    state, start_date = trusted_state(state, config, run_began)
    interrupted = state.currently_syncing
    if interrupted:
        ids = [s.tap_stream_id for s in selected]
        if interrupted in ids:
            LOGGER.info("Resuming with %s, which the last run did not finish.", interrupted)
            selected.sort(key=lambda s: s.tap_stream_id != interrupted)
        else:
            LOGGER.warning(
                "State names %r as currently syncing, which is not a selected stream; ignoring it.", interrupted
            )
    # A sync makes millions of short-lived objects and almost no reference cycles: leave
    # the long-lived ones out of collections and collect young ones less often.
    gc.freeze()
    gc.set_threshold(50_000, 20, 20)
    workers = int(config.get("max_concurrent_requests", DEFAULT_MAX_CONCURRENT_REQUESTS))
    runner = Runner(client, config, state, selected, workers=workers, start_date=start_date)
    if on_start is not None:
        on_start(runner)
    runner.run()


# --- the stop ---------------------------------------------------------------------------

# How long a stop (SIGTERM, SIGINT) waits for the output to take the page being
# written and the final STATE before it exits anyway: only a target that does
# not read its input (busy loading a batch, or stuck) makes a stop wait at all.
STOP_WRITE_GRACE_SECONDS = 10
STOP_SIGNALS = (signal.SIGTERM, signal.SIGINT)


def exit_code_for(signum: int) -> int:
    """The shell convention for a process ended by a signal: 128 + its number
    (143 for SIGTERM, 130 for SIGINT), what schedulers expect from a stopped job."""
    return 128 + int(signum)


_stop_signal_received: int | None = None


def _on_stop_signal(signum: int, frame: FrameType | None) -> None:
    global _stop_signal_received
    if _stop_signal_received is not None:
        # A second signal: the user insists. Exit now, whatever is in progress.
        os.write(2, f"CRITICAL {signal.Signals(signum).name} again: exiting at once.\n".encode())
        os._exit(exit_code_for(signum))
    _stop_signal_received = signum
    raise Interrupted(signum)


def install_stop_signals() -> None:
    """The first SIGTERM or SIGINT raises Interrupted in the main thread; a second exits at once."""
    for signum in STOP_SIGNALS:
        if signal.getsignal(signum) is not signal.SIG_IGN:  # started with it ignored (nohup, &): keep that
            signal.signal(signum, _on_stop_signal)


# glibc's mallopt parameter for the most malloc arenas (malloc.h).
M_ARENA_MAX = -8


def share_one_malloc_arena() -> None:
    """Make every thread allocate from one malloc arena (glibc; elsewhere nothing to do).

    glibc gives each new thread an arena of its own: the page-ahead thread allocates every
    contacts page and the scan's thread frees it, and those arenas keep memory the OS never
    gets back (docs/performance.md). The GIL runs one thread at a time anyway, so one arena's
    lock is hardly ever waited for. Call before any thread starts."""
    with contextlib.suppress(AttributeError, OSError, TypeError):  # no mallopt (macOS); musl's does nothing
        ctypes.CDLL(None).mallopt(M_ARENA_MAX, 1)


def _write_final_state(runner: Runner, stop: Interrupted, written: threading.Event) -> None:
    """Runner.stop on its own thread; `written` is set once the final STATE went out. A target
    that has exited (a broken pipe) is said by the CLI, not by a thread's traceback."""
    try:
        runner.stop(stop)
    except OSError:
        stop.output_closed = True
    else:
        written.set()


def sync_until_stopped(
    client: AutopilotClient,
    config: dict[str, Any],
    state: dict[str, Any],
    catalog: dict[str, Any],
    run_began: datetime.datetime | None = None,
) -> None:
    """Run the sync on its own thread, leaving the main thread free for signals.

    The main thread then never holds the output lock nor stands between a
    page's records and its STATE when a signal arrives; it stops the sync
    from outside (Runner.stop) without waiting for requests in flight."""
    share_one_malloc_arena()
    runners: list[Runner] = []
    failure: list[BaseException] = []

    def work() -> None:
        try:
            sync(client, config, state, catalog, on_start=runners.append, run_began=run_began)
        except BaseException as error:  # re-raised on the main thread
            failure.append(error)

    thread = threading.Thread(target=work, name="sync", daemon=True)
    thread.start()
    try:
        thread.join()
    except Interrupted as stop:
        stop.sync_started = bool(runners)
        if runners:
            written = threading.Event()
            # Bounded: a target that stopped reading would block the final write forever.
            stopper = threading.Thread(
                target=_write_final_state, args=(runners[0], stop, written), name="stop", daemon=True
            )
            stopper.start()
            stopper.join(STOP_WRITE_GRACE_SECONDS)
            stop.final_state_written = written.is_set()
            # Nothing goes out before the API first answers: a stop before then wrote nothing.
            stop.sync_started = runners[0].output_started or stopper.is_alive()
        raise
    if failure:
        raise failure[0]
