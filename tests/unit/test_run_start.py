"""Where a run starts (run_start.py): the state given, repaired or not trusted (one WARNING
each), and the start date of the streams without a bookmark."""

import datetime
import logging

from tap_autopilot.run_start import start_date_for, trusted_state
from tap_autopilot.state.document import (
    State,
)

from .support import START, T0, UTC


def test_without_a_start_date_the_first_run_starts_a_year_before_later_runs_where_the_state_says(caplog):
    caplog.set_level(logging.INFO, logger="tap_autopilot")
    state = State({})
    assert start_date_for({}, state, T0) == datetime.datetime(2023, 1, 1, tzinfo=UTC)
    assert [r.getMessage() for r in caplog.records] == [
        "No start_date in the config: starting from 2023-01-01T00:00:00.000000Z, one year before this first run "
        "began; the state keeps it (default_start_date), so later runs start streams without a bookmark from it too."
    ]
    caplog.clear()
    assert start_date_for({"start_date": ""}, state, T0 + datetime.timedelta(days=30)) == datetime.datetime(
        2023, 1, 1, tzinfo=UTC
    )
    assert [r.getMessage() for r in caplog.records] == [
        "No start_date in the config: streams without a bookmark start from 2023-01-01T00:00:00.000000Z, the "
        "state's default_start_date."
    ]
    caplog.clear()
    assert start_date_for({"start_date": "2015-01-01T00:00:00Z"}, state, T0) == START
    assert caplog.records == []


def test_a_state_that_is_not_this_tap_s_shape_is_one_warning_before_the_sync_starts_over(caplog):
    caplog.set_level(logging.INFO, logger="tap_autopilot")
    raw = {"bookmarks": {"contacts": "garbage", "lists": {"version": "x"}}}
    state, _ = trusted_state(raw, {"start_date": "2015-01-01T00:00:00Z"}, T0)
    assert [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING] == [
        'The state is not in this tap\'s shape: bookmarks.contacts is "garbage", not an object, so contacts starts '
        'over; bookmarks.lists.version is "x", not a table version (a whole number above 0), so lists starts over.'
    ]
    assert state.to_dict()["bookmarks"] == {}


def test_a_future_contacts_bookmark_is_one_warning_naming_the_stream_and_the_value(caplog):
    caplog.set_level(logging.INFO, logger="tap_autopilot")
    raw = {"bookmarks": {"contacts": {"updated_at": "2030-01-01T00:00:00Z"}}}
    state, start_date = trusted_state(raw, {"start_date": "2015-01-01T00:00:00Z"}, T0)
    assert start_date == START
    assert [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING] == [
        "contacts: the state's updated_at 2030-01-01T00:00:00Z is later than this run's start (2024-01-01T00:00:00Z), "
        "so it is not trusted: the stream starts over, from the start date 2015-01-01T00:00:00.000000Z (nothing is "
        "skipped)."
    ]
    assert state.to_dict()["bookmarks"] == {}


def test_a_future_default_start_date_is_replaced_by_one_year_before_the_run(caplog):
    caplog.set_level(logging.INFO, logger="tap_autopilot")
    state = State({"default_start_date": "2030-01-01T00:00:00Z", "bookmarks": {}})
    assert start_date_for({}, state, T0) == datetime.datetime(2023, 1, 1, tzinfo=UTC)
    assert state.to_dict()["default_start_date"] == "2023-01-01T00:00:00.000000Z"
    assert [(r.levelname, r.getMessage()) for r in caplog.records] == [
        (
            "WARNING",
            "The state's default_start_date 2030-01-01T00:00:00.000000Z is later than this run's start "
            "(2024-01-01T00:00:00Z), so it is not trusted: streams without a bookmark start from "
            "2023-01-01T00:00:00.000000Z, one year before this run, which the state keeps from now on.",
        )
    ]


def test_a_future_default_start_date_is_dropped_when_the_config_has_a_start_date(caplog):
    state = State({"default_start_date": "2030-01-01T00:00:00Z", "bookmarks": {}})
    assert start_date_for({"start_date": "2015-01-01T00:00:00Z"}, state, T0) == START
    assert "default_start_date" not in state.to_dict()
    assert [r.getMessage().rsplit(": ", 1)[1] for r in caplog.records] == [
        "it is dropped (the config's start_date applies)."
    ]
