"""Choosing streams and columns without editing the catalog by hand.

`tap-autopilot --discover --select contacts --select lists --exclude contacts.email`
writes a catalog with those streams selected and those columns left out; a sync given no
--catalog takes every stream with its default columns (select with no names). Both set the
standard Singer metadata (`selected` on a stream's breadcrumb [] and on a column's),
which is what a hand-edited catalog or Meltano's `select` sets too.
"""

from collections.abc import Iterable, Sequence
from typing import Any

from tap_autopilot.errors import ConfigError
from tap_autopilot.streams import VERSION_COLUMN


class SelectionError(ConfigError):
    pass


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
        if column == VERSION_COLUMN:  # the table_version rule
            raise SelectionError(
                f"--exclude {item}: {VERSION_COLUMN} carries removals (with a target that ignores "
                f"ACTIVATE_VERSION, a stream's current rows are those of its highest {VERSION_COLUMN}: "
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
