"""Raw Autopilot contact document -> warehouse row.

A ContactTransformer is compiled once per sync from the selected columns: a
list of (column, source keys, converter) steps, so the per-record work is a
tight loop with no schema walking. The converters (converters.py) return a value
that conforms to the column's schema, or None when the source value cannot be made to.
"""

import datetime
import hashlib
import re
from collections.abc import Callable
from typing import Any

import orjson
from anyascii import anyascii

from tap_autopilot.schema_files import load_schema
from tap_autopilot.values.cleaning import Note, clean_row, out_of_range
from tap_autopilot.values.converters import (
    Converter,
    to_boolean,
    to_custom_field_list,
    to_datetime,
    to_integer,
    to_mail_events,
    to_number,
    to_string,
    to_string_list,
    to_url_flags,
)

# --- names ---------------------------------------------------------------

_CAMEL_BOUNDARY = re.compile(r"(?<=[a-z0-9])(?=[A-Z])|(?<=[A-Z])(?=[A-Z][a-z])")
_NON_WORD = re.compile(r"[^0-9a-zA-Z]+")


def snake_case(name: object) -> str:
    """'FirstName' -> 'first_name', 'Favorite Color' -> 'favorite_color'."""
    name = _CAMEL_BOUNDARY.sub("_", str(name))
    return _NON_WORD.sub("_", name).strip("_").lower()


# PostgreSQL cuts identifiers at 63 bytes (BigQuery allows 300, Snowflake 255): the
# tightest limit is the one every column name keeps to.
MAX_COLUMN_BYTES = 63


def custom_field_column(kind: object) -> str:
    """A custom field's column: 'Favorite Color' -> 'custom_favorite_color'.

    Names are transliterated to ASCII first ('Größe' -> 'custom_grosse',
    '客户' -> 'custom_ke_hu'), a column name every warehouse accepts; a name
    with nothing to transliterate gets a short hash of itself instead. A column
    longer than MAX_COLUMN_BYTES keeps a readable prefix and ends in a short
    hash of the whole field name, so two long names alike in their first 63
    bytes still get two columns."""
    name = str(kind)
    column = "custom_" + (snake_case(anyascii(name)) or "field_" + short_hash(name))
    if len(column) > MAX_COLUMN_BYTES:
        column = fit_column(column, "_" + short_hash(name))
    return column


def fit_column(prefix: str, suffix: str) -> str:
    """prefix + suffix, the prefix cut so that the whole is at most MAX_COLUMN_BYTES
    (column names are ASCII: a character is a byte)."""
    return prefix[: MAX_COLUMN_BYTES - len(suffix)].rstrip("_") + suffix


def short_hash(text: str) -> str:
    """Six hex digits that stay the same for the same text on every run."""
    # surrogatepass: a field name may hold a lone surrogate (docs/values.md).
    return hashlib.sha1(text.encode("utf-8", "surrogatepass")).hexdigest()[:6]


def serialize(row: dict[str, Any], note: Note | None = None) -> bytes:
    """A row -> JSON bytes, datetimes as RFC 3339 UTC ('...Z'). The one
    encoder of record payloads, so every value a record carries passes here:
    a row holding anything a warehouse refuses is written cleaned (clean_row),
    each change reported to note(column, kind).

    Kept cheap for the rows that need nothing (nearly all): orjson refuses a
    lone surrogate itself, and an integer beyond 53 bits with OPT_STRICT_INTEGER
    (it would take unsigned 64-bit ones, which clean_row writes as text: such a
    row, rare, is checked the slow way), and a NUL is written
    as the escape \\u0000, looked for only when the row's JSON has a backslash
    at all (a memchr; searching every row for the escape costs as much as
    encoding it)."""
    try:
        out = orjson.dumps(row, option=_ORJSON_OPTIONS | orjson.OPT_STRICT_INTEGER)
    except orjson.JSONEncodeError:
        return orjson.dumps(clean_row(row, note), option=_ORJSON_OPTIONS)
    if b"\\" in out and b"\\u0000" in out:
        return orjson.dumps(clean_row(row, note), option=_ORJSON_OPTIONS)
    return out


_ORJSON_OPTIONS = orjson.OPT_NAIVE_UTC | orjson.OPT_UTC_Z


# --- the standard columns --------------------------------------------------

