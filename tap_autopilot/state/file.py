"""A state file on disk: its lock, and replacing its content without changing what it is.

Shared with scripts/run-pipeline.sh, which holds the same lock for its whole run and
writes the state the same way:

- the lock is the file `<real path of the state>.lock` (symlinks and relative paths
  resolved, as `realpath -m` does in bash), held with flock(2), exclusive and non-blocking
  (`flock --nonblock` in bash is the same lock). Whoever finds it held refuses: exit 75.
- the state is written through a symlink to the file it points at (the link stays a
  link), with that file's mode (and owner and group where the process may), atomically:
  a temporary file `<real path>.tmp-<purpose>-<random>` in the real file's folder,
  fsync'd, then renamed over it.
"""

import contextlib
import fcntl
import os
import stat
import tempfile
from collections.abc import Iterator

from tap_autopilot.errors import ConfigError, StateInUseError

# The mode a new file gets before the umask, as open(2) and the shell's `>` create files.
NEW_FILE_MODE = 0o666


def real_path(path: str) -> str:
    """The file a state path names: symlinks followed, relative paths made absolute (the
    file need not exist)."""
    return os.path.realpath(path)


def lock_path(path: str) -> str:
    """The state's lock file: the same file whatever path (link, relative) names the state."""
    return real_path(path) + ".lock"


def temporary_prefix(path: str, purpose: str) -> str:
    """The name every temporary file beside the state starts with (a random part follows)."""
    return f"{real_path(path)}.tmp-{purpose}-"


@contextlib.contextmanager
def locked(path: str) -> Iterator[None]:
    """Hold the state's lock for the block; StateInUseError (exit 75) at once if another
    process holds it. Refusing rather than waiting: a pipeline run holds it for as long as
    it runs, and whoever asked can run the command again after it."""
    lock = lock_path(path)
    try:
        descriptor = os.open(lock, os.O_WRONLY | os.O_CREAT | os.O_CLOEXEC, NEW_FILE_MODE)
    except PermissionError:
        try:  # flock needs no write access: a lock file made by another user still locks
            descriptor = os.open(lock, os.O_RDONLY | os.O_CLOEXEC)
        except OSError as error:
            raise ConfigError(f"The lock file {lock} cannot be opened ({type(error).__name__}).") from None
    except OSError as error:
        raise ConfigError(f"The lock file {lock} cannot be opened ({type(error).__name__}).") from None
    try:
        try:
            fcntl.flock(descriptor, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise StateInUseError(
                f"The state file {path} is in use: another process holds its lock {lock} (a run of "
                "scripts/run-pipeline.sh?). Nothing was changed; run the command again once that run has ended."
            ) from None
        yield
    finally:
        os.close(descriptor)  # releases the lock


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def replace(path: str, content: bytes, purpose: str) -> None:
    """Make `content` the state file's, through a symlink, keeping the file's mode (and
    owner and group where allowed), atomically. A file that does not exist yet is created
    with the mode the umask gives new files. Raises OSError (the file then is as it was,
    and no temporary file is left). scripts/run_pipeline_state.py writes the same way
    (it cannot import the tap): a change to the rule is made in both."""
    real = real_path(path)
    try:
        current: os.stat_result | None = os.stat(real)
    except FileNotFoundError:
        current = None
    folder, name = os.path.split(temporary_prefix(path, purpose))
    descriptor, temporary = tempfile.mkstemp(prefix=name, dir=folder)
    try:
        with open(descriptor, "wb") as handle:
            if current is not None:
                try:
                    os.fchown(handle.fileno(), current.st_uid, current.st_gid)
                except PermissionError:  # only root may give a file away: the group at least, if ours
                    with contextlib.suppress(PermissionError):
                        os.fchown(handle.fileno(), -1, current.st_gid)
                os.fchmod(handle.fileno(), stat.S_IMODE(current.st_mode))
            else:
                os.fchmod(handle.fileno(), NEW_FILE_MODE & ~_umask())
            handle.write(content)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(temporary, real)
    except BaseException:
        with contextlib.suppress(OSError):
            os.remove(temporary)
        raise
    _sync_folder(folder)


def _sync_folder(folder: str) -> None:
    """Make the rename itself durable (a crash could otherwise bring back the old file)."""
    with contextlib.suppress(OSError):
        descriptor = os.open(folder, os.O_RDONLY | os.O_DIRECTORY)
        try:
            os.fsync(descriptor)
        finally:
            os.close(descriptor)
