"""The local Autopilot API sandbox: data, paging, membership, auth, faults, admin, CLI."""

import http.client
import json
import os
import re
import signal
import socket
import subprocess
import sys
import time
import tracemalloc
from collections import Counter
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime

import pytest

from tap_autopilot.sandbox import Dataset, Sandbox, handler

KEY = "sandbox-key"
ISO = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$")
RFC1123 = re.compile(
    r"^(Mon|Tue|Wed|Thu|Fri|Sat|Sun), \d\d (Jan|Feb|Mar|Apr|May|Jun|Jul|Aug|Sep|Oct|Nov|Dec) "
    r"\d{4} \d\d:\d\d:\d\d GMT$"
)


# ----- helpers ---------------------------------------------------------------


def request(sb, path, key=KEY, method="GET", body=None, timeout=5):
    """One request on a fresh connection: (status, headers, raw body)."""
    conn = http.client.HTTPConnection("127.0.0.1", sb.port, timeout=timeout)
    try:
        headers = {} if key is None else {"autopilotapikey": key}
        data = None
        if body is not None:
            data = json.dumps(body).encode()
            headers["Content-Type"] = "application/json"
        conn.request(method, path, body=data, headers=headers)
        resp = conn.getresponse()
        return resp.status, dict(resp.getheaders()), resp.read()
    finally:
        conn.close()


def api(sb, path, **kw):
    status, _headers, body = request(sb, "/v1" + path, **kw)
    return status, json.loads(body)


def admin(sb, name, body=None):
    status, _, raw = request(sb, "/_admin/" + name, key=None, method="GET" if body is None else "POST", body=body)
    assert status == 200, raw
    return json.loads(raw)


def scan(sb, path):
    """Follow the bookmark chain of a contacts endpoint: (pages, docs)."""
    pages, docs, bookmark = [], [], None
    while True:
        status, page = api(sb, path + ("/" + bookmark if bookmark else ""))
        assert status == 200, page
        pages.append(page)
        docs.extend(page["contacts"])
        bookmark = page.get("bookmark")
        if bookmark is None:
            return pages, docs
        assert len(pages) < 1000, "bookmark chain does not end"


def epoch_ms(value):
    """A timestamp the sandbox sends (epoch ms, ISO with milliseconds, RFC 1123) -> epoch ms."""
    if isinstance(value, int):
        return value
    if ISO.match(value):
        parsed = datetime.strptime(value, "%Y-%m-%dT%H:%M:%S.%fZ").replace(tzinfo=UTC)
    else:
        assert RFC1123.match(value), value
        parsed = parsedate_to_datetime(value)
    return round(parsed.timestamp() * 1000)


def changed_ms(doc):
    """updated_at, else created_at, as epoch ms."""
    return epoch_ms(doc.get("updated_at") or doc["created_at"])


def field(doc, pascal, snake):
    return doc[pascal] if pascal in doc else doc.get(snake)


@pytest.fixture(scope="module")
def sb():
    with Sandbox(contacts=300, lists=3, segments=2, seed=7) as s:
        yield s


@pytest.fixture
def fresh():
    """A sandbox a test may mutate or fault."""
    with Sandbox(contacts=250, lists=3, segments=2, seed=3) as s:
        yield s


# ----- the dataset ------------------------------------------------------------


def test_same_seed_same_data_other_seed_other_data():
    a = Dataset(contacts=150, seed=11).dump()
    assert a == Dataset(contacts=150, seed=11).dump()
    b = Dataset(contacts=150, seed=12).dump()
    assert a["contacts"] != b["contacts"]
    assert a["lists"] != b["lists"]


@pytest.mark.parametrize("dense", [False, True])
def test_every_document_is_json_after_mutations(dense):
    ds = Dataset(contacts=2000, seed=5, dense=dense, epoch_ms_share=0.1, snake_case_share=0.1)
    ds.touch(count=40)
    added = ds.add_contacts(10)
    ds.delete_contacts(ds.contact_ids()[5:8])
    ids = ds.contact_ids()
    assert len(ids) == len(ds) == 2007 and set(added) <= set(ids) and ids == sorted(ids)
    for position, contact_id in enumerate(ids):
        assert json.loads(ds.doc_json(ds.index_of(contact_id)))["contact_id"] == contact_id
        assert ds.position_of(contact_id) == position
    assert ds.position_of("person_nope") is None


