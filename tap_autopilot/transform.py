"""Raw Autopilot contact document -> warehouse row.

A ContactTransformer is compiled once per sync from the selected columns: a
list of (column, source keys, converter) steps, so the per-record work is a
tight loop with no schema walking. Converters return a value that conforms to
the column's schema, or None when the source value cannot be made to.
"""
import datetime
import json
import logging
import re

LOGGER = logging.getLogger("tap_autopilot")

_UTC = datetime.timezone.utc
_EPOCH = datetime.datetime(1970, 1, 1)
# Epoch numbers above this are milliseconds (1e11 s would be the year 5138).
_MS_THRESHOLD = 100_000_000_000


# --- names ---------------------------------------------------------------

_CAMEL_BOUNDARY = re.compile(r"(?<=[a-z0-9])(?=[A-Z])|(?<=[A-Z])(?=[A-Z][a-z])")
_NON_WORD = re.compile(r"[^0-9a-zA-Z]+")


def snake_case(name):
    """'FirstName' -> 'first_name', 'Favorite Color' -> 'favorite_color'."""
    name = _CAMEL_BOUNDARY.sub("_", str(name))
    return _NON_WORD.sub("_", name).strip("_").lower()


def custom_field_column(kind):
    return "custom_" + (snake_case(kind) or "field")


# --- value converters ----------------------------------------------------

def _format_utc(value):
    """A naive UTC datetime -> RFC 3339 with microseconds, the one format every
    timestamp leaves the tap in (so they also compare as strings)."""
    return value.isoformat(timespec="microseconds") + "Z"


def to_datetime_string(value):
    """ISO-8601 string or epoch number (ms, or s) -> RFC 3339 UTC, else None."""
    if value is None or value == "":
        return None
    if isinstance(value, str):
        try:
            parsed = datetime.datetime.fromisoformat(value)
        except ValueError:
            if value.isdigit():
                return to_datetime_string(int(value))
            return None
        if parsed.tzinfo is not None:
            if parsed.utcoffset():
                parsed = parsed.astimezone(_UTC)
            parsed = parsed.replace(tzinfo=None)
        return _format_utc(parsed)
    if isinstance(value, bool):
        return None
    if isinstance(value, (int, float)):
        seconds = value / 1000.0 if abs(value) >= _MS_THRESHOLD else float(value)
        try:
            return _format_utc(_EPOCH + datetime.timedelta(seconds=seconds))
        except OverflowError:
            return None
    return None


def to_string(value):
    if value is None or isinstance(value, str):
        return value
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return str(value)
    return None  # objects and arrays have no place in a string column


def to_integer(value):
    if value is None or isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, float):
        return int(value) if value.is_integer() else None
    if isinstance(value, str):
        try:
            return int(value.strip().replace(",", ""))
        except ValueError:
            number = to_number(value)
            return int(number) if number is not None and number.is_integer() else None
    return None


def to_number(value):
    if value is None or isinstance(value, bool):
        return None
    if isinstance(value, (int, float)):
        return value
    if isinstance(value, str):
        try:
            number = float(value.strip().replace(",", ""))
        except ValueError:
            return None
        return number if number == number and abs(number) != float("inf") else None
    return None


_TRUE = {"true", "yes", "1", "y", "t"}
_FALSE = {"false", "no", "0", "n", "f", ""}


def to_boolean(value):
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


def to_string_list(value):
    if not isinstance(value, list):
        return None
    return [item for item in value if isinstance(item, str)]


def to_url_flags(value):
    """{url: bool} -> [{url, value}]."""
    if not isinstance(value, dict):
        return None
    return [{"url": url, "value": to_boolean(flag)} for url, flag in value.items()]


def to_mail_events(value):
    """{mail id: epoch ms} -> [{id, timestamp}]."""
    if not isinstance(value, dict):
        return None
    return [{"id": mail_id, "timestamp": to_datetime_string(at)} for mail_id, at in value.items()]


