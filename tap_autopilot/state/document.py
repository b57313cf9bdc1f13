"""The Singer state document: the one module that defines its entries and changes them.

    {"currently_syncing": <stream id or null>,
     "bookmarks": {<stream id>: <entry>},
     "default_start_date": T}      (only when the config has no start_date)

"default_start_date" is where a config without start_date starts: one year before the
first run began, kept so that later runs (and a stream reset) do not slide with the clock.

The entries, by kind of pass (docs/state.md describes them for users):

- contacts, incremental: {"updated_at": T} between runs; while a scan runs also
  "scan": {"threshold", "cursor", "max_updated_at", "started_at"}.
- a versioned full-table pass (lists, smart_segments, and contacts in FULL_TABLE
  mode): {"version": V, "complete": true|false}.
- a versioned pass that reads the contacts scan (contacts in FULL_TABLE mode,
  lists_contacts from the scan) adds, while it runs, "scan": {"cursor"}.
- a membership pass that reads each parent's pages adds, while it runs,
  "done_through" (every parent id up to it is done), "done_beyond" (the few done
  after it) and "in_progress" ({parent id: cursor}).

A "cursor" is the API's page position (the API calls it "bookmark"): the scan
continues after it. Everything a pass keeps while it runs is removed when it completes.

A document in another shape is repaired where it is wrong (state/shape.py: that stream
starts over), and a time later than the run's start is not trusted (drop_future_bookmarks,
drop_future_default): the sync says so in one WARNING each.

A page's change to the document travels as data (the dataclasses below, StateChange):
a scan returns it with the page's records, and the runner has it applied (apply) after
writing them. Every change and every snapshot (to_dict) takes the document's lock, so a
STATE message never sees an entry half changed by another thread.
"""

import copy
import datetime
import threading
from collections.abc import Collection, Iterable
from typing import Any

from tap_autopilot.state.changes import (
    CompleteVersion,
    FinishIncrementalScan,
    ForgetScanCursor,
    ParentAdvanced,
    ParentDone,
    ParentRestarted,
    SaveIncrementalScan,
    SaveScanCursor,
    StateChange,
)
from tap_autopilot.state.shape import started_over, tap_shape, version_number
from tap_autopilot.values.converters import format_datetime, to_datetime

# The keys a membership pass that reads each parent's pages keeps while it runs.
MEMBERSHIP_PASS_KEYS = ("done_through", "done_beyond", "in_progress")


def next_version(previous: int | None, now_ms: float) -> int:
    """A new pass's table version: the clock in ms, but always above the last one.

    Versions only grow: a target activating a version drops the rows of lower ones,
    so a clock behind the one that wrote the state (set back, another machine) must
    not produce a version below the last."""
    return max(int(now_ms), (previous or 0) + 1)


def one_year_before(moment: datetime.datetime) -> datetime.datetime:
    """The default start date: the same calendar day a year earlier (28 February for 29
    February), at the same time of day, in UTC, to the second."""
    moment = moment.astimezone(datetime.UTC).replace(microsecond=0)
    try:
        return moment.replace(year=moment.year - 1)
    except ValueError:  # 29 February
        return moment.replace(year=moment.year - 1, day=28)


