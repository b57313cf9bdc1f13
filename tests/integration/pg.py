"""Throw-away PostgreSQL server for integration tests.

Usage (plain module, no pytest needed)::

    from pg import start            # or: from tests.integration.pg import start
    server = start()                # initdb + start on a free 127.0.0.1 port
    try:
        print(server.query("select 1"))          # [('1',)]
        cfg = server.target_postgres_config()    # config for target-postgres
    finally:
        server.stop()                            # stop + remove the temp dir

The cluster lives in a fresh temp dir: data in ``<tmp>/data``, unix socket in
``<tmp>/sock``, server log in ``<tmp>/postgres.log``. It listens on
127.0.0.1 only, uses ``trust`` authentication, has superuser ``postgres`` and a
database ``warehouse``. When running as root, the server runs as the
``postgres`` OS user (created if missing), since PostgreSQL refuses to run as
root.

``query()`` shells out to ``psql`` (no Python driver is needed by the
project); it returns a list of tuples of strings, with SQL NULL as ``None``.

If the binaries are missing, ``start()`` installs Debian's ``postgresql``
package when running as root with ``CI=true``; otherwise it raises
``PostgresUnavailable`` (the pytest fixture turns that into a skip).
"""

from __future__ import annotations

import glob
import os
import re
import shutil
import socket
import subprocess
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

OS_USER = "postgres"
SUPERUSER = "postgres"
PASSWORD = "postgres"  # trust auth ignores it; set anyway so md5 would work too
DBNAME = "warehouse"

_REQUIRED = ("initdb", "pg_ctl", "postgres", "psql")
_FIELD_SEP = "\x1f"
_RECORD_SEP = "\x1e"
_NULL = "\x1a"


class PostgresUnavailable(RuntimeError):
    """PostgreSQL cannot be provided on this machine (reason in the message)."""


def _is_root() -> bool:
    return hasattr(os, "geteuid") and os.geteuid() == 0


def _in_ci() -> bool:
    return os.environ.get("CI", "").lower() in ("1", "true", "yes")


def _version_key(path: str) -> tuple:
    return tuple(int(p) for p in re.findall(r"\d+", path))


def find_bindir() -> Path | None:
    """Directory holding initdb, pg_ctl, postgres and psql, or None.

    Order: $PG_BINDIR, the directory the ``initdb`` on PATH resolves to (e.g.
    /usr/local/bin/initdb -> /usr/lib/postgresql/15/bin), then the newest
    /usr/lib/postgresql/*/bin. /usr/bin/psql on Debian is a wrapper script, so
    all four programs are taken from one real directory.
    """
    candidates: list[str] = []
    if os.environ.get("PG_BINDIR"):
        candidates.append(os.environ["PG_BINDIR"])
    initdb = shutil.which("initdb")
    if initdb:
        candidates.append(str(Path(initdb).resolve().parent))
    candidates += sorted(glob.glob("/usr/lib/postgresql/*/bin"), key=_version_key, reverse=True)
    for cand in candidates:
        if all(os.access(os.path.join(cand, exe), os.X_OK) for exe in _REQUIRED):
            return Path(cand)
    return None


def _apt_install_postgres() -> None:
    env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
    for cmd in (
        ["apt-get", "update", "-q"],
        ["apt-get", "install", "-y", "-q", "--no-install-recommends", "postgresql"],
    ):
        proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=900)
        if proc.returncode != 0:
            raise PostgresUnavailable(
                f"`{' '.join(cmd)}` failed (exit {proc.returncode}):\n{proc.stdout[-2000:]}\n{proc.stderr[-2000:]}"
            )


def ensure_bindir() -> Path:
    """Find the binaries; install them (root + CI=true only) or raise PostgresUnavailable."""
    bindir = find_bindir()
    if bindir:
        return bindir
    if _is_root() and _in_ci():
        _apt_install_postgres()
        bindir = find_bindir()
        if bindir:
            return bindir
        raise PostgresUnavailable(
            "installed Debian's postgresql but found no initdb/pg_ctl/postgres/psql under /usr/lib/postgresql/*/bin"
        )
    raise PostgresUnavailable(
        "PostgreSQL server binaries (initdb, pg_ctl, postgres, psql) not found on PATH or in "
        "/usr/lib/postgresql/*/bin; install Debian's `postgresql` package (done automatically "
        "only as root with CI=true) or set PG_BINDIR"
    )


