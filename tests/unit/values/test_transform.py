"""The contact transform and the column names (values/transform.py): a raw document becomes a
row of the catalog's columns, custom fields become typed columns with warehouse-safe names,
and a row is written as JSON."""

import datetime
import itertools
import re

import jsonschema
import orjson
import pytest
import singer
from singer.transform import Transformer

from tap_autopilot.discover import custom_field_columns, discover
from tap_autopilot.schema_files import load_schema
from tap_autopilot.values.converters import (
    to_boolean,
    to_url_flags,
)
from tap_autopilot.values.transform import (
    ContactTransformer,
    converter_for,
    custom_field_column,
    fit_column,
    replication_instant,
    serialize,
    short_hash,
    snake_case,
)

from .support import contact


def as_written(row):
    """The row as it leaves the tap: JSON, timestamps as RFC 3339 text."""
    return orjson.loads(serialize(row))


# ----- column names ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    "name, column",
    [
        ("FirstName", "first_name"),
        ("MailingPostalCode", "mailing_postal_code"),
        ("Favorite Color", "favorite_color"),
        ("NPS score (0-10)", "nps_score_0_10"),
        ("HTTPStatus", "http_status"),
        ("already_snake", "already_snake"),
    ],
)
def test_snake_case(name, column):
    assert snake_case(name) == column


def test_snake_case_strips_only_separators_at_the_ends():
    assert snake_case("_X Factor_") == "x_factor" and snake_case("XBox") == "x_box"


def test_custom_field_columns_are_typed():
    columns = custom_field_columns(
        [
            {"name": "Favorite Color", "fieldType": "string"},
            {"name": "Seats", "fieldType": "integer"},
            {"name": "Lifetime Value", "fieldType": "float"},
            {"name": "Is Partner", "fieldType": "boolean"},
            {"name": "Renewal Date", "fieldType": "date"},
            {"name": "Odd", "fieldType": "geo"},
            {"fieldType": "string"},
        ]
    )
    by_column = {column: (name, schema) for column, name, schema in columns}
    assert by_column["custom_favorite_color"] == ("Favorite Color", {"type": ["null", "string"]})
    assert by_column["custom_seats"][1]["type"] == ["null", "integer"]
    assert by_column["custom_lifetime_value"][1]["type"] == ["null", "number"]
    assert by_column["custom_is_partner"][1]["type"] == ["null", "boolean"]
    assert by_column["custom_renewal_date"][1] == {"type": ["null", "string"], "format": "date-time"}
    assert by_column["custom_odd"][1]["type"] == ["null", "string"]  # unknown fieldType: a text column
    assert len(columns) == 6
    assert custom_field_column("Favorite Color") == "custom_favorite_color"


@pytest.mark.parametrize(
    "name, column",
    [
        ("Größe", "custom_grosse"),
        ("Ærø Straße", "custom_aero_strasse"),
        ("Café crème", "custom_cafe_creme"),
        ("Город", "custom_gorod"),
        ("客户名单", "custom_ke_hu_ming_dan"),
        ("Δείκτης", "custom_deiktis"),
    ],
)
def test_non_ascii_field_names_are_transliterated(name, column):
    assert custom_field_column(name) == column


def test_names_with_nothing_to_transliterate_get_a_stable_hash():
    column = custom_field_column("\u200b\u200b")  # zero-width spaces: no letters at all
    assert re.fullmatch(r"custom_field_[0-9a-f]{6}", column)
    assert custom_field_column("\u200b\u200b") == column != custom_field_column("\u200b")


