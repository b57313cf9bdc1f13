"""HTTP faults. The real CLI, run as a subprocess against the sandbox
over real sockets, must come through every fault with the full data set, exit 0,
its retries visible as WARNING lines, no traceback and the API key never shown.

Fatal answers (400/401/403) stop it at once; a list deleted mid-run is skipped
with a warning; a repeated page bookmark stops it with a clear error instead of
looping (the sandbox cannot repeat a bookmark, so a tiny local server does).
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import threading
import time
import urllib.request
from collections import Counter
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import helpers
import pytest
import tools

from tap_autopilot.sandbox import Sandbox

API_KEY = "sk-faults-7f3a9c1e5b2d4f60-NEVER-PRINT"
START_DATE = "2000-01-01T00:00:00Z"
CUSTOM_COLUMNS = {
    "custom_favorite_color",
    "custom_seats",
    "custom_lifetime_value",
    "custom_is_partner",
    "custom_renewal_date",
}


# ----- helpers (on top of the shared helpers.py) ---------------------------------------


def run_tap(*args, timeout=240, env=None) -> helpers.TapRun:
    return helpers.run_tap(list(args), timeout=timeout, env=env)


# For tests whose retries are the point but whose backoff waits are not: the first backoff
# is at most 50 ms instead of 1 s (see BACKOFF_BASE_ENV in tap_autopilot/http/retry.py).
SHORT_BACKOFF = dict(os.environ, TAP_AUTOPILOT_BACKOFF_SECONDS="0.05")


def write_config(tmp_path: Path, base_url: str, **overrides) -> str:
    """A config with our API key and the tap's own defaults unless overridden, but for
    memberships read list by list: these tests need the list pages' requests (their faults,
    404s and loops), which reading memberships from the contacts scan saves."""
    config = {
        "api_key": API_KEY,
        "start_date": START_DATE,
        "base_url": base_url,
        "max_requests_per_second": None,
        "lists_contacts_source": "lists",
    }
    return helpers.write_config(tmp_path, None, **{**config, **overrides})


def catalog_file(tmp_path: Path, catalog) -> str:
    return helpers.write_json(Path(tmp_path) / "catalog.json", catalog)


def select(catalog, streams=helpers.STREAM_NAMES):
    return helpers.select(catalog, streams=list(streams))


def discover(config, env=None) -> dict:
    run = run_tap("--config", config, "--discover", env=env)
    assert run.returncode == 0, run
    assert_clean(run)
    return json.loads(run.stdout)


def assert_clean(run: helpers.TapRun):
    """No traceback and no API key, whatever happened."""
    helpers.assert_clean(run, API_KEY)


def expected_data(sb: Sandbox):
    """expected_keys, each row counted once: runs must match these counts exactly."""
    return {stream: Counter(keys) for stream, keys in helpers.expected_keys(sb).items()}


def assert_full_data(run: helpers.TapRun, expected):
    """Every contact exactly once, every list and segment, every membership pair exactly
    once, every record valid against its schema, and a final state with nothing pending."""
    messages = run.messages
    helpers.validate_records(messages)
    records = helpers.records_by_stream(messages)
    assert Counter(r["contact_id"] for r in records.get("contacts", [])) == expected["contacts"]
    assert {r["list_id"] for r in records.get("lists", [])} == set(expected["lists"])
    assert {r["segment_id"] for r in records.get("smart_segments", [])} == set(expected["smart_segments"])
    assert (
        Counter((r["list_id"], r["contact_id"]) for r in records.get("lists_contacts", []))
        == expected["lists_contacts"]
    )
    assert (
        Counter((r["segment_id"], r["contact_id"]) for r in records.get("smart_segments_contacts", []))
        == expected["smart_segments_contacts"]
    )
    final = helpers.last_state(messages)
    assert final["currently_syncing"] is None
    assert "scan" not in final["bookmarks"]["contacts"]


def warnings_matching(run: helpers.TapRun, pattern):
    return [line for line in run.lines("WARNING") if re.search(pattern, line)]


def api_get(sb: Sandbox, path):
    request = urllib.request.Request(sb.base_url + path, headers={"autopilotapikey": API_KEY})
    with urllib.request.urlopen(request, timeout=10) as response:
        return json.loads(response.read())


@pytest.fixture
def sandbox(sandbox_factory):
    """Factory: sandbox(**Sandbox kwargs) -> a running sandbox that knows our API key."""
    return lambda **kwargs: sandbox_factory(**dict({"api_key": API_KEY}, **kwargs))


@pytest.fixture(scope="module")
def catalog(tmp_path_factory):
    """The discovered catalog with every stream selected (custom fields are the same in every sandbox)."""
    tmp = tmp_path_factory.mktemp("catalog")
    with helpers.sandbox(contacts=10, api_key=API_KEY) as sb:
        found = discover(write_config(tmp, sb.base_url))
    assert CUSTOM_COLUMNS <= set(
        next(s for s in found["streams"] if s["tap_stream_id"] == "contacts")["schema"]["properties"]
    )
    return select(found)


# ----- transient faults ------------------------------------------------------

# knob -> (sandbox stats counter, regex of the tap's WARNING line for one such fault)
TRANSIENT = {
    "error_every": (lambda s: s["status"].get("500", 0), r"answered 500 to GET /"),
    "drop_every": (lambda s: s["dropped"], r"GET /\S+ failed \(\w*Error\)"),
    "truncate_every": (lambda s: s["truncated"], r"GET /\S+ returned a body that is not valid JSON"),
    "missing_key_every": (lambda s: s["missing_key"], r"GET /\S+ returned no '\w+'|unexpected shape"),
    "stall_every": (lambda s: s["stalled"], r"GET /\S+ timed out after 1 s"),
}


@pytest.mark.parametrize("fault", list(TRANSIENT))
def test_transient_fault_discovery_and_sync_deliver_everything(tmp_path, sandbox, fault):
    counted, warning = TRANSIENT[fault]
    sb = sandbox(contacts=800, lists=4, segments=3, seed=11, stall_seconds=2.5)
    config = write_config(tmp_path, sb.base_url, request_timeout=1, max_requests_per_second=20)

    # Discovery: its one request (/contacts/custom_fields) is made the faulted one.
    api_get(sb, "/lists")  # request 1
    sb.set_faults(**{fault: 2})  # request 2, discovery's first try, is faulted
    found = discover(config, env=SHORT_BACKOFF)
    assert counted(sb.stats()) == 1, "discovery did not meet the fault"
    contacts_schema = next(s for s in found["streams"] if s["tap_stream_id"] == "contacts")["schema"]
    assert CUSTOM_COLUMNS <= set(contacts_schema["properties"]), (
        "discovery accepted a faulted custom_fields answer and lost the custom field columns"
    )

    # Sync, every 9th request faulted. The tap gives up after 5 tries of one request;
    # faults this sparse make that (a fluke of thread interleaving) very unlikely.
    sb.reset_stats()
    sb.set_faults(**{fault: 9})
    expected = expected_data(sb)
    run = run_tap("--config", config, "--catalog", catalog_file(tmp_path, select(found)), env=SHORT_BACKOFF)
    stats = sb.stats()
    assert run.returncode == 0, run
    assert_clean(run)
    faults = counted(stats)
    assert faults >= 2, f"the sandbox injected {faults} {fault} faults: the test is not testing"
    retried = warnings_matching(run, warning)
    if fault == "stall_every":
        assert len(retried) >= faults, run  # a slow machine may time out once more
    else:
        assert len(retried) == faults, run  # one WARNING line per injected fault
    assert all("retrying in" in line for line in retried)
    assert_full_data(run, expected)


def test_a_page_that_ends_with_its_cursor_but_is_not_json_is_read_again_and_nothing_is_lost(tmp_path, sandbox, catalog):
    """The next cursor is read from a page's end and the page parsed afterwards (client.paginate):
    a body whose ending is whole but whose inside is not JSON is read again, and the page ahead,
    already asked for with that ending's cursor, is kept."""
    sb = sandbox(contacts=3000, lists=1, segments=1, seed=11, garble_every=4)
    expected = expected_data(sb)
    config = write_config(tmp_path, sb.base_url, max_requests_per_second=50)
    run = run_tap("--config", config, "--catalog", catalog_file(tmp_path, catalog), env=SHORT_BACKOFF)
    assert run.returncode == 0, run
    assert_clean(run)
    garbled = sb.stats()["garbled"]
    assert garbled >= 5, f"the sandbox garbled {garbled} bodies: the test is not testing"
    read_again = warnings_matching(run, r"GET /\S+ returned a body that is not valid JSON; reading that page again")
    retried = warnings_matching(run, r"GET /\S+ returned a body that is not valid JSON; retrying in")
    assert read_again, run  # most requests are contacts pages with a next one
    assert len(read_again) + len(retried) == garbled, run  # one WARNING line per garbled body
    assert_full_data(run, expected)


