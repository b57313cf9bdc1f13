"""The output writer: the Singer messages on stdout, and the one lock they are written under.

A page's RECORD lines and the STATE that accounts for them are written together under
the lock: a STATE message never describes a record not yet written, and the progress
counts are the records on the output. The state document (state/document.py) has its
own lock, always taken after this one.
"""

import datetime
import threading
import time
from collections.abc import Callable, Sequence
from typing import Any, BinaryIO

import orjson
import singer

from tap_autopilot.progress import Progress
from tap_autopilot.state.changes import StateChange
from tap_autopilot.state.document import State
from tap_autopilot.streams.base import VERSION_COLUMN, PassCompleted, StreamRecords
from tap_autopilot.values.cleaning import Note
from tap_autopilot.values.transform import serialize


def record_line_maker(
    stream_id: str, version: int | None, with_version_column: bool, note: Note
) -> Callable[[dict[str, Any]], bytes]:
    """A function row -> one RECORD line (bytes), the same message singer-python writes,
    without its per-message overhead. Datetimes in the row are written as RFC 3339 UTC.
    With a version, the row also gets it in VERSION_COLUMN if with_version_column. A value
    no warehouse accepts is written cleaned, and counted (transform.serialize)."""
    head = b'{"type":"RECORD","stream":%s,"record":' % orjson.dumps(stream_id)
    tail = b',"version":%d' % version if version is not None else b""
    tail += b',"time_extracted":%s}\n' % orjson.dumps(singer.utils.strftime(datetime.datetime.now(datetime.UTC)))
    if version is not None and with_version_column:

        def emit(row: dict[str, Any]) -> bytes:
            row[VERSION_COLUMN] = version
            return head + serialize(row, note) + tail

        return emit
    return lambda row: head + serialize(row, note) + tail


class Output:
    """Writes the run's messages in order, under its lock. Until the API has answered a
    request (answered()), everything (SCHEMA, ACTIVATE_VERSION, STATE) is held back, then
    written in the same order: a wrong base_url or key fails with nothing on the output."""

    def __init__(
        self,
        out: BinaryIO,
        state: State,
        order: list[str],
        progress: Progress,
        answered: Callable[[], bool],
    ) -> None:
        self.out = out  # bytes: records are encoded by orjson
        self.state = state
        # The streams with work of their own, in the order they sync: STATE names the first not complete.
        self.order = order
        self.progress = progress
        self.completed: set[str] = set()
        self.lock = threading.RLock()
        self._answered = answered
        self._held: list[bytes] | None = []  # None once the API answered

    @property
    def started(self) -> bool:
        """Whether anything reached the output (it is held until the API first answers)."""
        return self._held is None

    def schemas(self, messages: Sequence[singer.SchemaMessage]) -> None:
        with self.lock:
            for message in messages:
                self._write_message(message)
            self.out.flush()

    def begin_version(self, stream_id: str) -> int:
        """The table version of a full-table pass: resumed from state when the last pass did
        not complete, else new (State.begin_version). The very first pass activates its version
        up front so the target creates the table at once."""
        with self.lock:
            version, first = self.state.begin_version(stream_id, time.time() * 1000)
            if first:
                self._write_message(singer.ActivateVersionMessage(stream_id, version))
            return version

    def commit(self, records: Sequence[StreamRecords], changes: Sequence[StateChange]) -> None:
        """A page's records, then the state change that accounts for them, then STATE."""
        with self.lock:
            for part in records:
                if part.lines:
                    self._emit(b"".join(part.lines))
            if changes:
                self.state.apply(changes)
            self.write_state()
            for part in records:
                self.progress.page(part.stream_id, len(part.lines), part.documents_read, part.total)

    def complete(self, done: PassCompleted, pass_record: StreamRecords | None = None) -> None:
        """A stream's work for this run is done (once per stream): its last state change,
        ACTIVATE_VERSION if it has a version to activate, the completed_passes record saying
        so (when given), then STATE."""
        with self.lock:
            self.state.apply((done.state_change,))
            if done.activate_version is not None:
                self._write_message(singer.ActivateVersionMessage(done.stream_id, done.activate_version))
            if pass_record is not None:
                self._emit(b"".join(pass_record.lines))
            self.completed.add(done.stream_id)
            self.write_state()
            if pass_record is not None:
                self.progress.records(pass_record.stream_id, len(pass_record.lines))
            self.progress.stream_done(done.stream_id)

    def end(self) -> None:
        """A sync that ran to its end says where it ended, whatever it read."""
        with self.lock:
            self._release()
            self.write_state()

    def hold_for_good(self) -> None:
        """Take the lock and keep it until the process exits: no page is cut off mid-line.
        Blocks while another thread writes a page."""
        self.lock.acquire()

    def flush(self) -> None:
        with self.lock:
            self.out.flush()

    def write_state(self) -> None:
        with self.lock:
            remaining = [s for s in self.order if s not in self.completed]
            self.state.set_currently_syncing(remaining[0] if remaining else None)
            self._write_message(singer.StateMessage(self.state.to_dict()))
            self.out.flush()

    def _emit(self, data: bytes) -> None:
        # The caller holds the lock.
        if self._held is not None:
            if not self._answered():
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