def to_custom_field_list(value):
    """Keep every custom field, typed or not, so one created after discovery is never lost."""
    if not isinstance(value, list):
        return None
    out = []
    for field in value:
        if isinstance(field, dict):
            raw = field.get("value")
            out.append({
                "kind": to_string(field.get("kind")),
                "value": raw if raw is None or isinstance(raw, str) else _stringify(raw),
                "field_type": to_string(field.get("fieldType", field.get("field_type"))),
            })
    return out


def _stringify(value):
    if isinstance(value, (dict, list)):
        return json.dumps(value, separators=(",", ":"), sort_keys=True)
    return to_string(value)


# Custom field types as Autopilot names them -> (JSON schema, converter).
CUSTOM_FIELD_TYPES = {
    "string": ({"type": ["null", "string"]}, to_string),
    "integer": ({"type": ["null", "integer"]}, to_integer),
    "float": ({"type": ["null", "number"]}, to_number),
    "number": ({"type": ["null", "number"]}, to_number),
    "boolean": ({"type": ["null", "boolean"]}, to_boolean),
    "date": ({"type": ["null", "string"], "format": "date-time"}, to_datetime_string),
}


# --- the standard columns --------------------------------------------------

# Raw spellings the API has been seen to use, first one wins.
_RENAMED = {
    "linkedin": ("LinkedIn", "linkedin", "linked_in", "Linkedin"),
    "owner_name": ("owner_name", "OwnerName"),
    "contact_id": ("contact_id", "ContactId", "id"),
}

# Columns whose raw spelling is already the column name (system fields).
_SYSTEM = {"contact_id", "created_at", "updated_at", "first_visit_at", "first_conversion_at",
           "company_priority", "lists", "type", "custom_fields",
           "anywhere_page_visits", "anywhere_form_submits", "anywhere_utm",
           "mail_received", "mail_opened", "mail_clicked", "mail_bounced",
           "mail_complained", "mail_unsubscribed", "mail_hardbounced"}


def source_keys(column):
    """Raw keys to look for a standard column under, in order of preference."""
    if column in _RENAMED:
        return _RENAMED[column]
    if column in _SYSTEM:
        return (column,)
    pascal = "".join(part.capitalize() for part in column.split("_"))
    return (pascal, column)


def converter_for(column, schema):
    """Pick the converter for a column from its JSON schema."""
    if column in ("anywhere_page_visits", "anywhere_form_submits", "anywhere_utm"):
        return to_url_flags
    if column.startswith("mail_") and "array" in _types(schema):
        return to_mail_events
    if column == "custom_fields":
        return to_custom_field_list
    types = _types(schema)
    if schema.get("format") == "date-time":
        return to_datetime_string
    if "array" in types:
        return to_string_list
    if "integer" in types:
        return to_integer
    if "number" in types:
        return to_number
    if "boolean" in types:
        return to_boolean
    return to_string


def _types(schema):
    kind = schema.get("type", [])
    return kind if isinstance(kind, list) else [kind]


class ContactTransformer:
    """Compiled once per sync: turns raw contact documents into rows holding
    exactly the selected columns."""

    def __init__(self, properties, custom_field_kinds):
        """properties: {column: schema} of the selected columns.
        custom_field_kinds: {column: Autopilot field name} for custom_* columns."""
        self.standard = []   # (column, keys, converter)
        self.custom = {}     # Autopilot field name -> (column, converter)
        for column, schema in properties.items():
            if column in custom_field_kinds:
                self.custom[custom_field_kinds[column]] = (column, converter_for(column, schema))
            else:
                self.standard.append((column, source_keys(column), converter_for(column, schema)))
        self.custom_columns = [column for column, _ in self.custom.values()]

    def __call__(self, doc):
        row = {}
        for column, keys, convert in self.standard:
            value = None
            for key in keys:
                value = doc.get(key)
                if value is not None:
                    break
            row[column] = convert(value) if value is not None else None
        if self.custom:
            for column in self.custom_columns:
                row[column] = None
            fields = doc.get("custom_fields")
            if isinstance(fields, list):
                custom = self.custom
                for field in fields:
                    if isinstance(field, dict):
                        target = custom.get(field.get("kind"))
                        if target is not None:
                            value = field.get("value")
                            row[target[0]] = target[1](value) if value is not None else None
        return row
