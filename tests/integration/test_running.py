"""The first hour (docs/running.md), through the real CLI against the sandbox:
no start_date (the first run bounded by one year, kept in the state; later runs from the
state), no --catalog (every stream, default columns, said in the log), the selection
options of --discover, and --reset-stream (one bookmark gone, every other byte kept)."""

from __future__ import annotations

import datetime
import json

import helpers

UTC = datetime.UTC


def _year_before(moment: datetime.datetime) -> datetime.datetime:
    moment = moment.replace(microsecond=0)
    try:
        return moment.replace(year=moment.year - 1)
    except ValueError:
        return moment.replace(year=moment.year - 1, day=28)


def _emitted_contacts(run) -> set:
    return {r["contact_id"] for r in run.records("contacts")}


def test_without_start_date_the_first_run_goes_back_one_year_and_later_runs_do_not_slide(tmp_path, sandbox_factory):
    sb = sandbox_factory(contacts=200, lists=1, segments=1, seed=91)
    config = helpers.write_config(tmp_path, sb, start_date=None)
    catalog = helpers.select(helpers.discover(config), streams=["contacts"])
    touched = set(helpers.admin(sb, "touch", {"count": 3})["contact_ids"])  # changed now

    before = datetime.datetime.now(UTC)
    first = helpers.run_tap(helpers.tap_args(tmp_path, config, catalog, name="first"))
    after = datetime.datetime.now(UTC)
    assert first.returncode == 0, first
    default = helpers.instant(first.state["default_start_date"])
    assert _year_before(before) <= default <= _year_before(after)
    emitted = _emitted_contacts(first)
    assert emitted == helpers.updated_since(sb, default) and touched <= emitted
    assert len(emitted) < 200, "no contact older than a year: the bound was not tested"
    assert any("No start_date in the config: starting from" in line for line in first.lines("INFO"))

    # The second run starts from the bookmark and keeps the same default.
    bookmark = helpers.instant(first.state["bookmarks"]["contacts"]["updated_at"])
    helpers.admin(sb, "touch", {"count": 2})
    second = helpers.run_tap(helpers.tap_args(tmp_path, config, catalog, first.state, name="second"))
    assert second.returncode == 0, second
    assert _emitted_contacts(second) == helpers.updated_since(sb, bookmark)
    assert second.state["default_start_date"] == first.state["default_start_date"]

    # A stored default does not slide: a stream without a bookmark starts from it.
    stored = {"default_start_date": "2019-06-01T00:00:00Z", "bookmarks": {}}
    third = helpers.run_tap(helpers.tap_args(tmp_path, config, catalog, stored, name="third"))
    assert third.returncode == 0, third
    assert _emitted_contacts(third) == helpers.updated_since(sb, helpers.instant("2019-06-01T00:00:00Z"))
    assert helpers.instant(third.state["default_start_date"]) == helpers.instant("2019-06-01T00:00:00Z")

    # A start_date given later wins for streams without a bookmark.
    config = helpers.write_config(tmp_path, sb, start_date="2021-01-01")
    fourth = helpers.run_tap(helpers.tap_args(tmp_path, config, catalog, stored, name="fourth"))
    assert fourth.returncode == 0, fourth
    assert _emitted_contacts(fourth) == helpers.updated_since(sb, helpers.instant("2021-01-01T00:00:00Z"))


def test_a_sync_without_catalog_takes_every_stream_with_default_columns_and_says_so(tmp_path, sandbox_factory):
    sb = sandbox_factory(contacts=150, lists=2, segments=1, seed=92)
    config = helpers.write_config(tmp_path, sb)
    run = helpers.run_tap(["--config", config])
    assert run.returncode == 0, run
    helpers.validate_records(run.messages)
    expected = helpers.expected_keys(sb)
    for stream in helpers.STREAM_NAMES:
        assert set(run.keys(stream)) == expected[stream], stream
    schema = helpers.schemas_by_stream(run.messages)["contacts"]
    assert "email" in schema["properties"] and "extra_fields" not in schema["properties"]  # the defaults
    [said] = [line for line in run.lines("INFO") if "No --catalog given" in line]
    assert all(stream in said for stream in helpers.STREAM_NAMES)


