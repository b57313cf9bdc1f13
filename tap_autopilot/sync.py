"""Sync: selection, output, state and dispatch.

Streams hand their scans (cursor-paged walks, scans.PageScan) to a scheduler
(scheduler.py) that advances several at once on a few worker threads, so that requests overlap (a
100 ms round trip would otherwise cap a sequential tap near 10 requests/s)
while the shared rate limiter keeps the API's pace.
Every page's RECORDs and the STATE that accounts for them are written together
under one lock: a STATE message never describes a record not yet written. The
state document itself is state.py's.
"""

import datetime
import gc
import logging
import sys
import threading
import time
from collections.abc import Callable
from concurrent.futures import Future
from typing import Any, BinaryIO, TypeVar, cast

import orjson
import singer
from singer import metadata

from tap_autopilot.config import DEFAULT_MAX_CONCURRENT_REQUESTS
from tap_autopilot.discover import CUSTOM_FIELD_KEY
from tap_autopilot.http.client import AutopilotClient
from tap_autopilot.progress import Progress
from tap_autopilot.run_start import trusted_state
from tap_autopilot.scans import PageScan
from tap_autopilot.scheduler import Scheduler, Steps
from tap_autopilot.state.document import State
from tap_autopilot.streams import STREAMS, VERSION_COLUMN, MembershipStream, ParentStream, Stream
from tap_autopilot.values.cleaning import ValueChanges
from tap_autopilot.values.converters import to_datetime
from tap_autopilot.values.transform import serialize

LOGGER = logging.getLogger("tap_autopilot")

ScanT = TypeVar("ScanT", bound=PageScan)
# What a page commits for one stream: (stream id, RECORD lines, documents read, total or None).
Part = tuple[str, list[bytes], int, int | None]


class SelectedStream:
    """A catalog entry the user selected, reduced to what the sync needs."""

    def __init__(self, entry: dict[str, Any]) -> None:
        self.tap_stream_id = entry["tap_stream_id"]
        self.stream = STREAMS[self.tap_stream_id]
        mdata = metadata.to_map(entry.get("metadata") or [])
        schema = entry.get("schema") or {}
        properties = schema.get("properties") or {}
        self.columns: dict[str, dict[str, Any]] = {}
        self.custom_field_kinds: dict[str, str] = {}
        for column, column_schema in properties.items():
            if _column_selected(mdata, column, column_schema):
                self.columns[column] = column_schema
                kind = metadata.get(mdata, ("properties", column), CUSTOM_FIELD_KEY)
                if kind:
                    self.custom_field_kinds[column] = kind
        self.replication_method = _replication_method(self.stream, mdata)
        replication_key = self.stream.replication_key if self.replication_method == "INCREMENTAL" else None
        self.bookmark_properties = [replication_key] if replication_key else None
        for key in list(self.stream.key_properties) + [replication_key]:
            if key and key not in self.columns:
                self.columns[key] = properties.get(key, {"type": ["null", "string"]})
        self.schema = dict(schema, properties=self.columns)
        self.schema.pop("selected", None)


def _replication_method(stream: Stream, mdata: dict[Any, Any]) -> str:
    """The catalog's `replication-method` for the stream if the stream allows it, else its default."""
    method = metadata.get(mdata, (), "replication-method")
    if method is None or method == stream.replication_methods[0]:
        return stream.replication_methods[0]
    if isinstance(method, str) and method.upper() in stream.replication_methods:
        return method.upper()
    LOGGER.warning(
        "The catalog sets replication-method %r for %s, which allows only %s; using %s.",
        method,
        stream.tap_stream_id,
        " or ".join(stream.replication_methods),
        stream.replication_methods[0],
    )
    return stream.replication_methods[0]


