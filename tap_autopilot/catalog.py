"""The catalog: which streams and columns a run takes.

selected_streams reads a catalog (the user's, or every stream when none is given) into
the streams the sync takes, each with its columns and replication method. Choosing
streams and columns without editing the catalog by hand:
`tap-autopilot --discover --select contacts --select lists --exclude contacts.email`
writes a catalog with those streams selected and those columns left out; a sync given no
--catalog takes every stream with its default columns (select with no names). Both set the
standard Singer metadata (`selected` on a stream's breadcrumb [] and on a column's),
which is what a hand-edited catalog or Meltano's `select` sets too.
"""

import logging
from collections.abc import Iterable, Sequence
from typing import Any

from singer import metadata

from tap_autopilot.discover import CUSTOM_FIELD_KEY
from tap_autopilot.errors import ConfigError
from tap_autopilot.streams import STREAMS
from tap_autopilot.streams.base import FULL_TABLE, INCREMENTAL, VERSION_COLUMN, Stream

LOGGER = logging.getLogger("tap_autopilot")


class SelectionError(ConfigError):
    pass


class SelectedStream:
    """A catalog entry the user selected, reduced to what the sync needs."""

    def __init__(self, entry: dict[str, Any]) -> None:
        self.tap_stream_id = entry["tap_stream_id"]
        self.stream = STREAMS[self.tap_stream_id]
        mdata = metadata.to_map(entry.get("metadata") or [])
        schema = entry.get("schema") or {}
        properties = schema.get("properties") or {}
        self.columns: dict[str, dict[str, Any]] = {}
        self.custom_field_kinds: dict[str, str] = {}
        for column, column_schema in properties.items():
            if _column_selected(mdata, column, column_schema):
                self.columns[column] = column_schema
                kind = metadata.get(mdata, ("properties", column), CUSTOM_FIELD_KEY)
                if kind:
                    self.custom_field_kinds[column] = kind
        self.replication_method = _replication_method(self.stream, mdata)
        replication_key = self.stream.replication_key if self.replication_method == INCREMENTAL else None
        self.bookmark_properties = [replication_key] if replication_key else None
        for key in list(self.stream.key_properties) + [replication_key]:
            if key and key not in self.columns:
                self.columns[key] = properties.get(key, {"type": ["null", "string"]})
        if (
            self.replication_method == FULL_TABLE
            and VERSION_COLUMN in properties
            and VERSION_COLUMN not in self.columns
        ):
            # The table_version rule, for a catalog edited by hand or by a tool (--exclude refuses it).
            LOGGER.warning(
                "The catalog leaves out %s.%s, which carries removals (docs/state.md, Removals): "
                "replicating it anyway.",
                self.tap_stream_id,
                VERSION_COLUMN,
            )
            self.columns[VERSION_COLUMN] = properties[VERSION_COLUMN]
        self.schema = dict(schema, properties=self.columns)
        self.schema.pop("selected", None)


def _replication_method(stream: Stream, mdata: dict[Any, Any]) -> str:
    """The catalog's `replication-method` for the stream if the stream allows it, else its default."""
    method = metadata.get(mdata, (), "replication-method")
    if method is None or method == stream.replication_methods[0]:
        return stream.replication_methods[0]
    if isinstance(method, str) and method.upper() in stream.replication_methods:
        return method.upper()
    LOGGER.warning(
        "The catalog sets replication-method %r for %s, which allows only %s; using %s.",
        method,
        stream.tap_stream_id,
        " or ".join(stream.replication_methods),
        stream.replication_methods[0],
    )
    return stream.replication_methods[0]


def _column_selected(mdata: dict[Any, Any], column: str, column_schema: object) -> bool:
    breadcrumb = ("properties", column)
    inclusion = metadata.get(mdata, breadcrumb, "inclusion")
    if inclusion == "automatic":
        return True
    if inclusion == "unsupported":
        return False
    selected = metadata.get(mdata, breadcrumb, "selected")
    if selected is None and isinstance(column_schema, dict):
        selected = column_schema.get("selected")  # legacy --properties style
    if selected is None:
        selected = metadata.get(mdata, breadcrumb, "selected-by-default")
    return selected is not False


def _stream_selected(entry: dict[str, Any]) -> bool:
    mdata = metadata.to_map(entry.get("metadata") or [])
    selected = metadata.get(mdata, (), "selected")
    if selected is None:
        selected = (entry.get("schema") or {}).get("selected")  # legacy --properties style
    return bool(selected)