COLLIDING = [
    {
        "name": "Favorite Color",
        "fieldType": "string",
        "key": "contacts_customfields_1430000000000_6e0c2f36-aaaa-4b8e-8f0a-0c9d1e2f3a4b",
    },
    {
        "name": "favorite-color",
        "fieldType": "string",
        "key": "contacts_customfields_1440000000000_11111111-bbbb-4b8e-8f0a-0c9d1e2f3a4b",
    },
    {
        "name": "FAVORITE_COLOR",
        "fieldType": "integer",
        "key": "contacts_customfields_1450000000000_22222222-cccc-4b8e-8f0a-0c9d1e2f3a4b",
    },
    {
        "name": "Seats",
        "fieldType": "integer",
        "key": "contacts_customfields_1420000000000_33333333-dddd-4b8e-8f0a-0c9d1e2f3a4b",
    },
]


def test_colliding_names_get_distinct_columns_stable_whatever_the_order():
    mapping = {name: column for column, name, _ in custom_field_columns(COLLIDING)}
    assert len(set(mapping.values())) == 4
    assert mapping["Favorite Color"] == "custom_favorite_color"  # the oldest keeps the plain name
    assert re.fullmatch(r"custom_favorite_color_[0-9a-f]{6}", mapping["favorite-color"])
    for order in itertools.permutations(COLLIDING):
        assert {name: column for column, name, _ in custom_field_columns(list(order))} == mapping


def test_a_colliding_field_added_later_renames_no_existing_column():
    before = {name: column for column, name, _ in custom_field_columns(COLLIDING[:2])}
    after = {name: column for column, name, _ in custom_field_columns(COLLIDING)}
    assert all(after[name] == column for name, column in before.items())


def test_a_custom_field_named_like_a_schema_column_does_not_take_it():
    columns = {column: name for column, name, _ in custom_field_columns([{"name": "Fields", "fieldType": "string"}])}
    assert "custom_fields" not in columns and list(columns.values()) == ["Fields"]


LONG_A = "Preferred channel for the quarterly business review and renewal call (primary contact)"


LONG_B = "Preferred channel for the quarterly business review and renewal call (backup contact)"


_WAREHOUSE_NAME = re.compile(r"[a-z][a-z0-9_]*")


def test_column_names_are_at_most_63_bytes_lowercase_ascii_and_unique_after_cutting():
    fields = [
        {"name": LONG_A, "fieldType": "string", "key": "contacts_customfields_1430000000000_a"},
        {"name": LONG_B, "fieldType": "string", "key": "contacts_customfields_1440000000000_b"},
        {"name": LONG_A.upper() + "!", "fieldType": "string", "key": "contacts_customfields_1450000000000_c"},
        {"name": "客户" * 40, "fieldType": "string"},
        {"name": "Ärger " * 20, "fieldType": "integer"},
    ]
    columns = [column for column, _, _ in custom_field_columns(fields)]
    assert len(set(columns)) == len(columns) == 5
    for column in columns:
        assert len(column.encode()) <= 63 and _WAREHOUSE_NAME.fullmatch(column), column
    assert len({column[:63].lower() for column in columns} | set(load_schema("contacts")["properties"])) == len(
        columns
    ) + len(load_schema("contacts")["properties"])


def test_a_long_name_keeps_a_readable_prefix_and_a_hash_of_the_whole_name_stable_across_discoveries():
    column = custom_field_column(LONG_A)
    assert re.fullmatch(r"custom_preferred_channel_for_the_quarterly_business_revi_[0-9a-f]{6}", column)
    assert custom_field_column(LONG_B) != column and custom_field_column(LONG_A) == column
    fields = [
        {"name": LONG_A, "fieldType": "string", "key": "contacts_customfields_1430000000000_a"},
        {"name": LONG_B, "fieldType": "string", "key": "contacts_customfields_1440000000000_b"},
    ]
    first = {name: column for column, name, _ in custom_field_columns(fields)}
    again = {name: column for column, name, _ in custom_field_columns(fields[::-1])}
    assert first == again


def test_existing_short_column_names_do_not_change():
    assert custom_field_column("Favorite Color") == "custom_favorite_color"
    assert custom_field_column("Größe") == "custom_grosse"
    # 63 bytes exactly: kept whole
    name = "x" * (63 - len("custom_"))
    assert custom_field_column(name) == "custom_" + name