# Raw spellings the API has been seen to use, first one wins.
_RENAMED = {
    "linkedin": ("LinkedIn", "linkedin", "linked_in", "Linkedin"),
    "owner_name": ("owner_name", "OwnerName"),
    "contact_id": ("contact_id", "ContactId", "id"),
}

# Columns whose raw spelling is already the column name (system fields).
_SYSTEM = {
    "contact_id",
    "created_at",
    "updated_at",
    "first_visit_at",
    "first_conversion_at",
    "company_priority",
    "lists",
    "type",
    "custom_fields",
    "anywhere_page_visits",
    "anywhere_form_submits",
    "anywhere_utm",
    "mail_received",
    "mail_opened",
    "mail_clicked",
    "mail_bounced",
    "mail_complained",
    "mail_unsubscribed",
    "mail_hardbounced",
}


def source_keys(column: str) -> tuple[str, ...]:
    """Raw keys to look for a standard column under, in order of preference."""
    if column in _RENAMED:
        return _RENAMED[column]
    if column in _SYSTEM:
        return (column,)
    pascal = "".join(part.capitalize() for part in column.split("_"))
    return (pascal, column)


_CONTACT_ID_KEYS = source_keys("contact_id")


def contact_id(doc: dict[str, Any]) -> str | None:
    """A raw document's contact id, under whichever spelling it has, or None."""
    for key in _CONTACT_ID_KEYS:
        value = doc.get(key)
        if value:
            return value if isinstance(value, str) else to_string(value)
    return None


def replication_instant(doc: dict[str, Any]) -> datetime.datetime | None:
    """When a contact last changed, for the incremental filter and bookmark:
    its updated_at, else its created_at (a contact never updated last changed
    when it was created), else None (such a contact is emitted on every run)."""
    value = doc.get("updated_at")
    instant = None if value is None else to_datetime(value)
    if instant is None:
        value = doc.get("created_at")
        instant = None if value is None else to_datetime(value)
    return instant


def converter_for(column: str, schema: dict[str, Any]) -> Converter:
    """Pick the converter for a column from its JSON schema."""
    if column in ("anywhere_page_visits", "anywhere_form_submits", "anywhere_utm"):
        return to_url_flags
    if column.startswith("mail_") and "array" in _types(schema):
        return to_mail_events
    if column == "custom_fields":
        return to_custom_field_list
    types = _types(schema)
    if schema.get("format") == "date-time":
        return to_datetime
    if "array" in types:
        return to_string_list
    if "integer" in types:
        return to_integer
    if "number" in types:
        return to_number
    if "boolean" in types:
        return to_boolean
    return to_string


def _types(schema: dict[str, Any]) -> list[str]:
    kind = schema.get("type", [])
    return kind if isinstance(kind, list) else [kind]


# Converters whose None for a value may mean "out of range" (see out_of_range).
_RANGED = (to_integer, to_number, to_datetime)

# The column holding every key of a document that no other column reads
# (undocumented extras such as `_rev`, `api_originated`, `employeesRange`).
EXTRA_FIELDS_COLUMN = "extra_fields"


