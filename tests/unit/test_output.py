"""The output writer (output.py): RECORD lines, STATE after each change, the first pass's
ACTIVATE_VERSION, the output held until the API first answers; through a runner."""

import datetime
import re
import time

import orjson
import pytest

from tap_autopilot.state.changes import CompleteVersion
from tap_autopilot.streams.base import (
    VERSION_COLUMN,
    PassCompleted,
)

from .fakes import (
    DOCS,
    FakeClient,
    messages,
)
from .fakes import runner as context


def test_state_names_the_first_stream_not_yet_complete_then_none():
    ctx = context(FakeClient(DOCS), ["lists", "smart_segments"])
    ctx.output.complete(PassCompleted("lists", CompleteVersion("lists")))
    assert messages(ctx)[-1]["value"]["currently_syncing"] == "smart_segments"
    ctx.output.complete(PassCompleted("smart_segments", CompleteVersion("smart_segments")))
    assert messages(ctx)[-1]["value"]["currently_syncing"] is None
    assert ctx.progress.streams["lists"].done


def test_a_first_pass_activates_its_version_up_front_and_versions_are_the_clock_in_ms():
    ctx = context(FakeClient(DOCS), ["lists"])
    before = int(time.time() * 1000)
    version = ctx.begin_version("lists")
    assert before <= version <= time.time() * 1000
    assert messages(ctx) == [{"type": "ACTIVATE_VERSION", "stream": "lists", "version": version}]
    ctx.state.complete_version("lists")
    assert ctx.begin_version("lists") > version and len(messages(ctx)) == 1, "only the very first pass"


def test_records_carry_the_version_and_the_version_column_only_when_selected():
    ctx = context(FakeClient(DOCS), ["lists"])
    ctx.selected["lists"].columns.pop(VERSION_COLUMN)
    line = orjson.loads(ctx.record_line_maker("lists", 7)({"list_id": "list_a"}))
    assert line["version"] == 7 and line["record"] == {"list_id": "list_a"}
    assert datetime.datetime.fromisoformat(line["time_extracted"]).tzinfo is not None
    unversioned = orjson.loads(context(FakeClient(DOCS), ["lists"]).record_line_maker("lists")({"list_id": "x"}))
    assert "version" not in unversioned and unversioned["record"] == {"list_id": "x"}


class FirstAnswerClient(FakeClient):
    """Has not answered yet: its first request decides (the real client's `answered`)."""

    answered = False

    def __init__(self, docs, fail_with=None):
        super().__init__(docs)
        self.fail_with = fail_with

    def get(self, path, data_key=None, expect_list=False):
        if self.fail_with is not None:
            raise self.fail_with
        self.answered = True
        return super().get(path, data_key, expect_list)

    def paginate(self, path, data_key, cursor=None, ahead_from=None):
        if self.fail_with is not None:
            raise self.fail_with
        self.answered = True
        return super().paginate(path, data_key, cursor, ahead_from)


def _comparable(ctx):
    """The messages without what differs from run to run (the clock's times and versions)."""
    text = re.sub(rb'"time_extracted":"[^"]*"', b"", ctx.output.out.getvalue())
    return re.sub(rb"\b1\d{12}\b", b"V", text)  # a version: the clock in ms


def test_the_output_is_held_until_the_api_first_answers_then_written_in_the_same_order():
    held = context(FirstAnswerClient(DOCS), ["lists"])
    assert not held.output_started
    held.run()
    plain = context(FakeClient(DOCS), ["lists"])
    plain.run()
    assert held.output_started and _comparable(held) == _comparable(plain)
    # SCHEMA and the first pass's ACTIVATE_VERSION, written before the listing was asked for, come first
    assert [m["type"] for m in messages(held)][:3] == ["SCHEMA", "ACTIVATE_VERSION", "RECORD"]


def test_a_run_whose_first_request_fails_writes_nothing_at_all():
    from tap_autopilot.errors import ConfigError

    failure = ConfigError("Config 'base_url' http://x answered 404 for /contacts")
    ctx = context(FirstAnswerClient(DOCS, fail_with=failure), ["contacts", "lists", "lists_contacts"])
    with pytest.raises(ConfigError, match="base_url"):
        ctx.run()
    assert ctx.output.out.getvalue() == b"" and not ctx.output_started


def test_a_stop_before_the_api_answered_writes_nothing():
    ctx = context(FirstAnswerClient(DOCS), ["lists"], state={"bookmarks": {"lists": {"version": 3, "complete": True}}})
    ctx.stop(KeyboardInterrupt())
    assert ctx.output.out.getvalue() == b"" and not ctx.output_started
    ctx.output.lock.release()
