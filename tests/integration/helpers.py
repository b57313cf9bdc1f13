"""The one place for integration-test helpers: a sandbox and its admin API, configs,
the installed tap CLI run as a subprocess (to the end, or killed when its output says
so), catalog selection, the stream names (from tap_autopilot.streams), the sandbox's data
as the rows each stream must hold, timestamps read independently of the tap, checks on
the tap's Singer output, and the load into PostgreSQL through target-postgres.

    with helpers.sandbox(contacts=300, seed=7) as sb:          # or the sandbox fixtures
        config = helpers.write_config(tmp_path, sb)
        catalog = helpers.select(helpers.discover(config), streams=["contacts"])
        run = helpers.run_tap(helpers.tap_args(tmp_path, config, catalog))
        assert run.returncode == 0, run
        helpers.validate_records(run.messages)
        assert set(run.keys("contacts")) == helpers.expected_keys(sb)["contacts"]

Test modules import helpers from here, never from each other.
Import as ``helpers`` (conftest.py puts this directory on sys.path).
"""

from __future__ import annotations

import contextlib
import copy
import datetime
import email.utils
import json
import os
import re
import signal
import subprocess
import tempfile
import threading
import urllib.request
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

import jsonschema
import tools

from tap_autopilot.sandbox import Sandbox
from tap_autopilot.streams import STREAMS

API_KEY = "sandbox-key"
# A key shaped like a real one, for tests that check it is never printed.
SECRET_API_KEY = "sk-test-4b8d1f2a6c9e3b70-NEVER-PRINT"
START_DATE = "2015-01-01T00:00:00Z"

# ---- streams and their rows -----------------------------------------------------

# Every stream whose records come from the account, in the tap's order: all but
# completed_passes, whose records the run writes as passes complete.
STREAM_NAMES = tuple(name for name, stream in STREAMS.items() if not stream.from_the_run)
PASSES_STREAM = "completed_passes"
# Every stream of the tap, in its order.
ALL_STREAMS = tuple(STREAMS)
# Every stream but contacts is full-table only (versioned passes, ACTIVATE_VERSION).
FULL_TABLE_STREAMS = tuple(name for name in STREAM_NAMES if name != "contacts")
# membership stream -> the key of its parent (list or segment) in each record
PARENT_KEYS = {"lists_contacts": "list_id", "smart_segments_contacts": "segment_id"}
_ID_KEYS = {"contacts": "contact_id", "lists": "list_id", "smart_segments": "segment_id"}


def key_of(stream: str, record: dict) -> Any:
    """The row's identity: its id, or (parent id, contact id) for a membership."""
    if stream in PARENT_KEYS:
        return (record[PARENT_KEYS[stream]], record["contact_id"])
    if stream == PASSES_STREAM:
        return (record["stream_name"], record["table_version"])
    return record[_ID_KEYS[stream]]


def expected_keys(sb: Sandbox) -> dict[str, set]:
    """{stream: the key_of every row the sandbox holds now}, read from the dataset."""
    ds = sb.dataset
    lists = [g["list_id"] for g in ds.lists()]
    segments = [g["segment_id"] for g in ds.segments()]
    return {
        "contacts": set(ds.contact_ids()),
        "lists": set(lists),
        "smart_segments": set(segments),
        "lists_contacts": {(lid, cid) for lid in lists for cid in ds.list_members(lid)},
        "smart_segments_contacts": {(sid, cid) for sid in segments for cid in ds.segment_members(sid)},
    }


# ---- the sandbox's raw documents, read independently of the tap ------------------

