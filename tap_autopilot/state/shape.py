"""The state-shape rule: what a state document given to the tap must hold, and what
becomes of one that does not (tap_shape). state.py reads the repaired document.

A stream whose entry is not in the shape this tap writes starts over, rather than the run
failing half-way or, worse, reading from a value that means nothing; the sync says so in
one WARNING, naming the key and the stream."""

import json
from collections.abc import Callable, Collection
from typing import Any

from tap_autopilot.values.converters import to_datetime


def version_number(value: object) -> int | None:
    """A table version read from state as an int, or None if it is not a usable one."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    if isinstance(value, float) and not value.is_integer():
        return None
    return int(value) if value > 0 else None


def _is_time(value: object) -> bool:
    return isinstance(value, str) and to_datetime(value) is not None


def _text_or_null(value: object) -> bool:
    return value is None or isinstance(value, str)


# What each key of an entry, and of its "scan", holds when this tap wrote it.
_ENTRY_KEYS: dict[str, tuple[Callable[[object], bool], str]] = {
    "updated_at": (_is_time, "a time"),
    "version": (lambda value: version_number(value) is not None, "a table version (a whole number above 0)"),
    "complete": (lambda value: isinstance(value, bool), "true or false"),
    "scan": (lambda value: isinstance(value, dict), "an object"),
    "done_through": (_text_or_null, "an id or null"),
    "done_beyond": (lambda value: isinstance(value, list) and all(isinstance(i, str) for i in value), "a list of ids"),
    "in_progress": (
        lambda value: isinstance(value, dict) and all(isinstance(c, str) for c in value.values()),
        "an object of id: cursor",
    ),
}
_SCAN_KEYS: dict[str, tuple[Callable[[object], bool], str]] = {
    "threshold": (_is_time, "a time"),
    "cursor": (_text_or_null, "a page cursor or null"),
    "bookmark": (_text_or_null, "a page cursor or null"),
    "max_updated_at": (lambda value: value is None or _is_time(value), "a time or null"),
    "started_at": (lambda value: value is None or _is_time(value), "a time or null"),
}


def _shown(value: object) -> str:
    text = json.dumps(value, default=str)
    return text if len(text) <= 40 else text[:37] + "..."


def _entry_problem(stream_id: str, entry: object) -> str | None:
    where = f"bookmarks.{stream_id}"
    if not isinstance(entry, dict):
        return f"{where} is {_shown(entry)}, not an object"
    scan = entry.get("scan")
    for keys, holder, path in ((_ENTRY_KEYS, entry, where), (_SCAN_KEYS, scan, f"{where}.scan")):
        for key, (valid, expected) in keys.items():
            if isinstance(holder, dict) and key in holder and not valid(holder[key]):
                return f"{path}.{key} is {_shown(holder[key])}, not {expected}"
    return None


def started_over(entry: object) -> dict[str, Any] | None:
    """A stream's entry once the stream starts over: none, or only the last table version
    (completed), so that the next pass's version is still above it (versions only grow)."""
    version = version_number(entry.get("version")) if isinstance(entry, dict) else None
    return None if version is None else {"version": version, "complete": True}


def tap_shape(raw: object, streams: Collection[str] = ()) -> tuple[dict[str, Any], list[str]]:
    """The state-shape rule: (the document as this tap reads it, what was not in its shape).

    Takes a Singer state or Meltano's {"singer_state": ...}. A stream whose entry is not
    what this tap writes (not an object, a key of the wrong type: an updated_at that is no
    time, a version that is no number...) starts over; a document with no "bookmarks"
    object, or whose bookmarks name none of `streams`, is no state of this tap: every
    stream starts over. Each problem says what is wrong and what starts over."""
    if not isinstance(raw, dict):
        return {"currently_syncing": None, "bookmarks": {}}, (
            [] if raw is None else [f"it is {_shown(raw)}, not an object, so every stream starts over"]
        )
    given: dict[str, Any] = raw
    if "bookmarks" not in given and isinstance(given.get("singer_state"), dict):  # Meltano's
        given = given["singer_state"]
    problems = []
    bookmarks = given.get("bookmarks", {})
    if "bookmarks" not in given and given:
        keys = ", ".join(sorted(str(key) for key in given))
        problems.append(f'it has no "bookmarks" object (its keys: {keys}), so every stream starts over')
    elif not isinstance(bookmarks, dict):
        problems.append(f'its "bookmarks" is {_shown(bookmarks)}, not an object, so every stream starts over')
        bookmarks = {}
    elif streams and bookmarks and not any(stream_id in bookmarks for stream_id in streams):
        names = ", ".join(sorted(bookmarks))
        problems.append(f"its bookmarks are for streams this tap does not have ({names}), so every stream starts over")
    kept: dict[str, Any] = {}
    for stream_id, entry in bookmarks.items():
        problem = _entry_problem(stream_id, entry) if not streams or stream_id in streams else None
        if problem is not None:
            problems.append(f"{problem}, so {stream_id} starts over")
            entry = started_over(entry)
        if isinstance(entry, dict):
            kept[stream_id] = entry
    document = {"currently_syncing": given.get("currently_syncing"), "bookmarks": kept}
    default = given.get("default_start_date")
    if default is not None and not _is_time(default):
        problems.append(
            f"its default_start_date is {_shown(default)}, not a time, so a new one is taken (one year before this run)"
        )
    elif default is not None:
        document["default_start_date"] = default
    return document, problems
