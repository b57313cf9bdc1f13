"""The state-shape rule (state/shape.py): what a state given to the tap must look like, and
what starts over when it does not."""

import pytest

from tap_autopilot.state.document import (
    State,
)
from tap_autopilot.state.shape import tap_shape
from tap_autopilot.streams import STREAMS

from ..support import START, T0

TAP_STREAMS = list(STREAMS)


GOOD_CONTACTS = {"updated_at": "2024-01-01T00:00:00.000000Z"}


GOOD_LISTS = {"version": 17, "complete": True}


PASS_IN_PROGRESS = {
    "version": 5,
    "complete": False,
    "done_through": "a",
    "done_beyond": ["c"],
    "in_progress": {"b": "person_1"},
}


@pytest.mark.parametrize(
    ("raw", "problem"),
    [
        ({"foo": 1}, 'it has no "bookmarks" object (its keys: foo), so every stream starts over'),
        ({"bookmarks": []}, 'its "bookmarks" is [], not an object, so every stream starts over'),
        (
            {"bookmarks": {"users": {"since": "2024-01-01"}}},
            "its bookmarks are for streams this tap does not have (users), so every stream starts over",
        ),
        (
            {"bookmarks": {"contacts": "garbage", "lists": GOOD_LISTS}},
            'bookmarks.contacts is "garbage", not an object, so contacts starts over',
        ),
        (
            {"bookmarks": {"contacts": {"updated_at": "last tuesday"}, "lists": GOOD_LISTS}},
            'bookmarks.contacts.updated_at is "last tuesday", not a time, so contacts starts over',
        ),
        (
            {"bookmarks": {"contacts": GOOD_CONTACTS, "lists": {"version": "17", "complete": True}}},
            'bookmarks.lists.version is "17", not a table version (a whole number above 0), so lists starts over',
        ),
        (
            {"bookmarks": {"lists_contacts": {"version": 5, "complete": False, "done_beyond": 3}}},
            "bookmarks.lists_contacts.done_beyond is 3, not a list of ids, so lists_contacts starts over",
        ),
        (
            {"bookmarks": {"contacts": {"scan": {"threshold": 20240101, "cursor": "p"}}}},
            "bookmarks.contacts.scan.threshold is 20240101, not a time, so contacts starts over",
        ),
        (
            {"default_start_date": "soon", "bookmarks": {}},
            'its default_start_date is "soon", not a time, so a new one is taken (one year before this run)',
        ),
    ],
)
def test_state_shape_rule_names_what_is_wrong_and_what_starts_over(raw, problem):
    assert tap_shape(raw, TAP_STREAMS)[1] == [problem]


def test_state_shape_rule_keeps_every_entry_in_the_tap_s_shape_and_only_those():
    raw = {
        "currently_syncing": "lists",
        "default_start_date": "2023-01-01T00:00:00.000000Z",
        "bookmarks": {
            "contacts": "garbage",
            "lists": GOOD_LISTS,
            "smart_segments": {"version": 9, "complete": "yes"},  # its version is kept: versions only grow
            "lists_contacts": PASS_IN_PROGRESS,
        },
    }
    document, problems = tap_shape(raw, TAP_STREAMS)
    assert document == {
        "currently_syncing": "lists",
        "default_start_date": "2023-01-01T00:00:00.000000Z",
        "bookmarks": {
            "lists": GOOD_LISTS,
            "smart_segments": {"version": 9, "complete": True},
            "lists_contacts": PASS_IN_PROGRESS,
        },
    }
    assert [problem.rsplit(" so ", 1)[1] for problem in problems] == [
        "contacts starts over",
        "smart_segments starts over",
    ]
    state = State(raw, streams=TAP_STREAMS)
    assert state.begin_version("smart_segments", now_ms=5) == (10, False)  # above 9, no early ACTIVATE


@pytest.mark.parametrize(
    "raw",
    [
        {},
        None,
        {"bookmarks": {}},
        {"currently_syncing": None, "bookmarks": {"contacts": GOOD_CONTACTS, "lists": GOOD_LISTS}},
        {"bookmarks": {"contacts": {"version": 7, "complete": False, "scan": {"cursor": None}}}},
        {
            "bookmarks": {
                "contacts": {"scan": {"threshold": "2024-01-01T00:00:00Z", "bookmark": "p", "started_at": None}}
            }
        },
        {"bookmarks": {"contacts": GOOD_CONTACTS, "campaigns": "another tap's"}},  # not a stream of this tap: kept out
    ],
)
def test_state_shape_rule_finds_nothing_wrong_in_what_the_tap_writes(raw):
    assert tap_shape(raw, TAP_STREAMS)[1] == []


def test_state_shape_rule_reads_meltanos_singer_state_as_the_state_inside():
    inner = {"currently_syncing": None, "bookmarks": {"contacts": GOOD_CONTACTS}}
    document, problems = tap_shape({"singer_state": inner}, TAP_STREAMS)
    assert problems == [] and document == inner
    assert State({"singer_state": inner}).incremental_scan("contacts", START)[0] == T0