def test_a_column_name_cut_to_fit_does_not_end_its_readable_part_with_an_underscore():
    assert fit_column("a" * 50 + "_" * 20, "_abc123") == "a" * 50 + "_abc123"
    assert fit_column("_" + "a" * 70, "_abc123") == "_" + "a" * 55 + "_abc123"


def test_a_field_name_with_a_lone_surrogate_still_gets_its_stable_hash():
    assert short_hash("Colour \ud83d") == short_hash("Colour \ud83d") != short_hash("Colour ")


# ----- contact rows ----------------------------------------------------------------------------


RAW = {
    "contact_id": "person_1",
    "Email": "ann@example.com",
    "FirstName": "Ann",
    "LastName": "Lée",
    "Name": "Ann Lée",
    "NumberOfEmployees": "250",
    "Unsubscribed": False,
    "LinkedIn": "ann-lee",
    "MailingCountry": "Österreich",
    "owner_name": "Bob",
    "company_priority": True,
    "created_at": 1430349325347,
    "updated_at": "2016-01-02T03:04:05.678Z",
    "lists": ["contactlist_1", "contactlist_2"],
    "type": "Contact",
    "anywhere_page_visits": {"https://x.test/a": True},
    "anywhere_utm": {},
    "mail_opened": {"mail_1": 1430349325347},
    "custom_fields": [
        {"kind": "Seats", "value": "12", "fieldType": "integer", "deleted": False},
        {"kind": "Renewal Date", "value": "2020-02-03T00:00:00.000Z", "fieldType": "date", "deleted": False},
        {"kind": "Late Field", "value": 7, "fieldType": "float", "deleted": False},
    ],
    "UndocumentedThing": {"nested": 1},
}


def contacts_schema():
    schema = load_schema("contacts")
    for column, _, column_schema in custom_field_columns(
        [
            {"name": "Seats", "fieldType": "integer"},
            {"name": "Renewal Date", "fieldType": "date"},
            {"name": "Is Partner", "fieldType": "boolean"},
        ]
    ):
        schema["properties"][column] = column_schema
    return schema


def make_transformer(schema):
    kinds = {"custom_seats": "Seats", "custom_renewal_date": "Renewal Date", "custom_is_partner": "Is Partner"}
    return ContactTransformer(schema["properties"], kinds)


def test_contact_row_values():
    row = as_written(make_transformer(contacts_schema())(RAW))
    assert row["email"] == "ann@example.com" and row["first_name"] == "Ann" and row["last_name"] == "Lée"
    assert row["number_of_employees"] == 250 and row["unsubscribed"] is False
    assert row["linkedin"] == "ann-lee" and row["mailing_country"] == "Österreich"
    assert row["created_at"] == "2015-04-29T23:15:25.347000Z"
    assert row["updated_at"] == "2016-01-02T03:04:05.678000Z"
    assert row["anywhere_page_visits"] == [{"url": "https://x.test/a", "value": True}]
    assert row["anywhere_utm"] == []
    assert row["anywhere_form_submits"] is None
    assert row["mail_opened"] == [{"id": "mail_1", "timestamp": "2015-04-29T23:15:25.347000Z"}]
    assert row["custom_seats"] == 12 and row["custom_renewal_date"] == "2020-02-03T00:00:00Z"
    assert row["custom_is_partner"] is None
    assert {"kind": "Late Field", "value": "7", "field_type": "float", "deleted": False} in row["custom_fields"]
    assert "UndocumentedThing" not in row and "FirstName" not in row


def test_snake_case_source_spellings_are_accepted():
    row = make_transformer(contacts_schema())(
        {"contact_id": "p", "first_name": "Zoë", "mailing_country": "NZ", "number_of_employees": 3}
    )
    assert row["first_name"] == "Zoë" and row["mailing_country"] == "NZ" and row["number_of_employees"] == 3


