"""Progress lines and the end-of-run summary (progress.py): periodic lines on their own thread."""

import logging
import threading

from tap_autopilot.http.client import RequestStats
from tap_autopilot.progress import Progress
from tap_autopilot.values.cleaning import ValueChanges


def test_an_early_end_counts_every_stream_s_records_not_counted_yet_once(caplog):
    caplog.set_level(logging.INFO, logger="tap_autopilot")
    progress = Progress(["contacts", "lists", "lists_contacts"], RequestStats(), ValueChanges(), interval=3600)
    progress.page("lists", 3, 3, 3)
    progress.stream_done("lists")  # counted at its end
    progress.page("contacts", 100, 100, None)
    progress.page("contacts", 40, 40, None)
    progress.log_record_counts()
    progress.log_record_counts()  # nothing new: nothing more
    counts = [r.getMessage() for r in caplog.records if "record_count" in r.getMessage()]
    assert len(counts) == 2
    assert '"value": 3' in counts[0] and '"lists"' in counts[0]
    assert '"value": 140' in counts[1] and '"contacts"' in counts[1]  # in progress: counted too
    assert not any("lists_contacts" in line for line in counts)  # no records, no metric


class _SignallingEvent(threading.Event):
    """An Event that also says when it was set."""

    def __init__(self) -> None:
        super().__init__()
        self.was_set = threading.Event()

    def set(self) -> None:
        super().set()
        self.was_set.set()


def test_no_progress_line_comes_after_the_summary_begins(caplog):
    """The reporter may be writing a line when the summary stops it: stop() waits for that line,
    so that it does not land inside the summary table (a scheduler's log reader parses it)."""
    caplog.set_level(logging.INFO, logger="tap_autopilot")
    progress = Progress(["contacts"], RequestStats(), ValueChanges(), interval=0.001)
    in_line, release = threading.Event(), threading.Event()
    line = progress.line

    def slow_line() -> str:
        in_line.set()
        release.wait(5)
        return line()

    progress.line = slow_line  # type: ignore[method-assign]
    stop = progress._stop = _SignallingEvent()
    progress.start()
    assert in_line.wait(5)
    summarizing = threading.Thread(target=progress.summary)
    summarizing.start()
    assert stop.was_set.wait(5)
    release.set()  # the reporter writes its line now, while the summary has begun
    summarizing.join(5)
    messages = [record.getMessage() for record in caplog.records]
    header = next(i for i, message in enumerate(messages) if message.startswith("Sync summary"))
    assert [m for m in messages[header:] if m.startswith("Progress:")] == []


def test_records_without_pages_are_counted_in_the_summary_and_its_metric(caplog):
    caplog.set_level(logging.INFO, logger="tap_autopilot")
    progress = Progress(["lists", "completed_passes"], RequestStats(), ValueChanges(), interval=3600)
    progress.page("lists", 2, 2, 2)
    progress.stream_done("lists")
    progress.records("completed_passes", 1)  # never ends: it follows the other streams' passes
    progress.summary()
    lines = [r.getMessage() for r in caplog.records]
    counts = [line for line in lines if "record_count" in line]
    assert len(counts) == 2 and '"value": 1' in counts[1] and '"completed_passes"' in counts[1]
    row = next(line for line in lines if line.strip().startswith("completed_passes"))
    assert row.split() == ["completed_passes", "1", "0"]
