"""Progress people can read on stderr: a line every few seconds while the sync
runs, one when each stream ends, and a summary table at the end."""

import logging
import os
import threading
import time

from singer import metrics

from tap_autopilot.http.client import RequestStats
from tap_autopilot.values.cleaning import ValueChanges

LOGGER = logging.getLogger("tap_autopilot")

# A reporter blocked on a full stderr must not hold up a stop.
STOP_JOIN_SECONDS = 1.0

PROGRESS_INTERVAL_SECONDS = 10
# Seconds between progress lines, overriding PROGRESS_INTERVAL_SECONDS (tests, very long runs).
PROGRESS_INTERVAL_ENV = "TAP_AUTOPILOT_PROGRESS_SECONDS"


def progress_interval() -> float:
    """The progress interval: $TAP_AUTOPILOT_PROGRESS_SECONDS if it is a positive
    number of seconds, else PROGRESS_INTERVAL_SECONDS."""
    raw = os.environ.get(PROGRESS_INTERVAL_ENV)
    if raw:
        try:
            seconds = float(raw)
        except ValueError:
            seconds = None
        if seconds is not None and 0 < seconds < float("inf"):
            return seconds
        LOGGER.warning(
            "Ignoring %s=%r: not a positive number of seconds; using %s.",
            PROGRESS_INTERVAL_ENV,
            raw,
            PROGRESS_INTERVAL_SECONDS,
        )
    return PROGRESS_INTERVAL_SECONDS


class _StreamProgress:
    __slots__ = ("counted", "done", "pages", "read", "records", "total")

    def __init__(self) -> None:
        self.records = self.pages = self.read = self.counted = 0
        self.total: int | None = None
        self.done = False


class Progress:
    """Counters are updated under the output writer's lock; the reporter thread
    only reads them (a line slightly stale is fine)."""

    def __init__(
        self,
        stream_ids: list[str],
        request_stats: RequestStats,
        value_changes: ValueChanges,
        interval: float | None = None,
    ) -> None:
        self.streams = {stream_id: _StreamProgress() for stream_id in stream_ids}
        self.requests = request_stats
        self.value_changes = value_changes
        self.interval = progress_interval() if interval is None else interval
        self.started = time.monotonic()
        self._stop = threading.Event()
        self._count_lock = threading.Lock()
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        self._thread = threading.Thread(target=self._report_loop, name="progress", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        """No progress line after this returns: the reporter may be writing one when the event
        is set, and a line after the summary's header would read as part of the summary."""
        self._stop.set()
        reporter = self._thread
        if reporter is not None and reporter is not threading.current_thread():
            reporter.join(STOP_JOIN_SECONDS)

    def page(self, stream_id: str, records: int, items_read: int, total: int | None) -> None:
        stream = self.streams[stream_id]
        stream.records += records
        stream.pages += 1
        stream.read += items_read
        if total is not None:
            stream.total = total

    def records(self, stream_id: str, records: int) -> None:
        """Records written without a page read (completed_passes)."""
        self.streams[stream_id].records += records

    def stream_done(self, stream_id: str) -> None:
        stream = self.streams[stream_id]
        stream.done = True
        self._log_record_count(stream_id, stream)
        LOGGER.info(
            "%s: done, %s records from %s pages in %.1f s.",
            stream_id,
            f"{stream.records:,}",
            f"{stream.pages:,}",
            time.monotonic() - self.started,
        )

    def log_record_counts(self) -> None:
        """The record_count metric of every stream whose records are not all counted yet: when
        the sync ends early (stopped, failed), so that the metrics add up to the records written."""
        for stream_id, stream in self.streams.items():
            self._log_record_count(stream_id, stream)

    def _report_loop(self) -> None:
        while not self._stop.wait(self.interval):
            LOGGER.info("Progress: %s", self.line())
            for stream_id, stream in self.streams.items():
                if not stream.done:
                    self._log_record_count(stream_id, stream)

    def _log_record_count(self, stream_id: str, stream: _StreamProgress) -> None:
        """The standard Singer record_count metric: records since the last one.
        (Both the reporter thread and a stream's end log it: one at a time.)"""
        with self._count_lock:
            records = stream.records
            if records > stream.counted:
                metrics.log(
                    LOGGER,
                    metrics.Point(
                        "counter",
                        metrics.Metric.record_count,
                        records - stream.counted,
                        {metrics.Tag.endpoint: stream_id},
                    ),
                )
                stream.counted = records

    def line(self) -> str:
        elapsed = time.monotonic() - self.started
        parts = []
        for stream_id, stream in self.streams.items():
            if stream.done:
                continue
            text = f"{stream_id} {stream.records:,} records, {stream.pages:,} pages"
            if stream.total:
                fraction = min(1.0, stream.read / stream.total)
                text += f" ({fraction:.0%} of {stream.total:,}"
                if fraction > 0:
                    text += f", ETA {_duration(elapsed * (1 - fraction) / fraction)}"
                text += ")"
            parts.append(text)
        parts.append(self._requests_text())
        return " | ".join(parts)

    def _requests_text(self) -> str:
        return (
            f"{self.requests['requests']:,} requests, {self.requests['rate_limited']:,} throttled (429), "
            f"{self.requests['retries']:,} retries"
        )

    def summary(self) -> None:
        self.stop()
        self.log_record_counts()  # a stream that never ends (completed_passes) is counted here
        elapsed = time.monotonic() - self.started
        LOGGER.info("Sync summary (%s):", _duration(elapsed))
        LOGGER.info("  %-26s %12s %8s", "stream", "records", "pages")
        for stream_id, stream in self.streams.items():
            LOGGER.info("  %-26s %12s %8s", stream_id, f"{stream.records:,}", f"{stream.pages:,}")
        LOGGER.info("  %s", self._requests_text())
        self._changes_summary()

    def _changes_summary(self) -> None:
        """Values changed so that every warehouse accepts them, per stream and kind
        (invalid UTF-8: per endpoint, counted in pages). Nothing when none was."""
        totals = self.value_changes.totals()
        changes = [(stream_id, kind, count) for (stream_id, kind), count in totals.items()]
        repaired = self.requests.repaired_pages()
        changes += [(endpoint, "invalid UTF-8 pages", count) for endpoint, count in repaired.items()]
        if not changes:
            return
        LOGGER.info("  Values changed so that every warehouse accepts them (docs/values.md):")
        LOGGER.info("  %-26s %-24s %8s", "stream (endpoint)", "change", "count")
        for name, kind, count in changes:
            LOGGER.info("  %-26s %-24s %8s", name, kind, f"{count:,}")


def _duration(seconds: float) -> str:
    seconds = round(seconds)
    return f"{seconds // 3600}:{seconds // 60 % 60:02d}:{seconds % 60:02d}"
