"""--reset-stream (state/reset.py): the bookmarks removed from a state file's text, every other
byte kept, several streams in one write, under the state's lock."""

import contextlib
import json
import logging
import os
from collections.abc import Iterator

import pytest

from tap_autopilot.catalog import split_names
from tap_autopilot.errors import ConfigError, StateInUseError
from tap_autopilot.state import file as state_file
from tap_autopilot.state import reset
from tap_autopilot.state.reset import NoBookmarkError, StateFileError, reset_stream
from tap_autopilot.streams import STREAMS

from .files import STATE, held, leftovers, write_state

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


def reset_streams(path: str, requested: list[str]) -> None:
    """--reset-stream as the command line calls it: the options split, this tap's streams known."""
    reset.reset_streams(path, split_names(requested), list(STREAMS))


def test_several_streams_are_reset_in_one_write(tmp_path, monkeypatch):
    path = write_state(tmp_path / "state.json")
    writes = []
    original = state_file.replace

    def replace(path: str, content: bytes, purpose: str) -> None:
        writes.append(path)
        original(path, content, purpose)

    monkeypatch.setattr(state_file, "replace", replace)
    reset_streams(str(path), ["lists", "smart_segments,lists"])  # repeated: fine
    assert len(writes) == 1
    expected = json.loads(STATE)
    del expected["bookmarks"]["lists"], expected["bookmarks"]["smart_segments"]
    assert json.loads(path.read_text()) == expected


def test_an_unknown_stream_refuses_the_whole_reset_before_anything_is_touched(tmp_path):
    path = write_state(tmp_path / "state.json")
    with pytest.raises(ConfigError, match=r"^--reset-stream list: there is no such stream\..*Nothing was reset"):
        reset_streams(str(path), ["contacts", "list"])
    assert path.read_text() == STATE
    assert sorted(p.name for p in tmp_path.iterdir()) == ["state.json"]  # not even a lock file


@pytest.mark.parametrize("requested", [[""], [" , "], [",,"]])
def test_no_stream_name_is_refused(tmp_path, requested):
    with pytest.raises(ConfigError, match=r"^--reset-stream needs a stream name"):
        reset_streams(str(write_state(tmp_path / "state.json")), requested)


def test_a_stream_without_a_bookmark_is_said_and_the_file_is_not_rewritten(tmp_path, caplog):
    path = write_state(tmp_path / "state.json", '{"bookmarks": {"lists": {"version": 3}}}')
    inode = path.stat().st_ino
    reset_streams(str(path), ["contacts"])
    assert path.stat().st_ino == inode and path.read_text() == '{"bookmarks": {"lists": {"version": 3}}}'
    [line] = [r for r in caplog.records if r.levelname == "WARNING"]
    assert "contacts has no bookmark" in line.getMessage() and "The file is unchanged" in line.getMessage()


def test_a_file_that_is_not_a_state_is_refused_not_called_nothing_to_reset(tmp_path):
    path = write_state(tmp_path / "config.json", '{"api_key": "x", "start_date": "2020-01-01"}')
    with pytest.raises(ConfigError, match=r"has no 'bookmarks' .*check that --state names this tap's state file"):
        reset_streams(str(path), ["contacts"])
    assert path.read_text() == '{"api_key": "x", "start_date": "2020-01-01"}'


def test_a_reset_while_the_lock_is_held_changes_nothing(tmp_path):
    path = write_state(tmp_path / "state.json")
    with held(str(path) + ".lock"), pytest.raises(StateInUseError):
        reset_streams(str(path), ["lists"])
    assert path.read_text() == STATE


def test_a_reset_keeps_windows_line_ends(tmp_path):
    text = STATE.replace(", ", ",\r\n  ")
    path = tmp_path / "state.json"
    path.write_bytes(text.encode())
    reset_streams(str(path), ["contacts"])
    assert b"\r\n" in path.read_bytes() and b"contacts" not in path.read_bytes()


def test_a_missing_state_file_on_reset_says_so_as_a_sync_does(tmp_path):
    with pytest.raises(ConfigError, match=r"state file \S+ does not exist\. Check the --state path"):
        reset_streams(str(tmp_path / "nowhere.json"), ["lists"])