def test_retries_exhausted_fail_with_one_line_naming_the_path(tmp_path, sandbox, catalog):
    sb = sandbox(contacts=50, error_every=1)
    config = write_config(tmp_path, sb.base_url)
    run = run_tap(
        "--config", config, "--catalog", catalog_file(tmp_path, select(catalog, ["lists"])), env=SHORT_BACKOFF
    )
    assert run.returncode == 1, run
    assert_clean(run)
    critical = run.lines("CRITICAL")
    assert len(critical) == 1, run
    assert "/lists" in critical[0] and "500" in critical[0], critical
    requests = sb.stats()["paths"].get("/v1/lists", 0)
    assert 2 <= requests <= 10, f"{requests} requests: retried too little or without bound"
    assert len(warnings_matching(run, r"answered 500 to GET /lists; retrying in")) == requests - 1


# ----- rate limits -----------------------------------------------------------


def test_tap_at_the_server_rate_is_never_throttled(tmp_path, sandbox, catalog):
    sb = sandbox(contacts=400, lists=3, segments=2, seed=5, rate_limit=5)
    config = write_config(tmp_path, sb.base_url, max_requests_per_second=5)
    expected = expected_data(sb)
    run = run_tap("--config", config, "--catalog", catalog_file(tmp_path, catalog))
    stats = sb.stats()
    assert run.returncode == 0, run
    assert_clean(run)
    assert stats["requests"] >= 12, "too few requests for the rate to matter"
    assert stats["status"].get("429", 0) == 0, stats["status"]
    assert not warnings_matching(run, "429"), run
    assert_full_data(run, expected)