def test_only_selected_columns_are_produced():
    schema = contacts_schema()
    props = {k: schema["properties"][k] for k in ("contact_id", "updated_at", "email", "custom_seats")}
    row = as_written(ContactTransformer(props, {"custom_seats": "Seats"})(RAW))
    assert row == {
        "contact_id": "person_1",
        "updated_at": "2016-01-02T03:04:05.678000Z",
        "email": "ann@example.com",
        "custom_seats": 12,
    }


def test_fast_transform_equals_generic_singer_transformer():
    """The compiled transform must give what singer-python's generic
    Transformer gives for the same (renamed) document, and pass its validation."""
    schema = contacts_schema()
    ours = make_transformer(schema)
    odd = dict(RAW, NumberOfEmployees=None, Unsubscribed="true", first_visit_at="2019-05-05T05:05:05+00:00")
    for raw in (RAW, odd):
        row = as_written(ours(raw))
        with Transformer() as generic:
            checked = generic.transform(row, schema)
        for column, value in row.items():
            if value is None:
                continue  # singer-python turns a null boolean into False; null is right
            if isinstance(value, str) and schema["properties"][column].get("format") == "date-time":
                assert singer.utils.strptime_to_utc(checked[column]) == singer.utils.strptime_to_utc(value)
            else:
                assert checked[column] == value, column


def test_custom_columns_without_field_names_in_the_catalog_still_fill():
    """A tool that rewrites the catalog may drop the field-name metadata: the
    column is then matched by its name."""
    schema = contacts_schema()
    props = {k: schema["properties"][k] for k in ("contact_id", "custom_seats", "custom_renewal_date")}
    transform = ContactTransformer(props, {})
    first, second = as_written(transform(RAW)), as_written(transform(RAW))
    assert (
        first == second == {"contact_id": "person_1", "custom_seats": 12, "custom_renewal_date": "2020-02-03T00:00:00Z"}
    )


def test_a_named_custom_field_is_read_while_another_column_still_waits_for_its_name():
    """A catalog may name a custom column's field (kinds) or leave it to be learned from the
    first contact carrying it; a named one is read whatever is still to be learned."""
    properties = dict(load_schema("contacts")["properties"])
    kinds = {}
    fields = [{"name": "Seats", "fieldType": "integer"}, {"name": "Color", "fieldType": "string"}]
    for column, name, schema in custom_field_columns(fields):
        properties[column] = schema
        if name == "Seats":
            kinds[column] = name
    transform = ContactTransformer(properties, kinds, None)
    row = transform(contact(custom_fields=[{"kind": "Seats", "value": 5, "fieldType": "integer"}]))
    assert row["custom_seats"] == 5
    row = transform(contact(custom_fields=[{"kind": "Color", "value": "Blue", "fieldType": "string"}]))
    assert row["custom_color"] == "Blue"


# ----- the live API's shapes (docs/autopilot-api notes): built here, field by field ------------


def full_transformer(*custom):
    """Every column of the contacts schema selected, plus the given custom field definitions."""
    schema = load_schema("contacts")
    kinds = {}
    for column, name, column_schema in custom_field_columns(list(custom)):
        schema["properties"][column] = column_schema
        kinds[column] = name
    return ContactTransformer(schema["properties"], kinds), kinds


def validate(row):
    """The written row is valid against the contacts schema (draft 4, strict date-time)."""
    schema = load_schema("contacts")
    for column in row:
        if column.startswith("custom_") and column != "custom_fields":
            schema["properties"][column] = {"type": ["null", "string", "number", "integer", "boolean"]}
    jsonschema.Draft4Validator(schema, format_checker=jsonschema.FormatChecker()).validate(row)