def _column_selected(mdata: dict[Any, Any], column: str, column_schema: object) -> bool:
    breadcrumb = ("properties", column)
    inclusion = metadata.get(mdata, breadcrumb, "inclusion")
    if inclusion == "automatic":
        return True
    if inclusion == "unsupported":
        return False
    selected = metadata.get(mdata, breadcrumb, "selected")
    if selected is None and isinstance(column_schema, dict):
        selected = column_schema.get("selected")  # legacy --properties style
    if selected is None:
        selected = metadata.get(mdata, breadcrumb, "selected-by-default")
    return selected is not False


def _stream_selected(entry: dict[str, Any]) -> bool:
    mdata = metadata.to_map(entry.get("metadata") or [])
    selected = metadata.get(mdata, (), "selected")
    if selected is None:
        selected = (entry.get("schema") or {}).get("selected")  # legacy --properties style
    return bool(selected)


def selected_streams(catalog: dict[str, Any]) -> list[SelectedStream]:
    """The selected catalog entries, known streams only, in canonical order."""
    chosen = {}
    for entry in catalog.get("streams") or []:
        stream_id = entry.get("tap_stream_id") or entry.get("stream")
        if stream_id not in STREAMS:
            LOGGER.warning("The catalog names an unknown stream %r; ignoring it.", stream_id)
            continue
        if _stream_selected(dict(entry, tap_stream_id=stream_id)):
            chosen[stream_id] = SelectedStream(dict(entry, tap_stream_id=stream_id))
    return [chosen[stream_id] for stream_id in STREAMS if stream_id in chosen]


