"""Value converters: a value as Autopilot sends it -> a value that conforms to a
column's JSON schema type, or None when it cannot be made to (never an error).
transform.converter_for picks one per column from its schema."""

import datetime
import json
import math
import re
from collections.abc import Callable
from email.utils import parsedate_to_datetime
from typing import Any

# A value as the API sends it -> the column's value, or None when it cannot be made one.
Converter = Callable[[Any], Any]

_UTC = datetime.UTC
_fromisoformat = datetime.datetime.fromisoformat
INT64_LIMIT = 2**63  # signed 64-bit integers are -INT64_LIMIT .. INT64_LIMIT - 1 (values.py uses it too)
_fromtimestamp = datetime.datetime.fromtimestamp  # 3x faster than epoch + timedelta
_OUT_OF_RANGE = (OverflowError, OSError, ValueError)
# Epoch numbers above this are milliseconds (1e11 s would be the year 5138).
_MS_THRESHOLD = 100_000_000_000


def format_datetime(value: datetime.datetime) -> str:
    """An aware datetime -> RFC 3339 UTC text, for STATE bookmarks. Records
    carry datetime objects, which the output's JSON encoder writes in the
    same form (orjson: OPT_NAIVE_UTC | OPT_UTC_Z)."""
    return value.astimezone(_UTC).replace(tzinfo=None).isoformat(timespec="microseconds") + "Z"


def to_datetime(value: Any) -> datetime.datetime | None:
    """A timestamp as Autopilot sends one -> aware UTC datetime, else None.

    ISO-8601 with any offset, with or without a fraction (tried first: nearly
    every value); RFC 1123 / 2822 ('Tue, 12 May 2015 21:41:31 GMT'); epoch
    milliseconds or seconds as a number or a numeric string; text without an
    offset is UTC. Anything else, or an instant outside what a datetime
    holds, is None: never an error."""
    if value.__class__ is str:
        try:
            parsed = _fromisoformat(value)
        except ValueError:
            return _text_datetime(value)
        return _as_utc(parsed)
    if value is None or isinstance(value, bool):
        return None
    if isinstance(value, (int, float)):
        try:
            seconds = value / 1000.0 if abs(value) >= _MS_THRESHOLD else float(value)
            return _fromtimestamp(seconds, _UTC)
        except _OUT_OF_RANGE:
            return None
    return None


def _as_utc(parsed: datetime.datetime) -> datetime.datetime | None:
    if parsed.tzinfo is None:
        return parsed.replace(tzinfo=_UTC)
    if parsed.tzinfo is _UTC:
        return parsed
    try:
        return parsed.astimezone(_UTC)
    except _OUT_OF_RANGE:
        return None  # e.g. year 1 with a positive offset


EPOCH_TEXT = re.compile(r"^\s*-?\d+(\.\d+)?\s*$")


def reads_as_instant(value: object) -> bool:
    """Whether to_datetime reads `value` as an instant at all, in or out of a datetime's
    range (values.out_of_range: a None from it then means out of range)."""
    if isinstance(value, bool):
        return False
    if isinstance(value, (int, float)):
        return True
    if not isinstance(value, str):
        return False
    if EPOCH_TEXT.match(value):
        return True
    try:
        _fromisoformat(value)
        return True
    except ValueError:
        pass
    try:
        parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError):
        return False
    return True


def numeric_text(value: str) -> str:
    """Text as the number converters read it: no surrounding space, no thousands separators."""
    return value.strip().replace(",", "")


def _text_datetime(value: str) -> datetime.datetime | None:
    """The slow path of to_datetime: text that is not ISO-8601."""
    if EPOCH_TEXT.match(value):
        number = float(value)
        return to_datetime(int(number) if number.is_integer() else number)
    try:
        parsed = parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError):
        return None
    return _as_utc(parsed)


