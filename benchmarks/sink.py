"""The counting sink that reads a tap's stdout, and the validation of its sample of records."""

import datetime
import json
import re
import time
from collections import Counter
from typing import Any

from settings import VALIDATE_ALL_UP_TO, VALIDATE_STRIDE

_RECORD_HEAD = re.compile(rb'\{\s*"type"\s*:\s*"RECORD"\s*,\s*"stream"\s*:\s*"((?:[^"\\]|\\.)*)"')


class Sink:
    """Reads a tap's stdout: counts RECORDs per stream without storing them,
    parses every other message, keeps a sample of RECORD lines for validation."""

    def __init__(self, validate_all_up_to=VALIDATE_ALL_UP_TO, stride=VALIDATE_STRIDE):
        self.full = validate_all_up_to
        self.stride = stride
        self.counts: dict[bytes, int] = {}  # stream -> RECORD lines
        self.samples: dict[bytes, list[tuple[dict, bytes]]] = {}  # stream -> [(schema message, line)]
        self.schemas: dict[bytes, dict] = {}  # stream -> the last SCHEMA message
        self.messages: Counter[str | None] = Counter()  # type -> count (non-RECORD)
        self.problems: list[str] = []  # Singer protocol problems
        self.bytes = 0
        self.last_state = None

    def feed(self, stream):
        match = _RECORD_HEAD.match
        counts, samples, schemas = self.counts, self.samples, self.schemas
        full, stride = self.full, self.stride
        total_bytes = 0
        for line in stream:
            total_bytes += len(line)
            found = match(line)
            if found is not None:
                name = found.group(1)
                n = counts.get(name, 0) + 1
                counts[name] = n
                schema = schemas.get(name)
                if schema is None:
                    if len(self.problems) < 20:
                        self.problems.append(f"RECORD of {name.decode()} before its SCHEMA")
                    continue
                if n <= full or n % stride == 0:
                    samples.setdefault(name, []).append((schema, line))
                continue
            self._other(line)
        self.bytes += total_bytes

    def _other(self, line):
        if not line.strip():
            return
        try:
            message = json.loads(line)
        except ValueError:
            self._problem(f"not JSON: {line[:80]!r}")
            return
        kind = message.get("type") if isinstance(message, dict) else None
        self.messages[kind] += 1
        if kind == "SCHEMA":
            if not isinstance(message.get("schema"), dict) or not isinstance(message.get("stream"), str):
                self._problem("SCHEMA without a stream or a schema object")
                return
            self.schemas[message["stream"].encode()] = message
        elif kind == "STATE":
            if "value" not in message:
                self._problem("STATE without a value")
            self.last_state = message.get("value")
        elif kind == "RECORD":  # a RECORD whose head our regex did not take (key order, spacing)
            stream = message.get("stream")
            name = stream.encode() if isinstance(stream, str) else b"?"
            self.counts[name] = self.counts.get(name, 0) + 1
            schema = self.schemas.get(name)
            if schema is None:
                self._problem(f"RECORD of {stream} before its SCHEMA")
            else:
                self.samples.setdefault(name, []).append((schema, line))
        elif kind not in ("ACTIVATE_VERSION", "BATCH"):
            self._problem(f"unknown message type {kind!r}")

    def _problem(self, text):
        if len(self.problems) < 20:
            self.problems.append(text)

    def records(self):
        return {name.decode(): n for name, n in self.counts.items()}


def _date_time_checker():
    import jsonschema

    checker = jsonschema.FormatChecker(formats=())

    @checker.checks("date-time", raises=ValueError)
    def _date_time(value):  # RFC 3339: a date, a 'T', a time and an offset
        if not isinstance(value, str):
            return True
        if len(value) < 20 or value[10] not in "Tt":
            raise ValueError(f"{value!r} is not an RFC 3339 date-time")
        parsed = datetime.datetime.fromisoformat(value)
        if parsed.tzinfo is None:
            raise ValueError(f"{value!r} has no UTC offset")
        return True

    return checker


def validate(sink):
    """Validate the sampled RECORDs against the SCHEMA each one was sent under."""
    import jsonschema

    checker = _date_time_checker()
    validators: dict[int, Any] = {}
    result: dict[str, Any] = {
        "checked": 0,
        "invalid": 0,
        "outside_schema": 0,
        "missing_keys": 0,
        "errors": [],
        "outside_fields": Counter(),
        "problems": list(sink.problems),
        "seconds": 0.0,
    }
    started = time.perf_counter()
    for name, samples in sink.samples.items():
        stream = name.decode()
        for schema_message, line in samples:
            validator = validators.get(id(schema_message))
            if validator is None:
                validator = validators[id(schema_message)] = jsonschema.Draft4Validator(
                    schema_message["schema"], format_checker=checker
                )
            result["checked"] += 1
            try:
                message = json.loads(line)
            except ValueError:
                result["invalid"] += 1
                _note(result, f"{stream}: a RECORD line is not JSON")
                continue
            record = message.get("record")
            if not isinstance(record, dict):
                result["invalid"] += 1
                _note(result, f"{stream}: RECORD without a record object")
                continue
            bad = False
            for error in validator.iter_errors(record):
                bad = True
                path = "/".join(str(p) for p in error.path)
                _note(result, f"{stream}: {path or '(record)'}: {error.message[:160]}")
                break
            properties = schema_message["schema"].get("properties") or {}
            outside = [key for key in record if key not in properties]
            if outside:
                result["outside_schema"] += 1
                result["outside_fields"].update(outside)
            keys = schema_message.get("key_properties") or []
            if any(record.get(key) in (None, "") for key in keys):
                result["missing_keys"] += 1
                bad = True
                _note(result, f"{stream}: a key property of {keys} is missing or empty")
            if bad:
                result["invalid"] += 1
    result["seconds"] = time.perf_counter() - started
    return result


def _note(result, text):
    if len(result["errors"]) < 5 and text not in result["errors"]:
        result["errors"].append(text)
