"""Small helpers for integration tests: a sandbox, a config, the installed tap CLI
run as a subprocess, catalog selection, and checks on the tap's Singer output.

    with helpers.sandbox(contacts=300, seed=7) as sb:          # or the sandbox fixtures
        config = helpers.write_config(tmp_path, sb)
        catalog = helpers.select(helpers.discover(config), streams=["contacts"])
        code, messages, stderr = helpers.run_tap(
            ["--config", config, "--catalog", helpers.write_json(tmp_path / "catalog.json", catalog)])
        helpers.validate_records(messages)
        rows = helpers.records_by_stream(messages)["contacts"]

Import as ``helpers`` (conftest.py puts this directory on sys.path).
"""

from __future__ import annotations

import contextlib
import copy
import datetime
import json
import re
import subprocess
from pathlib import Path

import jsonschema
import tools

from tap_autopilot.sandbox import Sandbox

API_KEY = "sandbox-key"
START_DATE = "2015-01-01T00:00:00Z"


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


def write_json(path, obj) -> str:
    """Write obj as JSON to path; returns the path as a str (handy as a CLI argument)."""
    Path(path).write_text(json.dumps(obj, indent=2), encoding="utf-8")
    return str(path)


def write_config(tmp_path, sandbox, **overrides) -> str:
    """A tap config for the sandbox in tmp_path/config.json; returns its path.

    Defaults: api_key "sandbox-key", start_date 2015-01-01, the sandbox's base_url and
    max_requests_per_second 100. An override of None removes that key.
    """
    config = {
        "api_key": API_KEY,
        "start_date": START_DATE,
        "base_url": sandbox.base_url,
        "max_requests_per_second": 100,
    }
    config.update(overrides)
    config = {k: v for k, v in config.items() if v is not None}
    return write_json(Path(tmp_path) / "config.json", config)


# ---- running the tap ------------------------------------------------------------


def run_cli(args, timeout=120, **kwargs) -> subprocess.CompletedProcess:
    """Run the installed tap-autopilot CLI with args; stdout and stderr as text."""
    return subprocess.run(
        tools.tap_cmd() + [str(a) for a in args], capture_output=True, text=True, timeout=timeout, **kwargs
    )


def run_tap(args, timeout=120):
    """Run the tap; returns (returncode, messages, stderr), messages being stdout parsed
    line by line. Every stdout line must be one JSON Singer message."""
    proc = run_cli(args, timeout=timeout)
    messages = []
    for number, line in enumerate(proc.stdout.splitlines(), 1):
        if not line.strip():
            continue
        try:
            messages.append(json.loads(line))
        except ValueError:
            raise AssertionError(
                f"stdout line {number} is not a JSON message: {line[:300]!r}\nstderr:\n{proc.stderr[-3000:]}"
            ) from None
    return proc.returncode, messages, proc.stderr


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


def records_by_stream(messages):
    """{stream: [record, ...]} in output order."""
    out = {}
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
    validators, properties, counts, errors = {}, {}, {}, []
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