@pytest.mark.parametrize("retry_after", [True, False], ids=["with-retry-after", "without-retry-after"])
def test_tap_above_the_server_rate_is_throttled_and_delivers_everything(tmp_path, sandbox, catalog, retry_after):
    sb = sandbox(contacts=400, lists=3, segments=2, seed=5, rate_limit=5, retry_after=retry_after)
    config = write_config(tmp_path, sb.base_url, max_requests_per_second=25)
    expected = expected_data(sb)
    run = run_tap("--config", config, "--catalog", catalog_file(tmp_path, catalog))
    stats = sb.stats()
    assert run.returncode == 0, run
    assert_clean(run)
    throttled = stats["status"].get("429", 0)
    assert throttled > 0, "the tap never exceeded the server's rate: the test is not testing"
    warned = warnings_matching(run, r"throttled GET /\S+ \(429\); retrying in [0-9.]+ s")
    assert len(warned) == throttled, run
    if retry_after:  # the sandbox says Retry-After: 1, and the tap waits exactly that
        assert all("retrying in 1.0 s" in line for line in warned), warned
    assert_full_data(run, expected)


# ----- fatal answers ---------------------------------------------------------

KEY_REJECTED = "Autopilot rejected the API key (401). Check api_key."


@pytest.mark.parametrize("mode", ["discover", "sync"])
def test_wrong_key_fails_at_once(tmp_path, sandbox, catalog, mode):
    sb = sandbox(contacts=300, lists=3, segments=2)
    config = write_config(tmp_path, sb.base_url, api_key="sk-wrong-0c1d2e3f-NEVER-PRINT")
    args = ["--discover"] if mode == "discover" else ["--catalog", catalog_file(tmp_path, catalog)]
    run = run_tap("--config", config, *args)
    assert run.returncode == 1, run
    assert_clean(run)
    assert "sk-wrong-0c1d2e3f-NEVER-PRINT" not in run.stderr + run.stdout
    assert run.lines("CRITICAL") == ["CRITICAL " + KEY_REJECTED], run
    assert sb.stats()["requests"] == 1, sb.stats()["paths"]
    assert not run.lines("WARNING"), "a rejected key must not be retried"
    assert not [m for m in run.messages if m.get("type") == "RECORD"]