# column -> the raw keys it may come under (PascalCase, then snake_case).
STANDARD = {
    "email": ("Email", "email"),
    "first_name": ("FirstName", "first_name"),
    "last_name": ("LastName", "last_name"),
    "name": ("Name", "name"),
    "salutation": ("Salutation", "salutation"),
    "company": ("Company", "company"),
    "number_of_employees": ("NumberOfEmployees", "number_of_employees"),
    "title": ("Title", "title"),
    "industry": ("Industry", "industry"),
    "phone": ("Phone", "phone"),
    "mobile_phone": ("MobilePhone", "mobile_phone"),
    "fax": ("Fax", "fax"),
    "website": ("Website", "website"),
    "mailing_street": ("MailingStreet", "mailing_street"),
    "mailing_city": ("MailingCity", "mailing_city"),
    "mailing_state": ("MailingState", "mailing_state"),
    "mailing_postal_code": ("MailingPostalCode", "mailing_postal_code"),
    "mailing_country": ("MailingCountry", "mailing_country"),
    "lead_source": ("LeadSource", "lead_source"),
    "status": ("Status", "status"),
    "linkedin": ("LinkedIn", "linkedin"),
    "twitter": ("Twitter", "twitter"),
    "unsubscribed": ("Unsubscribed", "unsubscribed"),
    "owner_name": ("owner_name",),
    "contact_id": ("contact_id",),
    "company_priority": ("company_priority",),
    "type": ("type",),
}
TIMESTAMPS = ("created_at", "updated_at", "first_visit_at", "first_conversion_at")
ISO = re.compile(r"^\d{4}-\d\d-\d\dT")
RFC1123 = re.compile(r"^[A-Z][a-z]{2}, \d\d [A-Z][a-z]{2} \d{4} \d\d:\d\d:\d\d GMT$")
EPOCH = datetime.datetime(1970, 1, 1, tzinfo=datetime.UTC)


def raw_value(doc: dict, keys):
    """The value of the first of keys the document has (None if it has none)."""
    for key in keys:
        if key in doc:
            return doc[key]
    return None


def instant(value) -> datetime.datetime:
    """A timestamp as the sandbox sends it (ISO 8601, RFC 1123, epoch ms) or as the tap
    writes it -> aware datetime in UTC."""
    if isinstance(value, int) and not isinstance(value, bool):
        return EPOCH + datetime.timedelta(milliseconds=value)
    if ISO.match(value):
        return datetime.datetime.fromisoformat(value.replace("Z", "+00:00")).astimezone(datetime.UTC)
    assert RFC1123.match(value), f"not a timestamp: {value!r}"
    return email.utils.parsedate_to_datetime(value).astimezone(datetime.UTC)


def raw_instant(value) -> datetime.datetime | None:
    """instant(value), or None for a missing timestamp."""
    return None if value is None else instant(value)


def emitted_instant(value) -> datetime.datetime | None:
    """A timestamp the tap emitted -> aware datetime; it must be an RFC 3339 string in UTC."""
    if value is None:
        return None
    assert isinstance(value, str) and re.match(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?(Z|\+00:00)$", value), (
        f"not RFC 3339 UTC: {value!r}"
    )
    return datetime.datetime.fromisoformat(value.replace("Z", "+00:00"))


def custom_column(field_name: str) -> str:
    """The column of a plain custom field: 'Favorite Color' -> 'custom_favorite_color'
    (written here, independent of the tap)."""
    return "custom_" + re.sub(r"[^0-9a-z]+", "_", field_name.lower()).strip("_")


def membership_pairs(members: dict) -> set:
    """{parent id: [contact id, ...]} (a dump's list_members or segment_members) -> pairs."""
    return {(group, contact) for group, contacts in members.items() for contact in contacts}


def last_changed(doc: dict) -> datetime.datetime:
    """When a raw contact last changed: updated_at, else created_at (never updated)."""
    return instant(doc.get("updated_at") or doc["created_at"])


def updated_since(sb: Sandbox, at: datetime.datetime) -> set:
    """Ids of the sandbox's contacts changed at or after `at`."""
    return {doc["contact_id"] for doc in sb.dataset.iter_contacts() if last_changed(doc) >= at}