def test_dense_documents_have_the_assumed_shape_and_variety():
    """The shape first assumed (every key, typed values), kept behind dense=True
    for tolerance tests, with the invented epoch-ms and snake_case variants."""
    ds = Dataset(contacts=3000, seed=2, dense=True, epoch_ms_share=0.03, snake_case_share=0.03)
    seen = {"snake": 0, "epoch": 0, "extra": 0, "late": 0, "null": 0, "absent": 0, "empty_map": 0, "non_ascii": 0}
    ids = set()
    for doc in ds.iter_contacts():
        assert doc["contact_id"].startswith("person_") and doc["contact_id"] not in ids
        ids.add(doc["contact_id"])
        assert doc["type"] == "Contact" and isinstance(doc["company_priority"], bool)
        created, updated = doc["created_at"], doc["updated_at"]
        for t in (created, updated):
            assert isinstance(t, int) or ISO.match(t)
        assert epoch_ms(created) <= epoch_ms(updated)
        assert 2019 <= datetime.fromtimestamp(epoch_ms(updated) / 1000, UTC).year <= 2025
        for key in ("first_visit_at", "first_conversion_at"):
            assert doc.get(key) is None or ISO.match(doc[key])
        for key in ("anywhere_page_visits", "anywhere_form_submits", "anywhere_utm"):
            assert all(isinstance(v, bool) for v in doc[key].values())
            seen["empty_map"] += not doc[key]
        for key in (
            "mail_received",
            "mail_opened",
            "mail_clicked",
            "mail_bounced",
            "mail_unsubscribed",
            "mail_hardbounced",
        ):
            assert all(isinstance(v, int) for v in doc[key].values())
        assert set(doc["mail_opened"]) <= set(doc["mail_received"])
        for cf in doc["custom_fields"]:
            assert set(cf) == {"kind", "value", "fieldType"}
            expected = {"string": str, "integer": int, "float": float, "boolean": bool, "date": str}[cf["fieldType"]]
            assert cf["value"] is None or type(cf["value"]) is expected
        email = field(doc, "Email", "email")
        assert email and email.isascii() and "@" in email
        seen["snake"] += "first_name" in doc
        assert ("first_name" in doc) != ("FirstName" in doc)
        seen["epoch"] += isinstance(updated, int)
        seen["extra"] += "ExtraNote" in doc
        seen["late"] += any(cf["kind"] == "Late Field" for cf in doc["custom_fields"])
        seen["null"] += field(doc, "Company", "company") is None and ("Company" in doc or "company" in doc)
        seen["absent"] += "Title" not in doc and "title" not in doc
        seen["non_ascii"] += (
            not json.dumps(field(doc, "FirstName", "first_name")).isascii()
            or not field(doc, "LastName", "last_name").isascii()
        )
    assert len(ids) == 3000
    # ~3%, ~3%, ~2%, ~3% of 3000, plus the rest: all present, none dominant.
    for key, (low, high) in {"snake": (40, 150), "epoch": (40, 150), "extra": (20, 110), "late": (40, 150)}.items():
        assert low <= seen[key] <= high, (key, seen[key])
    for key in ("null", "absent", "empty_map", "non_ascii"):
        assert seen[key] > 30, key
    names = {d.get("FirstName") for d in ds.iter_contacts()}
    assert any(any(ord(c) > 0xFFFF for c in n) for n in names if n)  # emoji
    assert any(any(0x4E00 <= ord(c) <= 0x9FFF for c in n) for n in names if n)  # CJK