class StubAPI:
    """A minimal HTTP server for answers the sandbox cannot give. routes maps a
    path to (status, JSON body[, extra headers]); anything else is a 404. Counts every
    request, and keeps the API key header each one carried."""

    def __init__(self, routes, default=None):
        self.routes = routes
        self.default = default or (404, {"error": "Not Found", "message": "no such path"})
        self.paths: list[str] = []
        self.keys: list[str | None] = []
        stub = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_GET(self):
                stub.paths.append(self.path)
                stub.keys.append(self.headers.get("autopilotapikey"))
                status, body, *headers = stub.routes.get(self.path, stub.default)
                raw = json.dumps(body).encode()
                self.send_response(status)
                for name, value in (headers[0] if headers else {}).items():
                    self.send_header(name, value)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(raw)))
                self.end_headers()
                self.wfile.write(raw)

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.thread = threading.Thread(target=self.server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)

    @property
    def base_url(self):
        return "http://127.0.0.1:%d/v1" % self.server.server_address[1]

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self.server.shutdown()
        self.server.server_close()


def test_a_redirect_is_refused_and_the_api_key_never_reaches_where_it_points(tmp_path):
    """A base_url that redirects (a proxy, a typo that lands on another site): requests would
    send the key header on to the other host. The tap follows no redirect: one line, exit 1,
    and the other server never hears from it."""
    with StubAPI({}, default=(200, [])) as elsewhere:
        target = elsewhere.base_url + "/contacts/custom_fields"
        with StubAPI({}, default=(302, {}, {"Location": target})) as redirecting:
            config = write_config(tmp_path, redirecting.base_url)
            run = run_tap("--config", config, "--discover")  # one request: the first of every run
    assert run.returncode == 1, run
    assert_clean(run)
    assert redirecting.keys == [API_KEY], "the first server is asked once, with the key"
    assert elsewhere.paths == [], "the redirect was followed"
    port = elsewhere.server.server_address[1]
    assert run.lines("CRITICAL") == [
        f"CRITICAL Config 'base_url' {redirecting.base_url} answered 302 to GET /contacts/custom_fields, a "
        f"redirect to http://127.0.0.1:{port}. The tap follows no redirect, so that the API key goes nowhere "
        "else: set base_url to the API root it should reach."
    ], run


@pytest.mark.parametrize(
    "status,body",
    [
        (400, {"error": "Bad Request", "message": "No autopilotapikey header provided."}),
        (401, {"error": "Unauthorized", "message": "Provided autopilotapikey not valid."}),
        (403, {"error": "Forbidden", "message": "Forbidden."}),
    ],
)
def test_rejected_key_statuses_fail_at_once(tmp_path, catalog, status, body):
    # The tap always sends a key (an empty one is refused by config validation), so the
    # sandbox never answers 400 to it: a stub does, as Autopilot does without the header.
    with StubAPI({}, default=(status, body)) as stub:
        config = write_config(tmp_path, stub.base_url)
        run = run_tap("--config", config, "--catalog", catalog_file(tmp_path, catalog))
    assert run.returncode == 1, run
    assert_clean(run)
    assert run.lines("CRITICAL") == [f"CRITICAL Autopilot rejected the API key ({status}). Check api_key."], run
    assert len(stub.paths) == 1, stub.paths


# ----- a list deleted mid-run ------------------------------------------------


def test_list_deleted_mid_run_is_skipped_with_a_warning(tmp_path, sandbox, catalog):
    sb = sandbox(contacts=300, lists=5, segments=2, seed=4)
    before = expected_data(sb)
    sizes = Counter(list_id for list_id, _ in before["lists_contacts"])
    # The list scanned last (units go in order of id), so it is certainly not fetched yet.
    doomed = max(list_id for list_id in before["lists"] if sizes[list_id])
    config = write_config(tmp_path, sb.base_url, max_requests_per_second=3)
    cmd = tools.tap_cmd() + ["--config", str(config), "--catalog", catalog_file(tmp_path, catalog)]
    with subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) as proc:
        try:
            deadline = time.monotonic() + 60
            while "/v1/lists" not in sb.stats()["paths_ok"]:
                assert proc.poll() is None and time.monotonic() < deadline, "the tap never fetched /lists"
                time.sleep(0.005)
            assert not any(doomed in path for path in sb.stats()["paths"]), "too late to delete the list"
            helpers.admin(sb, "delete_list", {"list_id": doomed})
            stdout, stderr = proc.communicate(timeout=120)
        finally:
            if proc.poll() is None:
                proc.kill()
    run = helpers.TapRun(proc.returncode, stdout, stderr)
    assert run.returncode == 0, run
    assert_clean(run)
    assert sb.stats()["status"].get("404") == 1
    assert [line for line in run.lines("WARNING") if doomed in line and "404" in line], run
    # Everything else is intact: every contact once, the other lists' pairs exactly.
    assert Counter(r["contact_id"] for r in run.records("contacts")) == before["contacts"]
    pairs = Counter((r["list_id"], r["contact_id"]) for r in run.records("lists_contacts"))
    assert pairs == Counter({pair: n for pair, n in before["lists_contacts"].items() if pair[0] != doomed})
    assert (
        Counter((r["segment_id"], r["contact_id"]) for r in run.records("smart_segments_contacts"))
        == before["smart_segments_contacts"]
    )
    final = run.states()[-1]
    assert final["currently_syncing"] is None
    assert final["bookmarks"]["lists_contacts"].get("complete") is True


