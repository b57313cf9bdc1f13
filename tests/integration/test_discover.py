"""`tap-autopilot --discover` against the sandbox: streams, keys, replication, typed
columns (standard and custom) and metadata, as the table reference says."""

import json
import urllib.request

import helpers
import jsonschema
import pytest

# stream -> (key properties, forced replication method, valid replication keys)
STREAMS = {
    "contacts": (["contact_id"], None, ["updated_at"]),
    "lists": (["list_id"], "FULL_TABLE", None),
    "lists_contacts": (["list_id", "contact_id"], "FULL_TABLE", None),
    "smart_segments": (["segment_id"], "FULL_TABLE", None),
    "smart_segments_contacts": (["segment_id", "contact_id"], "FULL_TABLE", None),
    "completed_passes": (["stream_name", "table_version"], "INCREMENTAL", ["completed_at"]),
}
PARENTS = {"lists_contacts": "lists", "smart_segments_contacts": "smart_segments"}
# Streams with a choice of replication method: the methods discovery states, the default first.
REPLICATION_METHODS = {"contacts": ["INCREMENTAL", "FULL_TABLE"]}
# The column a versioned full-table record carries its table version in.
VERSION_COLUMN = "table_version"

# The columns of the four small tables, exactly (all strings but the version column).
SMALL_TABLE_COLUMNS = {
    "lists": {"list_id", "title", VERSION_COLUMN},
    "lists_contacts": {"list_id", "contact_id", VERSION_COLUMN},
    "smart_segments": {"segment_id", "title", VERSION_COLUMN},
    "smart_segments_contacts": {"segment_id", "contact_id", VERSION_COLUMN},
}

URL_FLAGS, MAIL_EVENTS, STRINGS, DATE_TIME = "url-flags", "mail-events", "string-array", "date-time"
ANYWHERE = ("anywhere_form_submits", "anywhere_page_visits", "anywhere_utm")
MAIL = (
    "mail_bounced",
    "mail_clicked",
    "mail_complained",
    "mail_hardbounced",
    "mail_opened",
    "mail_received",
    "mail_unsubscribed",
)

# contacts columns of the table reference, with their kinds.
TABLE_REFERENCE_CONTACTS = {
    **dict.fromkeys(ANYWHERE, URL_FLAGS),
    **dict.fromkeys(MAIL, MAIL_EVENTS),
    "company": "string",
    "company_priority": "boolean",
    "contact_id": "string",
    "created_at": DATE_TIME,
    "email": "string",
    "first_conversion_at": DATE_TIME,
    "first_name": "string",
    "first_visit_at": DATE_TIME,
    "last_name": "string",
    "lead_source": "string",
    "lists": STRINGS,
    "mailing_country": "string",
    "mailing_state": "string",
    "name": "string",
    "phone": "string",
    "salutation": "string",
    "status": "string",
    "twitter": "string",
    "updated_at": DATE_TIME,
}
# The other documented standard and system fields (../shared/autopilot-api.md).
DOCUMENTED_CONTACTS = {
    "number_of_employees": ("integer", "number"),
    "title": "string",
    "industry": "string",
    "mobile_phone": "string",
    "fax": "string",
    "website": "string",
    "mailing_street": "string",
    "mailing_city": "string",
    "mailing_postal_code": "string",
    "linkedin": "string",
    "unsubscribed": "boolean",
    "owner_name": "string",
    "type": "string",
}
# Autopilot custom field type -> column kind.
CUSTOM_KINDS = {"string": "string", "integer": "integer", "float": "number", "boolean": "boolean", "date": DATE_TIME}


# array-of-object kinds -> their items' properties and kinds (None: any type)
ITEM_PROPERTIES: dict[str, dict[str, str | None]] = {
    URL_FLAGS: {"url": "string", "value": "boolean"},
    MAIL_EVENTS: {"id": "string", "timestamp": DATE_TIME},
    # a value keeps whatever the field held: its type is the tap's choice
    "custom-fields": {"kind": "string", "value": None, "field_type": "string", "deleted": "boolean"},
}


def types(schema):
    kind = schema.get("type", [])
    return set(kind if isinstance(kind, list) else [kind])


def kind_problem(schema, kind):
    """None if the column schema is of the kind, else a description of what is wrong."""
    if isinstance(kind, tuple):
        problems = [kind_problem(schema, k) for k in kind]
        return None if None in problems else " and ".join(problems)
    t = types(schema)
    if kind == DATE_TIME:
        ok = "string" in t and schema.get("format") == "date-time"
    elif kind in (URL_FLAGS, MAIL_EVENTS, "custom-fields"):
        items = schema.get("items") or {}
        props = items.get("properties") or {}
        expected = ITEM_PROPERTIES[kind]
        ok = (
            "array" in t
            and "object" in types(items)
            and set(props) == set(expected)
            and all(k is None or kind_problem(props[p], k) is None for p, k in expected.items())
        )
    elif kind == STRINGS:
        ok = "array" in t and "string" in types(schema.get("items") or {})
    else:
        ok = kind in t and not (t - {kind, "null"})
    return None if ok else f"expected {kind}, got {json.dumps(schema)}"