def middle_day(sb: Sandbox) -> datetime.datetime:
    """A midnight in the middle of the sandbox's change times: the contacts changed since
    it are a strict subset (a start_date that does not depend on today's date)."""
    changed = sorted(last_changed(doc) for doc in sb.dataset.iter_contacts())
    day = changed[len(changed) // 2].date()
    return datetime.datetime.combine(day, datetime.time(), tzinfo=datetime.UTC)


# ---- sandbox and config -------------------------------------------------------


@contextlib.contextmanager
def sandbox(**kwargs):
    """A running in-process Sandbox(**kwargs) (see tap_autopilot/sandbox/server.py), stopped on exit.

    In a fixture: ``with helpers.sandbox(contacts=300) as sb: yield sb``.
    """
    sb = Sandbox(**kwargs).start()
    try:
        yield sb
    finally:
        sb.stop()


def admin(sb: Sandbox, name: str, body=None):
    """The sandbox's admin HTTP API (mutations with a body, stats without): its JSON answer."""
    data = None if body is None else json.dumps(body).encode()
    request = urllib.request.Request(
        sb.url + "/_admin/" + name,
        data=data,
        method="GET" if data is None else "POST",
        headers={"Content-Type": "application/json"},
    )
    with urllib.request.urlopen(request, timeout=10) as response:
        return json.loads(response.read())


def write_json(path, obj) -> str:
    """Write obj as JSON to path; returns the path as a str (handy as a CLI argument)."""
    Path(path).write_text(json.dumps(obj, indent=2), encoding="utf-8")
    return str(path)


def write_config(tmp_path, sandbox: Sandbox | None, **overrides) -> str:
    """A tap config for the sandbox in tmp_path/config.json; returns its path.

    Defaults: api_key "sandbox-key", start_date 2015-01-01, the sandbox's base_url and
    max_requests_per_second 100. An override of None removes that key. Without a sandbox
    (a stub server instead), base_url must be given.
    """
    config = {
        "api_key": API_KEY,
        "start_date": START_DATE,
        "base_url": sandbox.base_url if sandbox else None,
        "max_requests_per_second": 100,
    }
    config.update(overrides)
    config = {k: v for k, v in config.items() if v is not None}
    return write_json(Path(tmp_path) / "config.json", config)


def write_secret_config(tmp_path, sandbox: Sandbox, **overrides) -> str:
    """write_config for runs that are killed or stopped mid-scan and must never print
    their key: SECRET_API_KEY (make the sandbox with api_key=SECRET_API_KEY), a
    start_date before every contact and 10 requests a second."""
    config = {"api_key": SECRET_API_KEY, "start_date": "2000-01-01T00:00:00Z", "max_requests_per_second": 10}
    return write_config(tmp_path, sandbox, **{**config, **overrides})


# ---- running the tap ------------------------------------------------------------


def run_cli(args, timeout=120, **kwargs) -> subprocess.CompletedProcess:
    """Run the installed tap-autopilot CLI with args; stdout and stderr as text."""
    return subprocess.run(
        tools.tap_cmd() + [str(a) for a in args], capture_output=True, text=True, timeout=timeout, **kwargs
    )


class TapRun:
    """What one run of the tap wrote: exit code, raw stdout and stderr, its messages in
    order, and whether the test killed it."""

    def __init__(
        self, returncode: int, stdout: str, stderr: str, messages: list[dict] | None = None, killed: bool = False
    ):
        self.returncode = returncode
        self.stdout = stdout
        self.stderr = stderr
        self._messages = messages
        self.killed = killed

    @property
    def messages(self) -> list[dict]:
        """The Singer messages on stdout (parsed when first asked for: --discover prints a catalog)."""
        if self._messages is None:
            self._messages = parse_messages(self.stdout, self.stderr)
        return self._messages

    def records(self, stream: str) -> list[dict]:
        return records_by_stream(self.messages).get(stream, [])

    def states(self) -> list[dict]:
        return [m["value"] for m in self.messages if m.get("type") == "STATE"]

    @property
    def state(self) -> dict:
        """The last STATE (the run must have written one)."""
        state = last_state(self.messages)
        assert state is not None, f"the tap wrote no STATE: {self!r}"
        return state

    def lines(self, level: str) -> list[str]:
        """stderr lines of one log level ("WARNING", "CRITICAL", ...)."""
        return [line for line in self.stderr.splitlines() if line.startswith(level + " ")]

    def keys(self, stream: str) -> list:
        """key_of every record of the stream, in output order."""
        return [key_of(stream, r) for r in self.records(stream)]

    def __repr__(self):  # what pytest shows when an assertion on a run fails
        return f"TapRun(rc={self.returncode}, killed={self.killed}, stderr tail:\n{self.stderr[-3000:]})"


def parse_messages(stdout: str, stderr: str = "") -> list[dict]:
    """stdout parsed line by line: every line must be one JSON Singer message."""
    messages = []
    for number, line in enumerate(stdout.splitlines(), 1):
        if not line.strip():
            continue
        try:
            messages.append(json.loads(line))
        except ValueError:
            raise AssertionError(
                f"stdout line {number} is not a JSON message: {line[:300]!r}\nstderr:\n{stderr[-3000:]}"
            ) from None
    return messages


def assert_clean(run: TapRun, secret: str) -> None:
    """No traceback and the API key `secret` never shown, whatever happened."""
    assert "Traceback" not in run.stderr and "Traceback" not in run.stdout, run
    assert secret not in run.stderr, "the API key was printed on stderr"
    assert secret not in run.stdout, "the API key was printed on stdout"


def run_tap(args, timeout=120, env=None, secret: str | None = None) -> TapRun:
    """Run the tap to its end. With `secret`, assert_clean(run, secret)."""
    proc = run_cli(args, timeout=timeout, env=env)
    run = TapRun(proc.returncode, proc.stdout, proc.stderr)
    if secret is not None:
        assert_clean(run, secret)
    return run


def run_and_kill(args, kill_when: Callable[[list[dict]], Any], timeout=120, secret: str | None = None) -> TapRun:
    """Run the tap, reading its stdout line by line; SIGKILL it as soon as
    kill_when(messages so far) is true, then keep what it had written before dying.
    Fails if the tap finished before the condition was met. With `secret`, assert_clean."""
    cmd = tools.tap_cmd() + [str(a) for a in args]
    with tempfile.TemporaryFile() as stderr_file:
        proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=stderr_file)
        assert proc.stdout is not None
        watchdog = threading.Timer(timeout, proc.kill)
        watchdog.start()
        messages: list[dict] = []
        raw: list[bytes] = []
        killed = False
        try:
            for line in proc.stdout:
                raw.append(line)
                try:
                    messages.append(json.loads(line))
                except ValueError:
                    assert killed, f"unparseable stdout line before the kill: {line[:200]!r}"
                    continue  # the last line, cut by the kill: a target would never see it
                if not killed and kill_when(messages):
                    os.kill(proc.pid, signal.SIGKILL)
                    killed = True
        finally:
            if proc.poll() is None and not killed:
                proc.kill()
            proc.wait()
            proc.stdout.close()
            watchdog.cancel()
        stderr_file.seek(0)
        stderr = stderr_file.read().decode("utf-8", "replace")
    run = TapRun(proc.returncode, b"".join(raw).decode("utf-8", "replace"), stderr, messages, killed=killed)
    assert killed and proc.returncode == -signal.SIGKILL, f"the tap ended before it could be killed: {run!r}"
    if secret is not None:
        assert_clean(run, secret)
    return run