def test_sparse_document_missing_keys_are_null_and_no_lists_means_on_none():
    transform, _ = full_transformer({"name": "Seats", "fieldType": "integer"})
    row = as_written(
        transform(
            {
                "contact_id": "person_AP2-9cbf7ac0-eec5-4c3a-8b4e-3f6a1d2c9e01",
                "created_at": "2017-01-10T09:30:12.000Z",
                "api_originated": True,
            }
        )
    )
    assert row["contact_id"] == "person_AP2-9cbf7ac0-eec5-4c3a-8b4e-3f6a1d2c9e01"
    assert row["created_at"] == "2017-01-10T09:30:12Z"
    assert row["lists"] == []
    assert row["extra_fields"] == {"api_originated": True}
    for column, value in row.items():
        if column not in ("contact_id", "created_at", "lists", "extra_fields"):
            assert value is None, column
    validate(row)


def test_empty_strings_are_null_in_every_typed_and_text_column():
    transform, _ = full_transformer(
        {"name": "Seats", "fieldType": "integer"},
        {"name": "Renewal Date", "fieldType": "date"},
        {"name": "Nickname", "fieldType": "string"},
        {"name": "VIP", "fieldType": "boolean"},
    )
    doc = {
        "contact_id": "person_1",
        "Twitter": "",
        "Company": "",
        "NumberOfEmployees": "",
        "Unsubscribed": "",
        "updated_at": "",
        "company_priority": "",
        "first_visit_at": "",
        "custom_fields": [
            {"kind": "Seats", "value": "", "fieldType": "integer", "deleted": False},
            {"kind": "Renewal Date", "value": "", "fieldType": "date", "deleted": False},
            {"kind": "Nickname", "value": "", "fieldType": "string", "deleted": False},
            {"kind": "VIP", "value": "", "fieldType": "boolean", "deleted": False},
        ],
    }
    row = as_written(transform(doc))
    for column in (
        "twitter",
        "company",
        "number_of_employees",
        "unsubscribed",
        "updated_at",
        "company_priority",
        "first_visit_at",
        "custom_seats",
        "custom_renewal_date",
        "custom_nickname",
        "custom_vip",
    ):
        assert row[column] is None, column
    assert [field["value"] for field in row["custom_fields"]] == ["", "", "", ""]  # the raw copy keeps them
    validate(row)


def test_numbers_and_booleans_sent_as_text_fill_their_typed_columns():
    transform, _ = full_transformer(
        {"name": "Seats", "fieldType": "integer"},
        {"name": "Lifetime Value", "fieldType": "float"},
        {"name": "VIP", "fieldType": "boolean"},
    )
    row = as_written(
        transform(
            {
                "contact_id": "person_1",
                "NumberOfEmployees": "10001",
                "Unsubscribed": "false",
                "custom_fields": [
                    {"kind": "Seats", "value": "12", "fieldType": "integer", "deleted": False},
                    {"kind": "Lifetime Value", "value": "99.5", "fieldType": "float", "deleted": False},
                    {"kind": "VIP", "value": "true", "fieldType": "boolean", "deleted": False},
                ],
            }
        )
    )
    assert row["number_of_employees"] == 10001 and row["unsubscribed"] is False
    assert row["custom_seats"] == 12 and row["custom_lifetime_value"] == 99.5 and row["custom_vip"] is True


def test_deleted_custom_values_stay_out_of_typed_columns_but_in_the_raw_array():
    transform, kinds = full_transformer(
        {"name": "Seats", "fieldType": "integer"}, {"name": "Größe", "fieldType": "float"}
    )
    assert set(kinds) == {"custom_seats", "custom_grosse"}
    row = as_written(
        transform(
            {
                "contact_id": "person_1",
                "custom_fields": [
                    {"kind": "Seats", "value": 40, "fieldType": "integer", "deleted": True},
                    {"kind": "Größe", "value": "1.85", "fieldType": "float", "deleted": False},
                ],
            }
        )
    )
    assert row["custom_seats"] is None and row["custom_grosse"] == 1.85
    assert row["custom_fields"] == [
        {"kind": "Seats", "value": "40", "field_type": "integer", "deleted": True},
        {"kind": "Größe", "value": "1.85", "field_type": "float", "deleted": False},
    ]
    # A live value after a deleted one of the same field still fills the column.
    row = transform(
        {
            "contact_id": "p",
            "custom_fields": [
                {"kind": "Seats", "value": 1, "fieldType": "integer", "deleted": True},
                {"kind": "Seats", "value": 2, "fieldType": "integer", "deleted": False},
            ],
        }
    )
    assert row["custom_seats"] == 2


