"""The converters (values/converters.py): a raw value becomes a value of its column's type, or
null; never an error. Timestamps of every form the API sends become one UTC instant."""

import datetime
import time

import pytest
import singer

from tap_autopilot.values.converters import (
    _MS_THRESHOLD,
    format_datetime,
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


def to_datetime_string(value):
    parsed = to_datetime(value)
    return None if parsed is None else format_datetime(parsed)


# ----- timestamps ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "raw, expected",
    [
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
    ],
)
def test_timestamps_become_rfc3339_utc(raw, expected):
    assert to_datetime_string(raw) == expected


def test_timestamps_agree_with_singer_python():
    for raw in ["2015-04-29T23:15:25.347Z", "2021-12-31T23:59:59.999+00:00"]:
        ours = to_datetime_string(raw)
        assert singer.utils.strptime_to_utc(ours) == singer.utils.strptime_to_utc(raw)


INSTANT = "2015-05-12T21:41:31.000000Z"


@pytest.mark.parametrize(
    "raw",
    [
        "2015-05-12T21:41:31.000Z",
        "2015-05-12T21:41:31Z",
        "2015-05-12T21:41:31",
        "2015-05-12T21:41:31+00:00",
        "2015-05-12T23:41:31.000+02:00",
        "2015-05-12T16:11:31-05:30",
        "2015-05-12T21:41:31.0000000Z",
        "Tue, 12 May 2015 21:41:31 GMT",
        "Tue, 12 May 2015 21:41:31 +0000",
        "12 May 2015 23:41:31 +0200",
        "Tue, 12 May 2015 17:41:31 EDT",
        1431466891000,
        "1431466891000",
        1431466891,
        "1431466891",
        1431466891.0,
        "1431466891000.0",
    ],
)
def test_every_timestamp_form_becomes_the_same_utc_instant(raw):
    assert to_datetime_string(raw) == INSTANT


@pytest.mark.parametrize(
    "raw",
    [
        "",
        " ",
        "soon",
        "Tue, 32 May 2015 21:41:31 GMT",
        "2015-13-01T00:00:00Z",
        "0001-01-01T00:00:00+01:00",
        "9999-12-31T23:59:59-01:00",
        10**30,
        float("nan"),
        float("inf"),
        "1e400",
        [],
        {"at": 1},
        False,
    ],
)
def test_anything_else_is_null_never_an_error(raw):
    assert to_datetime(raw) is None


@pytest.mark.parametrize("raw", ["2015-05-12T21:41:31.347Z", "Tue, 12 May 2015 21:41:31 GMT"])
def test_iso_and_rfc1123_agree_with_singer_python(raw):
    # singer-python (dateutil) reads both forms too: the same instant as ours, written as RFC 3339.
    assert singer.utils.strptime_to_utc(to_datetime_string(raw)) == singer.utils.strptime_to_utc(raw)


def test_epoch_text_with_a_fraction_keeps_the_fraction():
    assert to_datetime("1430349325.5") == datetime.datetime(2015, 4, 29, 23, 15, 25, 500000, tzinfo=datetime.UTC)


@pytest.fixture
def local_timezone_not_utc(monkeypatch):
    """The machine's timezone set to one far from UTC, for rules that must not depend on it."""
    monkeypatch.setenv("TZ", "America/New_York")
    time.tzset()
    yield
    monkeypatch.undo()
    time.tzset()


def test_instants_are_utc_whatever_the_machine_s_timezone(local_timezone_not_utc):
    assert format_datetime(
        datetime.datetime(2015, 4, 30, 1, 15, 25, tzinfo=datetime.timezone(datetime.timedelta(hours=2)))
    ) == ("2015-04-29T23:15:25.000000Z")
    assert to_datetime("2015-04-30T01:15:25+02:00") == datetime.datetime(2015, 4, 29, 23, 15, 25, tzinfo=datetime.UTC)
    with_offset, without = to_datetime("2015-04-30T01:15:25+02:00"), to_datetime("2015-04-29T23:15:25")
    assert with_offset is not None and with_offset.tzinfo is datetime.UTC
    assert without is not None and without.tzinfo is datetime.UTC, "text without an offset is UTC"


def test_an_epoch_number_exactly_at_the_threshold_is_milliseconds():
    assert to_datetime(_MS_THRESHOLD) == datetime.datetime.fromtimestamp(_MS_THRESHOLD / 1000, datetime.UTC)


# ----- scalars ---------------------------------------------------------------------------------


