"""Fixtures for integration tests: a throw-away PostgreSQL server (`postgres`)."""

from __future__ import annotations

import contextlib
import sys
from pathlib import Path

import pytest

_HERE = str(Path(__file__).resolve().parent)
if _HERE not in sys.path:  # so tests can `import pg` / `import tools` in any import mode
    sys.path.insert(0, _HERE)

import pg  # noqa: E402  (after the sys.path line above, like helpers below)


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Mark every test that needs PostgreSQL (`-m "not postgres"` leaves them out)."""
    for item in items:
        if "postgres" in getattr(item, "fixturenames", ()):
            item.add_marker(pytest.mark.postgres)


@pytest.fixture(scope="session")
def postgres():
    """A running PostgreSQL (see pg.PostgresServer): host, port, user, password, dbname, query(sql).

    Skips when the server binaries are missing and cannot be installed (they
    are apt-installed only as root with CI=true; a failed install under CI fails).
    """
    try:
        server = pg.start()
    except pg.PostgresUnavailable as err:
        if pg._in_ci() and pg._is_root():
            pytest.fail(f"PostgreSQL unavailable in CI: {err}")
        pytest.skip(f"PostgreSQL unavailable: {err}")
    try:
        yield server
    finally:
        server.stop()


# ---- the Autopilot sandbox (see helpers.py) -----------------------------------

import helpers  # noqa: E402


@pytest.fixture
def sandbox_factory():
    """make(**Sandbox kwargs) -> a running sandbox; every one made is stopped at teardown."""
    with contextlib.ExitStack() as stack:
        yield lambda **kwargs: stack.enter_context(helpers.sandbox(**kwargs))


@pytest.fixture
def sandbox(sandbox_factory):
    """A running sandbox with the default dataset (250 contacts, 3 lists, 2 segments)."""
    return sandbox_factory()