def test_extras_go_to_one_object_column_and_only_the_unknown_keys():
    transform, _ = full_transformer()
    doc = {
        "contact_id": "person_1",
        "Email": "a@b.test",
        "first_name": "Zoë",
        "_rev": "3-a1b2c3",
        "api_originated": False,
        "employeesRange": {"min": 10001},
        "lists": ["contactlist_x"],
        "custom_fields": [],
        "SomethingNew": [1, 2],
    }
    row = as_written(transform(doc))
    assert row["extra_fields"] == {
        "_rev": "3-a1b2c3",
        "api_originated": False,
        "employeesRange": {"min": 10001},
        "SomethingNew": [1, 2],
    }
    assert as_written(transform({"contact_id": "p", "Email": "x@y.test"}))["extra_fields"] is None
    validate(row)
    # Not selected: no column, whatever the document holds.
    schema = load_schema("contacts")
    props = {k: v for k, v in schema["properties"].items() if k != "extra_fields"}
    assert "extra_fields" not in ContactTransformer(props, {})(doc)


def test_extras_column_is_offered_but_not_selected_by_default():
    class Client:
        @staticmethod
        def get(path, expect_list=False):
            assert path == "/contacts/custom_fields"
            return [{"name": "Größe", "fieldType": "float"}]

    catalog = discover(Client())  # type: ignore[arg-type]  # a fake client
    contacts = next(s for s in catalog["streams"] if s["tap_stream_id"] == "contacts")
    mdata = {tuple(m["breadcrumb"]): m["metadata"] for m in contacts["metadata"]}
    assert mdata[("properties", "extra_fields")]["selected-by-default"] is False
    assert mdata[("properties", "extra_fields")]["inclusion"] == "available"
    assert mdata[("properties", "custom_grosse")]["selected-by-default"] is True
    assert contacts["schema"]["properties"]["extra_fields"]["type"] == ["null", "object"]


@pytest.mark.parametrize(
    "doc, expected",
    [
        ({"updated_at": "2017-01-10T09:30:12.000Z", "created_at": "2016-01-01T00:00:00.000Z"}, "2017-01-10T09:30:12"),
        ({"updated_at": "Tue, 10 Jan 2017 09:30:12 GMT"}, "2017-01-10T09:30:12"),
        ({"created_at": "2016-01-01T00:00:00.000Z"}, "2016-01-01T00:00:00"),  # never updated
        ({"updated_at": None, "created_at": 1451606400000}, "2016-01-01T00:00:00"),
        ({"updated_at": "garbage", "created_at": "2016-01-01T00:00:00Z"}, "2016-01-01T00:00:00"),
        ({"updated_at": "", "created_at": "Fri, 01 Jan 2016 00:00:00 GMT"}, "2016-01-01T00:00:00"),
        ({}, None),  # emitted every run
        ({"created_at": "unknown"}, None),
    ],
)
def test_replication_instant_is_updated_at_else_created_at(doc, expected):
    instant = ContactTransformer.replication_instant(dict(doc, contact_id="person_1"))
    assert (None if instant is None else instant.strftime("%Y-%m-%dT%H:%M:%S")) == expected
    assert replication_instant(doc) == instant


# ----- rules found untested by the mutation run (make mutation) --------------------------------


