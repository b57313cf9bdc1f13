"""Discovery: the five stream schemas, the account's custom fields as typed
contact columns, and standard Singer metadata."""
import copy
import json
import logging
import os

from singer import metadata

from tap_autopilot.streams import STREAMS, VERSION_COLUMN, VERSION_COLUMN_SCHEMA
from tap_autopilot.transform import CUSTOM_FIELD_TYPES, custom_field_column

LOGGER = logging.getLogger("tap_autopilot")

SCHEMAS_DIR = os.path.join(os.path.dirname(__file__), "schemas")
# Metadata key on a custom_* column naming the Autopilot field it holds, so the
# sync maps fields to columns exactly as discovery did.
CUSTOM_FIELD_KEY = "tap-autopilot.custom-field-name"
# Metadata key on a stream's breadcrumb [] listing the replication methods it allows
# (the first is its default) when there is a choice; set one with `replication-method`.
REPLICATION_METHODS_KEY = "tap-autopilot.replication-methods"


def load_schema(stream_id):
    with open(os.path.join(SCHEMAS_DIR, stream_id + ".json"), encoding="utf-8") as handle:
        return json.load(handle)


def custom_field_columns(definitions):
    """Autopilot custom field definitions -> [(column, field name, schema)].
    Unknown types become strings; two names that collapse to one column get
    numbered suffixes rather than overwrite each other."""
    columns, used = [], set()
    for definition in definitions if isinstance(definitions, list) else []:
        if not isinstance(definition, dict):
            continue
        name = definition.get("name", definition.get("kind", definition.get("field_name")))
        if not isinstance(name, str) or not name.strip():
            continue
        field_type = str(definition.get("fieldType", definition.get("field_type",
                                                                      definition.get("type", "string")))).lower()
        if field_type not in CUSTOM_FIELD_TYPES:
            LOGGER.warning("Custom field %r has unknown type %r: replicated as a string.", name, field_type)
            field_type = "string"
        column = base = custom_field_column(name)
        suffix = 2
        while column in used:
            column, suffix = f"{base}_{suffix}", suffix + 1
        used.add(column)
        columns.append((column, name, copy.deepcopy(CUSTOM_FIELD_TYPES[field_type][0])))
    return columns


def discover(client):
    custom_columns = custom_field_columns(client.get("/contacts/custom_fields", expect_list=True))
    streams = []
    for stream in STREAMS.values():
        schema = load_schema(stream.tap_stream_id)
        custom = custom_columns if stream.tap_stream_id == "contacts" else []
        for column, _, column_schema in custom:
            schema["properties"][column] = column_schema
        if "FULL_TABLE" in stream.replication_methods:
            schema["properties"][VERSION_COLUMN] = copy.deepcopy(VERSION_COLUMN_SCHEMA)
        methods = list(stream.replication_methods)
        mdata = metadata.to_map(metadata.get_standard_metadata(
            schema=schema,
            key_properties=stream.key_properties,
            valid_replication_keys=[stream.replication_key] if stream.replication_key else None,
            replication_method=methods[0] if len(methods) == 1 else None))
        if len(methods) > 1:
            mdata[()][REPLICATION_METHODS_KEY] = methods
        mdata[()]["selected-by-default"] = True
        if stream.parent:
            mdata[()]["parent-tap-stream-id"] = stream.parent
        for column in schema["properties"]:
            mdata[("properties", column)]["selected-by-default"] = True
        if stream.replication_key:
            mdata[("properties", stream.replication_key)]["inclusion"] = "automatic"
        for column, name, _ in custom:
            mdata[("properties", column)][CUSTOM_FIELD_KEY] = name
        streams.append({
            "tap_stream_id": stream.tap_stream_id,
            "stream": stream.tap_stream_id,
            "key_properties": stream.key_properties,
            "schema": schema,
            "metadata": metadata.to_list(mdata),
        })
    LOGGER.info("Discovered %d streams, %d custom contact fields.", len(streams),
                len(custom_columns))
    return {"streams": streams}