def tap_args(tmp_path, config, catalog, state=None, name="run") -> list:
    """--config, --catalog (a dict is written to tmp_path/<name>-catalog.json) and, with a
    state, --state (written to tmp_path/<name>-state.json)."""
    if isinstance(catalog, dict):
        catalog = write_json(Path(tmp_path) / f"{name}-catalog.json", catalog)
    args = ["--config", config, "--catalog", catalog]
    if state is not None:
        args += ["--state", write_json(Path(tmp_path) / f"{name}-state.json", state)]
    return args


def discover(config_path):
    """The catalog from `tap-autopilot --config C --discover` (which must succeed)."""
    proc = run_cli(["--config", config_path, "--discover"])
    assert proc.returncode == 0, f"discovery failed ({proc.returncode}):\n{proc.stderr[-3000:]}"
    return json.loads(proc.stdout)


# ---- catalogs -------------------------------------------------------------------


def select(catalog, streams=None, deselect_columns=None):
    """A copy of catalog with metadata 'selected' set: the given streams (all if None)
    selected, the others deselected, and deselect_columns ({stream: [column, ...]})
    marked selected: false. Unknown stream or column names raise KeyError."""
    catalog = copy.deepcopy(catalog)
    entries = {entry["tap_stream_id"]: entry for entry in catalog["streams"]}
    wanted = set(entries if streams is None else streams)
    deselect_columns = deselect_columns or {}
    for name in wanted | set(deselect_columns):
        if name not in entries:
            raise KeyError(f"no stream {name!r} in the catalog")
    for stream_id, entry in entries.items():
        by_breadcrumb = {tuple(m["breadcrumb"]): m["metadata"] for m in entry["metadata"]}
        if () not in by_breadcrumb:
            by_breadcrumb[()] = {}
            entry["metadata"].append({"breadcrumb": [], "metadata": by_breadcrumb[()]})
        by_breadcrumb[()]["selected"] = stream_id in wanted
        for column in deselect_columns.get(stream_id, ()):
            if ("properties", column) not in by_breadcrumb:
                raise KeyError(f"no column {column!r} in stream {stream_id!r}")
            by_breadcrumb[("properties", column)]["selected"] = False
    return catalog


