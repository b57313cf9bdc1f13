"""The state file on disk (state_file.py) and --reset-stream (reset.py): the lock is one file
whatever path names the state, a held lock refuses at once, a write goes through a symlink,
keeps the file's mode and owner, is atomic and leaves no temporary file; several streams
are reset in one write, an unknown one refuses the whole command."""

import fcntl
import json
import os
import stat
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

import tap_autopilot.cli as cli_module
from tap_autopilot.catalog import split_names
from tap_autopilot.errors import ConfigError, StateInUseError
from tap_autopilot.state import file as state_file
from tap_autopilot.state import reset
from tap_autopilot.streams import STREAMS

STATE = (
    '{"currently_syncing": null, "bookmarks": {"contacts": {"updated_at": "2026-01-01T00:00:00Z"}, '
    '"lists": {"version": 17, "complete": true}, "smart_segments": {"version": 18, "complete": true}}}\n'
)


def reset_streams(path: str, requested: list[str]) -> None:
    """--reset-stream as the command line calls it: the options split, this tap's streams known."""
    reset.reset_streams(path, split_names(requested), list(STREAMS))


@contextmanager
def held(lock: str) -> Iterator[None]:
    """The lock held as run-pipeline.sh holds it (flock on its own open file)."""
    descriptor = os.open(lock, os.O_WRONLY | os.O_CREAT)
    try:
        fcntl.flock(descriptor, fcntl.LOCK_EX | fcntl.LOCK_NB)
        yield
    finally:
        os.close(descriptor)


def write_state(path: Path, text: str = STATE, mode: int | None = None) -> Path:
    path.write_text(text)
    if mode is not None:
        path.chmod(mode)
    return path


def leftovers(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir() if ".tmp-" in p.name)


# ---- the lock ---------------------------------------------------------------------------


def test_the_lock_of_a_plain_file_is_state_lock_beside_it(tmp_path):
    assert state_file.lock_path(str(tmp_path / "state.json")) == str(tmp_path / "state.json.lock")


def test_the_lock_path_resolves_a_symlink_to_the_real_file(tmp_path):
    (tmp_path / "shared").mkdir()
    (tmp_path / "account").mkdir()
    real = write_state(tmp_path / "shared" / "acme.json")
    link = tmp_path / "account" / "state.json"
    link.symlink_to(os.path.relpath(real, link.parent))  # a relative link, as people make them
    assert state_file.lock_path(str(link)) == str(real) + ".lock"


def test_the_lock_path_resolves_a_relative_path(tmp_path, monkeypatch):
    (tmp_path / "sub").mkdir()
    monkeypatch.chdir(tmp_path / "sub")
    assert state_file.lock_path("../state.json") == str(tmp_path / "state.json.lock")
    assert state_file.lock_path("state.json") == str(tmp_path / "sub" / "state.json.lock")


def test_a_held_lock_refuses_at_once_naming_the_lock(tmp_path):
    path = str(write_state(tmp_path / "state.json"))
    with (
        held(path + ".lock"),
        pytest.raises(StateInUseError, match=r"in use: .*state\.json\.lock"),
        state_file.locked(path),
    ):
        pass


def test_the_lock_held_on_the_real_file_refuses_the_link_too(tmp_path):
    real = write_state(tmp_path / "real.json")
    link = tmp_path / "link.json"
    link.symlink_to(real)
    with held(str(real) + ".lock"), pytest.raises(StateInUseError), state_file.locked(str(link)):
        pass


def test_the_lock_is_free_again_after_the_block(tmp_path):
    path = str(write_state(tmp_path / "state.json"))
    with state_file.locked(path):
        pass
    with held(path + ".lock"):  # would raise BlockingIOError if still held
        pass


# ---- writing the state ---------------------------------------------------------------------


def test_a_write_keeps_the_file_s_mode(tmp_path):
    path = write_state(tmp_path / "state.json", mode=0o600)
    state_file.replace(str(path), b"{}", purpose="reset")
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert path.read_text() == "{}"


def test_a_write_through_a_symlink_keeps_the_link_and_replaces_the_real_file(tmp_path):
    (tmp_path / "shared").mkdir()
    real = write_state(tmp_path / "shared" / "acme.json", mode=0o640)
    link = tmp_path / "state.json"
    link.symlink_to(os.path.relpath(real, tmp_path))
    state_file.replace(str(link), b'{"bookmarks": {}}', purpose="reset")
    assert link.is_symlink() and link.resolve() == real.resolve()
    assert real.read_text() == '{"bookmarks": {}}'
    assert stat.S_IMODE(real.stat().st_mode) == 0o640
    assert leftovers(tmp_path) == [] and leftovers(tmp_path / "shared") == []


def test_the_temporary_file_is_named_after_the_real_file_in_its_folder(tmp_path, monkeypatch):
    (tmp_path / "shared").mkdir()
    real = write_state(tmp_path / "shared" / "acme.json")
    link = tmp_path / "state.json"
    link.symlink_to(real)
    renamed = []
    original = os.replace

    def replace(source, target):
        renamed.append((str(source), str(target)))
        original(source, target)

    monkeypatch.setattr(state_file.os, "replace", replace)
    state_file.replace(str(link), b"{}", purpose="reset")
    [(source, target)] = renamed
    assert target == str(real)
    assert source.startswith(str(real) + ".tmp-reset-") and len(source) > len(str(real) + ".tmp-reset-")


@pytest.mark.parametrize("failing", ["fsync", "replace"])
def test_a_failed_write_leaves_the_file_as_it_was_and_no_temporary_file(tmp_path, monkeypatch, failing):
    path = write_state(tmp_path / "state.json")

    def refuse(*args: object) -> None:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(state_file.os, failing, refuse)
    with pytest.raises(OSError):
        state_file.replace(str(path), b"{}", purpose="reset")
    assert path.read_text() == STATE
    assert leftovers(tmp_path) == []


def test_a_new_state_file_gets_the_mode_the_umask_gives(tmp_path):
    previous = os.umask(0o027)
    try:
        state_file.replace(str(tmp_path / "state.json"), b"{}", purpose="target-out")
    finally:
        os.umask(previous)
    assert stat.S_IMODE((tmp_path / "state.json").stat().st_mode) == 0o640


@pytest.mark.skipif(os.geteuid() != 0, reason="only root may give a file to another user")
def test_a_write_keeps_the_file_s_owner_where_the_process_may(tmp_path):
    path = write_state(tmp_path / "state.json")
    os.chown(path, 4321, 4321)
    state_file.replace(str(path), b"{}", purpose="reset")
    assert (path.stat().st_uid, path.stat().st_gid) == (4321, 4321)


# ---- --reset-stream -------------------------------------------------------------------------


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


def test_the_cli_exits_75_with_one_line_while_the_lock_is_held(tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(cli_module, "install_stop_signals", lambda: None)
    path = write_state(tmp_path / "state.json")
    with held(str(path) + ".lock"), pytest.raises(SystemExit) as exited:
        cli_module.main(["--state", str(path), "--reset-stream", "lists"])
    assert exited.value.code == 75
    [line] = capsys.readouterr().err.splitlines()
    assert line.startswith("CRITICAL The state file ") and "in use" in line
