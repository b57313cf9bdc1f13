"""Values every warehouse accepts (docs/values.md): what the tap does with values
that are valid in Autopilot's JSON but refused by the fast parser, a target or a
warehouse, and the counts and warnings that say so.

- parse_body: every page that is JSON by RFC 8259 parses (the client's one parser);
- clean_row: the cleaning of a record at every depth (transform.serialize, the one
  encoder of records, calls it for the rows that need it);
- out_of_range: why a typed column's converter gave null for a value;
- ValueChanges: the run's counts per stream, column and kind, one WARNING each.
"""

import json
import logging
import math
import re
import threading
from collections import Counter
from collections.abc import Callable
from typing import Any

import orjson

from tap_autopilot.values.converters import (
    INT64_LIMIT,
    numeric_text,
    reads_as_instant,
    to_datetime,
    to_integer,
    to_number,
)

LOGGER = logging.getLogger("tap_autopilot")

# The kinds of change, as the end-of-run summary names them.
NUL_REMOVED = "NULs removed"
SURROGATES_REPLACED = "surrogates replaced"
INTEGERS_OUT_OF_RANGE = "integers out of range"
NUMBERS_OUT_OF_RANGE = "numbers out of range"
DATES_OUT_OF_RANGE = "dates out of range"

# note(column, kind): hears of one value of a column changed, or out of its range.
Note = Callable[[str, str], None]


def parse_body(content: bytes) -> tuple[Any, bool]:
    """A response body's JSON value, and whether bytes in it that were not UTF-8 had
    to be replaced with U+FFFD. ValueError when the body is not JSON at all.

    orjson parses nearly every page, fast. It refuses some bodies RFC 8259 allows:
    a lone surrogate escape ("\\ud83d", half an emoji), a number no double holds
    (1e400), and, not JSON but repairable, bytes that are not UTF-8. Only those
    pages take the slower standard library parser, which keeps a lone surrogate
    (the record encoder, transform.serialize, replaces it and counts it per
    column), a number no double holds as its text (null in a typed column,
    counted; as sent in custom_fields) and an integer of any size exactly."""
    try:
        return orjson.loads(content), False
    except orjson.JSONDecodeError:
        pass
    try:
        text, repaired = content.decode("utf-8"), False
    except UnicodeDecodeError:
        text, repaired = content.decode("utf-8", "replace"), True
    return json.loads(text, parse_float=_parse_float, parse_int=_parse_int, parse_constant=_not_json), repaired


def _parse_float(text: str) -> float | str:
    number = float(text)
    return number if math.isfinite(number) else text


def _parse_int(text: str) -> int | str:
    try:
        return int(text)
    except ValueError:  # more digits than Python converts (sys.int_info.default_max_str_digits)
        return text


def _not_json(name: str) -> None:
    raise ValueError(f"{name} is not JSON")  # NaN, Infinity: Python's json accepts them, RFC 8259 does not


# What the WARNING says of each kind (never the value: it may be personal data).
_CHANGE_TEXT = {
    NUL_REMOVED: "NUL characters removed (PostgreSQL refuses them in text and JSON)",
    SURROGATES_REPLACED: "a lone surrogate (half a character, e.g. an emoji cut in two) replaced with U+FFFD",
    INTEGERS_OUT_OF_RANGE: "an integer beyond signed 64 bits written as null",
    NUMBERS_OUT_OF_RANGE: "a number no double holds written as null",
    DATES_OUT_OF_RANGE: "a date-time outside 0001-01-01..9999-12-31 UTC written as null",
}
_LONE_SURROGATE = re.compile("[\ud800-\udfff]")


def clean_row(row: dict[str, Any], note: Note | None = None) -> dict[str, Any]:
    """A copy of row in which every value, at any depth, is one every warehouse
    accepts (clean_value); note(column, kind), if given, hears of each change."""
    cleaned: dict[str, Any] = {}
    for column, value in row.items():
        changes: set[str] = set()
        cleaned[column] = clean_value(value, changes)
        if note is not None:
            for kind in sorted(changes):
                note(column, kind)
    return cleaned