class State:
    def __init__(self, raw: object, lock: "threading.RLock | None" = None, streams: Collection[str] = ()) -> None:
        """raw: the state given (any JSON). tap_shape repairs what is not in this tap's shape
        (streams: the tap's stream ids); shape_problems says what it repaired."""
        document, self.shape_problems = tap_shape(raw, streams)
        self._bookmarks = {k: dict(v) for k, v in document["bookmarks"].items()}
        self.currently_syncing = document["currently_syncing"]
        self._default_start_date = to_datetime(document.get("default_start_date"))
        self.lock = lock or threading.RLock()
        self._membership_passes: dict[str, MembershipPass] = {}

    def to_dict(self) -> dict[str, Any]:
        """A copy of the document: serialized after the lock is let go, while other threads
        change the document."""
        with self.lock:
            document = {"currently_syncing": self.currently_syncing, "bookmarks": copy.deepcopy(self._bookmarks)}
            if self._default_start_date is not None:
                document["default_start_date"] = format_datetime(self._default_start_date)
            return document

    def start_date(
        self, configured: datetime.datetime | None, run_began: datetime.datetime
    ) -> tuple[datetime.datetime, bool]:
        """Where streams without a bookmark start: the config's start_date (an aware
        datetime) if it has one; else the default the state keeps; else, on the first
        run, one year before it began, which the state then keeps.
        Returns (start date, whether the state had no default before)."""
        with self.lock:
            if configured is not None:
                return configured, False
            if self._default_start_date is not None:
                return self._default_start_date, False
            self._default_start_date = one_year_before(run_began)
            return self._default_start_date, True

    def drop_future_default(self, run_began: datetime.datetime) -> datetime.datetime | None:
        """A default_start_date later than the run's start is not trusted (a clock that was
        wrong, a hand edit): it is dropped, and returned, so that start_date() takes a new one
        as on a first run. None when it was not later."""
        with self.lock:
            future = self._default_start_date
            if future is None or future <= run_began:
                return None
            self._default_start_date = None
            return future

    def drop_future_bookmarks(self, run_began: datetime.datetime) -> list[tuple[str, str, str]]:
        """The future-bookmark rule: a time an entry gives its incremental scan (updated_at,
        or an interrupted scan's threshold or started_at) later than the run's start cannot
        be right, and filtering from it would skip every contact changed before it. Such an
        entry starts over (started_over) before any STATE is written, so the value is never
        written back. Returns [(stream id, which time, its value)] for each entry dropped."""
        dropped = []
        with self.lock:
            for stream_id, entry in list(self._bookmarks.items()):
                scan: dict[str, Any] = entry["scan"] if isinstance(entry.get("scan"), dict) else {}
                times = (
                    ("updated_at", entry.get("updated_at")),
                    ("scan threshold", scan.get("threshold")),
                    ("scan started_at", scan.get("started_at")),
                )
                for name, value in times:
                    moment = to_datetime(value)
                    if moment is not None and moment > run_began:
                        dropped.append((stream_id, name, str(value)))
                        kept = started_over(entry)
                        if kept is None:
                            del self._bookmarks[stream_id]
                        else:
                            self._bookmarks[stream_id] = kept
                        break
        return dropped

    def apply(self, changes: Iterable[StateChange]) -> None:
        """Make the changes, all under one taking of the lock."""
        with self.lock:
            for change in changes:
                self._apply(change)

    def _apply(self, change: StateChange) -> None:
        match change:
            case CompleteVersion(stream_id):
                self.complete_version(stream_id)
            case SaveIncrementalScan(stream_id, threshold, cursor, max_updated_at, started_at):
                self.save_incremental_scan(stream_id, threshold, cursor, max_updated_at, started_at)
            case FinishIncrementalScan(stream_id, next_threshold):
                self.finish_incremental_scan(stream_id, next_threshold)
            case SaveScanCursor(stream_id, cursor):
                self.save_scan_cursor(stream_id, cursor)
            case ForgetScanCursor(stream_id):
                self.forget_scan(stream_id)
            case ParentAdvanced(stream_id, parent_id, cursor):
                self._membership_passes[stream_id].advance(parent_id, cursor)
            case ParentDone(stream_id, parent_id):
                self._membership_passes[stream_id].done(parent_id)
            case ParentRestarted(stream_id, parent_id):
                self._membership_passes[stream_id].restart(parent_id)

    def set_currently_syncing(self, stream_id: str | None) -> None:
        with self.lock:
            self.currently_syncing = stream_id

    def entry(self, stream_id: str) -> dict[str, Any]:
        """A copy of a stream's entry, to read (tests, logs)."""
        with self.lock:
            return dict(self._bookmarks.get(stream_id) or {})

    def _entry(self, stream_id: str) -> dict[str, Any]:
        # Callers hold the lock.
        return self._bookmarks.setdefault(stream_id, {})

    # --- table versions -----------------------------------------------------------

    def begin_version(self, stream_id: str, now_ms: float) -> tuple[int, bool]:
        """(version, first) for a versioned full-table pass: the version of the last
        pass if it did not complete (its progress is kept), else a new one (the entry is
        reset to it). `first` is true when the stream has no entry at all yet."""
        with self.lock:
            entry = self._entry(stream_id)
            previous = version_number(entry.get("version"))
            if previous is not None and entry.get("complete") is False:
                return previous, False
            first = not entry
            version = next_version(previous, now_ms)
            entry.clear()
            entry.update({"version": version, "complete": False})
            return version, first

    def complete_version(self, stream_id: str) -> None:
        """The pass completed: only its version is kept."""
        with self.lock:
            entry = self._entry(stream_id)
            version = entry.get("version")
            entry.clear()
            entry.update({"version": version, "complete": True})

    # --- the contacts scan, incremental -------------------------------------------

    def incremental_scan(
        self, stream_id: str, start_date: datetime.datetime
    ) -> tuple[datetime.datetime, str | None, datetime.datetime | None, datetime.datetime | None]:
        """Where an incremental scan starts: (threshold, cursor, max_updated_at, started_at)
        of the interrupted scan if there is one, else (the updated_at bookmark or
        start_date, None, None, None). Times as aware datetimes."""
        with self.lock:
            entry = self._bookmarks.get(stream_id) or {}
            scan = entry.get("scan")  # an object or absent (tap_shape)
            if isinstance(scan, dict) and "threshold" in scan:
                # "bookmark": the name earlier versions gave the cursor (read, never written)
                cursor = scan["cursor"] if "cursor" in scan else scan.get("bookmark")
                return (
                    to_datetime(scan.get("threshold")) or start_date,
                    cursor,
                    to_datetime(scan.get("max_updated_at")),
                    to_datetime(scan.get("started_at")),
                )
            return to_datetime(entry.get("updated_at")) or start_date, None, None, None

    def save_incremental_scan(
        self,
        stream_id: str,
        threshold: datetime.datetime,
        cursor: str | None,
        max_updated_at: datetime.datetime | None,
        started_at: datetime.datetime | None,
    ) -> None:
        with self.lock:
            self._entry(stream_id)["scan"] = {
                "threshold": format_datetime(threshold),
                "cursor": cursor,
                "max_updated_at": format_datetime(max_updated_at) if max_updated_at else None,
                "started_at": format_datetime(started_at) if started_at else None,
            }

    def finish_incremental_scan(self, stream_id: str, next_threshold: datetime.datetime) -> None:
        """The scan completed: the bookmark moves to the next threshold; nothing else is kept."""
        with self.lock:
            entry = self._entry(stream_id)
            entry.clear()
            entry["updated_at"] = format_datetime(next_threshold)

    # --- a versioned pass reading the contacts scan --------------------------------

    def scan_cursor(self, stream_id: str) -> str | None:
        """The cursor a versioned pass's scan stopped after, or None (from the first page)."""
        with self.lock:
            scan = (self._bookmarks.get(stream_id) or {}).get("scan")
            return scan.get("cursor") if isinstance(scan, dict) else None

    def save_scan_cursor(self, stream_id: str, cursor: str | None) -> None:
        with self.lock:
            self._entry(stream_id)["scan"] = {"cursor": cursor}

    def forget_scan(self, stream_id: str) -> None:
        """Start the scan over (its cursor vanished, or another pass shares the scan from
        its first page). An incremental scan keeps its threshold, newest updated_at and
        start time: they stay true for a scan that reads more pages."""
        with self.lock:
            scan = self._entry(stream_id).get("scan")
            if isinstance(scan, dict):
                scan["cursor"] = None

    def reads_scan(self, stream_id: str) -> bool:
        """Whether the stream's pass in progress reads the contacts scan."""
        with self.lock:
            return isinstance((self._bookmarks.get(stream_id) or {}).get("scan"), dict)

    # --- a membership pass reading each parent's pages -----------------------------

    def reads_parents(self, stream_id: str) -> bool:
        """Whether the stream's pass in progress reads each parent's pages (a completed
        pass is in progress no more: begin_version starts the next one afresh)."""
        with self.lock:
            entry = self._bookmarks.get(stream_id) or {}
            return entry.get("complete") is not True and any(key in entry for key in MEMBERSHIP_PASS_KEYS)

    def drop_progress(self, stream_id: str) -> None:
        """Forget how far the pass in progress got (it restarts reading another way);
        its version stays."""
        with self.lock:
            entry = self._entry(stream_id)
            for key in MEMBERSHIP_PASS_KEYS + ("scan",):
                entry.pop(key, None)

    def membership_pass(self, stream_id: str, parent_ids: list[str]) -> "MembershipPass":
        """The stream's pass over these parents; the Parent* changes apply to it."""
        with self.lock:
            membership = MembershipPass(self, stream_id, parent_ids, dict(self._entry(stream_id)))
            self._membership_passes[stream_id] = membership
            return membership

    def save_membership_pass(
        self, stream_id: str, done_through: str | None, done_beyond: set[str], in_progress: dict[str, str]
    ) -> None:
        with self.lock:
            entry = self._entry(stream_id)
            entry["done_through"] = done_through
            entry["done_beyond"] = sorted(done_beyond)
            entry["in_progress"] = dict(in_progress)