# ----- a repeated page bookmark ----------------------------------------------


def _page(contact_ids, bookmark=None):
    body = {
        "contacts": [
            {"contact_id": cid, "Email": f"{cid}@example.com", "updated_at": "2024-01-01T00:00:00.000Z"}
            for cid in contact_ids
        ],
        "total_contacts": 9,
    }
    if bookmark:
        body["bookmark"] = bookmark
    return 200, body


LIST_ID = "contactlist_AAAAAAAA-0000-0000-0000-000000000001"
REPEATING = {
    "contacts-same-bookmark-twice": (
        ["contacts"],
        {
            "/v1/contacts": _page(["person_1"], "person_1"),
            "/v1/contacts/person_1": _page(["person_2"], "person_1"),
        },
    ),
    "contacts-bookmark-cycle": (
        ["contacts"],
        {
            "/v1/contacts": _page(["person_1"], "person_1"),
            "/v1/contacts/person_1": _page(["person_2"], "person_2"),
            "/v1/contacts/person_2": _page(["person_3"], "person_1"),
        },
    ),
    "list-members-same-bookmark-twice": (
        ["lists_contacts"],
        {
            "/v1/lists": (200, {"lists": [{"list_id": LIST_ID, "title": "Looping"}]}),
            f"/v1/list/{LIST_ID}/contacts": _page(["person_1"], "person_1"),
            f"/v1/list/{LIST_ID}/contacts/person_1": _page(["person_2"], "person_1"),
        },
    ),
}


@pytest.mark.parametrize("case", list(REPEATING))
def test_repeated_bookmark_stops_with_a_clear_error(tmp_path, catalog, case):
    streams, routes = REPEATING[case]
    with StubAPI(routes) as stub:
        config = write_config(tmp_path, stub.base_url)
        run = run_tap("--config", config, "--catalog", catalog_file(tmp_path, select(catalog, streams)), timeout=60)
    assert run.returncode == 1, run
    assert_clean(run)
    critical = run.lines("CRITICAL")
    assert len(critical) == 1 and "repeated the page bookmark person_1" in critical[0], run
    assert len(stub.paths) == len(routes), stub.paths  # each page once, then it stopped


# ----- everything at once ----------------------------------------------------


def test_everything_at_once_delivers_exactly_the_sandbox_data(tmp_path, sandbox, catalog):
    """The issue's definition of done: 5 r/s, 429s, 500s, resets, truncated bodies
    and stalls all on; the tap at its defaults but for a short request_timeout."""
    # Each fault is sparse on its own (the tap gives up after 5 tries of one request, and
    # faults of different kinds can chain); ~55 requests meet each kind at least once.
    sb = sandbox(
        contacts=2000,
        lists=3,
        segments=2,
        seed=21,
        rate_limit=5,
        error_every=23,
        drop_every=31,
        truncate_every=37,
        stall_every=41,
        stall_seconds=2,
    )
    config = write_config(tmp_path, sb.base_url, request_timeout=1)
    expected = expected_data(sb)
    run = run_tap("--config", config, "--catalog", catalog_file(tmp_path, catalog))
    stats = sb.stats()
    assert run.returncode == 0, run
    assert_clean(run)
    assert stats["status"].get("500", 0) and stats["dropped"] and stats["truncated"] and stats["stalled"], stats
    assert run.lines("WARNING"), "faults were retried silently"
    assert_full_data(run, expected)