@pytest.fixture(scope="module")
def discovered(tmp_path_factory):
    """(catalog, custom field definitions fetched from the sandbox, discovery's stderr)."""
    # The dense shape's five plain custom fields: the expectations below name their columns by
    # snake-casing; test_recordings.py covers non-ASCII, colliding and unknown-type fields.
    with helpers.sandbox(contacts=20, seed=3, dense=True) as sb:
        config = helpers.write_config(tmp_path_factory.mktemp("discover"), sb)
        proc = helpers.run_cli(["--config", config, "--discover"])
        assert proc.returncode == 0, proc.stderr[-3000:]
        request = urllib.request.Request(
            sb.base_url + "/contacts/custom_fields", headers={"autopilotapikey": helpers.API_KEY}
        )
        with urllib.request.urlopen(request, timeout=10) as response:
            definitions = json.load(response)
    return json.loads(proc.stdout), definitions, proc.stdout + proc.stderr


@pytest.fixture(scope="module")
def catalog(discovered):
    return discovered[0]


def entry(catalog, stream_id):
    return next(e for e in catalog["streams"] if e["tap_stream_id"] == stream_id)


def metadata_map(catalog_entry):
    return {tuple(m["breadcrumb"]): m["metadata"] for m in catalog_entry["metadata"]}


def test_exactly_the_six_streams(catalog):
    ids = [e["tap_stream_id"] for e in catalog["streams"]]
    assert sorted(ids) == sorted(STREAMS)
    for e in catalog["streams"]:
        assert e["stream"] == e["tap_stream_id"]


@pytest.mark.parametrize("stream_id", sorted(STREAMS))
def test_keys_and_replication(catalog, stream_id):
    keys, method, replication_keys = STREAMS[stream_id]
    e = entry(catalog, stream_id)
    root = metadata_map(e)[()]
    assert sorted(e["key_properties"]) == sorted(keys)
    assert sorted(root["table-key-properties"]) == sorted(keys)
    assert root.get("forced-replication-method") == method
    assert root.get("tap-autopilot.replication-methods") == REPLICATION_METHODS.get(stream_id)
    assert (root.get("valid-replication-keys") or None) == replication_keys
    assert root.get("parent-tap-stream-id") == PARENTS.get(stream_id)
    assert root.get("selected-by-default") is True


@pytest.mark.parametrize("stream_id", sorted(STREAMS))
def test_schema_is_valid_draft4(catalog, stream_id):
    schema = entry(catalog, stream_id)["schema"]
    jsonschema.Draft4Validator.check_schema(schema)
    assert schema.get("type") == "object" or "object" in schema.get("type", [])


@pytest.mark.parametrize("stream_id", sorted(SMALL_TABLE_COLUMNS))
def test_small_tables_columns(catalog, stream_id):
    properties = entry(catalog, stream_id)["schema"]["properties"]
    assert set(properties) == SMALL_TABLE_COLUMNS[stream_id]
    for column, schema in properties.items():
        assert kind_problem(schema, "integer" if column == VERSION_COLUMN else "string") is None, (column, schema)


def test_contacts_can_carry_the_table_version(catalog):
    properties = entry(catalog, "contacts")["schema"]["properties"]
    assert kind_problem(properties[VERSION_COLUMN], "integer") is None
    assert "null" in types(properties[VERSION_COLUMN])


def test_contacts_has_every_reference_and_documented_column_typed(catalog):
    properties = entry(catalog, "contacts")["schema"]["properties"]
    expected = {**TABLE_REFERENCE_CONTACTS, **DOCUMENTED_CONTACTS}
    missing = sorted(set(expected) - set(properties))
    assert not missing, f"contacts lacks columns: {missing}"
    problems = {c: kind_problem(properties[c], k) for c, k in expected.items()}
    problems = {c: p for c, p in problems.items() if p}
    assert not problems, problems
    # Documents are sparse: every column but the key must allow null.
    not_nullable = sorted(c for c, s in properties.items() if c != "contact_id" and "null" not in types(s))
    assert not not_nullable, f"columns that cannot be null: {not_nullable}"


def test_contacts_custom_field_columns_from_the_account(discovered):
    catalog, definitions, _ = discovered
    assert definitions, "the sandbox defines custom fields"
    properties = entry(catalog, "contacts")["schema"]["properties"]
    expected = {helpers.custom_column(d["name"]): CUSTOM_KINDS[d["fieldType"]] for d in definitions}
    assert "custom_favorite_color" in expected  # the issue's own example
    custom_columns = {c for c in properties if c.startswith("custom_")}
    assert custom_columns == set(expected) | {"custom_fields"}
    problems = {c: kind_problem(properties[c], k) for c, k in expected.items()}
    problems = {c: p for c, p in problems.items() if p}
    assert not problems, problems
    for column in expected:
        assert "null" in types(properties[column]), column
    assert kind_problem(properties["custom_fields"], "custom-fields") is None


@pytest.mark.parametrize("stream_id", sorted(STREAMS))
def test_property_metadata(catalog, stream_id):
    e = entry(catalog, stream_id)
    mdata = metadata_map(e)
    properties = set(e["schema"]["properties"])
    breadcrumbs = {b for b in mdata if b}
    assert breadcrumbs == {("properties", p) for p in properties}
    keys, _, replication_keys = STREAMS[stream_id]
    automatic = set(keys) | set(replication_keys or [])
    for column in properties:
        m = mdata[("properties", column)]
        assert m.get("inclusion") == ("automatic" if column in automatic else "available"), (column, m)
        assert isinstance(m.get("selected-by-default"), bool), (column, m)


def test_contacts_updated_at_is_automatic(catalog):
    # Spelled out: the replication key is always replicated.
    assert metadata_map(entry(catalog, "contacts"))[("properties", "updated_at")]["inclusion"] == "automatic"


def test_discovery_never_prints_the_api_key(discovered):
    output = discovered[2]
    assert helpers.API_KEY not in output
    assert "Traceback" not in output
