"""contacts (streams/contacts.py): the contacts scan shared by its readers, the incremental
reader (threshold, bookmark, the scan's state), full-table mode. On FakeRun, no runner."""

import datetime

from tap_autopilot.streams import STREAMS
from tap_autopilot.streams.base import (
    VERSION_COLUMN,
)
from tap_autopilot.streams.contacts import CLOCK_SKEW, next_threshold

from ..fakes import (
    DOCS,
    TRUTH,
    FakeClient,
    contacts_scan,
    doc,
    interrupted_incremental_scan,
    messages,
    pages_held_while_suspended,
    pairs,
    planned,
    records,
)
from ..fakes import fake_run as context
from ..support import at


def test_the_contacts_scan_holds_no_page_while_suspended():
    client = FakeClient([doc(n, ["list_a"]) for n in range(250)], page_size=100)
    ctx = context(client, ["contacts", "lists_contacts"])
    assert pages_held_while_suspended(ctx, contacts_scan(ctx).steps(ctx.apply), client) == [False, False, False]


def test_contacts_scan_readers_share_one_scan():
    ctx = context(FakeClient(DOCS), ["contacts", "lists_contacts"])
    scan = contacts_scan(ctx)
    assert [reader.stream_id for reader in scan.readers] == ["contacts", "lists_contacts"]
    assert set(STREAMS) == {
        "contacts",
        "lists",
        "lists_contacts",
        "smart_segments",
        "smart_segments_contacts",
        "completed_passes",
    }


def test_an_interrupted_scan_resumes_for_both_streams_at_the_shared_cursor_with_the_same_version():
    state = {
        "bookmarks": {
            "contacts": interrupted_incremental_scan(),
            "lists_contacts": {"version": 42, "complete": False, "scan": {"cursor": "person_0002"}},
        }
    }
    client = FakeClient(DOCS)
    ctx = context(client, ["contacts", "lists_contacts"], state)
    ctx.run()
    assert [r["contact_id"] for r in records(ctx, "contacts")] == ["person_0003", "person_0004", "person_0005"]
    assert pairs(ctx) == {p for p in TRUTH if p[1] > "person_0002"}
    assert {r[VERSION_COLUMN] for r in records(ctx, "lists_contacts")} == {42}
    assert client.requests.count("/contacts") == 2


def test_a_stop_while_the_next_page_is_requested_ahead_leaves_the_state_at_the_page_written():
    docs = [doc(n, ["list_a"]) for n in range(1, 8)]
    first_run = FakeClient(docs)  # pages of 2: 4 pages
    ctx = context(first_run, ["contacts", "lists_contacts"])
    steps = contacts_scan(ctx).steps(ctx.apply)
    next(steps)  # the first page written, the second requested ahead
    steps.close()  # the run stops here (SIGTERM, or another scan's fatal error)
    written = [r["contact_id"] for r in records(ctx, "contacts")]
    state = [m for m in messages(ctx) if m["type"] == "STATE"][-1]["value"]
    assert written == ["person_0001", "person_0002"]
    assert state["bookmarks"]["contacts"]["scan"]["cursor"] == "person_0002"
    assert state["bookmarks"]["lists_contacts"]["scan"]["cursor"] == "person_0002"

    second_run = FakeClient(docs)
    resumed = context(second_run, ["contacts", "lists_contacts"], state)
    resumed.run()
    assert written + [r["contact_id"] for r in records(resumed, "contacts")] == [d["contact_id"] for d in docs]
    assert {r["contact_id"] for r in records(resumed, "lists_contacts")} == {d["contact_id"] for d in docs[2:]}
    assert second_run.requests.count("/contacts") == 3  # pages 2-4: the page dropped ahead is read once more


def test_streams_stopped_at_different_pages_scan_from_the_first_page():
    state = {"bookmarks": {"contacts": interrupted_incremental_scan()}}
    ctx = context(FakeClient(DOCS), ["contacts", "lists_contacts"], state)  # lists_contacts: a new pass
    ctx.run()
    assert pairs(ctx) == TRUTH
    assert len(records(ctx, "contacts")) == len(DOCS)