# ---- reading the output -----------------------------------------------------------


def records_by_stream(messages) -> dict[str, list[dict]]:
    """{stream: [record, ...]} in output order."""
    out: dict[str, list[dict]] = {}
    for message in messages:
        if message.get("type") == "RECORD":
            out.setdefault(message["stream"], []).append(message["record"])
    return out


def schemas_by_stream(messages):
    """{stream: the schema of its latest SCHEMA message}."""
    return {m["stream"]: m["schema"] for m in messages if m.get("type") == "SCHEMA"}


def last_state(messages):
    """The value of the last STATE message, or None if there is none."""
    states = [m["value"] for m in messages if m.get("type") == "STATE"]
    return states[-1] if states else None


def contacts_scan_position(sb: Sandbox, messages: list[dict]) -> int:
    """How far the contacts scan of the last STATE got (index of its page cursor), or -1."""
    for message in reversed(messages):
        if message.get("type") == "STATE":
            scan = message["value"]["bookmarks"].get("contacts", {}).get("scan") or {}
            cursor = scan.get("cursor")
            return sb.dataset.position_of(cursor) if cursor else -1
    return -1


# A strict RFC 3339 date-time (jsonschema 2.6, which singer-python pins, only checks
# date-time when an optional package is installed: check it ourselves, everywhere).
_RFC3339 = re.compile(r"^\d{4}-\d\d-\d\d[Tt]\d\d:\d\d:\d\d(\.\d+)?([Zz]|[+-]\d\d:\d\d)$")


def _is_rfc3339(value):
    if not isinstance(value, str):
        return True  # "format" only constrains strings
    if not _RFC3339.match(value):
        return False
    try:
        datetime.datetime.fromisoformat(value.upper().replace("Z", "+00:00"))
    except ValueError:
        return False
    return True


def _format_checker():
    checker = jsonschema.FormatChecker()
    checker.checks("date-time")(_is_rfc3339)
    return checker


def validate_records(messages, max_errors=10):
    """Assert that a SCHEMA precedes the RECORDs of each stream, and that every RECORD
    is valid (Draft 4, strict date-time) against the latest SCHEMA of its stream and has
    no column its SCHEMA lacks. Returns {stream: records checked}."""
    checker = _format_checker()
    validators: dict[str, jsonschema.Draft4Validator] = {}
    properties: dict[str, set] = {}
    counts: dict[str, int] = {}
    errors: list[str] = []
    for number, message in enumerate(messages, 1):
        kind, stream = message.get("type"), message.get("stream")
        if kind == "SCHEMA":
            jsonschema.Draft4Validator.check_schema(message["schema"])
            validators[stream] = jsonschema.Draft4Validator(message["schema"], format_checker=checker)
            properties[stream] = set(message["schema"].get("properties") or {})
        elif kind == "RECORD":
            counts[stream] = counts.get(stream, 0) + 1
            if stream not in validators:
                errors.append(f"message {number}: RECORD of {stream!r} before any SCHEMA of it")
                continue
            record = message["record"]
            for error in validators[stream].iter_errors(record):
                path = "/".join(str(p) for p in error.path)
                errors.append(f"message {number} ({stream}) at {path or '<record>'}: {error.message}")
            extra = set(record) - properties[stream]
            if extra:
                errors.append(f"message {number} ({stream}): columns not in its SCHEMA: {sorted(extra)}")
        if len(errors) >= max_errors:
            break
    assert not errors, "invalid records:\n" + "\n".join(errors)
    return counts


def assert_exactly_once(run: TapRun, stream: str) -> None:
    """No row of the stream emitted twice within one run."""
    repeated = [key for key, n in Counter(run.keys(stream)).items() if n > 1]
    assert not repeated, f"{stream}: emitted more than once within one run: {repeated[:5]}"


# ---- PostgreSQL through meltanolabs-target-postgres ----------------------------------------

