"""The state document (state/document.py): every entry, every change (as data too: State.apply),
the document's lock, the default start date, the future-bookmark rule."""

import datetime
import json
import threading
import time

import pytest

from tap_autopilot.state.changes import (
    CompleteVersion,
    ParentDone,
    SaveScanCursor,
)
from tap_autopilot.state.document import (
    MembershipPass,
    State,
    next_version,
    one_year_before,
    version_number,
)

from ..support import START, T0, UTC, at
from .support import state_with_passes

GOOD_LISTS = {"version": 17, "complete": True}


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


class CountingLock:
    """An RLock that counts how often it was taken, and how often from free (`outer`)."""

    def __init__(self):
        self._lock = threading.RLock()
        self.taken = self.outer = self._depth = 0

    def __enter__(self):
        self._lock.acquire()
        self.taken += 1
        self.outer += self._depth == 0
        self._depth += 1
        return self

    def __exit__(self, *exc):
        self._depth -= 1
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
    "apply": lambda s, m: s.apply([CompleteVersion("x")]),
    "snapshot": lambda s, m: s.to_dict(),
}


# ---- changes as data (state/changes.py; tests/unit/state/test_changes.py), applied by State.apply --


def test_changes_are_applied_in_order_under_one_taking_of_the_lock():
    lock = CountingLock()
    state = State({}, lock=lock)  # type: ignore[arg-type]  # a stand-in for the RLock
    state.begin_version("x", 1)
    state.membership_pass("m", ["a", "b"])
    before = lock.outer
    state.apply([SaveScanCursor("x", "p"), CompleteVersion("x"), ParentDone("m", "b"), ParentDone("m", "a")])
    taken = lock.outer - before
    assert state.entry("x") == {"version": 1, "complete": True}  # the cursor saved, then dropped
    assert state.entry("m")["done_through"] == "b"
    assert taken == 1  # no other thread could take it between two changes


def test_a_snapshot_is_a_copy_that_later_changes_leave_alone():
    state, _ = state_with_passes()
    snapshot = state.to_dict()
    state.apply([SaveScanCursor("x", "later")])
    assert snapshot["bookmarks"]["x"]["scan"] == {"cursor": "q"}


def test_the_last_parent_scan_to_finish_is_the_one_that_completes_the_pass():
    _, membership = state_with_passes()
    assert [membership.scan_finished(), membership.scan_finished()] == [False, True]


@pytest.mark.parametrize("change", sorted(CHANGES))
def test_every_change_to_the_state_takes_the_document_s_lock(change):
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


def test_a_completed_pass_reads_no_parents_whatever_keys_it_kept():
    """The sync decides how lists_contacts reads before begin_version starts the next pass: a
    completed entry (hand-edited to keep progress keys) must not look like a pass in progress."""
    state = State({"bookmarks": {"lists_contacts": {"version": 7, "complete": True, "done_through": "a"}}})
    assert not state.reads_parents("lists_contacts")


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