def _ensure_os_user() -> None:
    try:
        import pwd

        pwd.getpwnam(OS_USER)
        return
    except KeyError:
        pass
    proc = subprocess.run(
        [
            "useradd",
            "--system",
            "--user-group",
            "--no-create-home",
            "--home-dir",
            "/nonexistent",
            "--shell",
            "/usr/sbin/nologin",
            OS_USER,
        ],
        capture_output=True,
        text=True,
    )
    if proc.returncode != 0:
        raise PostgresUnavailable(f"cannot create OS user {OS_USER!r}: {proc.stderr.strip()}")


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@dataclass
class PostgresServer:
    bindir: Path
    root: Path  # temp dir holding data/, sock/, postgres.log
    port: int
    host: str = "127.0.0.1"
    user: str = SUPERUSER
    password: str = PASSWORD
    dbname: str = DBNAME
    as_os_user: str | None = None  # run server commands as this OS user (when we are root)
    _running: bool = field(default=False, repr=False)

    # ---- paths -------------------------------------------------------------
    @property
    def datadir(self) -> Path:
        return self.root / "data"

    @property
    def sockdir(self) -> Path:
        return self.root / "sock"

    @property
    def logfile(self) -> Path:
        return self.root / "postgres.log"

    @property
    def url(self) -> str:
        return f"postgresql://{self.user}:{self.password}@{self.host}:{self.port}/{self.dbname}"

    def target_postgres_config(self, **overrides) -> dict:
        """Connection settings for meltanolabs-target-postgres (merge in your own options)."""
        cfg = {
            "host": self.host,
            "port": self.port,
            "user": self.user,
            "password": self.password,
            "database": self.dbname,
        }
        cfg.update(overrides)
        return cfg

    def dbt_profile(self, dbname: str, schema: str = "analytics") -> dict:
        """A dbt-postgres output for database `dbname`, models built in `schema`."""
        return {
            "type": "postgres",
            "host": self.host,
            "port": self.port,
            "user": self.user,
            "password": self.password,
            "dbname": dbname,
            "schema": schema,
            "threads": 2,
        }

    # ---- running commands --------------------------------------------------
    def _server_cmd(self, argv: list[str]) -> list[str]:
        if self.as_os_user:
            return ["runuser", "-u", self.as_os_user, "--", *argv]
        return argv

    def _run(self, argv: list[str], *, timeout: float = 120, what: str = "") -> subprocess.CompletedProcess:
        proc = subprocess.run(
            argv,
            capture_output=True,
            text=True,
            timeout=timeout,
            env=dict(os.environ, LC_ALL="C.UTF-8", LANG="C.UTF-8"),
        )
        if proc.returncode != 0:
            raise RuntimeError(
                f"{what or argv[0]} failed (exit {proc.returncode}): {' '.join(argv)}\n"
                f"stdout: {proc.stdout[-3000:]}\nstderr: {proc.stderr[-3000:]}"
                + (f"\nserver log:\n{self.server_log()[-3000:]}" if self.logfile.exists() else "")
            )
        return proc

    def server_log(self) -> str:
        try:
            return self.logfile.read_text(errors="replace")
        except OSError:
            return ""

    # ---- lifecycle ---------------------------------------------------------
    def init(self) -> None:
        self.datadir.mkdir(mode=0o700)
        self.sockdir.mkdir(mode=0o755)
        if self.as_os_user:
            shutil.chown(self.root, self.as_os_user)
            for p in (self.datadir, self.sockdir):
                shutil.chown(p, self.as_os_user)
        self._run(
            self._server_cmd(
                [
                    str(self.bindir / "initdb"),
                    "-D",
                    str(self.datadir),
                    "-U",
                    SUPERUSER,
                    "--auth=trust",
                    "--encoding=UTF8",
                    "--locale=C",
                    "--no-sync",
                ]
            ),
            what="initdb",
        )
        conf = "\n".join(
            [
                "",
                "# --- tap-autopilot test harness ---",
                "listen_addresses = '127.0.0.1'",
                f"port = {self.port}",
                f"unix_socket_directories = '{self.sockdir}'",
                "fsync = off",
                "synchronous_commit = off",
                "full_page_writes = off",
                "max_connections = 50",
                "shared_buffers = 64MB",
                "log_min_messages = warning",
                "",
            ]
        )
        with open(self.datadir / "postgresql.conf", "a") as fh:
            fh.write(conf)

    def start(self) -> None:
        self._running = True  # so stop() also cleans up after a half-failed start
        self._run(
            self._server_cmd(
                [
                    str(self.bindir / "pg_ctl"),
                    "-D",
                    str(self.datadir),
                    "-l",
                    str(self.logfile),
                    "-w",
                    "-t",
                    "60",
                    "start",
                ]
            ),
            what="pg_ctl start",
        )
        # wait until TCP answers (pg_ctl -w already checks, this is belt and braces)
        deadline = time.monotonic() + 30
        while True:
            proc = subprocess.run(
                [str(self.bindir / "pg_isready"), *self._connection_args("postgres"), "-q"]
                if (self.bindir / "pg_isready").exists()
                else ["true"]
            )
            if proc.returncode == 0:
                break
            if time.monotonic() > deadline:
                raise RuntimeError(f"postgres not ready on port {self.port}\n{self.server_log()[-3000:]}")
            time.sleep(0.2)
        self.psql(f"ALTER ROLE {SUPERUSER} PASSWORD '{self.password}'", dbname="postgres")
        self.psql(f"CREATE DATABASE {self.dbname}", dbname="postgres")

    def stop(self, remove: bool = True) -> None:
        """Stop the server (fast shutdown) and remove the temp dir."""
        if self._running:
            try:
                self._run(
                    self._server_cmd(
                        [
                            str(self.bindir / "pg_ctl"),
                            "-D",
                            str(self.datadir),
                            "-m",
                            "fast",
                            "-w",
                            "-t",
                            "60",
                            "stop",
                        ]
                    ),
                    what="pg_ctl stop",
                )
            except Exception:
                self._kill_postmaster()
            self._running = False
        if remove:
            shutil.rmtree(self.root, ignore_errors=True)

    def _kill_postmaster(self) -> None:
        try:
            pid = int((self.datadir / "postmaster.pid").read_text().split()[0])
            os.kill(pid, 9)
        except (OSError, ValueError, IndexError):
            pass

    def __enter__(self) -> PostgresServer:
        return self

    def __exit__(self, *exc) -> None:
        self.stop()

    # ---- SQL ---------------------------------------------------------------
    def _connection_args(self, dbname: str) -> list[str]:
        """Where pg_isready and psql connect: this server, as its superuser, to dbname."""
        return ["-h", self.host, "-p", str(self.port), "-U", self.user, "-d", dbname]

    def psql(self, sql: str, *, dbname: str | None = None, timeout: float = 120) -> str:
        """Run SQL with psql (ON_ERROR_STOP), return raw unaligned, tuples-only stdout."""
        argv = [
            str(self.bindir / "psql"),
            "-X",
            "-q",
            "-A",
            "-t",
            "-v",
            "ON_ERROR_STOP=1",
            *self._connection_args(dbname or self.dbname),
            "-F",
            _FIELD_SEP,
            "-R",
            _RECORD_SEP,
            "-P",
            f"null={_NULL}",
            "-c",
            sql,
        ]
        return self._run(argv, timeout=timeout, what="psql").stdout

    def query(self, sql: str, *, dbname: str | None = None) -> list[tuple[str | None, ...]]:
        """Rows of the (last) statement as tuples of strings; SQL NULL -> None.

        Values come back in PostgreSQL's text form ('t'/'f' for booleans,
        ISO timestamps, JSON text, ...). Convert in the test as needed.
        """
        out = self.psql(sql, dbname=dbname)
        if out.endswith("\n"):
            out = out[:-1]
        if not out:
            return []
        rows = []
        for rec in out.split(_RECORD_SEP):
            rows.append(tuple(None if v == _NULL else v for v in rec.split(_FIELD_SEP)))
        return rows

    def scalar(self, sql: str, *, dbname: str | None = None) -> str | None:
        rows = self.query(sql, dbname=dbname)
        return rows[0][0] if rows else None

    def create_database(self, name: str) -> str:
        """Create (dropping first if present) an extra database, e.g. one per test."""
        self.psql(f'DROP DATABASE IF EXISTS "{name}"', dbname="postgres")
        self.psql(f'CREATE DATABASE "{name}"', dbname="postgres")
        return name


