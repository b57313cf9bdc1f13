"""Progress lines and the end-of-run summary (progress.py)."""

import logging

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
