"""The rules of the state document (tap_autopilot/state/document.py), one test each, no server."""

import datetime
import json
import logging
import threading
import time

import pytest

from tap_autopilot.run_start import start_date_for, trusted_state
from tap_autopilot.state.document import (
    MembershipPass,
    State,
    next_version,
    one_year_before,
    version_number,
)
from tap_autopilot.state.reset import NoBookmarkError, StateFileError, reset_stream
from tap_autopilot.state.shape import tap_shape
from tap_autopilot.streams import STREAMS
from tap_autopilot.streams.contacts import CLOCK_SKEW, next_threshold

UTC = datetime.UTC
T0 = datetime.datetime(2024, 1, 1, tzinfo=UTC)
START = datetime.datetime(2015, 1, 1, tzinfo=UTC)


def at(minutes):
    return T0 + datetime.timedelta(minutes=minutes)


# ---- the next contacts threshold -------------------------------------------------------------


def test_next_threshold_stays_when_nothing_was_seen():
    assert next_threshold(at(0), None, at(100)) == at(0)


def test_next_threshold_is_the_newest_updated_at_seen_before_the_scan_began():
    assert next_threshold(at(0), at(30), at(100)) == at(30)


def test_next_threshold_never_passes_the_scan_start_less_the_clock_skew():
    # A contact changed during the scan, on a page already read, has updated_at after the
    # start: the next scan must take it, so the threshold stops at start - skew.
    assert next_threshold(at(0), at(200), at(100)) == at(100) - CLOCK_SKEW


def test_next_threshold_never_goes_below_the_current_one():
    assert next_threshold(at(50), at(20), at(100)) == at(50)
    assert next_threshold(at(99), at(200), at(100)) == at(99)  # start - skew is below it


def test_next_threshold_without_a_start_time_is_the_newest_seen():
    assert next_threshold(at(0), at(30), None) == at(30)


def test_next_threshold_never_passes_the_scan_start_even_from_a_threshold_beyond_it():
    """docs/state.md's promise, whatever the scan filtered with: a threshold ahead of the
    API's clock (the tap's clock ahead of it) is not saved as the bookmark."""
    assert next_threshold(at(150), None, at(100)) == at(100)
    assert next_threshold(at(150), at(160), at(100)) == at(100)


# ---- table versions ------------------------------------------------------------------------


def test_table_versions_never_go_down_when_the_clock_is_set_back():
    state = State({"bookmarks": {"lists": {"version": 5_000, "complete": True}}})
    version, first = state.begin_version("lists", now_ms=1_000)  # clock behind the last version
    assert version == 5_001 and not first


def test_a_new_version_is_the_clock_when_it_is_ahead():
    assert next_version(5_000, 9_000) == 9_000
    assert next_version(None, 9_000) == 9_000


def test_resume_of_an_interrupted_pass_keeps_its_version_and_progress():
    entry = {
        "version": 5_000,
        "complete": False,
        "done_through": "b",
        "done_beyond": ["d"],
        "in_progress": {"c": "person_9"},
    }
    state = State({"bookmarks": {"lists_contacts": dict(entry)}})
    assert state.begin_version("lists_contacts", now_ms=9_000) == (5_000, False)
    assert state.entry("lists_contacts") == entry


def test_a_completed_pass_gets_a_new_version_and_an_empty_entry():
    state = State({"bookmarks": {"lists": {"version": 5_000, "complete": True}}})
    assert state.begin_version("lists", now_ms=9_000) == (9_000, False)
    assert state.entry("lists") == {"version": 9_000, "complete": False}


def test_only_a_stream_without_any_entry_is_first():
    state = State({"bookmarks": {"contacts": {"updated_at": "2024-01-01T00:00:00.000000Z"}}})
    assert state.begin_version("lists", now_ms=9_000) == (9_000, True)
    # contacts switched to FULL_TABLE: not first, so no ACTIVATE_VERSION empties its table up front
    assert state.begin_version("contacts", now_ms=9_000) == (9_000, False)


@pytest.mark.parametrize(
    "value, expected", [(5, 5), (5.0, 5), (5.5, None), (0, None), (-3, None), (True, None), ("5", None), (None, None)]
)
def test_unusable_versions_in_state_are_ignored(value, expected):
    assert version_number(value) == expected


def test_completing_a_pass_keeps_only_its_version():
    state = State(
        {
            "bookmarks": {
                "x": {
                    "version": 7,
                    "complete": False,
                    "scan": {"cursor": "p"},
                    "done_through": "a",
                    "done_beyond": [],
                    "in_progress": {},
                }
            }
        }
    )
    state.complete_version("x")
    assert state.entry("x") == {"version": 7, "complete": True}