def test_scalar_coercions():
    assert to_integer("1,200") == 1200 and to_integer(3.0) == 3 and to_integer(3.5) is None
    assert to_integer(True) is None and to_integer("x") is None
    assert to_number("2.5") == 2.5 and to_number("nan") is None
    assert to_boolean("Yes") is True and to_boolean("false") is False and to_boolean("maybe") is None


def test_text_columns_keep_text_and_write_booleans_and_numbers_as_text():
    assert to_string("Acme") == "Acme" and to_string("") is None and to_string(None) is None
    assert to_string(True) == "true" and to_string(False) == "false"
    assert to_string(12) == "12" and to_string(1.5) == "1.5"
    assert to_string({"a": 1}) is None and to_string([1]) is None


def test_integers_outside_64_bits_are_null():
    assert to_integer(2**63 - 1) == 2**63 - 1 and to_integer(-(2**63)) == -(2**63)
    assert to_integer(2**63) is None and to_integer(-(2**63) - 1) is None
    assert to_integer(" 1,234 ") == 1234 and to_integer("12.0") == 12 and to_integer("1e3") == 1000
    assert to_integer("12.5") is None and to_integer("1,2.5") is None


def test_numbers_sent_as_text_with_thousands_separators():
    assert to_number(" 1,234.5 ") == 1234.5 and to_number("12") == 12.0
    assert to_number(False) is None and to_number(None) is None and to_number("inf") is None
    assert to_number([1]) is None


def test_booleans_from_numbers_and_nulls():
    assert to_boolean(1) is True and to_boolean(0) is False and to_boolean(0.0) is False
    assert to_boolean(None) is None and to_boolean(True) is True and to_boolean(False) is False


def test_a_number_column_keeps_64_bit_integers_exact_and_writes_larger_ones_as_doubles():
    for exact in (-(2**63), 7, 2**63 - 1):
        assert to_number(exact) == exact and to_number(exact).__class__ is int
    assert to_number(2**63).__class__ is float and to_number(-(2**63) - 1).__class__ is float
    assert to_number(2.5) == 2.5 and to_number(-0.0) == 0.0


def test_an_integer_with_thousands_separators_stays_exact_beyond_what_a_double_holds():
    assert to_integer("9,007,199,254,740,993") == 2**53 + 1


# ----- lists and maps --------------------------------------------------------------------------


def test_url_flags_keep_booleans_and_nulls_and_read_text_flags():
    assert to_url_flags({"a": True, "b": None, "c": "yes", "d": 0, "e": "maybe"}) == [
        {"url": "a", "value": True},
        {"url": "b", "value": None},
        {"url": "c", "value": True},
        {"url": "d", "value": False},
        {"url": "e", "value": None},
    ]
    assert to_url_flags(["a"]) is None


MAIL_MS = 1430349325347


MAIL_AT = datetime.datetime(2015, 4, 29, 23, 15, 25, 347000, tzinfo=datetime.UTC)


def test_mail_events_read_epoch_milliseconds_seconds_and_text():
    events = to_mail_events({"m1": MAIL_MS, "m2": MAIL_MS // 1000, "m3": str(MAIL_MS), "m4": None, "m5": _MS_THRESHOLD})
    assert events == [
        {"id": "m1", "timestamp": MAIL_AT},
        {"id": "m2", "timestamp": MAIL_AT.replace(microsecond=0)},
        {"id": "m3", "timestamp": MAIL_AT},
        {"id": "m4", "timestamp": None},
        {"id": "m5", "timestamp": datetime.datetime.fromtimestamp(_MS_THRESHOLD / 1000, datetime.UTC)},
    ]
    assert to_mail_events([MAIL_MS]) is None


def test_a_mail_event_out_of_range_is_null_and_the_others_are_kept():
    assert to_mail_events({"far": 10**30, "m1": MAIL_MS, "none": None}) == [
        {"id": "far", "timestamp": None},
        {"id": "m1", "timestamp": MAIL_AT},
        {"id": "none", "timestamp": None},
    ]


def test_string_lists_keep_only_the_strings():
    assert to_string_list(["list_a", 7, None, "list_b"]) == ["list_a", "list_b"]
    assert to_string_list("list_a") is None and to_string_list(None) is None


def test_the_raw_custom_fields_copy_keeps_empty_names_and_types_as_sent():
    assert to_custom_field_list([{"kind": "", "value": "", "fieldType": "", "deleted": False}]) == [
        {"kind": "", "value": "", "field_type": "", "deleted": False}
    ]
