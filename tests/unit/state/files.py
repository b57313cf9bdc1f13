"""A state file for the tests of state/file.py, state/reset.py and the command line."""

import fcntl
import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

STATE = (
    '{"currently_syncing": null, "bookmarks": {"contacts": {"updated_at": "2026-01-01T00:00:00Z"}, '
    '"lists": {"version": 17, "complete": true}, "smart_segments": {"version": 18, "complete": true}}}\n'
)


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