def test_default_documents_look_like_the_recordings():
    """The [seen] facts of the API notes, in the default data."""
    ds = Dataset(contacts=3000, seed=2)
    assert ds.dump() == Dataset(contacts=3000, seed=2).dump()  # deterministic per seed
    seen: Counter[str] = Counter()
    updated_at: Counter[str] = Counter()
    for doc in ds.iter_contacts():
        cid = doc["contact_id"]
        seen["ap2"] += cid.startswith("person_AP2-")
        seen["lower"] += bool(re.fullmatch(r"person_[0-9a-f]{8}-[0-9a-f-]{27}", cid))
        seen["upper"] += bool(re.fullmatch(r"person_[0-9A-F]{8}-[0-9A-F-]{27}", cid))
        if set(doc) == {"contact_id", "created_at", "api_originated"}:
            seen["minimal"] += 1
        elif "updated_at" not in doc:
            seen["no_updated_at"] += 1
        assert doc.get("lists") != [] and "ExtraNote" not in doc
        assert not set(doc) & {"first_name", "email", "last_name", "title"}  # no snake_case
        for key in ("created_at", "updated_at"):
            if key in doc:
                value = doc[key]
                assert isinstance(value, str), value  # no epoch ms
                seen["rfc1123"] += bool(RFC1123.match(value))
                seen["whole_second"] += value.endswith(".000Z")
                seen["times"] += 1
        if "updated_at" in doc:
            updated_at[epoch_ms(doc["updated_at"]) // 1000] += 1
            assert epoch_ms(doc["created_at"]) <= epoch_ms(doc["updated_at"])
        seen["empty_string"] += "" in doc.values()
        seen["number_string"] += isinstance(doc.get("NumberOfEmployees"), str)
        seen["rev"] += "_rev" in doc
        seen["employees_range"] += "employeesRange" in doc
        seen["no_email"] += "Email" not in doc
        for key in ("anywhere_page_visits", "mail_received", "mail_opened"):
            assert doc.get(key) != {}  # keys only when set
        for mail in doc.get("mail_received", {}):
            assert re.fullmatch(r"batchdelivery_[0-9a-f-]{36}_\d{13}-[0-9a-f-]{36}", mail), mail
        for cf in doc.get("custom_fields", []):
            assert set(cf) == {"kind", "value", "fieldType", "deleted"}
            seen["deleted"] += cf["deleted"]
            seen["cf_date_rfc"] += cf["fieldType"] == "date" and bool(RFC1123.match(cf["value"] or ""))
            seen["cf_number_string"] += cf["fieldType"] in ("integer", "float") and isinstance(cf["value"], str)
    assert 150 <= seen["minimal"] <= 350 and 250 <= seen["no_updated_at"] <= 500, seen
    assert seen["ap2"] > 300 and seen["lower"] > 150 and seen["upper"] > 1000, seen
    assert 0.03 < seen["rfc1123"] / seen["times"] < 0.1, seen
    assert seen["whole_second"] / seen["times"] > 0.75, seen
    assert sum(n for n in updated_at.values() if n > 1) > 1000  # many share an updated_at second
    for key in (
        "empty_string",
        "number_string",
        "rev",
        "employees_range",
        "no_email",
        "deleted",
        "cf_date_rfc",
        "cf_number_string",
    ):
        assert seen[key] > 20, (key, seen)
    ids = ds.contact_ids()
    assert ids == sorted(ids)
    segment_ids = [g["segment_id"] for g in Dataset(contacts=10, segments=2).segments()]
    assert re.fullmatch(r"contactlist_sseg\d{13}", segment_ids[0])
    assert re.fullmatch(r"contactlist_sseg[0-9A-F-]{36}", segment_ids[1])
    list_ids = [g["list_id"] for g in Dataset(contacts=10, lists=3).lists()]
    assert re.fullmatch(r"contactlist_[0-9A-F-]{36}", list_ids[0])
    assert re.fullmatch(r"contactlist_[0-9a-f]{40}", list_ids[1])
    assert re.fullmatch(r"contactlist_[a-z-]+", list_ids[2])


def test_epoch_ms_and_snake_case_only_behind_their_knobs():
    ds = Dataset(contacts=2000, seed=4, epoch_ms_share=0.5, snake_case_share=0.5)
    docs = list(ds.iter_contacts())
    epoch = sum(isinstance(d["created_at"], int) for d in docs)
    snake = sum("first_name" in d or "email" in d for d in docs)
    assert 800 < epoch < 1200 and 600 < snake < 1000, (epoch, snake)


def test_serving_100k_contacts_keeps_memory_flat():
    ds = Dataset(contacts=100_000, seed=1)
    ids = ds.contact_ids()  # builds the order: 4 bytes a contact
    for k in range(500, 100_000, 500):  # warm the caches (1024 profiles, per-day date prefixes)
        "".join(ds.doc_json(i) for i in ds.contacts_page(ids[k]).indexes)
    tracemalloc.start()
    try:
        before = tracemalloc.get_traced_memory()[0]
        for k in range(0, 100_000, 1_000):  # 100 pages spread over the whole order
            page = ds.contacts_page(ids[k])
            assert len(",".join(ds.doc_json(i) for i in page.indexes)) > 10_000
        current, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert current - before < 500_000 and peak - before < 2_000_000, (before, current, peak)


def test_large_dataset_is_lazy_and_quick():
    t0 = time.perf_counter()
    ds = Dataset(contacts=100_000, seed=1)
    ids = ds.contact_ids()
    assert ds.contact(ids[-1])["contact_id"] == ids[-1]
    page = ds.contacts_page(ids[-150])
    assert len(page.indexes) == 100 and page.bookmark is not None
    assert time.perf_counter() - t0 < 3


def test_custom_field_definitions():
    dense = Dataset(contacts=1, dense=True).custom_field_definitions()
    assert sorted(d["fieldType"] for d in dense) == ["boolean", "date", "float", "integer", "string"]
    defs = Dataset(contacts=1).custom_field_definitions()
    assert {"Favorite Color", "favorite-color", "Größe"} <= {d["name"] for d in defs}
    assert {d["fieldType"] for d in defs} == {"boolean", "date", "float", "integer", "string", "picklist"}
    for d in defs + dense:
        assert set(d) == {"name", "fieldType", "key"}
        assert re.fullmatch(
            r"contacts_customfields_\d{13}_[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-"
            r"[0-9a-f]{12}",
            d["key"],
        ), d["key"]
    assert len({d["key"] for d in defs}) == len(defs)
    assert defs == Dataset(contacts=9).custom_field_definitions()  # per seed, not per size


# ----- paging over HTTP ---------------------------------------------------------


def test_contacts_chain_returns_every_contact_once_in_order(sb):
    pages, docs = scan(sb, "/contacts")
    assert [len(p["contacts"]) for p in pages] == [100, 100, 100]
    assert all(p["total_contacts"] == 300 for p in pages)
    assert "bookmark" not in pages[-1] and all("bookmark" in p for p in pages[:-1])
    assert [d["contact_id"] for d in docs] == sb.dataset.contact_ids()
    assert pages[0]["bookmark"] == docs[99]["contact_id"]
    assert docs[123] == sb.dataset.contact(docs[123]["contact_id"])
    ids = [d["contact_id"] for d in docs]
    assert ids == sorted(ids)  # ascending contact_id, as strings
    updated = [changed_ms(d) for d in docs]
    assert updated != sorted(updated)  # API order is not by time


@pytest.mark.parametrize("count,sizes", [(0, [0]), (100, [100]), (101, [100, 1]), (250, [100, 100, 50])])
def test_page_sizes_and_last_page(count, sizes):
    with Sandbox(contacts=count, lists=1, segments=1) as s:
        pages, docs = scan(s, "/contacts")
        assert [len(p["contacts"]) for p in pages] == sizes
        assert "bookmark" not in pages[-1]
        assert len({d["contact_id"] for d in docs}) == count


def test_list_and_segment_members_match_documents(sb):
    ds = sb.dataset
    status, body = api(sb, "/lists")
    assert status == 200 and body["lists"] == ds.lists() and len(body["lists"]) == 3
    assert all(x["list_id"].startswith("contactlist_") for x in body["lists"])
    status, body = api(sb, "/smart_segments")
    assert status == 200 and body["segments"] == ds.segments() and len(body["segments"]) == 2
    assert all(x["segment_id"].startswith("contactlist_sseg") for x in body["segments"])

    members = {}
    for lst in ds.lists():
        pages, docs = scan(sb, "/list/%s/contacts" % lst["list_id"])
        ids = [d["contact_id"] for d in docs]
        assert ids == ds.list_members(lst["list_id"])
        assert all(p["total_contacts"] == len(ids) for p in pages)
        assert all(lst["list_id"] in d["lists"] for d in docs)
        assert ids == sorted(ids)
        members[lst["list_id"]] = set(ids)
    sizes = sorted(len(m) for m in members.values())
    assert sizes[0] == 0 and sizes[-1] > 100  # one empty, one over a page
    for doc in ds.iter_contacts():
        assert doc.get("lists") != []  # absent, not [], when on no list
        assert set(doc.get("lists", [])) == {lid for lid, m in members.items() if doc["contact_id"] in m}

    seg_sizes = []
    for seg in ds.segments():
        _, docs = scan(sb, "/smart_segments/%s/contacts" % seg["segment_id"])
        assert [d["contact_id"] for d in docs] == ds.segment_members(seg["segment_id"])
        seg_sizes.append(len(docs))
    assert max(seg_sizes) > 100 and min(seg_sizes) > 0


def test_list_paging_resumes_from_any_contact(sb):
    ds = sb.dataset
    big = max(ds.lists(), key=lambda x: len(ds.list_members(x["list_id"])))["list_id"]
    members = ds.list_members(big)
    everyone = ds.contact_ids()
    # A bookmark that is not itself a member still resumes right after it.
    outsider = next(c for c in everyone[10:] if c not in members)
    status, page = api(sb, "/list/%s/contacts/%s" % (big, outsider))
    after = everyone.index(outsider)
    assert status == 200
    assert [d["contact_id"] for d in page["contacts"]] == [m for m in members if everyone.index(m) > after][:100]


def test_custom_fields_endpoint(sb):
    status, body = api(sb, "/contacts/custom_fields")
    assert status == 200 and body == sb.dataset.custom_field_definitions()


def test_keep_alive_and_content_length(sb):
    conn = http.client.HTTPConnection("127.0.0.1", sb.port, timeout=5)
    conn.connect()
    first_sock = conn.sock
    for path in ("/v1/lists", "/v1/contacts", "/v1/smart_segments"):
        conn.request("GET", path, headers={"autopilotapikey": KEY})
        resp = conn.getresponse()
        body = resp.read()
        length, content_type = resp.getheader("Content-Length"), resp.getheader("Content-Type")
        assert length is not None and content_type is not None
        assert resp.status == 200 and int(length) == len(body)
        assert content_type.startswith("application/json")
        assert conn.sock is first_sock  # same socket: connection kept alive
    conn.close()


# ----- auth and errors ------------------------------------------------------------


def test_auth_errors(sb):
    assert api(sb, "/contacts", key=None) == (
        400,
        {"error": "Bad Request", "message": "No autopilotapikey header provided."},
    )
    assert api(sb, "/lists", key="wrong") == (
        401,
        {"error": "Unauthorized", "message": "Provided autopilotapikey not valid."},
    )


@pytest.mark.parametrize(
    "path",
    [
        "/nope",
        "/contacts/",
        "/contacts/person_00000000-0000-0000-0000-000000000000",
        "/contacts/not-a-bookmark",
        "/list/contactlist_NOPE/contacts",
        "/smart_segments/contactlist_ssegNOPE/contacts",
        "/list/x/contacts/y/z",
    ],
)
def test_not_found(sb, path):
    status, body = api(sb, path)
    assert status == 404 and body["error"] == "Not Found" and body["message"]


def test_list_contacts_with_unknown_bookmark_is_404(sb):
    lid = sb.dataset.lists()[0]["list_id"]
    assert api(sb, "/list/%s/contacts/person_bogus" % lid)[0] == 404


# ----- faults -----------------------------------------------------------------------


def test_latency():
    with Sandbox(contacts=5, latency_ms=150) as s:
        t0 = time.perf_counter()
        assert api(s, "/lists")[0] == 200
        assert time.perf_counter() - t0 >= 0.15
        t0 = time.perf_counter()
        admin(s, "stats")  # admin is never delayed
        assert time.perf_counter() - t0 < 0.15


def building_takes_a_tenth(monkeypatch):
    """The sandbox's clock, made a list to move by hand ([1000.0]), and every page's building
    taking 0.1 s of it."""
    clock = [1000.0]
    monkeypatch.setattr(handler, "_clock", lambda: clock[0])
    build = handler._Handler._answer

    def slow_build(self, sb, route):
        clock[0] += 0.1
        return build(self, sb, route)

    monkeypatch.setattr(handler._Handler, "_answer", slow_build)
    return clock


@pytest.mark.parametrize(("latency_ms", "slept"), [(150, [0.05]), (50, [])])
def test_latency_is_the_time_to_the_answer_building_included(monkeypatch, latency_ms, slept):
    """The answer waits only for what the page's building (0.1 s on this clock) left of the latency."""
    building_takes_a_tenth(monkeypatch)
    with Sandbox(contacts=5, latency_ms=latency_ms) as s:
        sleeps: list[float] = []
        monkeypatch.setattr(s, "_sleep", sleeps.append)
        assert api(s, "/lists")[0] == 200
        assert sleeps == pytest.approx(slept)


def test_latency_runs_from_the_request_line_the_sandbox_s_own_work_included(monkeypatch):
    """The sandbox's bookkeeping (0.1 s on this clock) and the page's building (0.1 s) both
    come out of the latency, not on top of it: a server's answer time includes its work."""
    clock = building_takes_a_tenth(monkeypatch)
    with Sandbox(contacts=5, latency_ms=250) as s:
        arrive = s._arrive

        def slow_arrive(path, endpoint):
            clock[0] += 0.1
            return arrive(path, endpoint)

        sleeps: list[float] = []
        monkeypatch.setattr(s, "_arrive", slow_arrive)
        monkeypatch.setattr(s, "_sleep", sleeps.append)
        assert api(s, "/lists")[0] == 200
        assert sleeps == pytest.approx([0.05])


def test_an_answer_leaves_in_one_write(monkeypatch):
    """Status line, headers and body go out together once the latency is over, so no
    work of the sandbox's (and no second packet) comes after it."""
    writes: list[bytes] = []
    setup = handler._Handler.setup

    def recording_setup(self):
        setup(self)
        write = self.wfile.write

        def recording_write(data):
            writes.append(bytes(data))
            return write(data)

        self.wfile.write = recording_write

    monkeypatch.setattr(handler._Handler, "setup", recording_setup)
    with Sandbox(contacts=5, latency_ms=20) as s:
        status, headers, body = request(s, "/v1/contacts")
    assert status == 200
    assert len(writes) == 1
    assert writes[0].startswith(b"HTTP/1.1 200 OK\r\n")
    assert writes[0].endswith(b"\r\n\r\n" + body)
    assert headers["Content-Length"] == str(len(body))
    assert RFC1123.match(headers["Date"])


@pytest.mark.parametrize("retry_after", [True, False])
def test_rate_limit(retry_after):
    with Sandbox(contacts=5, rate_limit=3, retry_after=retry_after) as s:
        results = [request(s, "/v1/lists") for _ in range(5)]
        assert [r[0] for r in results[:3]] == [200, 200, 200]
        status, headers, body = results[3]
        assert status == 429
        assert json.loads(body) == {
            "error": "Too Many Requests",
            "message": "You have exceeded your request rate of 3 r/s.",
        }
        assert headers.get("Retry-After") == ("1" if retry_after else None)
        time.sleep(1.05)  # the window slides: allowed again
        assert request(s, "/v1/lists")[0] == 200
        assert s.stats()["status"]["429"] == 2


def test_429_bodies_take_turns_and_send_no_retry_after_by_default():
    with Sandbox(contacts=5, rate_limit=1) as s:
        statuses = [request(s, "/v1/lists") for _ in range(3)]
        assert [r[0] for r in statuses] == [200, 429, 429]
        assert all("Retry-After" not in r[1] for r in statuses)
        assert json.loads(statuses[1][2]) == {
            "error": "Too Many Requests",
            "message": "You have exceeded your request rate of 1 r/s.",
        }
        assert json.loads(statuses[2][2]) == (
            'Your request was throttled. Please see "Rate Limit" section of '
            "documentation at http://developers.autopilothq.com."
        )


def test_error_every():
    with Sandbox(contacts=5, error_every=3) as s:
        statuses = [api(s, "/lists") for _ in range(6)]
        assert [st for st, _ in statuses] == [200, 200, 500, 200, 200, 500]
        assert statuses[2][1] == {"error": "Internal Server Error", "message": "sandbox fault"}


def test_drop_every_closes_without_response():
    with Sandbox(contacts=5, drop_every=2) as s:
        assert api(s, "/lists")[0] == 200
        with pytest.raises((http.client.RemoteDisconnected, ConnectionError)):
            api(s, "/lists")
        assert api(s, "/lists")[0] == 200  # the retry is not faulted
        assert s.stats()["dropped"] == 1


def test_truncate_every():
    with Sandbox(contacts=50, truncate_every=1) as s:
        status, headers, body = request(s, "/v1/contacts")
        assert status == 200 and int(headers["Content-Length"]) == len(body)
        with pytest.raises(ValueError):
            json.loads(body)
        s.set_faults(truncate_every=None)
        _, _, whole = request(s, "/v1/contacts")
        assert body == whole[: len(whole) // 2]
        assert s.stats()["truncated"] == 1


def test_missing_key_every():
    with Sandbox(contacts=5, missing_key_every=2) as s:
        assert "lists" in api(s, "/lists")[1]
        assert api(s, "/lists") == (200, {"unexpected": True})
        assert s.stats()["missing_key"] == 1


def test_garble_every_breaks_the_body_inside_and_keeps_its_ending():
    with Sandbox(contacts=250, garble_every=1) as s:
        status, _, body = request(s, "/v1/contacts")
        assert status == 200
        with pytest.raises(ValueError):
            json.loads(body)
        s.set_faults(garble_every=None)
        _, _, whole = request(s, "/v1/contacts")
        assert body.endswith(whole[-60:]) and b'"bookmark"' in whole[-60:]
        assert s.stats()["garbled"] == 1


def test_stall_every_outlasts_a_client_timeout():
    with Sandbox(contacts=5, stall_every=2, stall_seconds=0.6) as s:
        assert api(s, "/lists", timeout=0.3)[0] == 200
        with pytest.raises((socket.timeout, TimeoutError)):
            api(s, "/lists", timeout=0.3)
        assert api(s, "/lists", timeout=0.3)[0] == 200
        assert s.stats()["stalled"] == 1


def test_admin_is_never_faulted_and_faults_change_at_runtime(fresh):
    fresh.set_faults(error_every=1)
    assert api(fresh, "/lists")[0] == 500
    assert admin(fresh, "stats")["requests"] == 1
    current = admin(fresh, "faults", {"error_every": None, "missing_key_every": 1})
    assert current["error_every"] is None and current["missing_key_every"] == 1
    assert api(fresh, "/lists") == (200, {"unexpected": True})
    admin(fresh, "faults", {"missing_key_every": None})
    assert api(fresh, "/lists")[0] == 200
    assert request(fresh, "/_admin/faults", key=None, method="POST", body={"no_such_fault": 1})[0] == 400
    with pytest.raises(ValueError):
        fresh.set_faults(nonsense=True)


# ----- mutations -------------------------------------------------------------------


def test_touch_moves_updated_at_past_everything(fresh):
    ds = fresh.dataset
    before = {d["contact_id"]: d for d in ds.iter_contacts()}
    newest = max(changed_ms(d) for d in before.values())
    touched = admin(fresh, "touch", {"count": 5})["contact_ids"]
    assert len(touched) == 5 and len(set(touched)) == 5
    _, docs = scan(fresh, "/contacts")
    for doc in docs:
        cid = doc["contact_id"]
        if cid in touched:
            assert epoch_ms(doc["updated_at"]) > newest
            assert "(touched 1)" in field(doc, "Title", "title")
        else:
            assert doc == before[cid]
    again = ds.touch(contact_ids=[touched[0]])
    assert again == [touched[0]]
    doc = ds.contact(touched[0])
    assert "(touched 2)" in field(doc, "Title", "title")
    assert epoch_ms(doc["updated_at"]) > max(epoch_ms(ds.contact(c)["updated_at"]) for c in touched[1:])


def test_set_custom_fields_replaces_or_deletes_values_and_touches_the_contact(fresh):
    ds = fresh.dataset
    cid, other = ds.contact_ids()[3], ds.contact_ids()[4]
    kept = {e["kind"]: e for e in ds.contact(cid).get("custom_fields") or [] if e["kind"] != "Seats"}
    newest = max(changed_ms(d) for d in ds.iter_contacts())
    untouched = ds.contact(other)
    changes = {cid: {"Seats": {"fieldType": "integer", "value": 4321}, "Region": {"value": None, "deleted": True}}}
    assert admin(fresh, "set_custom_fields", {"contacts": changes})["contact_ids"] == [cid]
    _, docs = scan(fresh, "/contacts")
    doc = next(d for d in docs if d["contact_id"] == cid)
    entries = {e["kind"]: e for e in doc["custom_fields"]}
    assert entries["Seats"] == {"kind": "Seats", "value": 4321, "fieldType": "integer", "deleted": False}
    assert entries["Region"] == {"kind": "Region", "value": None, "fieldType": "string", "deleted": True}
    assert {k: e for k, e in entries.items() if k not in ("Seats", "Region")} == {
        k: e for k, e in kept.items() if k != "Region"
    }
    assert epoch_ms(doc["updated_at"]) > newest
    assert next(d for d in docs if d["contact_id"] == other) == untouched


def test_added_contacts_land_anywhere_in_the_id_order(fresh):
    """Like the live API: the order is by contact_id, so a new contact lands
    where its id falls, most often before the end (before a scan's position)."""
    ds = fresh.dataset
    newest = max(changed_ms(d) for d in ds.iter_contacts())
    before = ds.contact_ids()
    added = admin(fresh, "add_contacts", {"count": 60})["contact_ids"]
    pages, docs = scan(fresh, "/contacts")
    ids = [d["contact_id"] for d in docs]
    assert pages[0]["total_contacts"] == 310 and len(docs) == 310
    assert ids == sorted(ids) == ds.contact_ids() and set(ids) == set(before) | set(added)
    positions = sorted(ids.index(c) for c in added)
    assert positions[0] < 100 and positions[-1] > 200  # spread over the order
    assert sum(p < 250 for p in positions) > 30
    new_docs = [d for d in docs if d["contact_id"] in set(added)]
    assert all(changed_ms(d) > newest and epoch_ms(d["created_at"]) >= newest for d in new_docs)
    for lst in ds.lists():  # memberships stay consistent for the new contacts
        members = [d["contact_id"] for d in scan(fresh, "/list/%s/contacts" % lst["list_id"])[1]]
        assert members == [d["contact_id"] for d in docs if lst["list_id"] in d.get("lists", [])]


def test_delete_contacts(fresh):
    ds = fresh.dataset
    lid = max(ds.lists(), key=lambda x: len(ds.list_members(x["list_id"])))["list_id"]
    sid = max(ds.segments(), key=lambda x: len(ds.segment_members(x["segment_id"])))["segment_id"]
    gone = ds.list_members(lid)[:2] + ds.segment_members(sid)[-2:] + ds.contact_ids()[100:102]
    assert admin(fresh, "delete_contacts", {"contact_ids": gone}) == {"ok": True}
    ids = [d["contact_id"] for d in scan(fresh, "/contacts")[1]]
    assert len(ids) == 250 - len(set(gone)) and not set(gone) & set(ids)
    assert not set(gone) & {d["contact_id"] for d in scan(fresh, "/list/%s/contacts" % lid)[1]}
    assert not set(gone) & {d["contact_id"] for d in scan(fresh, "/smart_segments/%s/contacts" % sid)[1]}
    dump = admin(fresh, "dump")
    assert [d["contact_id"] for d in dump["contacts"]] == ids
    assert not set(gone) & {c for members in dump["list_members"].values() for c in members}
    assert api(fresh, "/contacts/" + gone[0])[0] == 404  # a bookmark that is gone
    with pytest.raises(KeyError):
        ds.contact(gone[0])
    assert request(fresh, "/_admin/delete_contacts", key=None, method="POST", body={"contact_ids": [gone[0]]})[0] == 404


def test_awkward_ids_are_served_through_escaped_paths():
    from urllib.parse import quote

    with Sandbox(contacts=300, lists=2, segments=2, seed=3, awkward_ids=True) as s:
        lid = s.dataset.lists()[0]["list_id"]
        sid = s.dataset.segments()[0]["segment_id"]
        for odd in (lid, sid):
            assert all(c in odd for c in "/ %?#é")
        _, docs = scan(s, "/list/%s/contacts" % quote(lid, safe=""))
        assert [d["contact_id"] for d in docs] == s.dataset.list_members(lid) and docs
        assert all(lid in d["lists"] for d in docs)
        _, docs = scan(s, "/smart_segments/%s/contacts" % quote(sid, safe=""))
        assert [d["contact_id"] for d in docs] == s.dataset.segment_members(sid) and docs


@pytest.mark.parametrize("dense", [False, True])
def test_awkward_values_only_behind_their_knob(dense):
    plain = Dataset(contacts=300, seed=5, dense=dense)
    awkward = Dataset(contacts=300, seed=5, dense=dense, awkward_values=True)
    assert Dataset(contacts=300, seed=5, dense=dense, awkward_values=False).doc_json(0) == plain.doc_json(0)
    changed = [i for i in range(300) if plain.doc_json(i) != awkward.doc_json(i)]
    assert changed == [0, 1]
    plain_lists, awkward_lists = plain.lists(), awkward.lists()
    assert awkward_lists[1:] == plain_lists[1:]
    assert awkward_lists[0]["title"] == plain_lists[0]["title"] + "\x00 (imported)"
    definitions = awkward.custom_field_definitions()
    assert definitions[:-2] == plain.custom_field_definitions()
    long_names = [d["name"] for d in definitions[-2:]]
    assert len(long_names[0]) > 63 and long_names[0][:63] == long_names[1][:63] != long_names[1]
    # the rest of each awkward document is the plain one's
    for i in changed:
        before, after = json.loads(plain.doc_json(i)), awkward._doc(i)
        assert after["contact_id"] == before["contact_id"] and after.get("lists") == before.get("lists")
        assert after.get("updated_at") == before.get("updated_at")


def test_the_admin_dump_of_awkward_values_is_json_text():
    """Lone surrogates and bytes that are not UTF-8 are in the dump, escaped (it once answered 400)."""
    with Sandbox(contacts=50, seed=5, awkward_values=True) as s:
        dump = admin(s, "dump")
    assert len(dump["contacts"]) == 50


def test_awkward_values_are_served_as_the_api_would_send_them():
    import orjson

    with Sandbox(contacts=300, lists=3, segments=2, seed=5, awkward_values=True) as s:
        bodies, bookmark = [], None
        while True:
            status, _, raw = request(s, "/v1/contacts" + ("/" + bookmark if bookmark else ""))
            assert status == 200
            bodies.append(raw)
            bookmark = json.loads(raw.decode("utf-8", "replace")).get("bookmark")
            if bookmark is None:
                break
        served = b"".join(bodies)
        for raw_value in (
            b'"FirstName":"Ann\\ud83d"',  # a lone surrogate escape: JSON, which orjson refuses
            b'"value":1e400',  # a number no double holds
            b'"value":15551234567890123456789',  # an integer custom field beyond 64 bits
            b'"NumberOfEmployees":100000000000000000000',
            b'"LastName":"M\xfcller"',  # not UTF-8
            b'"Company":"Acme\\u0000 Corp"',
            b'"value":"Blue\\u0000"',
        ):
            assert raw_value in served, raw_value
        refused = [body for body in bodies if b"\xfc" in body or b"1e400" in body]
        for body in refused:
            with pytest.raises(orjson.JSONDecodeError):
                orjson.loads(body)
        status, _, raw = request(s, "/v1/lists")
        assert status == 200 and b"\\u0000 (imported)" in raw
        status, _, raw = request(s, "/v1/contacts/custom_fields")
        assert raw.count(b"Preferred channel for the quarterly business review and renewal call (") == 2


def test_delete_list(fresh):
    ds = fresh.dataset
    victim = max(ds.lists(), key=lambda x: len(ds.list_members(x["list_id"])))["list_id"]
    first_page = api(fresh, "/list/%s/contacts" % victim)[1]
    admin(fresh, "delete_list", {"list_id": victim})
    assert victim not in [x["list_id"] for x in api(fresh, "/lists")[1]["lists"]]
    assert api(fresh, "/list/%s/contacts" % victim)[0] == 404
    assert api(fresh, "/list/%s/contacts/%s" % (victim, first_page["bookmark"]))[0] == 404
    assert all(victim not in d.get("lists", []) for d in scan(fresh, "/contacts")[1])
    with pytest.raises(KeyError):
        ds.list_members(victim)
    assert request(fresh, "/_admin/delete_list", key=None, method="POST", body={"list_id": victim})[0] == 404


def test_remove_from_list_and_segment(fresh):
    ds = fresh.dataset
    lid = max(ds.lists(), key=lambda x: len(ds.list_members(x["list_id"])))["list_id"]
    sid = max(ds.segments(), key=lambda x: len(ds.segment_members(x["segment_id"])))["segment_id"]
    gone = ds.list_members(lid)[:3]
    admin(fresh, "remove_from_list", {"list_id": lid, "contact_ids": gone})
    ids = [d["contact_id"] for d in scan(fresh, "/list/%s/contacts" % lid)[1]]
    assert not set(gone) & set(ids) and ids == ds.list_members(lid)
    assert all(lid not in ds.contact(c).get("lists", []) for c in gone)

    seg_gone = ds.segment_members(sid)[-2:]
    admin(fresh, "remove_from_segment", {"segment_id": sid, "contact_ids": seg_gone})
    ids = [d["contact_id"] for d in scan(fresh, "/smart_segments/%s/contacts" % sid)[1]]
    assert not set(seg_gone) & set(ids) and ids == ds.segment_members(sid)
    assert (
        request(
            fresh,
            "/_admin/remove_from_list",
            key=None,
            method="POST",
            body={"list_id": "contactlist_nope", "contact_ids": []},
        )[0]
        == 404
    )


def test_dump(fresh):
    dump = admin(fresh, "dump")
    ds = fresh.dataset
    assert [d["contact_id"] for d in dump["contacts"]] == ds.contact_ids()
    assert dump["lists"] == ds.lists() and dump["segments"] == ds.segments()
    assert dump["list_members"] == {x["list_id"]: ds.list_members(x["list_id"]) for x in ds.lists()}
    assert dump["segment_members"] == {x["segment_id"]: ds.segment_members(x["segment_id"]) for x in ds.segments()}
    assert dump["custom_fields"] == ds.custom_field_definitions()


# ----- stats ---------------------------------------------------------------------------


def test_stats_count_requests_per_endpoint_status_and_path(fresh):
    fresh.reset_stats()
    scan(fresh, "/contacts")
    api(fresh, "/contacts/custom_fields")
    api(fresh, "/lists")
    api(fresh, "/smart_segments")
    lid = fresh.dataset.lists()[0]["list_id"]
    sid = fresh.dataset.segments()[0]["segment_id"]
    api(fresh, "/list/%s/contacts" % lid)
    api(fresh, "/smart_segments/%s/contacts" % sid)
    api(fresh, "/lists", key="bad")
    api(fresh, "/nope")
    stats = admin(fresh, "stats")
    assert stats["requests"] == 10
    assert stats["by_endpoint"] == {
        "contacts": 3,
        "custom_fields": 1,
        "lists": 2,
        "list_contacts": 1,
        "segments": 1,
        "segment_contacts": 1,
        "other": 1,
    }
    assert stats["status"] == {"200": 8, "401": 1, "404": 1}
    assert stats["paths"]["/v1/contacts"] == 1 and stats["paths"]["/v1/lists"] == 2
    assert max(stats["paths"].values()) == 2
    assert stats["paths_ok"]["/v1/lists"] == 1
    assert stats["dropped"] == stats["truncated"] == stats["stalled"] == 0
    admin(fresh, "reset_stats", {})
    assert fresh.stats()["requests"] == 0 and fresh.stats()["paths"] == {}


# ----- CLI --------------------------------------------------------------------------------


def test_cli_prints_base_url_and_exits_on_sigterm():
    root = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "tap_autopilot.sandbox",
            "--contacts",
            "120",
            "--seed",
            "4",
            "--api-key",
            "k2",
            "--error-every",
            "2",
            "--dense",
            "--epoch-ms-share",
            "0.5",
        ],
        cwd=root,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    assert proc.stdout is not None
    try:
        line = proc.stdout.readline().strip()
        match = re.fullmatch(r"http://127\.0\.0\.1:(\d+)/v1", line)
        assert match, line
        conn = http.client.HTTPConnection("127.0.0.1", int(match.group(1)), timeout=5)
        conn.request("GET", "/v1/contacts", headers={"autopilotapikey": "k2"})
        page = json.loads(conn.getresponse().read())
        assert page["total_contacts"] == 120
        assert page["contacts"] == [
            Dataset(contacts=120, seed=4, dense=True, epoch_ms_share=0.5).contact(doc["contact_id"])
            for doc in page["contacts"]
        ]
        conn.request("GET", "/v1/contacts", headers={"autopilotapikey": "k2"})
        assert conn.getresponse().status == 500  # --error-every 2
        conn.close()
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=5) == 0
        assert proc.stdout.read() == ""  # the URL was the only stdout line
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.communicate()  # reaps it and closes its pipes