# ---- the contacts scan (incremental) --------------------------------------------------------------


def test_incremental_scan_shape_while_it_runs_and_after():
    state = State({})
    assert state.incremental_scan("contacts", START) == (START, None, None, None)
    state.save_incremental_scan("contacts", at(0), "person_5", at(10), at(20))
    assert state.to_dict()["bookmarks"]["contacts"] == {
        "scan": {
            "threshold": "2024-01-01T00:00:00.000000Z",
            "cursor": "person_5",
            "max_updated_at": "2024-01-01T00:10:00.000000Z",
            "started_at": "2024-01-01T00:20:00.000000Z",
        }
    }
    assert state.incremental_scan("contacts", START) == (at(0), "person_5", at(10), at(20))
    state.finish_incremental_scan("contacts", at(15))
    assert state.to_dict()["bookmarks"]["contacts"] == {"updated_at": "2024-01-01T00:15:00.000000Z"}
    assert state.incremental_scan("contacts", START) == (at(15), None, None, None)


def test_an_incremental_scan_saved_by_earlier_versions_resumes():
    state = State(
        {
            "bookmarks": {
                "contacts": {
                    "scan": {
                        "threshold": "2024-01-01T00:00:00Z",
                        "bookmark": "person_5",
                        "max_updated_at": None,
                        "started_at": None,
                    }
                }
            }
        }
    )
    assert state.incremental_scan("contacts", START) == (at(0), "person_5", None, None)


def test_a_full_table_scan_is_not_resumed_as_an_incremental_one():
    # No threshold: its pages before the cursor were not filtered by one; start over.
    state = State({"bookmarks": {"contacts": {"version": 7, "complete": False, "scan": {"cursor": "person_5"}}}})
    assert state.incremental_scan("contacts", START) == (START, None, None, None)


def test_restarting_an_incremental_scan_keeps_its_threshold_and_start():
    state = State({})
    state.save_incremental_scan("contacts", at(0), "person_5", at(10), at(20))
    state.forget_scan("contacts")
    assert state.incremental_scan("contacts", START) == (at(0), None, at(10), at(20))


def test_a_scan_entry_that_is_not_an_object_starts_the_scan_over():
    state = State({"bookmarks": {"contacts": {"scan": "x"}}})
    assert state.incremental_scan("contacts", START) == (START, None, None, None)
    assert state.shape_problems == ['bookmarks.contacts.scan is "x", not an object, so contacts starts over']


# ---- a versioned pass over the contacts scan ---------------------------------------------------


def test_versioned_scan_shape():
    state = State({})
    state.begin_version("lists_contacts", now_ms=9_000)
    assert not state.reads_scan("lists_contacts")
    state.save_scan_cursor("lists_contacts", "person_5")
    assert state.entry("lists_contacts") == {"version": 9_000, "complete": False, "scan": {"cursor": "person_5"}}
    assert state.scan_cursor("lists_contacts") == "person_5" and state.reads_scan("lists_contacts")
    state.complete_version("lists_contacts")
    assert state.entry("lists_contacts") == {"version": 9_000, "complete": True}


def test_switching_how_a_pass_reads_drops_its_progress_not_its_version():
    state = State(
        {
            "bookmarks": {
                "lists_contacts": {
                    "version": 7,
                    "complete": False,
                    "done_through": "a",
                    "done_beyond": [],
                    "in_progress": {"b": "p"},
                }
            }
        }
    )
    assert state.reads_parents("lists_contacts")
    state.drop_progress("lists_contacts")
    assert state.entry("lists_contacts") == {"version": 7, "complete": False}


# ---- the membership watermark ----------------------------------------------------------------


def membership(entry=None, parents=("a", "b", "c", "d", "e")):
    state = State({"bookmarks": {"m": dict(entry or {}, version=1, complete=False)}})
    return state, state.membership_pass("m", list(parents))


def test_watermark_moves_only_over_parents_done_in_order():
    state, progress = membership()
    progress.done("b")
    assert state.entry("m")["done_through"] is None and state.entry("m")["done_beyond"] == ["b"]
    progress.done("a")
    assert state.entry("m")["done_through"] == "b" and state.entry("m")["done_beyond"] == []
    progress.done("d")
    assert (state.entry("m")["done_through"], state.entry("m")["done_beyond"]) == ("b", ["d"])
    progress.done("c")
    assert (state.entry("m")["done_through"], state.entry("m")["done_beyond"]) == ("d", [])