def start(*, attempts: int = 3) -> PostgresServer:
    """Create a cluster in a new temp dir and start it. Caller must call ``stop()``."""
    bindir = ensure_bindir()
    as_user = None
    if _is_root():
        _ensure_os_user()
        as_user = OS_USER
    # /tmp: a root-only $TMPDIR (e.g. under /root) would not be reachable by the postgres user,
    # and unix socket paths must stay short (< 108 bytes).
    parent = "/tmp" if (as_user or len(tempfile.gettempdir()) > 60) else None
    last_err: Exception | None = None
    for _ in range(attempts):
        root = Path(tempfile.mkdtemp(prefix="tap-autopilot-pg-", dir=parent))
        os.chmod(root, 0o755)
        server = PostgresServer(bindir=bindir, root=root, port=free_port(), as_os_user=as_user)
        try:
            server.init()
            server.start()
            return server
        except Exception as err:  # e.g. the free port was taken meanwhile: retry on a new one
            last_err = err
            server.stop()
    raise RuntimeError(f"could not start PostgreSQL after {attempts} attempts: {last_err}")


if __name__ == "__main__":  # quick manual check: python tests/integration/pg.py
    with start() as srv:
        print(srv)
        print(srv.query("select 1, null, 'a|b'"))
        print(srv.query("select version()")[0][0])