class ContactTransformer:
    """Compiled once per sync: turns raw contact documents into rows holding
    exactly the selected columns.

    The per-record function is generated as straight-line Python (one lookup
    and one conversion per column, no loops over the schema): several times
    faster than walking a column table per record, which matters at 100k+
    contacts a run."""

    replication_instant = staticmethod(replication_instant)

    def __init__(
        self, properties: dict[str, dict[str, Any]], custom_field_kinds: dict[str, str], note: Note | None = None
    ) -> None:
        """properties: {column: schema} of the selected columns.
        custom_field_kinds: {column: Autopilot field name} for custom_* columns.
        note(column, kind), if given, hears of each value out of its column's range
        (written as null): a ValueChanges.reporter."""
        self._note = note
        # Autopilot field name -> (column, converter); None: a field no column takes
        self.custom: dict[Any, tuple[str, Converter] | None] = {}
        standard: list[tuple[str, tuple[str, ...], Converter]] = []  # (column, raw keys, converter)
        # custom_* columns whose catalog entry lost the field name (a tool rewrote
        # the catalog): matched by column name when a field turns up.
        self._unnamed_custom: dict[str, tuple[str, Converter]] = {}
        extras = False
        for column, schema in properties.items():
            if column in custom_field_kinds:
                self.custom[custom_field_kinds[column]] = (column, converter_for(column, schema))
            elif column.startswith("custom_") and column != "custom_fields":
                self._unnamed_custom[column] = (column, converter_for(column, schema))
            elif column == EXTRA_FIELDS_COLUMN:
                extras = True
            else:
                standard.append((column, source_keys(column), converter_for(column, schema)))
        self._transform = self._compile(standard, extras)

    def __call__(self, doc: dict[str, Any]) -> dict[str, Any]:
        return self._transform(doc)

    def _compile(
        self, standard: list[tuple[str, tuple[str, ...], Converter]], extras: bool
    ) -> Callable[[dict[str, Any]], dict[str, Any]]:
        namespace: dict[str, Any] = {
            "to_string": to_string,
            "apply_custom": self._apply_custom,
            "dropped": self._dropped,
            "str": str,
            "known_keys": _known_keys() if extras else None,
        }
        lines = ["def transform(doc):", "    get = doc.get"]
        values = []
        for index, (column, keys, convert) in enumerate(standard):
            lines.append(f"    v = get({keys[0]!r})")
            for key in keys[1:]:
                lines += ["    if v is None:", f"        v = get({key!r})"]
            if convert is to_string:
                # Most values are already strings: skip the call for them ("" is null).
                lines.append(
                    f"    c{index} = (v or None) if v.__class__ is str else None if v is None else to_string(v)"
                )
            elif convert in (to_mail_events, to_url_flags):
                # Many of these maps are empty: no call for those.
                namespace[f"convert{index}"] = convert
                lines.append(f"    c{index} = None if v is None else [] if v == {{}} else convert{index}(v)")
            elif column == "lists":
                # The API leaves `lists` out for a contact on no list.
                namespace[f"convert{index}"] = convert
                lines.append(f"    c{index} = [] if v is None else convert{index}(v)")
            elif convert in _RANGED and self._note is not None:
                # A value its column cannot hold is null: counted when it was out of range.
                namespace[f"convert{index}"] = convert
                lines += [
                    "    if v is None:",
                    f"        c{index} = None",
                    "    else:",
                    f"        c{index} = convert{index}(v)",
                    f"        if c{index} is None:",
                    f"            dropped({column!r}, convert{index}, v)",
                ]
            else:
                namespace[f"convert{index}"] = convert
                lines.append(f"    c{index} = None if v is None else convert{index}(v)")
            values.append(f"{column!r}: c{index}")
        if extras:
            lines.append("    extra = {k: v for k, v in doc.items() if k not in known_keys}")
            values.append(f"{EXTRA_FIELDS_COLUMN!r}: extra or None")
        custom_columns = [target[0] for target in self.custom.values() if target] + list(self._unnamed_custom)
        values += [f"{column!r}: None" for column in custom_columns]
        lines.append("    row = {" + ", ".join(values) + "}")
        if custom_columns:
            lines += [
                "    fields = get('custom_fields')",
                "    if fields.__class__ is list:",
                "        apply_custom(row, fields)",
            ]
        lines.append("    return row")
        exec("\n".join(lines), namespace)
        return namespace["transform"]

    def _apply_custom(self, row: dict[str, Any], fields: list[Any]) -> None:
        custom = self.custom
        for field in fields:
            if field.__class__ is dict:
                kind = field.get("kind")
                target = custom.get(kind)
                if target is None and self._unnamed_custom and kind.__class__ is str:
                    # Learn the field's column once; later contacts take the fast path.
                    target = custom[kind] = self._unnamed_custom.pop(custom_field_column(kind), None)
                if target is not None:
                    deleted = field.get("deleted")
                    if deleted is not None and deleted is not False and to_boolean(deleted):
                        continue  # a deleted value stays only in the raw custom_fields array
                    value = field.get("value")
                    if value is None:
                        row[target[0]] = None
                    else:
                        converted = row[target[0]] = target[1](value)
                        if converted is None and target[1] in _RANGED:
                            self._dropped(target[0], target[1], value)

    def _dropped(self, column: str, convert: Callable[[Any], Any], value: Any) -> None:
        """convert(value) gave None: count it if the value was out of the column's range."""
        if self._note is not None:
            kind = out_of_range(convert, value)
            if kind is not None:
                self._note(column, kind)


def _known_keys() -> frozenset[str]:
    """Every raw key some standard column reads (selected or not), in every
    spelling: what is left of a document is its extras."""
    columns = [column for column in load_schema("contacts")["properties"] if column != EXTRA_FIELDS_COLUMN]
    return frozenset(key for column in columns for key in source_keys(column))
