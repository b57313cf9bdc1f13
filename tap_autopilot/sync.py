"""Sync: selection, output, state and dispatch.

Streams hand their bookmark-paged scans to a scheduler (scheduler.py) that
advances several at once on a few worker threads, so that requests overlap (a
100 ms round trip would otherwise cap a sequential tap near 10 requests/s)
while the shared rate limiter keeps the API's pace.
Every page's RECORDs and the STATE that accounts for them are written together
under one lock: a STATE message never describes a record not yet written.
"""
import gc
import logging
import sys
import threading
import time

import orjson
import singer
from singer import metadata

from tap_autopilot.discover import CUSTOM_FIELD_KEY
from tap_autopilot.progress import Progress
from tap_autopilot.scheduler import Scheduler
from tap_autopilot.streams import STREAMS
from tap_autopilot.transform import ContactTransformer, serialize, to_datetime

LOGGER = logging.getLogger("tap_autopilot")

# Concurrent requests in flight. The rate limiter, not this, sets the pace;
# this only has to cover (rate x round trip) with some room.
DEFAULT_WORKERS = 4


class State:
    """The Singer state document: bookmarks per stream and currently_syncing."""

    def __init__(self, raw):
        raw = raw if isinstance(raw, dict) else {}
        bookmarks = raw.get("bookmarks")
        self.bookmarks = {k: dict(v) for k, v in bookmarks.items() if isinstance(v, dict)} \
            if isinstance(bookmarks, dict) else {}
        self.currently_syncing = raw.get("currently_syncing")

    def bookmark(self, stream_id):
        return self.bookmarks.setdefault(stream_id, {})

    def to_dict(self):
        return {"currently_syncing": self.currently_syncing, "bookmarks": self.bookmarks}


class SelectedStream:
    """A catalog entry the user selected, reduced to what the sync needs."""

    def __init__(self, entry):
        self.tap_stream_id = entry["tap_stream_id"]
        self.stream = STREAMS[self.tap_stream_id]
        mdata = metadata.to_map(entry.get("metadata") or [])
        schema = entry.get("schema") or {}
        properties = schema.get("properties") or {}
        self.columns = {}
        self.custom_field_kinds = {}
        for column, column_schema in properties.items():
            if _column_selected(mdata, column, column_schema):
                self.columns[column] = column_schema
                kind = metadata.get(mdata, ("properties", column), CUSTOM_FIELD_KEY)
                if kind:
                    self.custom_field_kinds[column] = kind
        for key in list(self.stream.key_properties) + [self.stream.replication_key]:
            if key and key not in self.columns:
                self.columns[key] = properties.get(key, {"type": ["null", "string"]})
        self.schema = dict(schema, properties=self.columns)
        self.schema.pop("selected", None)


def _column_selected(mdata, column, column_schema):
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


def _stream_selected(entry):
    mdata = metadata.to_map(entry.get("metadata") or [])
    selected = metadata.get(mdata, (), "selected")
    if selected is None:
        selected = (entry.get("schema") or {}).get("selected")  # legacy --properties style
    return bool(selected)