def test_discover_select_and_exclude_write_a_catalog_without_editing_json(tmp_path, sandbox_factory):
    sb = sandbox_factory(contacts=120, lists=2, segments=1, seed=93)
    config = helpers.write_config(tmp_path, sb)
    written = helpers.run_cli(
        ["--config", config, "--discover", "--select", "contacts,lists_contacts", "--exclude", "contacts.email"]
    )
    assert written.returncode == 0, written.stderr
    catalog = helpers.write_json(tmp_path / "catalog.json", json.loads(written.stdout))
    run = helpers.run_tap(["--config", config, "--catalog", catalog])
    assert run.returncode == 0, run
    assert {m["stream"] for m in run.messages if m["type"] == "RECORD"} == {"contacts", "lists_contacts"}
    assert all("email" not in record for record in run.records("contacts"))
    assert "first_name" in helpers.schemas_by_stream(run.messages)["contacts"]["properties"]

    wrong = helpers.run_cli(["--config", config, "--discover", "--select", "contact"])
    assert wrong.returncode == 1 and wrong.stdout == ""
    assert wrong.stderr.splitlines() == [
        "CRITICAL --select contact: there is no such stream. The streams are contacts, lists, lists_contacts, "
        "smart_segments, smart_segments_contacts."
    ]


def _one_span_removed(before: str, after: str) -> bool:
    """after is before with one contiguous piece cut out, every other byte in place."""
    prefix = next((i for i, (a, b) in enumerate(zip(before, after, strict=False)) if a != b), len(after))
    return before[:prefix] == after[:prefix] and before.endswith(after[prefix:])


def test_reset_stream_starts_one_stream_again_and_keeps_every_other_bookmark_byte_for_byte(tmp_path, sandbox_factory):
    sb = sandbox_factory(contacts=150, lists=2, segments=1, seed=94)
    config = helpers.write_config(tmp_path, sb)
    catalog = helpers.select(helpers.discover(config))
    first = helpers.run_tap(helpers.tap_args(tmp_path, config, catalog, name="first"))
    assert first.returncode == 0, first
    state_file = tmp_path / "state.json"
    state_file.write_text(json.dumps(first.state) + "\n")  # as a target writes it

    for stream in ("lists", "contacts"):
        before = state_file.read_text()
        reset = helpers.run_cli(["--state", state_file, "--reset-stream", stream])
        assert reset.returncode == 0, reset.stderr
        after = state_file.read_text()
        assert _one_span_removed(before, after)
        kept = json.loads(before)
        del kept["bookmarks"][stream]
        assert json.loads(after) == kept
        for name, entry in kept["bookmarks"].items():
            assert f'"{name}": {json.dumps(entry)}' in after, f"{name}'s bookmark changed"
        assert f"Reset {stream} in {state_file}" in reset.stderr

    run = helpers.run_tap(
        ["--config", config, "--catalog", helpers.write_json(tmp_path / "c.json", catalog), "--state", state_file]
    )
    assert run.returncode == 0, run
    # lists: a new version, announced first, every row again; contacts: from start_date.
    activations = [m for m in run.messages if m["type"] == "ACTIVATE_VERSION" and m["stream"] == "lists"]
    assert activations and activations[0]["version"] > first.state["bookmarks"]["lists"]["version"]
    assert set(run.keys("lists")) == helpers.expected_keys(sb)["lists"]
    assert _emitted_contacts(run) == helpers.updated_since(sb, helpers.instant(helpers.START_DATE))

    missing = helpers.run_cli(["--state", state_file, "--reset-stream", "nope"])
    assert missing.returncode == 1 and "Traceback" not in missing.stderr
    assert len(missing.stderr.splitlines()) == 1 and missing.stderr.startswith("CRITICAL ")
