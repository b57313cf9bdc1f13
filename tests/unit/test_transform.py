import orjson
import pytest
import singer
from singer.transform import Transformer

from tap_autopilot.discover import custom_field_columns, load_schema
from tap_autopilot.transform import (ContactTransformer, custom_field_column, format_datetime, serialize,
                                     snake_case, to_boolean, to_datetime, to_integer, to_number)


def to_datetime_string(value):
    parsed = to_datetime(value)
    return None if parsed is None else format_datetime(parsed)


def as_written(row):
    """The row as it leaves the tap: JSON, timestamps as RFC 3339 text."""
    return orjson.loads(serialize(row))


@pytest.mark.parametrize("raw, expected", [
    ("2015-04-29T23:15:25.347Z", "2015-04-29T23:15:25.347000Z"),
    ("2015-04-29T23:15:25Z", "2015-04-29T23:15:25.000000Z"),
    ("2015-04-30T01:15:25.347+02:00", "2015-04-29T23:15:25.347000Z"),
    (1430349325347, "2015-04-29T23:15:25.347000Z"),
    ("1430349325347", "2015-04-29T23:15:25.347000Z"),
    (1430349325, "2015-04-29T23:15:25.000000Z"),
    ("2015-04-29", "2015-04-29T00:00:00.000000Z"),
    ("not a date", None),
    ("", None),
    (True, None),
    ({"a": 1}, None),
])
def test_timestamps_become_rfc3339_utc(raw, expected):
    assert to_datetime_string(raw) == expected


def test_timestamps_agree_with_singer_python():
    for raw in ["2015-04-29T23:15:25.347Z", "2021-12-31T23:59:59.999+00:00"]:
        ours = to_datetime_string(raw)
        assert singer.utils.strptime_to_utc(ours) == singer.utils.strptime_to_utc(raw)


@pytest.mark.parametrize("name, column", [
    ("FirstName", "first_name"), ("MailingPostalCode", "mailing_postal_code"),
    ("Favorite Color", "favorite_color"), ("NPS score (0-10)", "nps_score_0_10"),
    ("HTTPStatus", "http_status"), ("already_snake", "already_snake"),
])
def test_snake_case(name, column):
    assert snake_case(name) == column


def test_custom_field_columns_are_typed_and_never_collide():
    columns = custom_field_columns([
        {"name": "Favorite Color", "fieldType": "string"},
        {"name": "Seats", "fieldType": "integer"},
        {"name": "Lifetime Value", "fieldType": "float"},
        {"name": "Is Partner", "fieldType": "boolean"},
        {"name": "Renewal Date", "fieldType": "date"},
        {"name": "favorite-color", "fieldType": "string"},
        {"name": "Odd", "fieldType": "geo"},
        {"fieldType": "string"},
    ])
    by_column = {column: (name, schema) for column, name, schema in columns}
    assert by_column["custom_favorite_color"][0] == "Favorite Color"
    assert by_column["custom_favorite_color_2"][0] == "favorite-color"
    assert by_column["custom_seats"][1]["type"] == ["null", "integer"]
    assert by_column["custom_lifetime_value"][1]["type"] == ["null", "number"]
    assert by_column["custom_is_partner"][1]["type"] == ["null", "boolean"]
    assert by_column["custom_renewal_date"][1] == {"type": ["null", "string"], "format": "date-time"}
    assert by_column["custom_odd"][1]["type"] == ["null", "string"]
    assert len(columns) == 7
    assert custom_field_column("Favorite Color") == "custom_favorite_color"


def test_scalar_coercions():
    assert to_integer("1,200") == 1200 and to_integer(3.0) == 3 and to_integer(3.5) is None
    assert to_integer(True) is None and to_integer("x") is None
    assert to_number("2.5") == 2.5 and to_number("nan") is None
    assert to_boolean("Yes") is True and to_boolean("false") is False and to_boolean("maybe") is None


RAW = {
    "contact_id": "person_1", "Email": "ann@example.com", "FirstName": "Ann", "LastName": "Lée",
    "Name": "Ann Lée", "NumberOfEmployees": "250", "Unsubscribed": False, "LinkedIn": "ann-lee",
    "MailingCountry": "Österreich", "owner_name": "Bob", "company_priority": True,
    "created_at": 1430349325347, "updated_at": "2016-01-02T03:04:05.678Z",
    "lists": ["contactlist_1", "contactlist_2"], "type": "Contact",
    "anywhere_page_visits": {"https://x.test/a": True},
    "anywhere_utm": {},
    "mail_opened": {"mail_1": 1430349325347},
    "custom_fields": [
        {"kind": "Seats", "value": "12", "fieldType": "integer"},
        {"kind": "Renewal Date", "value": "2020-02-03T00:00:00.000Z", "fieldType": "date"},
        {"kind": "Late Field", "value": 7, "fieldType": "float"},
    ],
    "UndocumentedThing": {"nested": 1},
}


def contacts_schema():
    schema = load_schema("contacts")
    for column, _, column_schema in custom_field_columns([
            {"name": "Seats", "fieldType": "integer"}, {"name": "Renewal Date", "fieldType": "date"},
            {"name": "Is Partner", "fieldType": "boolean"}]):
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
    assert {"kind": "Late Field", "value": "7", "field_type": "float"} in row["custom_fields"]
    assert "UndocumentedThing" not in row and "FirstName" not in row


def test_snake_case_source_spellings_are_accepted():
    row = make_transformer(contacts_schema())({"contact_id": "p", "first_name": "Zoë", "mailing_country": "NZ",
                                                "number_of_employees": 3})
    assert row["first_name"] == "Zoë" and row["mailing_country"] == "NZ" and row["number_of_employees"] == 3


def test_only_selected_columns_are_produced():
    schema = contacts_schema()
    props = {k: schema["properties"][k] for k in ("contact_id", "updated_at", "email", "custom_seats")}
    row = as_written(ContactTransformer(props, {"custom_seats": "Seats"})(RAW))
    assert row == {"contact_id": "person_1", "updated_at": "2016-01-02T03:04:05.678000Z",
                   "email": "ann@example.com", "custom_seats": 12}


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
    assert first == second == {"contact_id": "person_1", "custom_seats": 12,
                               "custom_renewal_date": "2020-02-03T00:00:00Z"}