def _version_number(value):
    """A table version from state as an int, or None if it is not a usable one."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    if isinstance(value, float) and not value.is_integer():
        return None
    return int(value) if value > 0 else None


def selected_streams(catalog):
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
    def __init__(self, client, config, state, selected, workers=DEFAULT_WORKERS, out=None):
        self.client = client
        self.state = state
        self.start_date = to_datetime(config["start_date"])
        self.selected = {s.tap_stream_id: s for s in selected}
        self.order = [s.tap_stream_id for s in selected]
        self.completed = set()
        self.out = out or sys.stdout.buffer  # bytes: records are encoded by orjson
        self.lock = threading.RLock()
        self.workers = workers
        self._scheduler = None
        self._parents = {}
        self.progress = Progress(self.order, client.stats)
        contacts = self.selected.get("contacts")
        self.contact_transformer = ContactTransformer(contacts.columns, contacts.custom_field_kinds) \
            if contacts else None

    # --- helpers for streams -------------------------------------------

    def selected_columns(self, stream_id):
        return list(self.selected[stream_id].columns)

    def parents(self, parent_stream):
        """The parent listing (lists or segments), fetched once per run."""
        stream_id = parent_stream.tap_stream_id
        with self.lock:
            cached = self._parents.get(stream_id)
        if cached is None:
            cached = parent_stream.fetch(self.client)
            with self.lock:
                self._parents.setdefault(stream_id, cached)
        return cached

    def record_line_maker(self, stream_id, version=None):
        """A function row -> one RECORD line (bytes), the same message
        singer-python writes, without its per-message overhead. Datetimes in
        the row are written as RFC 3339 UTC."""
        head = b'{"type":"RECORD","stream":%s,"record":' % orjson.dumps(stream_id)
        tail = b',"version":%d' % version if version is not None else b""
        tail += b',"time_extracted":%s}\n' % orjson.dumps(singer.utils.strftime(singer.utils.now()))
        return lambda row: head + serialize(row) + tail

    def begin_version(self, stream_id):
        """The table version of a full-table pass: resumed from state when the
        last pass did not complete, else new. The very first pass activates
        its version up front so the target creates the table at once."""
        with self.lock:
            entry = self.state.bookmark(stream_id)
            previous = _version_number(entry.get("version"))
            if previous is not None and not entry.get("complete", True):
                return previous
            first_ever = "version" not in entry
            # Versions only grow: a target activating a version drops the rows of lower
            # ones, so a clock behind the one that wrote the state (set back, another
            # machine) must not produce a version below the last.
            version = max(int(time.time() * 1000), (previous or 0) + 1)
            entry.clear()
            entry.update({"version": version, "complete": False})
            if first_ever:
                self._write_message(singer.ActivateVersionMessage(stream_id, version))
            return version

    def commit(self, stream_id, lines, items_read, total, update_entry=None):
        """Write a page's records, then the state that accounts for them."""
        with self.lock:
            if lines:
                self.out.write(b"".join(lines))
            if update_entry is not None:
                update_entry(self.state.bookmark(stream_id))
            self._write_state()
            self.progress.page(stream_id, len(lines), items_read, total)

    def complete(self, stream_id, update_entry=None, activate=None):
        with self.lock:
            entry = self.state.bookmark(stream_id)
            if update_entry is not None:
                update_entry(entry)
            if activate is not None:
                entry["complete"] = True
                self._write_message(singer.ActivateVersionMessage(stream_id, activate))
            self.completed.add(stream_id)
            self._write_state()
            self.progress.stream_done(stream_id)

    def add_chain(self, chain):
        """Run a page chain (a generator, see scheduler.py) on the workers."""
        self._scheduler.add(chain)

    # --- output ----------------------------------------------------------

    def _write_message(self, message):
        self.out.write(singer.format_message(message).encode() + b"\n")

    def _write_state(self):
        remaining = [s for s in self.order if s not in self.completed]
        self.state.currently_syncing = remaining[0] if remaining else None
        self._write_message(singer.StateMessage(self.state.to_dict()))
        self.out.flush()

    # --- dispatch --------------------------------------------------------

    def run(self):
        with self.lock:  # stop() may run from another thread at any time
            for stream_id in self.order:
                selected = self.selected[stream_id]
                self._write_message(singer.SchemaMessage(
                    stream=stream_id, schema=selected.schema, key_properties=selected.stream.key_properties,
                    bookmark_properties=[selected.stream.replication_key] if selected.stream.replication_key
                    else None))
            self.out.flush()
        self.progress.start()
        self._scheduler = Scheduler(self.workers)
        try:
            for stream_id in self.order:
                self.selected[stream_id].stream.sync(self)
            self._scheduler.wait()
        except BaseException as error:
            self.progress.stop()
            self._scheduler.fail(error)
            # Workers finish their page and stop; hold the output lock from here
            # to exit so that no worker starts a page we would cut off mid-line.
            self.lock.acquire()  # pylint: disable=consider-using-with
            self.out.flush()
            raise
        with self.lock:
            self._write_state()
        self.progress.summary()

    def stop(self, error):
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
        self._write_state()


def sync(client, config, state, catalog, on_start=None):
    """on_start(SyncContext), if given, is called before the sync begins (for stop())."""
    selected = selected_streams(catalog)
    if not selected:
        LOGGER.warning("No streams are selected in the catalog: nothing to sync. "
                       "Mark streams with metadata 'selected': true.")
        return
    state = State(state)
    interrupted = state.currently_syncing
    if interrupted:
        ids = [s.tap_stream_id for s in selected]
        if interrupted in ids:
            LOGGER.info("Resuming with %s, which the last run did not finish.", interrupted)
            selected.sort(key=lambda s: s.tap_stream_id != interrupted)
        else:
            LOGGER.warning("State names %r as currently syncing, which is not a selected stream; "
                           "ignoring it.", interrupted)
    # A sync makes millions of short-lived objects and almost no reference
    # cycles: leave the long-lived ones out of collections and collect young
    # ones less often (about a tenth less CPU per record; memory stays flat).
    gc.freeze()
    gc.set_threshold(50_000, 20, 20)
    workers = int(config.get("max_concurrent_requests", DEFAULT_WORKERS))
    ctx = SyncContext(client, config, state, selected, workers=workers)
    if on_start is not None:
        on_start(ctx)
    ctx.run()