def test_readers_stopped_at_different_pages_say_so(caplog):
    ctx = context(
        FakeClient(DOCS), ["contacts", "lists_contacts"], {"bookmarks": {"contacts": interrupted_incremental_scan()}}
    )
    scan = contacts_scan(ctx)
    caplog.clear()
    assert scan.start_cursor() is None
    assert caplog.messages == [
        "contacts: contacts and lists_contacts stopped at different pages; the scan starts from the first page."
    ]


def test_full_table_contacts_emit_every_contact_under_one_version_then_activate_it():
    state = {"bookmarks": {"contacts": {"updated_at": "2025-01-01T00:00:00.000000Z"}}}
    client = FakeClient(DOCS)
    ctx = context(client, ["contacts"], state, methods={"contacts": "FULL_TABLE"})
    ctx.run()
    out = messages(ctx)
    version = ctx.state.entry("contacts")["version"]
    assert [r["contact_id"] for r in records(ctx, "contacts")] == [d["contact_id"] for d in DOCS]
    assert {r[VERSION_COLUMN] for r in records(ctx, "contacts")} == {version}
    activations = [m for m in out if m["type"] == "ACTIVATE_VERSION"]
    assert activations == [{"type": "ACTIVATE_VERSION", "stream": "contacts", "version": version}]
    assert out.index(activations[0]) > max(i for i, m in enumerate(out) if m["type"] == "RECORD")
    assert ctx.state.entry("contacts") == {"version": version, "complete": True}
    assert client.requests == ["/contacts"] * 3  # no extra request
    assert not ctx.selected["contacts"].bookmark_properties  # its SCHEMA's: test_runner.py


def test_full_table_contacts_resume_under_the_same_version():
    state = {"bookmarks": {"contacts": {"version": 42, "complete": False, "scan": {"cursor": "person_0004"}}}}
    ctx = context(FakeClient(DOCS), ["contacts"], state, methods={"contacts": "FULL_TABLE"})
    ctx.run()
    assert [(r["contact_id"], r[VERSION_COLUMN]) for r in records(ctx, "contacts")] == [("person_0005", 42)]
    assert ctx.state.entry("contacts") == {"version": 42, "complete": True}


def test_a_contact_exactly_at_the_threshold_is_emitted():
    """updated_at >= threshold: the bookmark is the last scan's start (minus skew), and a contact
    changed at that very instant may not have been read then."""
    state = {"bookmarks": {"contacts": {"updated_at": "2025-06-01T00:00:00.000000Z"}}}
    ctx = context(FakeClient(DOCS), ["contacts"], state)
    ctx.run()
    assert [r["contact_id"] for r in records(ctx, "contacts")] == ["person_0005"]  # updated 2025-06-01T00:00:00Z


def test_a_completed_scan_moves_the_bookmark_to_the_newest_updated_at_it_saw():
    ctx = context(FakeClient(DOCS), ["contacts"])
    ctx.run()
    assert ctx.state.entry("contacts") == {"updated_at": "2025-06-01T00:00:00.000000Z"}
    assert messages(ctx)[-1]["value"]["bookmarks"]["contacts"] == {"updated_at": "2025-06-01T00:00:00.000000Z"}


def test_the_bookmark_stays_before_the_scan_began_by_the_api_s_clock():
    """A contact changed while the scan ran (its updated_at after the server's Date of the first
    page) must be read again next run: the bookmark is at most that Date minus CLOCK_SKEW."""
    changed_during_scan = doc(6, updated="2026-01-02T00:30:00Z")  # NOW (the Date header) is 2026-01-02T00:00
    ctx = context(FakeClient(DOCS + [changed_during_scan]), ["contacts"])
    ctx.run()
    assert ctx.state.entry("contacts") == {"updated_at": "2026-01-01T23:55:00.000000Z"}