@pytest.mark.parametrize(
    "deleted, kept",
    [("true", False), ("1", False), (1, False), ("yes", False), ("false", True), (0, True), ("no", True), (None, True)],
)
def test_a_custom_value_whose_deleted_flag_is_text_or_a_number_is_read_as_a_boolean(deleted, kept):
    """The API has sent `deleted` as "true", 1 and the like: deleted all the same."""
    transform, _ = full_transformer({"name": "Seats", "fieldType": "integer"})
    row = transform({"contact_id": "p", "custom_fields": [{"kind": "Seats", "value": "40", "deleted": deleted}]})
    assert row["custom_seats"] == (40 if kept else None)
    assert row["custom_fields"][0]["deleted"] is to_boolean(deleted)


def test_a_custom_value_of_null_is_null_in_its_typed_column():
    transform, _ = full_transformer({"name": "Seats", "fieldType": "integer"})
    row = transform({"contact_id": "p", "custom_fields": [{"kind": "Seats", "value": None, "deleted": False}]})
    assert row["custom_seats"] is None


def test_the_raw_custom_fields_array_keeps_every_field_as_text():
    """kind, value and field_type as text whatever the API sent (objects as sorted compact
    JSON), `fieldType` or `field_type`, deleted as a boolean; entries that are not objects dropped."""
    transform, _ = full_transformer()
    row = transform(
        {
            "contact_id": "p",
            "custom_fields": [
                {"kind": 7, "value": {"b": 1, "a": [1, 2]}, "field_type": 3, "deleted": "yes"},
                {"kind": "Seats", "value": 12, "fieldType": "integer", "field_type": "ignored"},
                "not an object",
                {"kind": None, "value": True},
            ],
        }
    )
    assert row["custom_fields"] == [
        {"kind": "7", "value": '{"a":[1,2],"b":1}', "field_type": "3", "deleted": True},
        {"kind": "Seats", "value": "12", "field_type": "integer", "deleted": None},
        {"kind": None, "value": "true", "field_type": None, "deleted": None},
    ]
    assert transform({"contact_id": "p", "custom_fields": {"not": "a list"}})["custom_fields"] is None


@pytest.mark.parametrize("column", ["anywhere_page_visits", "anywhere_form_submits", "anywhere_utm"])
def test_anywhere_columns_are_url_flags(column):
    assert converter_for(column, load_schema("contacts")["properties"][column]) is to_url_flags


def test_a_text_column_sent_a_number_or_a_boolean_gets_its_text():
    transform, _ = full_transformer()
    row = transform({"contact_id": 12345, "Company": True, "FirstName": 1.5, "LastName": {"an": "object"}})
    assert (row["contact_id"], row["company"], row["first_name"], row["last_name"]) == ("12345", "true", "1.5", None)


def test_a_custom_field_no_unnamed_column_takes_is_ignored():
    schema = contacts_schema()
    transform = ContactTransformer({k: schema["properties"][k] for k in ("contact_id", "custom_seats")}, {})
    row = transform(
        {"contact_id": "p", "custom_fields": [{"kind": "Other", "value": "x"}, {"kind": "Seats", "value": "3"}]}
    )
    assert row == {"contact_id": "p", "custom_seats": 3}


# ----- writing a row ---------------------------------------------------------------------------


def test_every_row_writes_date_times_as_utc_with_a_z_the_cleaned_ones_too():
    aware = datetime.datetime(2020, 1, 1, tzinfo=datetime.UTC)  # the converters' date-times
    naive = datetime.datetime(2020, 1, 1)  # naive date-times are UTC
    expected = {"aware": "2020-01-01T00:00:00Z", "naive": "2020-01-01T00:00:00Z"}
    assert orjson.loads(serialize({"aware": aware, "naive": naive})) == expected
    for needs_cleaning in ("a\x00", "\ud83d", 2**64):  # found by the escape, refused by orjson, refused
        row = orjson.loads(serialize({"aware": aware, "naive": naive, "x": needs_cleaning}))
        assert {key: row[key] for key in expected} == expected
