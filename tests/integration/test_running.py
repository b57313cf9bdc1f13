"""The first hour (docs/running.md), through the real CLI against the sandbox:
no start_date (the first run bounded by one year, kept in the state; later runs from the
state), no --catalog (every stream, default columns, said in the log), the selection
options of --discover, and --reset-stream (the bookmarks named gone, every other byte kept;
refused with exit 75 while a run holds the state's lock; through a symlink, mode kept)."""

from __future__ import annotations

import contextlib
import datetime
import fcntl
import json
import os
import shutil
import stat
import subprocess
import time
from collections.abc import Iterator

import helpers
import pytest

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
    assert all(stream in said for stream in helpers.ALL_STREAMS)
    assert {key[0] for key in run.keys(helpers.PASSES_STREAM)} == set(helpers.FULL_TABLE_STREAMS)


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
        "smart_segments, smart_segments_contacts, completed_passes."
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


# ---- --reset-stream and the pipeline's lock, several streams, symlinks ----------------------


@contextlib.contextmanager
def holding_the_lock(state_path) -> Iterator[None]:
    """The state's lock held as scripts/run-pipeline.sh holds it: flock on <real path>.lock."""
    descriptor = os.open(os.path.realpath(state_path) + ".lock", os.O_WRONLY | os.O_CREAT)
    try:
        fcntl.flock(descriptor, fcntl.LOCK_EX | fcntl.LOCK_NB)
        yield
    finally:
        os.close(descriptor)


def _run_state(tmp_path, sandbox_factory) -> dict:
    """A state as a run of every stream leaves it."""
    sb = sandbox_factory(contacts=60, lists=2, segments=1, seed=95)
    config = helpers.write_config(tmp_path, sb)
    run = helpers.run_tap(helpers.tap_args(tmp_path, config, helpers.select(helpers.discover(config)), name="first"))
    assert run.returncode == 0, run
    assert set(run.state["bookmarks"]) == set(helpers.STREAM_NAMES)
    return run.state


def _assert_refused_as_busy(reset: subprocess.CompletedProcess) -> None:
    assert reset.returncode == 75, reset.stderr
    [line] = reset.stderr.splitlines()
    assert line.startswith("CRITICAL The state file ") and " is in use: another process holds its lock " in line
    assert "Nothing was changed" in line and reset.stdout == ""


def test_a_reset_while_a_run_holds_the_lock_is_refused_with_75_whatever_path_names_the_state(tmp_path):
    (tmp_path / "shared").mkdir()
    (tmp_path / "account").mkdir()
    real = tmp_path / "shared" / "acme.json"
    real.write_text(json.dumps({"bookmarks": {"lists": {"version": 3, "complete": True}}}))
    link = tmp_path / "account" / "state.json"
    link.symlink_to(os.path.relpath(real, link.parent))
    before = real.read_bytes()

    for held_through, reset_through in ((real, real), (real, link), (link, real), (link, link)):
        with holding_the_lock(held_through):
            _assert_refused_as_busy(helpers.run_cli(["--state", reset_through, "--reset-stream", "lists"]))
        assert real.read_bytes() == before and link.is_symlink(), (held_through, reset_through)
    relative = helpers.run_cli(["--state", "state.json", "--reset-stream", "lists"], cwd=tmp_path / "account")
    assert relative.returncode == 0, relative.stderr  # free again: it resets, through the relative link
    assert json.loads(real.read_text()) == {"bookmarks": {}}


def test_the_shell_s_flock_as_run_pipeline_takes_it_refuses_the_reset_too(tmp_path):
    if shutil.which("flock") is None:
        pytest.skip("flock(1) is not installed")
    state = tmp_path / "state.json"
    state.write_text(json.dumps({"bookmarks": {"contacts": {"updated_at": "2020-01-01T00:00:00Z"}}}))
    ready = tmp_path / "locked"
    # The lock file named as the wrapper names it (realpath -m), held as long as the sleep runs.
    holder = subprocess.Popen(
        [
            "bash",
            "-c",
            'exec 9>"$(realpath -m "$1").lock" && flock --nonblock 9 && touch "$2" && sleep 60',
            "-",
            state,
            ready,
        ]
    )
    try:
        while not ready.exists():
            assert holder.poll() is None, "the shell could not take the lock"
            time.sleep(0.02)
        _assert_refused_as_busy(helpers.run_cli(["--state", state, "--reset-stream", "contacts"]))
    finally:
        holder.kill()
        holder.wait()
    assert "contacts" in json.loads(state.read_text())["bookmarks"]


