"""A body that trickles in is cut off by request_timeout and retried, a plain-date
start_date (what Meltano's date setting gives) works on a first run, and time never runs
backwards into the state: a bookmark or default_start_date later than the run's start is
not trusted (a start_date in the future is refused: tests/integration/test_bad_input.py)."""

from __future__ import annotations

import datetime
import json

import helpers


def test_trickling_body_is_bounded_by_request_timeout_and_retried(tmp_path, sandbox_factory):
    """Every 3rd response sends its headers at once and then one byte per 0.3 s: a
    page would take hours. With request_timeout 1 each such response is given up
    after 1 s and retried (the retry is not trickled), and the data is complete."""
    sb = sandbox_factory(contacts=300, lists=2, segments=1, seed=51)
    config = helpers.write_config(tmp_path, sb, request_timeout=1)
    catalog = helpers.select(helpers.discover(config))
    sb.reset_stats()
    sb.set_faults(trickle_every=3, trickle_interval=0.3)
    run = helpers.run_tap(
        ["--config", config, "--catalog", helpers.write_json(tmp_path / "catalog.json", catalog)], timeout=300
    )
    assert run.returncode == 0, run
    trickled = sb.stats()["trickled"]
    assert trickled >= 3
    timeouts = [
        line
        for line in run.stderr.splitlines()
        if line.startswith("WARNING ") and "timed out after 1 s; retrying" in line
    ]
    assert len(timeouts) == trickled, run.stderr[-3000:]
    records = helpers.records_by_stream(run.messages)
    assert {r["contact_id"] for r in records["contacts"]} == set(sb.dataset.contact_ids())
    assert {(r["list_id"], r["contact_id"]) for r in records["lists_contacts"]} == helpers.expected_keys(sb)[
        "lists_contacts"
    ]


def test_plain_date_start_date_on_a_first_run(tmp_path, sandbox_factory):
    sb = sandbox_factory(contacts=400, lists=1, segments=1, seed=52)
    updated = sorted((helpers.last_changed(doc), doc["contact_id"]) for doc in sb.dataset.iter_contacts())
    day = updated[len(updated) // 2][0].date()
    midnight = datetime.datetime.combine(day, datetime.time(), tzinfo=datetime.UTC)
    expected = {cid for at, cid in updated if at >= midnight}
    assert 0 < len(expected) < len(updated)
    config = helpers.write_config(tmp_path, sb, start_date=day.isoformat())  # e.g. "2024-03-07"
    catalog = helpers.select(helpers.discover(config), streams=["contacts"])
    run = helpers.run_tap(["--config", config, "--catalog", helpers.write_json(tmp_path / "catalog.json", catalog)])
    assert run.returncode == 0, run
    assert {r["contact_id"] for r in helpers.records_by_stream(run.messages)["contacts"]} == expected
    bookmark = helpers.last_state(run.messages)["bookmarks"]["contacts"]["updated_at"]
    assert helpers.instant(bookmark) == updated[-1][0]


def test_a_contacts_bookmark_in_the_future_is_not_trusted_and_never_written_back(tmp_path, sandbox_factory):
    """A state whose contacts bookmark lies in the future (hand-edited, copied from another
    account, a clock that was wrong) used to skip every contact, and be saved again."""
    sb = sandbox_factory(contacts=400, lists=1, segments=1, seed=53, api_key=helpers.SECRET_API_KEY)
    start = helpers.middle_day(sb)
    future = (datetime.datetime.now(datetime.UTC) + datetime.timedelta(days=3 * 365)).strftime("%Y-%m-%dT%H:%M:%SZ")
    config = helpers.write_secret_config(tmp_path, sb, start_date=start.date().isoformat())
    catalog = helpers.select(helpers.discover(config), streams=["contacts", "lists"])
    state = {"currently_syncing": None, "bookmarks": {"contacts": {"updated_at": future}}}
    run = helpers.run_tap(helpers.tap_args(tmp_path, config, catalog, state), secret=helpers.SECRET_API_KEY)
    after = datetime.datetime.now(datetime.UTC)
    assert run.returncode == 0, run
    [warning] = run.lines("WARNING")
    assert warning.startswith(f"WARNING contacts: the state's updated_at {future} is later than this run's start ")
    assert warning.endswith(
        f"the stream starts over, from the start date {start:%Y-%m-%dT%H:%M:%S}.000000Z (nothing is skipped)."
    )
    emitted = {r["contact_id"] for r in run.records("contacts")}
    assert emitted == helpers.updated_since(sb, start)
    assert 0 < len(emitted) < len(sb.dataset)
    assert all(future not in json.dumps(state) for state in run.states()), "the future bookmark was written back"
    bookmark = helpers.instant(run.state["bookmarks"]["contacts"]["updated_at"])
    assert bookmark <= after, "the saved bookmark is in the future"

    # The next run goes on from the bookmark saved: only what changed since.
    touched = set(helpers.admin(sb, "touch", {"count": 3})["contact_ids"])
    second = helpers.run_tap(helpers.tap_args(tmp_path, config, catalog, run.state, name="second"))
    assert second.returncode == 0 and not second.lines("WARNING"), second
    assert {r["contact_id"] for r in second.records("contacts")} == helpers.updated_since(sb, bookmark) >= touched


def test_a_default_start_date_in_the_future_is_replaced_by_one_year_before_the_run(tmp_path, sandbox_factory):
    sb = sandbox_factory(contacts=200, lists=1, segments=1, seed=54)
    config = helpers.write_config(tmp_path, sb, start_date=None)
    catalog = helpers.select(helpers.discover(config), streams=["contacts"])
    state = {"default_start_date": "2099-01-01T00:00:00Z", "bookmarks": {}}
    touched = set(helpers.admin(sb, "touch", {"count": 2})["contact_ids"])
    before = datetime.datetime.now(datetime.UTC)
    run = helpers.run_tap(helpers.tap_args(tmp_path, config, catalog, state))
    assert run.returncode == 0, run
    [warning] = run.lines("WARNING")
    assert warning.startswith("WARNING The state's default_start_date 2099-01-01T00:00:00.000000Z is later than")
    assert warning.endswith("one year before this run, which the state keeps from now on.")
    default = helpers.instant(run.state["default_start_date"])
    assert before - datetime.timedelta(days=366, seconds=1) <= default <= before - datetime.timedelta(days=364)
    emitted = {r["contact_id"] for r in run.records("contacts")}
    assert emitted == helpers.updated_since(sb, default) and touched <= emitted