def to_string(value: Any) -> str | None:
    """Text column value. An empty string is None: Autopilot sends "" for a
    field that was never set, which is what null says in a warehouse."""
    if value is None or isinstance(value, str):
        return value or None
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return str(value)
    return None  # objects and arrays have no place in a string column


def to_integer(value: Any) -> int | None:
    if value is None or isinstance(value, bool):
        return None
    if isinstance(value, float):
        value = int(value) if value.is_integer() else None
    elif isinstance(value, str):
        try:
            value = int(numeric_text(value))
        except ValueError:
            number = to_number(value)
            value = int(number) if number is not None and number.is_integer() else None
    if isinstance(value, int) and -INT64_LIMIT <= value < INT64_LIMIT:
        return value
    return None  # not a whole number, or too large for a 64-bit warehouse column


def to_number(value: Any) -> float | None:
    if value is None or isinstance(value, bool):
        return None
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, int):
        if -INT64_LIMIT <= value < INT64_LIMIT:
            return value
        try:
            return float(value)  # a number column holds doubles: an integer beyond 64 bits as one
        except OverflowError:
            return None
    if isinstance(value, str):
        try:
            number = float(numeric_text(value))
        except ValueError:
            return None
        return number if math.isfinite(number) else None
    return None


_TRUE = {"true", "yes", "1", "y", "t"}
_FALSE = {"false", "no", "0", "n", "f"}


def to_boolean(value: Any) -> bool | None:
    if value is None or isinstance(value, bool):
        return value
    if isinstance(value, (int, float)):
        return bool(value)
    if isinstance(value, str):
        lowered = value.strip().lower()
        if lowered in _TRUE:
            return True
        if lowered in _FALSE:
            return False
    return None


def to_string_list(value: Any) -> list[str] | None:
    if not isinstance(value, list):
        return None
    return [item for item in value if isinstance(item, str)]


def to_url_flags(value: Any) -> list[dict[str, Any]] | None:
    """{url: bool} -> [{url, value}]."""
    if not isinstance(value, dict):
        return None
    return [
        {"url": url, "value": flag if flag is None or flag.__class__ is bool else to_boolean(flag)}
        for url, flag in value.items()
    ]


def to_mail_events(value: Any) -> list[dict[str, Any]] | None:
    """{mail id: epoch ms} -> [{id, timestamp}]."""
    if not isinstance(value, dict):
        return None
    try:
        # The common case in one expression: integer epoch milliseconds.
        return [
            {
                "id": mail_id,
                "timestamp": _fromtimestamp(at / 1000, _UTC)
                if at.__class__ is int and at >= _MS_THRESHOLD
                else to_datetime(at),
            }
            for mail_id, at in value.items()
        ]
    except _OUT_OF_RANGE:
        return [
            {"id": mail_id, "timestamp": to_datetime(at) if at is not None else None} for mail_id, at in value.items()
        ]


def to_custom_field_list(value: Any) -> list[dict[str, Any]] | None:
    """Keep every custom field, typed or not, so one created after discovery is never lost."""
    if value.__class__ is not list:
        return None
    out = []
    for field in value:
        if field.__class__ is dict:
            get = field.get
            kind, raw, field_type, deleted = get("kind"), get("value"), get("fieldType"), get("deleted")
            if field_type is None:
                field_type = get("field_type")
            out.append(
                {
                    "kind": kind if kind is None or kind.__class__ is str else to_string(kind),
                    # As sent: an empty string stays "" in this raw copy.
                    "value": raw if raw is None or raw.__class__ is str else _stringify(raw),
                    "field_type": field_type
                    if field_type is None or field_type.__class__ is str
                    else to_string(field_type),
                    "deleted": deleted if deleted is None or deleted.__class__ is bool else to_boolean(deleted),
                }
            )
    return out


def _stringify(value: Any) -> str | None:
    if isinstance(value, (dict, list)):
        return json.dumps(value, separators=(",", ":"), sort_keys=True)
    return to_string(value)
