"""Discovery: the six stream schemas, the account's custom fields as typed
contact columns, and standard Singer metadata."""

import copy
import logging
import re
from typing import Any

from singer import metadata

from tap_autopilot.http.client import AutopilotClient
from tap_autopilot.schema_files import load_schema
from tap_autopilot.streams import STREAMS
from tap_autopilot.streams.base import FULL_TABLE, VERSION_COLUMN, VERSION_COLUMN_SCHEMA
from tap_autopilot.streams.contacts import Contacts
from tap_autopilot.values.transform import EXTRA_FIELDS_COLUMN, custom_field_column, fit_column, short_hash

LOGGER = logging.getLogger("tap_autopilot")

# Metadata key on a custom_* column naming the Autopilot field it holds, so the
# sync maps fields to columns exactly as discovery did.
CUSTOM_FIELD_KEY = "tap-autopilot.custom-field-name"
# Metadata key on a stream's breadcrumb [] listing the replication methods it allows
# (the first is its default) when there is a choice; set one with `replication-method`.
REPLICATION_METHODS_KEY = "tap-autopilot.replication-methods"
# Custom field types as Autopilot names them -> their column's JSON schema (the sync picks
# each column's converter from its schema: transform.converter_for).
CUSTOM_FIELD_SCHEMAS: dict[str, dict[str, Any]] = {
    "string": {"type": ["null", "string"]},
    "integer": {"type": ["null", "integer"]},
    "float": {"type": ["null", "number"]},
    "number": {"type": ["null", "number"]},
    "boolean": {"type": ["null", "boolean"]},
    "date": {"type": ["null", "string"], "format": "date-time"},
}


def custom_field_columns(definitions: object) -> list[tuple[str, str, dict[str, Any]]]:
    """Autopilot custom field definitions -> [(column, field name, schema)].

    Unknown types become strings. Names that collapse to one column (after
    transliteration and snake-casing, or onto a column the schema already has)
    are told apart by a suffix that depends only on the field itself, so a
    field keeps its column whatever order the API lists the fields in: the
    oldest field (by the creation time in its `key`) keeps the plain name,
    each other one gets a short hash of its `key` (of its name when it has
    none). A field added later never renames an older one. Every column is at most
    63 bytes of lowercase ASCII letters, digits and _ (custom_field_column), its
    suffix included."""
    fields = []
    for definition in definitions if isinstance(definitions, list) else []:
        if not isinstance(definition, dict):
            continue
        name = definition.get("name", definition.get("kind", definition.get("field_name")))
        if not isinstance(name, str) or not name.strip():
            continue
        field_type = str(
            definition.get("fieldType", definition.get("field_type", definition.get("type", "string")))
        ).lower()
        if field_type not in CUSTOM_FIELD_SCHEMAS:
            LOGGER.warning("Custom field %r has unknown type %r: replicated as a string.", name, field_type)
            field_type = "string"
        key = definition.get("key")
        fields.append((custom_field_column(name), _age(key), name, key if isinstance(key, str) else "", field_type))
    columns, taken = [], set(load_schema("contacts")["properties"])
    for base, _, name, key, field_type in sorted(fields):
        column = base
        if column in taken:
            column = hashed = fit_column(base, f"_{short_hash(key or name)}")
            repeats = ""
            while column in taken:  # the same name twice without keys: rare, numbered
                repeats += "_2"
                column = fit_column(hashed, repeats)
        taken.add(column)
        columns.append((column, name, copy.deepcopy(CUSTOM_FIELD_SCHEMAS[field_type])))
    return columns


_KEY_TIME = re.compile(r"^contacts_customfields_(\d+)_")


def _age(key: object) -> float:
    """Sort order of a field among namesakes: its creation time in ms, taken
    from a key like 'contacts_customfields_<ms>_<uuid>'; fields without one last."""
    match = _KEY_TIME.match(key) if isinstance(key, str) else None
    return int(match.group(1)) if match else float("inf")


def discover(client: AutopilotClient) -> dict[str, Any]:
    custom_columns = custom_field_columns(client.get("/contacts/custom_fields", expect_list=True))
    streams = []
    for stream in STREAMS.values():
        schema = load_schema(stream.tap_stream_id)
        custom = custom_columns if stream.tap_stream_id == Contacts.tap_stream_id else []
        for column, _, column_schema in custom:
            schema["properties"][column] = column_schema
        if FULL_TABLE in stream.replication_methods:
            schema["properties"][VERSION_COLUMN] = copy.deepcopy(VERSION_COLUMN_SCHEMA)
        methods = list(stream.replication_methods)
        mdata = metadata.to_map(
            metadata.get_standard_metadata(
                schema=schema,
                key_properties=stream.key_properties,
                valid_replication_keys=[stream.replication_key] if stream.replication_key else None,
                replication_method=methods[0] if len(methods) == 1 else None,
            )
        )
        if len(methods) > 1:
            mdata[()][REPLICATION_METHODS_KEY] = methods
        mdata[()]["selected-by-default"] = True
        if stream.parent:
            mdata[()]["parent-tap-stream-id"] = stream.parent
        for column in schema["properties"]:
            mdata[("properties", column)]["selected-by-default"] = True
        if EXTRA_FIELDS_COLUMN in schema["properties"]:
            # Undocumented, unstable keys: there for who asks, not loaded by default.
            mdata[("properties", EXTRA_FIELDS_COLUMN)]["selected-by-default"] = False
        if stream.replication_key:
            mdata[("properties", stream.replication_key)]["inclusion"] = "automatic"
        for column, name, _ in custom:
            mdata[("properties", column)][CUSTOM_FIELD_KEY] = name
        streams.append(
            {
                "tap_stream_id": stream.tap_stream_id,
                "stream": stream.tap_stream_id,
                "key_properties": stream.key_properties,
                "schema": schema,
                "metadata": metadata.to_list(mdata),
            }
        )
    LOGGER.info("Discovered %d streams, %d custom contact fields.", len(streams), len(custom_columns))
    return {"streams": streams}
