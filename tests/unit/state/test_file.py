"""A state file on disk (state/file.py): its lock, shared with run-pipeline.sh, and replacing
it atomically through a symlink, its mode and owner kept."""

import os
import stat

import pytest

from tap_autopilot.errors import StateInUseError
from tap_autopilot.state import file as state_file

from .files import STATE, held, leftovers, write_state


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


def test_a_write_not_allowed_to_keep_the_owner_keeps_the_group_as_the_wrapper_does(tmp_path, monkeypatch):
    """Not root: the owner cannot be given, the group still can if the process is in it
    (scripts/run_pipeline_state.py writes so too: the cron user keeps reading the file)."""
    path = write_state(tmp_path / "state.json")
    before = path.stat()
    calls = []

    def fchown(descriptor, uid, gid):
        calls.append((uid, gid))
        if uid != -1:
            raise PermissionError(1, "Operation not permitted")

    monkeypatch.setattr(os, "fchown", fchown)
    state_file.replace(str(path), b"{}", purpose="reset")
    assert calls == [(before.st_uid, before.st_gid), (-1, before.st_gid)]
    assert path.read_bytes() == b"{}"
