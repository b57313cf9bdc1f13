"""completed_passes (streams/passes.py): what the stream is, and the row of a completed pass.
The runner writes its records: tests/unit/test_runner.py, the completed passes rule."""

import datetime

from tap_autopilot.streams.base import INCREMENTAL, NOTHING
from tap_autopilot.streams.passes import CompletedPasses, completed_pass

from ..fakes import FakeClient, FakeRun


def test_completed_passes_is_keyed_by_stream_and_version_and_comes_from_the_run():
    stream = CompletedPasses()
    assert stream.key_properties == ["stream_name", "table_version"]
    assert stream.replication_methods == (INCREMENTAL,) and stream.replication_key == "completed_at"
    assert stream.from_the_run and stream.listings_read() == ()


def test_completed_passes_requests_nothing_of_its_own():
    client = FakeClient([])
    assert CompletedPasses().sync(FakeRun(client, ["completed_passes"])) is NOTHING
    assert client.requests == []


def test_a_completed_pass_row_names_the_stream_its_version_and_when():
    now = datetime.datetime(2026, 1, 2, 3, 4, 5, tzinfo=datetime.UTC)
    assert completed_pass("lists_contacts", 17, now) == {
        "stream_name": "lists_contacts",
        "table_version": 17,
        "completed_at": now,
    }