def clean_value(value: Any, changes: set[str]) -> Any:
    """value with NULs removed from every string (keys too), lone surrogates replaced
    with U+FFFD, an integer beyond 64 bits as its decimal text (it can only be inside
    a JSON column here: typed columns hold converted values) and a number that is not
    finite as null. The kinds of change made are added to the set `changes`."""
    kind = value.__class__
    if kind is str:
        return clean_text(value, changes)
    if kind is dict:
        return {
            (clean_text(key, changes) if key.__class__ is str else key): clean_value(item, changes)
            for key, item in value.items()
        }
    if kind is list:
        return [clean_value(item, changes) for item in value]
    if kind is int and not -INT64_LIMIT <= value < INT64_LIMIT:
        changes.add(INTEGERS_OUT_OF_RANGE)
        return str(value)
    if kind is float and not math.isfinite(value):
        changes.add(NUMBERS_OUT_OF_RANGE)
        return None
    return value


def clean_text(text: str, changes: set[str]) -> str:
    """text without NULs and with each lone surrogate replaced by U+FFFD."""
    if "\x00" in text:
        text = text.replace("\x00", "")
        changes.add(NUL_REMOVED)
    if not text.isascii():
        try:
            text.encode("utf-8")
        except UnicodeEncodeError:
            text = _LONE_SURROGATE.sub("\ufffd", text)
            changes.add(SURROGATES_REPLACED)
    return text


class ValueChanges:
    """Values changed so that every warehouse accepts them, counted per (stream,
    column, kind) for the end-of-run summary. The first change of each (stream,
    column, kind) in a run is logged as one WARNING; the value never is (it may be
    personal data). Thread-safe; only rows that needed a change get here."""

    def __init__(self) -> None:
        self.counts: Counter[tuple[str, str, str]] = Counter()
        self._lock = threading.Lock()

    def note(self, stream_id: str, column: str, kind: str) -> None:
        key = (stream_id, column, kind)
        with self._lock:
            first = key not in self.counts
            self.counts[key] += 1
        if first:
            LOGGER.warning(
                "%s.%s: %s; the value is not logged, the end-of-run summary counts every such change.",
                stream_id,
                column,
                _CHANGE_TEXT.get(kind, kind),
            )

    def reporter(self, stream_id: str) -> Note:
        """note() for one stream: (column, kind) -> None."""
        return lambda column, kind: self.note(stream_id, column, kind)

    def totals(self) -> dict[tuple[str, str], int]:
        """{(stream, kind): values changed}, in stream then kind order."""
        with self._lock:
            totals: Counter[tuple[str, str]] = Counter()
            for (stream_id, _, kind), count in self.counts.items():
                totals[(stream_id, kind)] += count
        return dict(sorted(totals.items()))


def out_of_range(convert: Callable[[Any], Any], value: Any) -> str | None:
    """Which limit `value` broke when convert() (a column's converter) gave None for
    it: one of the kinds above, or None when it is simply no value of that type
    (text in a number column: not counted). Called only for those values."""
    if convert is to_datetime:
        return DATES_OUT_OF_RANGE if reads_as_instant(value) else None
    if convert is not to_integer and convert is not to_number:
        return None
    number = value
    if isinstance(value, str):
        text = numeric_text(value)
        try:
            number = int(text)
        except ValueError:
            try:
                number = float(text)
            except ValueError:
                return None
    if isinstance(number, bool) or not isinstance(number, (int, float)):
        return None
    if isinstance(number, float):
        if math.isinf(number):
            return NUMBERS_OUT_OF_RANGE
        if not number.is_integer():
            return None  # a fraction in an integer column, or "nan": no value of the type
    if not -INT64_LIMIT <= number < INT64_LIMIT:
        # An integer column holds 64 bits; a number column failed only if no double holds it.
        return INTEGERS_OUT_OF_RANGE if convert is to_integer else NUMBERS_OUT_OF_RANGE
    return None