def test_parents_in_progress_keep_their_cursor_until_done():
    state, progress = membership()
    progress.advance("c", "person_1")
    progress.advance("a", "person_2")
    assert state.entry("m")["in_progress"] == {"c": "person_1", "a": "person_2"}
    progress.done("a")
    assert state.entry("m")["in_progress"] == {"c": "person_1"}
    progress.restart("c")  # its cursor vanished: from its first page again
    assert state.entry("m")["in_progress"] == {} and progress.cursor("c") is None


def test_a_resumed_membership_pass_skips_what_was_done():
    _, progress = membership({"done_through": "b", "done_beyond": ["d"], "in_progress": {"c": "person_3"}})
    assert progress.todo() == ["c", "e"]
    assert progress.cursor("c") == "person_3" and progress.cursor("e") is None


def test_membership_pass_shape():
    state, progress = membership(parents=("x", "y"))
    progress.advance("y", "person_1")
    assert state.entry("m") == {
        "version": 1,
        "complete": False,
        "done_through": None,
        "done_beyond": [],
        "in_progress": {"y": "person_1"},
    }
    assert isinstance(progress, MembershipPass)


# ---- every change under the output lock ------------------------------------------------------


class CountingLock:
    """An RLock that counts how often it was taken."""

    def __init__(self):
        self._lock = threading.RLock()
        self.taken = 0

    def __enter__(self):
        self._lock.acquire()
        self.taken += 1
        return self

    def __exit__(self, *exc):
        self._lock.release()


# Every way to change the document: (state, a membership pass) -> None.
CHANGES = {
    "begin_version": lambda s, m: s.begin_version("x", 1),
    "complete_version": lambda s, m: s.complete_version("x"),
    "save_incremental_scan": lambda s, m: s.save_incremental_scan("contacts", T0, "p", None, None),
    "finish_incremental_scan": lambda s, m: s.finish_incremental_scan("contacts", T0),
    "save_scan_cursor": lambda s, m: s.save_scan_cursor("x", "p"),
    "forget_scan": lambda s, m: s.forget_scan("x"),
    "drop_progress": lambda s, m: s.drop_progress("x"),
    "set_currently_syncing": lambda s, m: s.set_currently_syncing("x"),
    "membership advance": lambda s, m: m.advance("a", "p"),
    "membership done": lambda s, m: m.done("a"),
    "membership restart": lambda s, m: m.restart("a"),
}


@pytest.mark.parametrize("change", sorted(CHANGES))
def test_every_change_to_the_state_takes_the_output_lock(change):
    lock = CountingLock()
    state = State({}, lock=lock)  # type: ignore[arg-type]  # a stand-in for the RLock
    membership_pass = state.membership_pass("m", ["a"])
    before = lock.taken
    CHANGES[change](state, membership_pass)
    assert lock.taken > before


def test_the_document_is_plain_json():
    entry = {"updated_at": "2024-01-01T00:00:00Z"}
    state = State({"currently_syncing": "contacts", "bookmarks": {"contacts": entry, "bad": 3}})
    assert json.loads(json.dumps(state.to_dict())) == {
        "currently_syncing": "contacts",
        "bookmarks": {"contacts": entry},
    }


# ---- the default start date ------------------------------------------------------


def test_without_a_configured_start_date_the_first_run_starts_a_year_before_it_began_and_keeps_it():
    state = State({})
    began = datetime.datetime(2026, 12, 6, 2, 13, 58, 123456, tzinfo=UTC)
    assert state.start_date(None, began) == (datetime.datetime(2025, 12, 6, 2, 13, 58, tzinfo=UTC), True)
    kept = State(json.loads(json.dumps(state.to_dict())))
    later = began + datetime.timedelta(days=40)
    assert kept.start_date(None, later) == (datetime.datetime(2025, 12, 6, 2, 13, 58, tzinfo=UTC), False)
    assert kept.to_dict()["default_start_date"] == "2025-12-06T02:13:58.000000Z"


def test_a_configured_start_date_wins_and_stores_nothing():
    state = State({})
    assert state.start_date(START, T0) == (START, False)
    assert "default_start_date" not in state.to_dict()


def test_one_year_before_29_february_is_28_february():
    assert one_year_before(datetime.datetime(2028, 2, 29, 12, tzinfo=UTC)) == datetime.datetime(
        2027, 2, 28, 12, tzinfo=UTC
    )