class SyncContext:
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
        self.completed: set[str] = set()
        self.out = out or sys.stdout.buffer  # bytes: records are encoded by orjson
        # The output written before the API first answered (see _emit); None once it has.
        self._held: list[bytes] | None = []
        self.lock = state.lock  # the output lock, which also guards the state document
        self.workers = workers
        self._scheduler: Scheduler | None = None  # set by run()
        self._parents: dict[str, Future[list[dict[str, Any]]]] = {}
        self._shared_scans: dict[type[PageScan], PageScan] = {}
        # Values changed so that every warehouse accepts them (docs/values.md).
        self.value_changes = ValueChanges()
        self.progress = Progress(self.order, client.stats, self.value_changes)

    # --- helpers for streams -------------------------------------------

    def parents(self, parent_stream: ParentStream) -> list[dict[str, Any]]:
        """The parent listing (lists or segments), fetched once per run: by the first thread
        that asks, or already on its way (fetch_parents_ahead); a failure is raised to each asker."""
        listing, fetch = self._listing(parent_stream)
        if fetch:
            self._fetch_listing(parent_stream, listing)
        return listing.result()

    def fetch_parents_ahead(self) -> None:
        """Send the request of every listing the selected streams need, each on a thread of its
        own: the listings come in one round trip, while the streams plan and the contacts scan starts."""
        needed = {}
        for selected in self.selected.values():
            stream = selected.stream
            if isinstance(stream, ParentStream):
                needed[stream.tap_stream_id] = stream
            elif isinstance(stream, MembershipStream):
                needed[stream.parent_stream.tap_stream_id] = stream.parent_stream
        for parent in needed.values():
            listing, fetch = self._listing(parent)
            if fetch:
                threading.Thread(
                    target=self._fetch_listing,
                    args=(parent, listing),
                    name=f"{parent.tap_stream_id}-listing",
                    daemon=True,
                ).start()

    def _listing(self, parent_stream: ParentStream) -> tuple["Future[list[dict[str, Any]]]", bool]:
        """The listing's future, and whether the caller is the one to fetch it."""
        with self.lock:
            listing = self._parents.get(parent_stream.tap_stream_id)
            if listing is not None:
                return listing, False
            listing = self._parents[parent_stream.tap_stream_id] = Future()
            return listing, True

    def _fetch_listing(self, parent_stream: ParentStream, listing: "Future[list[dict[str, Any]]]") -> None:
        try:
            listing.set_result(parent_stream.fetch(self.client))
        except BaseException as error:  # raised to whoever asks for the listing
            listing.set_exception(error)

    def shared_scan(self, scan_class: type[ScanT]) -> ScanT:
        """The run's one scan of its kind (the contacts scan), which several streams
        read; scheduled once every stream has planned its work."""
        with self.lock:
            if scan_class not in self._shared_scans:
                self._shared_scans[scan_class] = scan_class(self)
            return cast(ScanT, self._shared_scans[scan_class])

    def record_line_maker(self, stream_id: str, version: int | None = None) -> Callable[[dict[str, Any]], bytes]:
        """A function row -> one RECORD line (bytes), the same message
        singer-python writes, without its per-message overhead. Datetimes in
        the row are written as RFC 3339 UTC. With a version, the row also gets
        it in VERSION_COLUMN if that column is selected. A value no warehouse
        accepts is written cleaned, and counted (transform.serialize)."""
        note = self.value_changes.reporter(stream_id)
        head = b'{"type":"RECORD","stream":%s,"record":' % orjson.dumps(stream_id)
        tail = b',"version":%d' % version if version is not None else b""
        tail += b',"time_extracted":%s}\n' % orjson.dumps(singer.utils.strftime(datetime.datetime.now(datetime.UTC)))
        if version is not None and VERSION_COLUMN in self.selected[stream_id].columns:

            def emit(row: dict[str, Any]) -> bytes:
                row[VERSION_COLUMN] = version
                return head + serialize(row, note) + tail

            return emit
        return lambda row: head + serialize(row, note) + tail

    def begin_version(self, stream_id: str) -> int:
        """The table version of a full-table pass: resumed from state when the
        last pass did not complete, else new (state.begin_version). The very first
        pass activates its version up front so the target creates the table at once."""
        with self.lock:
            version, first = self.state.begin_version(stream_id, time.time() * 1000)
            if first:
                self._write_message(singer.ActivateVersionMessage(stream_id, version))
            return version

    def commit(self, parts: list[Part], change: Callable[[], None] | None = None) -> None:
        """Write a page's records, then the state that accounts for them.
        parts: [(stream_id, RECORD lines, documents read, total or None)];
        change: a function that changes the state (through state.py)."""
        with self.lock:
            for _, lines, _, _ in parts:
                if lines:
                    self._emit(b"".join(lines))
            if change is not None:
                change()
            self._write_state()
            for stream_id, lines, items_read, total in parts:
                self.progress.page(stream_id, len(lines), items_read, total)

    def complete(self, stream_id: str, change: Callable[[], None] | None = None, activate: int | None = None) -> None:
        """A stream's work for this run is done (called once per stream)."""
        with self.lock:
            if change is not None:
                change()
            if activate is not None:
                self._write_message(singer.ActivateVersionMessage(stream_id, activate))
            self.completed.add(stream_id)
            self._write_state()
            self.progress.stream_done(stream_id)

    def add_scan(self, steps: Steps) -> None:
        """Run a scan's steps (PageScan.steps(), see scheduler.py) on the workers."""
        assert self._scheduler is not None, "scans are added by the streams run() starts"
        self._scheduler.add(steps)

    # --- output ----------------------------------------------------------

    @property
    def output_started(self) -> bool:
        """Whether anything reached the output (it is held until the API first answers)."""
        return self._held is None

    def _emit(self, data: bytes) -> None:
        """Write to the output (the caller holds the lock). Until the API has answered a
        request, everything (SCHEMA, ACTIVATE_VERSION, STATE) is held back, then written in
        the same order: a wrong base_url or key fails with nothing on the output."""
        if self._held is not None:
            if not self.client.answered:
                self._held.append(data)
                return
            self._release()
        self.out.write(data)

    def _release(self) -> None:
        """Write what was held back; from then on the output goes out as it is written."""
        if self._held is not None:
            held, self._held = self._held, None
            self.out.write(b"".join(held))

    def _write_message(self, message: singer.Message) -> None:
        self._emit(singer.format_message(message).encode() + b"\n")

    def _write_state(self) -> None:
        remaining = [s for s in self.order if s not in self.completed]
        self.state.set_currently_syncing(remaining[0] if remaining else None)
        self._write_message(singer.StateMessage(self.state.to_dict()))
        self.out.flush()

    # --- dispatch --------------------------------------------------------

    def run(self) -> None:
        with self.lock:  # stop() may run from another thread at any time
            for stream_id in self.order:
                selected = self.selected[stream_id]
                self._write_message(
                    singer.SchemaMessage(
                        stream=stream_id,
                        schema=selected.schema,
                        key_properties=selected.stream.key_properties,
                        bookmark_properties=selected.bookmark_properties,
                    )
                )
            self.out.flush()
        self.progress.start()
        # Before each step, its scan's pages left are the worker's priority in the rate limiter.
        self._scheduler = Scheduler(self.workers, before_step=self.client.limiter.set_priority)
        self.client.limiter.all_pages_left = self._scheduler.pages_left
        try:
            self.fetch_parents_ahead()
            # The shared scan (the contacts scan) first: usually the longest, and its pages come
            # one after another, so a late start lengthens the whole sync (rate_limit.py). So
            # the streams that read it this run plan first (they only add readers to it), and it
            # starts before the other streams wait for their listings.
            first = [s for s in self.order if self.selected[s].stream.reads_contacts_scan(self)]
            for stream_id in first:
                self.selected[stream_id].stream.sync(self)
            for scan in self._shared_scans.values():
                self.add_scan(scan.steps())
            for stream_id in self.order:
                if stream_id not in first:
                    self.selected[stream_id].stream.sync(self)
            self._scheduler.wait()
        except BaseException as error:
            self.progress.stop()
            self._scheduler.fail(error)
            # Workers finish their page and stop; hold the output lock from here
            # to exit so that no worker starts a page we would cut off mid-line.
            self.lock.acquire()
            self.out.flush()
            self.progress.log_record_counts()
            raise
        with self.lock:
            self._release()  # a sync that ran to its end says where it ended, whatever it read
            self._write_state()
        self.progress.summary()

    def stop(self, error: BaseException) -> None:
        """Stop from another thread (SIGTERM, SIGINT): no page starts after this
        and pages in flight are dropped; a page being written is finished, then
        the STATE covering everything written goes out. Returns holding the
        output lock, so the process can exit without cutting a line. Blocks
        while the reader of the output does not read: the caller bounds it."""
        # The lock first: once the scheduler fails, run() takes it for good on the sync thread.
        self.lock.acquire()  # held until the process exits
        self.progress.stop()
        if self._scheduler is not None:
            self._scheduler.fail(error)
        # Before the final STATE, which a target that does not read would keep from going out:
        # every page committed is written, so the counts are the records on the output.
        self.progress.log_record_counts()
        self._write_state()


def sync(
    client: AutopilotClient,
    config: dict[str, Any],
    state: object,
    catalog: dict[str, Any],
    on_start: Callable[[SyncContext], None] | None = None,
    run_began: datetime.datetime | None = None,
) -> None:
    """on_start(SyncContext), if given, is called before the sync begins (for stop()).
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
    # A sync makes millions of short-lived objects and almost no reference
    # cycles: leave the long-lived ones out of collections and collect young
    # ones less often (about a tenth less CPU per record; memory stays flat).
    gc.freeze()
    gc.set_threshold(50_000, 20, 20)
    workers = int(config.get("max_concurrent_requests", DEFAULT_MAX_CONCURRENT_REQUESTS))
    ctx = SyncContext(client, config, state, selected, workers=workers, start_date=start_date)
    if on_start is not None:
        on_start(ctx)
    ctx.run()