def test_a_state_file_that_cannot_be_replaced_on_reset_is_one_clear_error_and_stays_as_it_was(tmp_path, monkeypatch):
    path = write_state(tmp_path / "state.json")

    def refuse(*args: object) -> None:
        raise PermissionError("read-only folder")

    monkeypatch.setattr(state_file.os, "replace", refuse)
    with pytest.raises(ConfigError, match=r"cannot be replaced .*the file is unchanged"):
        reset_streams(str(path), ["lists"])
    assert path.read_text() == STATE
    assert leftovers(tmp_path) == [], "the half-written replacement is removed"


def test_the_first_repeated_key_is_the_one_named():
    with pytest.raises(StateFileError, match=r"^holds the key 'lists' twice in one object: keep one of them"):
        reset_stream('{"bookmarks": {"contacts": {}, "lists": {"v": 1}, "lists": {"v": 2}}}', "contacts")


def test_a_state_with_bookmarks_of_its_own_is_not_read_as_meltanos():
    # singer_state is Meltano's wrapper only where the document has no bookmarks of its own.
    text = '{"bookmarks": {"lists": {"version": 1}}, "singer_state": {"bookmarks": {"lists": {"version": 2}}}}'
    assert reset_stream(text, "lists") == '{"bookmarks": {}, "singer_state": {"bookmarks": {"lists": {"version": 2}}}}'


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (
            '{"bookmarks": ["contacts"]}',
            "holds 'bookmarks' that is not an object: check that --state names this tap's state file",
        ),
        (
            '{"api_key": "x"}',
            "has no 'bookmarks' and keys this tap never writes: check that --state names this tap's state file",
        ),
    ],
)
def test_a_file_that_is_not_this_taps_state_is_refused_in_these_words(text, message):
    with pytest.raises(StateFileError) as raised:
        reset_stream(text, "contacts")
    assert str(raised.value) == message


KNOWN = "contacts, lists, lists_contacts, smart_segments, smart_segments_contacts, completed_passes"


def test_the_reset_needs_the_state_file_and_says_how_to_give_it():
    with pytest.raises(ConfigError) as raised:
        reset.reset_streams(None, ["lists"], list(STREAMS))
    assert str(raised.value) == (
        "--reset-stream needs the state file: tap-autopilot --state state.json --reset-stream STREAM[,STREAM...]."
    )


def test_the_stream_name_refusals_list_the_streams():
    with pytest.raises(ConfigError) as none:
        reset.stream_names([], list(STREAMS))
    assert str(none.value) == (
        f"--reset-stream needs a stream name: --reset-stream STREAM[,STREAM...]. The streams are {KNOWN}."
    )
    with pytest.raises(ConfigError) as unknown:
        reset.stream_names(["lists", "list"], list(STREAMS))
    assert str(unknown.value) == (
        f"--reset-stream list: there is no such stream. The streams are {KNOWN}. Nothing was reset."
    )


def test_stream_names_are_taken_once_each_in_the_order_given():
    names = reset.stream_names(["smart_segments", "lists", "smart_segments"], list(STREAMS))
    assert names == ["smart_segments", "lists"]


def test_each_stream_reset_is_one_info_line_saying_what_the_next_run_does(tmp_path, caplog):
    caplog.set_level(logging.INFO, logger="tap_autopilot")
    path = write_state(tmp_path / "state.json")
    reset_streams(str(path), ["lists,contacts"])
    assert [(r.levelname, r.getMessage()) for r in caplog.records] == [
        (
            "INFO",
            f"Reset lists in {path}: its bookmark is removed and every other byte is as it was. The next run reads it "
            "again under a new table version.",
        ),
        (
            "INFO",
            f"Reset contacts in {path}: its bookmark is removed and every other byte is as it was. The next run "
            "reads it again from the start date.",
        ),
    ]


def test_a_stream_without_a_bookmark_beside_one_reset_is_said_without_the_file_unchanged(tmp_path, caplog):
    caplog.set_level(logging.INFO, logger="tap_autopilot")
    path = write_state(tmp_path / "state.json", '{"bookmarks": {"lists": {"version": 3}}}')
    reset_streams(str(path), ["contacts,lists"])
    assert path.read_text() == '{"bookmarks": {}}'
    assert [(r.levelname, r.getMessage()) for r in caplog.records] == [
        (
            "INFO",
            f"Reset lists in {path}: its bookmark is removed and every other byte is as it was. The next run reads it "
            "again under a new table version.",
        ),
        (
            "WARNING",
            f"contacts has no bookmark in {path}: nothing to reset; the next run starts it from the beginning, "
            "as asked.",
        ),
    ]