def test_an_interrupted_incremental_scan_keeps_its_threshold_cursor_newest_and_start_in_state():
    ctx = context(FakeClient(DOCS), ["contacts"])
    steps = contacts_scan(ctx).steps(ctx.apply)
    next(steps)  # one page: person_0001, person_0002
    next(steps)  # two: person_0003, person_0004
    assert ctx.state.entry("contacts") == {
        "scan": {
            "threshold": "2015-01-01T00:00:00.000000Z",
            "cursor": "person_0004",
            "max_updated_at": "2020-01-01T00:00:00.000000Z",
            "started_at": "2026-01-02T00:00:00.000000Z",
        }
    }
    assert messages(ctx)[-1]["value"]["bookmarks"]["contacts"]["scan"]["cursor"] == "person_0004"


def test_a_resumed_scan_carries_on_with_the_newest_updated_at_and_start_it_had():
    state = {
        "bookmarks": {
            "contacts": {
                "scan": {
                    "threshold": "2015-01-01T00:00:00Z",
                    "cursor": "person_0004",
                    "max_updated_at": "2025-12-01T00:00:00Z",
                    "started_at": "2025-12-31T00:00:00Z",
                }
            }
        }
    }
    ctx = context(FakeClient(DOCS), ["contacts"], state)
    ctx.run()
    assert [r["contact_id"] for r in records(ctx, "contacts")] == ["person_0005"]
    # not person_0005's 2025-06-01: the newest seen before the interruption wins
    assert ctx.state.entry("contacts") == {"updated_at": "2025-12-01T00:00:00.000000Z"}


def test_a_restarted_incremental_scan_forgets_only_its_cursor():
    ctx = context(FakeClient(DOCS), ["contacts"], {"bookmarks": {"contacts": interrupted_incremental_scan()}})
    scan = contacts_scan(ctx)
    scan.restart()
    assert scan.readers[0].saved_cursor() is None
    assert ctx.state.entry("contacts")["scan"] == dict(interrupted_incremental_scan()["scan"], cursor=None)


def test_a_versioned_pass_over_the_scan_keeps_its_cursor_and_forgets_it_on_restart():
    ctx = context(FakeClient(DOCS), ["lists_contacts"], config={"lists_contacts_source": "contacts"})
    scan = contacts_scan(ctx)
    steps = scan.steps(ctx.apply)
    next(steps)
    version = ctx.state.entry("lists_contacts")["version"]
    assert ctx.state.entry("lists_contacts") == {
        "version": version,
        "complete": False,
        "scan": {"cursor": "person_0002"},
    }
    scan.restart()
    assert ctx.state.entry("lists_contacts")["scan"] == {"cursor": None}
    assert scan.readers[0].saved_cursor() is None


def test_resuming_an_interrupted_scan_says_where_and_from_what_threshold(caplog):
    ctx = context(FakeClient(DOCS), ["contacts"], {"bookmarks": {"contacts": interrupted_incremental_scan()}})
    planned(ctx, "contacts")
    assert caplog.messages == [
        "contacts: resuming the interrupted scan after page cursor person_0002 "
        "(updated_at >= 2015-01-01 00:00:00+00:00)."
    ]


def test_without_the_api_s_clock_a_scan_starts_by_the_machine_s_clock_in_utc():
    class NoDateClient(FakeClient):
        def paginate(self, path, data_key, cursor=None, ahead_from=None):
            for page in super().paginate(path, data_key, cursor):
                yield page._replace(server_time=None)

    # A change time far ahead: the bookmark is then the scan's start, by the machine's clock.
    ctx = context(NoDateClient([doc(1, updated="2999-01-01T00:00:00Z")]), ["contacts"])
    before = datetime.datetime.now(datetime.UTC)
    ctx.run()
    after = datetime.datetime.now(datetime.UTC)
    bookmark = datetime.datetime.fromisoformat(ctx.state.entry("contacts")["updated_at"])
    assert bookmark.utcoffset() == datetime.timedelta(0)
    assert before - CLOCK_SKEW <= bookmark <= after - CLOCK_SKEW


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