# ---- resetting one stream in a state file -----------------------------------------

STATE_TEXT = (
    '{"currently_syncing": null, "bookmarks": {"contacts": {"updated_at": "2026-01-01T00:00:00.000000Z"},'
    ' "lists": {"version": 17, "complete": true},\n  "smart_segments": {"version": 18, "complete": true}}}\n'
)


@pytest.mark.parametrize("stream", ["contacts", "lists", "smart_segments"])
def test_reset_removes_exactly_the_stream_entry_and_keeps_every_other_byte(stream):
    after = reset_stream(STATE_TEXT, stream)
    before = json.loads(STATE_TEXT)
    del before["bookmarks"][stream]
    assert json.loads(after) == before
    for name, entry in before["bookmarks"].items():  # the other entries' text is untouched
        assert f'"{name}": {json.dumps(entry)}' in after
    assert len(STATE_TEXT) - len(after) >= len(json.dumps(json.loads(STATE_TEXT)["bookmarks"][stream]))


def test_reset_reads_meltanos_state_too():
    text = json.dumps({"singer_state": json.loads(STATE_TEXT)}, indent=2)
    assert "lists" not in json.loads(reset_stream(text, "lists"))["singer_state"]["bookmarks"]


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("not json", "is not valid JSON"),
        ("[]", "does not hold a JSON object"),
        ('{"bookmarks": {}}', "has no bookmark for 'contacts'"),
        # A repeated key: json.loads keeps the last, the text edit would cut the first.
        ('{"bookmarks": {}, "bookmarks": {"contacts": {}}}', "holds the key 'bookmarks' twice"),
        ('{"bookmarks": {"contacts": {"a": 1}, "contacts": {}}}', "holds the key 'contacts' twice"),
        # Not this tap's state (the config given as --state): refused, not "nothing to reset".
        ('{"api_key": "x", "start_date": "2020-01-01"}', "has no 'bookmarks' and keys this tap never writes"),
        ('{"bookmarks": ["contacts"]}', "'bookmarks' that is not an object"),
    ],
)
def test_reset_refuses_what_it_cannot_change(text, message):
    with pytest.raises(StateFileError, match=message):
        reset_stream(text, "contacts")


def test_the_smallest_usable_version_is_1_and_a_first_version_is_above_0():
    assert version_number(1) == 1 and version_number(0.5) is None
    assert next_version(None, 0) == 1 and next_version(0, 0) == 1


@pytest.mark.parametrize("raw", [None, [], "state", 7])
def test_a_state_that_is_not_an_object_starts_empty(raw):
    state = State(raw)
    assert state.to_dict() == {"currently_syncing": None, "bookmarks": {}}


def test_dropping_a_pass_s_progress_forgets_its_scan_and_its_parents_but_keeps_its_version():
    state = State(
        {
            "bookmarks": {
                "lists_contacts": {
                    "version": 42,
                    "complete": False,
                    "scan": {"cursor": "person_0002"},
                    "done_through": "list_a",
                    "done_beyond": ["list_c"],
                    "in_progress": {"list_b": "person_0001"},
                }
            }
        }
    )
    state.drop_progress("lists_contacts")
    assert state.entry("lists_contacts") == {"version": 42, "complete": False}
    assert not state.reads_scan("lists_contacts") and not state.reads_parents("lists_contacts")


@pytest.mark.parametrize(
    ("text", "stream", "after"),
    [
        ('{"bookmarks": {"contacts": {"x": 1}}}', "contacts", '{"bookmarks": {}}'),
        ('{"bookmarks": {"contacts": {"x": 1}, "lists": {"y": 2}}}', "contacts", '{"bookmarks": {"lists": {"y": 2}}}'),
        ('{"bookmarks": {"contacts": {"x": 1}, "lists": {"y": 2}}}', "lists", '{"bookmarks": {"contacts": {"x": 1}}}'),
        # compact, as json.dumps(separators=(",", ":")) writes it
        ('{"bookmarks":{"contacts":{"x":1},"lists":{"y":2}}}', "contacts", '{"bookmarks":{"lists":{"y":2}}}'),
        ('{"bookmarks":{"contacts":{"x":1},"lists":{"y":2}}}', "lists", '{"bookmarks":{"contacts":{"x":1}}}'),
    ],
)
def test_reset_of_the_only_first_or_last_entry_leaves_valid_json(text, stream, after):
    assert reset_stream(text, stream) == after