def test_nothing_to_reset_is_one_warning_that_says_the_file_is_unchanged(tmp_path, caplog):
    caplog.set_level(logging.INFO, logger="tap_autopilot")
    path = write_state(tmp_path / "state.json", '{"bookmarks": {}}')
    reset_streams(str(path), ["contacts"])
    assert [(r.levelname, r.getMessage()) for r in caplog.records] == [
        (
            "WARNING",
            f"contacts has no bookmark in {path}: nothing to reset; the next run starts it from the beginning, as "
            "asked. The file is unchanged.",
        )
    ]


def test_the_file_is_written_once_through_a_reset_temporary_while_the_lock_is_held(tmp_path, monkeypatch):
    path = write_state(tmp_path / "state.json")
    renames = []
    rename = state_file.os.replace

    def replace(source: str, target: str) -> None:
        with pytest.raises(StateInUseError), state_file.locked(str(path)):  # no one else may take it meanwhile
            pass
        renames.append((os.path.basename(source), target))
        rename(source, target)

    monkeypatch.setattr(state_file.os, "replace", replace)
    reset_streams(str(path), ["contacts,lists"])
    [(temporary, target)] = renames
    assert temporary.startswith("state.json.tmp-reset-") and target == str(path)


def test_the_bytes_are_kept_as_they_are_line_ends_and_non_ascii_text_included(tmp_path):
    before = '{\r\n  "bookmarks": {\r\n    "lists": {"version": 1},\r\n    "contacts": {"n": "café ☕"}\r\n  }\r\n}\r\n'
    path = tmp_path / "state.json"
    path.write_bytes(before.encode("utf-8"))
    reset_streams(str(path), ["lists"])
    assert path.read_bytes() == '{\r\n  "bookmarks": {\r\n    "contacts": {"n": "café ☕"}\r\n  }\r\n}\r\n'.encode()


@pytest.mark.parametrize(
    ("content", "error"),
    [(b'{"bookmarks": {"lists": {"title": "caf\xe9"}}}', "UnicodeDecodeError"), (None, "IsADirectoryError")],
)
def test_a_state_file_that_cannot_be_read_is_one_clear_error(tmp_path, content, error):
    path = tmp_path / "state.json"
    if content is None:
        path.mkdir()
    else:
        path.write_bytes(content)
    with pytest.raises(ConfigError) as raised:
        reset_streams(str(path), ["lists"])
    assert str(raised.value) == f"The state file {path} cannot be read ({error})."


def test_a_state_file_removed_before_the_lock_was_taken_says_so(tmp_path, monkeypatch):
    path = write_state(tmp_path / "state.json")
    locked = state_file.locked

    @contextlib.contextmanager
    def removed_meanwhile(state_path: str) -> Iterator[None]:
        path.unlink()  # by another process, between the check and the lock
        with locked(state_path):
            yield

    monkeypatch.setattr(state_file, "locked", removed_meanwhile)
    with pytest.raises(ConfigError) as raised:
        reset_streams(str(path), ["lists"])
    assert str(raised.value) == f"The state file {path} does not exist. Check the --state path."


def test_a_state_the_reset_cannot_change_is_named_with_its_path_and_nothing_is_reset(tmp_path):
    path = write_state(tmp_path / "state.json", '{"bookmarks": {"lists": {}}, "bookmarks": {}}')
    with pytest.raises(ConfigError) as raised:
        reset_streams(str(path), ["lists"])
    assert str(raised.value) == (
        f"The state file {path} holds the key 'bookmarks' twice in one object: keep one of them, then reset again. "
        "Nothing was reset."
    )


def test_a_state_file_that_cannot_be_replaced_names_the_error(tmp_path, monkeypatch):
    path = write_state(tmp_path / "state.json")

    def refuse(*args: object) -> None:
        raise PermissionError("read-only folder")

    monkeypatch.setattr(state_file.os, "replace", refuse)
    with pytest.raises(ConfigError) as raised:
        reset_streams(str(path), ["lists"])
    assert str(raised.value) == (
        f"The state file {path} cannot be replaced (PermissionError): check the folder's permissions and free space; "
        "the file is unchanged."
    )