def selected_streams(catalog: dict[str, Any]) -> list[SelectedStream]:
    """The selected catalog entries, known streams only, in canonical order."""
    chosen = {}
    for entry in catalog.get("streams") or []:
        stream_id = entry.get("tap_stream_id") or entry.get("stream")
        if stream_id not in STREAMS:
            LOGGER.warning("The catalog names an unknown stream %r; ignoring it.", stream_id)
            continue
        if _stream_selected(dict(entry, tap_stream_id=stream_id)):
            chosen[stream_id] = SelectedStream(dict(entry, tap_stream_id=stream_id))
    return [chosen[stream_id] for stream_id in STREAMS if stream_id in chosen]


def _metadata_by_breadcrumb(entry: dict[str, Any]) -> dict[tuple[str, ...], dict[str, Any]]:
    return {tuple(item.get("breadcrumb") or ()): item.setdefault("metadata", {}) for item in entry["metadata"]}


def check_names(
    known: Sequence[str], streams: Iterable[str] | None = None, exclude: Iterable[str] = ()
) -> tuple[list[str], list[tuple[str, str]]]:
    """Refuse (SelectionError, with the names to use) a stream that is not one of
    `known`, or an exclusion that is not STREAM.COLUMN of a selected stream: before
    discovery, which columns need. Returns (the selected streams, [(stream, column)])."""
    wanted = list(known) if streams is None else [name.strip() for name in streams]
    for name in wanted:
        if name not in known:
            raise SelectionError(f"--select {name}: there is no such stream. The streams are {', '.join(known)}.")
    excluded = []
    for item in exclude:
        stream, _, column = item.partition(".")
        if not column:
            raise SelectionError(f"--exclude {item}: write STREAM.COLUMN, such as contacts.email.")
        if stream not in wanted:
            raise SelectionError(f"--exclude {item}: the stream {stream} is not selected.")
        if column == VERSION_COLUMN and FULL_TABLE in STREAMS[stream].replication_methods:  # the table_version rule
            raise SelectionError(
                f"--exclude {item}: {VERSION_COLUMN} carries removals (with a target that ignores "
                f"ACTIVATE_VERSION, a stream's current rows are told by their {VERSION_COLUMN}: "
                "docs/state.md, Removals), so it cannot be left out."
            )
        excluded.append((stream, column))
    return wanted, excluded


def select(
    catalog: dict[str, Any], streams: Iterable[str] | None = None, exclude: Iterable[str] = ()
) -> dict[str, Any]:
    """Mark the catalog (changed in place, and returned): the named streams (every
    stream when None) selected and the others not; each "stream.column" of `exclude`
    not selected. An unknown stream or column, or one that cannot be left out (a key,
    the replication key), raises SelectionError with the names to use."""
    entries = {entry["tap_stream_id"]: entry for entry in catalog["streams"]}
    wanted, excluded = check_names(list(entries), streams, exclude)
    for stream, column in excluded:
        mdata = _metadata_by_breadcrumb(entries[stream])
        item = f"{stream}.{column}"
        if ("properties", column) not in mdata:
            raise SelectionError(f"--exclude {item}: {stream} has no column {column} (see --discover).")
        if mdata[("properties", column)].get("inclusion") == "automatic" or column in entries[stream].get(
            "key_properties", ()
        ):
            raise SelectionError(f"--exclude {item}: {column} is always replicated (a key or the replication key).")
    for name, entry in entries.items():
        mdata = _metadata_by_breadcrumb(entry)
        if () not in mdata:
            mdata[()] = {}
            entry["metadata"].insert(0, {"breadcrumb": [], "metadata": mdata[()]})
        mdata[()]["selected"] = name in wanted
    for stream, column in excluded:
        _metadata_by_breadcrumb(entries[stream])[("properties", column)]["selected"] = False
    return catalog


def split_names(values: Iterable[str] | None) -> list[str]:
    """The names given to repeated options, each may hold several separated by commas."""
    return [name.strip() for value in values or () for name in value.split(",") if name.strip()]


def given_names(option: str, values: Iterable[str] | None) -> list[str] | None:
    """The empty-select rule: the names given to --select or --exclude (None when the option
    is not given at all). Given, but with no name ("", only commas or spaces: an empty shell
    variable), it is refused: an empty --select would select every stream, an empty --exclude
    keep every column the user meant to leave out."""
    if values is None:
        return None
    names = split_names(values)
    if not names:
        what, otherwise = (
            ("stream", "to select every stream")
            if option == "--select"
            else ("STREAM.COLUMN, such as contacts.email", "to keep every column")
        )
        raise SelectionError(
            f"{option} was given no name (an empty variable?): name at least one {what}, or leave {option} "
            f"out {otherwise}."
        )
    return names