def test_reset_of_a_state_without_bookmarks_says_so():
    with pytest.raises(NoBookmarkError, match=r"^has no bookmark for 'contacts'"):
        reset_stream('{"currently_syncing": null}', "contacts")


def test_reset_refusals_other_than_no_bookmark_are_not_taken_for_nothing_to_reset():
    with pytest.raises(StateFileError) as raised:
        reset_stream('{"foo": 1}', "contacts")
    assert not isinstance(raised.value, NoBookmarkError)


def test_reset_refuses_a_state_that_is_not_an_object_in_words():
    with pytest.raises(StateFileError) as raised:
        reset_stream("[]", "contacts")
    assert str(raised.value) == "does not hold a JSON object"


def test_one_year_before_is_in_utc_whatever_the_machine_s_time_zone(monkeypatch):
    monkeypatch.setenv("TZ", "Asia/Tokyo")
    time.tzset()
    try:
        moment = datetime.datetime(2026, 3, 1, 2, 30, tzinfo=datetime.timezone(datetime.timedelta(hours=5)))
        assert one_year_before(moment) == datetime.datetime(2025, 2, 28, 21, 30, tzinfo=UTC)
        assert one_year_before(moment).utcoffset() == datetime.timedelta(0)
    finally:
        monkeypatch.undo()
        time.tzset()


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


def test_a_completed_pass_reads_no_parents_whatever_keys_it_kept():
    """The sync decides how lists_contacts reads before begin_version starts the next pass: a
    completed entry (hand-edited to keep progress keys) must not look like a pass in progress."""
    state = State({"bookmarks": {"lists_contacts": {"version": 7, "complete": True, "done_through": "a"}}})
    assert not state.reads_parents("lists_contacts")


# ---- the state-shape rule (state_shape.tap_shape) ---------------------------------------

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


def test_a_state_that_is_not_this_tap_s_shape_is_one_warning_before_the_sync_starts_over(caplog):
    caplog.set_level(logging.INFO, logger="tap_autopilot")
    raw = {"bookmarks": {"contacts": "garbage", "lists": {"version": "x"}}}
    state, _ = trusted_state(raw, {"start_date": "2015-01-01T00:00:00Z"}, T0)
    assert [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING] == [
        'The state is not in this tap\'s shape: bookmarks.contacts is "garbage", not an object, so contacts starts '
        'over; bookmarks.lists.version is "x", not a table version (a whole number above 0), so lists starts over.'
    ]
    assert state.to_dict()["bookmarks"] == {}


# ---- the future-bookmark rule ---------------------------------------------------------------


@pytest.mark.parametrize(
    ("entry", "which"),
    [
        ({"updated_at": "2030-01-01T00:00:00Z"}, "updated_at"),
        ({"scan": {"threshold": "2030-01-01T00:00:00Z", "cursor": "p", "max_updated_at": None}}, "scan threshold"),
        (
            {"scan": {"threshold": "2023-01-01T00:00:00Z", "cursor": "p", "started_at": "2030-01-01T00:00:00Z"}},
            "scan started_at",
        ),
    ],
)
def test_future_bookmark_rule_drops_a_contacts_time_later_than_the_run_s_start(entry, which):
    state = State({"bookmarks": {"contacts": entry, "lists": dict(GOOD_LISTS)}})
    assert state.drop_future_bookmarks(run_began=T0) == [("contacts", which, "2030-01-01T00:00:00Z")]
    assert state.incremental_scan("contacts", START) == (START, None, None, None)  # from the start date, page 1
    assert "contacts" not in state.to_dict()["bookmarks"]  # never written back
    assert state.entry("lists") == GOOD_LISTS


def test_future_bookmark_rule_trusts_a_time_up_to_the_run_s_start():
    entry = {"scan": {"threshold": "2023-12-31T00:00:00Z", "cursor": "p", "started_at": "2024-01-01T00:00:00Z"}}
    state = State({"bookmarks": {"contacts": entry}})
    assert state.drop_future_bookmarks(run_began=T0) == []
    assert state.entry("contacts") == entry


def test_future_bookmark_rule_keeps_a_version_so_versions_only_grow():
    state = State(
        {"bookmarks": {"contacts": {"version": 9_000, "complete": True, "updated_at": "2030-01-01T00:00:00Z"}}}
    )
    assert [stream for stream, _, _ in state.drop_future_bookmarks(run_began=T0)] == ["contacts"]
    assert state.entry("contacts") == {"version": 9_000, "complete": True}


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