SCHEMA = "autopilot"  # the target's default_target_schema in these tests


def write_target_postgres_config(tmp_path, postgres, dbname: str) -> str:
    """tmp_path/target-postgres.json: upserts, hard deletes, record metadata and
    ACTIVATE_VERSION honoured (rows of older table versions deleted), into SCHEMA."""
    return write_json(
        Path(tmp_path) / "target-postgres.json",
        postgres.target_postgres_config(
            database=dbname,
            default_target_schema=SCHEMA,
            load_method="upsert",
            hard_delete=True,
            add_record_metadata=True,
            activate_version=True,
        ),
    )


def postgres_pipeline(tmp_path, postgres, sb: Sandbox, dbname: str) -> tuple[Warehouse, str, str]:
    """A new database `dbname` on the postgres fixture, ready for sync_into_postgres:
    (its Warehouse, a target-postgres config for it, a tap config for the sandbox sb)."""
    postgres.create_database(dbname)
    return (
        Warehouse(postgres, dbname),
        write_target_postgres_config(tmp_path, postgres, dbname),
        write_config(tmp_path, sb),
    )


def sync_into_postgres(
    tmp: Path, name: str, config: str, catalog: str, target_config: str, state: str | None = None, timeout=600
) -> dict:
    """tap stdout -> target-postgres stdin (an OS pipe); returns the last STATE the target emitted."""
    argv = tools.tap_cmd() + ["--config", config, "--catalog", catalog]
    if state:
        argv += ["--state", state]
    target_argv = [str(tools.TARGET_POSTGRES), "--config", target_config]
    return pipe_into_target(tmp, name, argv, target_argv, timeout=timeout)


def pipe_into_target(tmp: Path, name: str, tap_argv: list[str], target_argv: list[str], timeout=600) -> dict:
    """tap stdout -> target stdin (an OS pipe), their logs in tmp/<name>.{tap,target}.log;
    both must exit 0, and the last state the target emitted is returned."""
    tap_log, target_log = tmp / f"{name}.tap.log", tmp / f"{name}.target.log"
    with open(tap_log, "wb") as tap_err, open(target_log, "wb") as target_err:
        tap = subprocess.Popen(tap_argv, stdout=subprocess.PIPE, stderr=tap_err)
        assert tap.stdout is not None
        target = subprocess.Popen(target_argv, stdin=tap.stdout, stdout=subprocess.PIPE, stderr=target_err)
        tap.stdout.close()  # only the target holds the read end
        try:
            out, _ = target.communicate(timeout=timeout)
            tap.wait(timeout=timeout)
        finally:
            for proc in (tap, target):
                if proc.poll() is None:
                    proc.kill()
                    proc.wait()
    assert tap.returncode == 0, f"tap failed ({tap.returncode}):\n{tap_log.read_text()[-3000:]}"
    assert target.returncode == 0, f"target failed ({target.returncode}):\n{target_log.read_text()[-5000:]}"
    states = [json.loads(line) for line in out.decode().splitlines() if line.strip()]
    assert states, f"the target emitted no state:\n{target_log.read_text()[-3000:]}"
    return states[-1]


class Warehouse:
    """Queries on one database of the `postgres` fixture, tables in SCHEMA."""

    def __init__(self, server, dbname):
        self.server, self.dbname = server, dbname

    def query(self, sql):
        return self.server.query(sql, dbname=self.dbname)

    def count(self, table):
        return int(self.query(f"select count(*) from {SCHEMA}.{table}")[0][0])

    def pairs(self, table, parent_key):
        return set(self.query(f"select {parent_key}, contact_id from {SCHEMA}.{table}"))

    def contacts(self):
        """{contact_id: row dict} with the columns the tests compare."""
        rows = self.query(f"""
            select contact_id, email, first_name, title, custom_favorite_color, custom_seats,
                   created_at::text, updated_at::text, array_to_json(lists)::text,
                   array_to_json(anywhere_page_visits)::text
            from {SCHEMA}.contacts""")
        names = (
            "contact_id",
            "email",
            "first_name",
            "title",
            "custom_favorite_color",
            "custom_seats",
            "created_at",
            "updated_at",
            "lists",
            "anywhere_page_visits",
        )
        return {row[0]: dict(zip(names, row, strict=True)) for row in rows}