def test_several_streams_are_reset_in_one_command_by_repeated_flags_or_a_comma_list(tmp_path, sandbox_factory):
    state = _run_state(tmp_path, sandbox_factory)
    text = json.dumps(state) + "\n"  # as a target writes it
    expected = json.loads(text)
    del expected["bookmarks"]["lists"], expected["bookmarks"]["smart_segments"]
    for form in (
        ["--reset-stream", "lists", "--reset-stream", "smart_segments"],
        ["--reset-stream", "lists,smart_segments"],
        ["--reset-stream", "smart_segments, lists", "--reset-stream", "lists"],  # a name twice: fine
    ):
        state_file = tmp_path / "state.json"
        state_file.write_text(text)
        reset = helpers.run_cli(["--state", state_file, *form])
        assert reset.returncode == 0, reset.stderr
        after = state_file.read_text()
        assert json.loads(after) == expected, form
        for name, entry in expected["bookmarks"].items():  # the others' text as it was
            assert f'"{name}": {json.dumps(entry)}' in after, (form, name)
        assert [line for line in reset.stderr.splitlines() if line.startswith("INFO Reset ")] == [
            line for line in reset.stderr.splitlines() if line.startswith("INFO ")
        ]
        assert {"lists", "smart_segments"} == {
            line.split()[2] for line in reset.stderr.splitlines() if line.startswith("INFO Reset ")
        }

    state_file.write_text(text)
    unknown = helpers.run_cli(["--state", state_file, "--reset-stream", "lists,segments"])
    assert unknown.returncode == 1 and unknown.stderr.splitlines() == [
        "CRITICAL --reset-stream segments: there is no such stream. The streams are contacts, lists, lists_contacts, "
        "smart_segments, smart_segments_contacts, completed_passes. Nothing was reset."
    ]
    assert state_file.read_text() == text  # lists not reset either


def test_a_stream_without_a_bookmark_has_nothing_to_reset_and_says_so(tmp_path):
    state_file = tmp_path / "state.json"
    state_file.write_text('{"bookmarks": {"lists": {"version": 3, "complete": true}}}')
    reset = helpers.run_cli(["--state", state_file, "--reset-stream", "contacts"])
    # exit 0: the next run starts contacts from the beginning, which is what the reset is for
    assert reset.returncode == 0, reset.stderr
    assert reset.stderr.splitlines() == [
        f"WARNING contacts has no bookmark in {state_file}: nothing to reset; the next run starts it from the "
        "beginning, as asked. The file is unchanged."
    ]
    assert state_file.read_text() == '{"bookmarks": {"lists": {"version": 3, "complete": true}}}'

    # The config given as --state by mistake has no bookmark either, but is not "nothing to reset".
    config = helpers.write_json(tmp_path / "config.json", {"api_key": "sandbox-key", "start_date": "2020-01-01"})
    not_a_state = helpers.run_cli(["--state", config, "--reset-stream", "contacts"])
    assert not_a_state.returncode == 1 and not_a_state.stderr.splitlines() == [
        f"CRITICAL The state file {config} has no 'bookmarks' and keys this tap never writes: check that --state "
        "names this tap's state file. Nothing was reset."
    ]


def test_a_symlinked_state_of_mode_600_in_another_folder_is_reset_through_the_link(tmp_path):
    (tmp_path / "shared").mkdir()
    (tmp_path / "account").mkdir()
    real = tmp_path / "shared" / "acme.json"
    real.write_text(
        json.dumps({"bookmarks": {"contacts": {"updated_at": "2020-01-01T00:00:00Z"}, "lists": {"version": 3}}})
    )
    real.chmod(0o600)
    link = tmp_path / "account" / "state.json"
    link.symlink_to(os.path.relpath(real, link.parent))

    reset = helpers.run_cli(["--state", link, "--reset-stream", "contacts"])
    assert reset.returncode == 0, reset.stderr
    assert link.is_symlink() and os.readlink(link) == os.path.relpath(real, link.parent)
    assert json.loads(real.read_text()) == {"bookmarks": {"lists": {"version": 3}}}
    assert stat.S_IMODE(real.stat().st_mode) == 0o600
    assert sorted(p.name for p in (tmp_path / "shared").iterdir()) == ["acme.json", "acme.json.lock"]
    assert sorted(p.name for p in (tmp_path / "account").iterdir()) == ["state.json"]