class MembershipPass:
    """Which parents of a membership pass are done, and where the others stand.

    Parents are read in order of id, several at once. The entry keeps a watermark
    (every parent up to it is done), the few parents done beyond it, and the cursor of
    each parent in progress: small whatever the number of parents."""

    def __init__(self, state: State, stream_id: str, parent_ids: list[str], entry: dict[str, Any]) -> None:
        self._state = state
        self._stream_id = stream_id
        self.order = sorted(parent_ids)
        self.done_through = entry.get("done_through")
        self.done_beyond = set(entry.get("done_beyond") or [])
        self.in_progress = dict(entry.get("in_progress") or {})
        self._scans_left = len(self.todo())

    def scan_finished(self) -> bool:
        """One parent's scan ended; whether it was the last of this run's (the pass is then
        complete). Scans end on different workers: counted under the document's lock."""
        with self._state.lock:
            self._scans_left -= 1
            return self._scans_left == 0

    def is_done(self, parent_id: str) -> bool:
        return (self.done_through is not None and parent_id <= self.done_through) or parent_id in self.done_beyond

    def todo(self) -> list[str]:
        return [pid for pid in self.order if not self.is_done(pid)]

    def cursor(self, parent_id: str) -> str | None:
        with self._state.lock:
            return self.in_progress.get(parent_id)

    def advance(self, parent_id: str, cursor: str) -> None:
        with self._state.lock:
            self.in_progress[parent_id] = cursor
            self._save()

    def restart(self, parent_id: str) -> None:
        """The parent's saved cursor vanished: read it again from its first page."""
        with self._state.lock:
            self.in_progress.pop(parent_id, None)
            self._save()

    def done(self, parent_id: str) -> None:
        with self._state.lock:
            self.in_progress.pop(parent_id, None)
            self.done_beyond.add(parent_id)
            for pid in self.order:
                if self.done_through is not None and pid <= self.done_through:
                    continue
                if pid not in self.done_beyond:
                    break
                self.done_beyond.discard(pid)
                self.done_through = pid
            self._save()

    def _save(self) -> None:
        self._state.save_membership_pass(self._stream_id, self.done_through, self.done_beyond, self.in_progress)
