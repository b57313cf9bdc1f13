"""The client's rules (http/client.py): which answers fail at once and how, the whole-response
deadline, the parse of a page, the session and its settings, the request metrics. A fake clock
and sleep stand in for time (no test waits), a fake session for the network (no server)."""

import datetime
import inspect
import socket
import threading

import pytest
import requests
import urllib3

from tap_autopilot.errors import AuthError, ConfigError, NotFoundError, RateLimitedError, RetryableError, TapError
from tap_autopilot.http import client as client_module
from tap_autopilot.http.client import AutopilotClient
from tap_autopilot.http.rate_limit import RateLimiter
from tap_autopilot.http.read_ahead import SentSignalAdapter
from tap_autopilot.http.retry import TRANSIENT_MAX_TRIES
from tap_autopilot.streams import Lists, SmartSegments
from tap_autopilot.streams.contacts import ContactsScan
from tap_autopilot.values import cleaning as values_module

from .support import API_KEY, FakeRaw, FakeResponse, FakeSession, FakeTime, make_client, pages_session

# ----- fatal answers ---------------------------------------------------------------------------


@pytest.mark.parametrize("status", [400, 401, 403])
def test_rejected_key_fails_at_once_without_retry(status):
    fake_time = FakeTime()
    session = FakeSession(FakeResponse(status, b'{"message": "nope"}'), FakeResponse(200))
    client = make_client(session, fake_time)
    with pytest.raises(AuthError) as raised:
        client.get("/lists", "lists")
    assert f"({status})" in str(raised.value) and API_KEY not in str(raised.value)
    assert len(session.urls) == 1
    assert fake_time.sleeps == []


@pytest.mark.parametrize("status", [400, 401, 403])
def test_after_a_rejected_key_no_thread_sends_another_request(status):
    fake_time = FakeTime()
    session = FakeSession(FakeResponse(status))
    client = make_client(session, fake_time)
    with pytest.raises(AuthError):
        client.get("/lists", "lists")
    errors = []

    def other_thread():
        try:
            client.get("/smart_segments", "segments")
        except TapError as error:
            errors.append(error)

    thread = threading.Thread(target=other_thread)
    thread.start()
    thread.join(10)
    assert len(errors) == 1 and isinstance(errors[0], AuthError)
    assert len(session.urls) == 1


def test_a_thread_waiting_to_retry_does_not_send_after_another_thread_is_rejected():
    fake_time = FakeTime()
    session = FakeSession(FakeResponse(500), FakeResponse(401))
    client = make_client(session, fake_time)

    def rejected_meanwhile():  # another request, made while the first waits for its retry
        with pytest.raises(AuthError):
            client.get("/smart_segments", "segments")

    fake_time.on_sleep = rejected_meanwhile
    with pytest.raises(AuthError):
        client.get("/lists", "lists")
    assert len(session.urls) == 2  # the 500 and the 401; the retry of /lists was never sent


def test_404_raises_not_found_at_once():
    fake_time = FakeTime()
    session = FakeSession(FakeResponse(404, b'{"message": "no such list"}'), FakeResponse(200))
    with pytest.raises(NotFoundError) as raised:
        make_client(session, fake_time).get("/list/contactlist_x/contacts", "contacts")
    assert "/list/contactlist_x/contacts" in str(raised.value)
    assert len(session.urls) == 1


@pytest.mark.parametrize("path", sorted(client_module.API_ROOT_PATHS))
def test_a_404_on_an_api_root_path_before_any_200_says_base_url_must_end_with_v1(path):
    session = FakeSession(FakeResponse(404, b'{"message": "No such endpoint"}'))
    with pytest.raises(ConfigError) as raised:
        make_client(session, FakeTime()).get(path)
    assert str(raised.value) == (
        f"Config 'base_url' http://autopilot.invalid/v1 answered 404 for {path}: it must be the API root, "
        "ending with /v1 (the default is https://api2.autopilothq.com/v1)."
    )
    assert len(session.urls) == 1  # not retried


def test_the_api_root_paths_are_the_first_requests_of_every_run():
    first_requests = {ContactsScan.path, Lists.path, SmartSegments.path, "/contacts/custom_fields"}  # discover's
    assert first_requests == client_module.API_ROOT_PATHS


def test_a_404_after_a_200_keeps_today_s_handling_even_on_a_root_path():
    session = FakeSession(FakeResponse(200), FakeResponse(404))
    client = make_client(session, FakeTime())
    client.get("/lists", "lists")
    with pytest.raises(NotFoundError, match=r"^Autopilot has no /smart_segments \(404\)\.$"):
        client.get("/smart_segments", "segments")


def test_a_404_on_a_path_with_an_id_is_not_taken_for_a_wrong_base_url():
    # a resumed scan's vanished cursor, a list deleted mid-sync: the scans handle those
    session = FakeSession(FakeResponse(404))
    with pytest.raises(NotFoundError):
        make_client(session, FakeTime()).get("/contacts/person_0001", "contacts")


@pytest.mark.parametrize(
    "location,shown",
    [
        ("https://elsewhere.example:8443/v1/contacts?key=x", "https://elsewhere.example:8443"),
        ("http://api2.autopilothq.com/v1/lists", "http://api2.autopilothq.com"),
        ("/v2/lists", "another path of the same server"),
        ("http://[::1/v1", "an address that is not a URL"),
        (None, "another path of the same server"),
    ],
)
def test_a_redirect_is_refused_at_once_naming_only_where_it_points(location, shown):
    """The redirect rule: no redirect is followed (requests would send the key header on to any
    host), and the message names the target's scheme, host and port, never its path or query."""
    session = FakeSession(FakeResponse(302, b"", {"Location": location} if location else {}), FakeResponse(200))
    with pytest.raises(ConfigError) as raised:
        make_client(session, FakeTime()).get("/lists", "lists")
    assert str(raised.value) == (
        "Config 'base_url' http://autopilot.invalid/v1 answered 302 to GET /lists, a redirect to "
        f"{shown}. The tap follows no redirect, so that the API key goes nowhere else: set base_url to the API "
        "root it should reach."
    )
    assert len(session.urls) == 1


@pytest.mark.parametrize("status", [204, 402, 405, 409, 418, 422])
def test_other_statuses_fail_at_once_with_a_tap_error(status):
    fake_time = FakeTime()
    session = FakeSession(FakeResponse(status, b'{"message": "odd"}'), FakeResponse(200))
    with pytest.raises(TapError) as raised:
        make_client(session, fake_time).get("/lists", "lists")
    assert type(raised.value) is TapError
    assert str(status) in str(raised.value) and "odd" in str(raised.value)
    assert len(session.urls) == 1


def test_a_header_requests_refuses_is_a_config_error_at_once_without_the_value():
    fake_time = FakeTime()
    session = FakeSession(requests.exceptions.InvalidHeader(f"Invalid leading whitespace in header value {API_KEY!r}"))
    with pytest.raises(ConfigError, match=r"api_key or user_agent") as raised:
        make_client(session, fake_time).get("/lists", "lists")
    assert len(session.urls) == 1 and fake_time.sleeps == []
    assert API_KEY not in str(raised.value)


@pytest.mark.parametrize(
    "body, shown",
    [
        (b'{"message": "' + b"m" * 300 + b'"}', "m" * 200),
        (b"<html>" + b"h" * 300, "<html>" + "h" * 194),
        (b'["not", "an", "object"]', '["not", "an", "object"]'),
        (b'{"error": "Teapot"}', "Teapot"),
        (b'{"code": 7}', '{"code": 7}'),
        (b"<html>\n  <body>Bad\r\n gateway</body>", "<html> <body>Bad gateway</body>"),
    ],
    ids=["json message", "html", "json list", "json error", "json without either", "lines"],
)
def test_other_statuses_show_the_answer_s_message_cut_to_200_characters(body, shown):
    with pytest.raises(TapError) as raised:
        make_client(FakeSession(FakeResponse(418, body)), FakeTime()).get("/lists", "lists")
    assert str(raised.value).endswith(": " + shown)


def test_an_error_body_that_is_not_utf8_is_shown_with_replacement_characters():
    with pytest.raises(TapError) as raised:
        make_client(FakeSession(FakeResponse(418, b"\xffbad")), FakeTime()).get("/lists", "lists")
    assert str(raised.value).endswith(": \ufffdbad")


# ----- what the client hands the retry policy and the rate limiter -----------------------------


def test_429_with_retry_after_pauses_every_thread_through_the_limiter():
    fake_time = FakeTime()
    client = make_client(FakeSession(FakeResponse(429, b"", {"Retry-After": "30"})), fake_time)
    client._log_retry(RateLimitedError("Autopilot throttled GET /lists (429)", 30.0), 30.0, 1)  # a retry decided
    paused_at = fake_time.now
    other_thread_limiter = client.limiter  # shared by every thread of the client
    other_thread_limiter.acquire()
    assert fake_time.now >= paused_at + 30


@pytest.mark.parametrize("retry_after", ["100000", "inf", "nan"])
def test_a_retry_after_past_the_budget_or_not_finite_holds_no_thread_back(retry_after):
    """The policy gives up on a Retry-After past its budget: the other threads must not be left
    asleep in the limiter for it (the run would hang until killed); inf and nan are no number."""
    fake_time = FakeTime()
    session = FakeSession(FakeResponse(429, b"", {"Retry-After": retry_after}), FakeResponse(200))
    client = make_client(session, fake_time)
    try:
        client.get("/lists", "lists")
    except RateLimitedError:
        assert retry_after == "100000"
    before = fake_time.now
    client.limiter.acquire()
    assert fake_time.now - before < 5


def test_expect_list_retries_a_200_that_is_not_a_list():
    fake_time = FakeTime()
    session = FakeSession(FakeResponse(200, b'{"fields": []}'), FakeResponse(200, b"[]"))
    assert make_client(session, fake_time).get("/contacts/custom_fields", expect_list=True) == []
    assert len(session.urls) == 2


def test_each_retry_is_logged_with_its_error_wait_and_try_and_counted(caplog):
    fake_time = FakeTime()
    client = make_client(FakeSession(FakeResponse(503), FakeResponse(200)), fake_time, uniform=lambda low, high: 0.75)
    with caplog.at_level("WARNING", logger="tap_autopilot"):
        client.get("/lists", "lists")
    assert caplog.messages == ["Autopilot answered 503 to GET /lists; retrying in 0.8 s (attempt 1)"]
    assert client.stats["retries"] == 1


def test_requests_are_counted_once_per_try():
    client = make_client(FakeSession(FakeResponse(503), FakeResponse(200)), FakeTime(), uniform=lambda low, high: 0)
    client.get("/lists", "lists")
    assert (client.stats["requests"], client.stats["retries"], client.stats["rate_limited"]) == (2, 1, 0)


def test_client_rate_limiter_uses_max_requests_per_second():
    client = make_client(FakeSession(FakeResponse(200)), FakeTime(), rate=8)
    assert client.limiter.interval == pytest.approx(RateLimiter.SAFETY / 8)


# ----- pages always parse (docs/values.md) -----------------------------------------------------


CONTACTS_PAGE = b'{"contacts": [{"contact_id": "person_1", "FirstName": %s}], "total_contacts": 1}'


def test_a_lone_surrogate_escape_is_json_the_page_parses_and_the_transform_replaces_it(caplog):
    session = FakeSession(FakeResponse(200, CONTACTS_PAGE % b'"Ann\\ud83d"'))
    body = make_client(session, FakeTime()).get("/contacts", "contacts")
    assert body["contacts"][0]["FirstName"] == "Ann\ud83d"  # kept: the record transform replaces and counts it
    assert len(session.urls) == 1 and not [r for r in caplog.records if r.levelname == "WARNING"]


def test_a_number_no_double_holds_parses_as_its_text_and_big_integers_exactly():
    page = b'{"contacts": [{"a": 1e400, "b": -1E+400, "c": 15551234567890123456789, "d": 2.5}], "total_contacts": 1}'
    body = make_client(FakeSession(FakeResponse(200, page)), FakeTime()).get("/contacts", "contacts")
    assert body["contacts"][0] == {"a": "1e400", "b": "-1E+400", "c": 15551234567890123456789, "d": 2.5}


def test_invalid_utf8_is_replaced_with_fffd_and_warned_once_per_page_naming_the_endpoint_not_the_value(caplog):
    session = FakeSession(FakeResponse(200, CONTACTS_PAGE % b'"M\xfcller \xff"'))
    client = make_client(session, FakeTime())
    body = client.get("/contacts/person_0", "contacts")
    assert body["contacts"][0]["FirstName"] == "M\ufffdller \ufffd"
    warnings = [r.getMessage() for r in caplog.records if r.levelname == "WARNING"]
    assert len(warnings) == 1 and "/contacts/person_0" in warnings[0] and "ller" not in warnings[0]
    assert "not valid UTF-8" in warnings[0] and "U+FFFD" in warnings[0], "the line says what was done"
    assert client.stats.repaired_pages() == {"contacts": 1}
    assert len(session.urls) == 1  # not retried


@pytest.mark.parametrize("body", [b'{"lists": NaN}', b'{"lists": Infinity}', b'{"lists": [1,]}', b"\xff\xfe"])
def test_a_body_that_is_not_json_at_all_stays_a_retryable_error(body):
    session = FakeSession(FakeResponse(200, body))
    with pytest.raises(RetryableError, match="not valid JSON"):
        make_client(session, FakeTime()).get("/lists", "lists")
    assert len(session.urls) == TRANSIENT_MAX_TRIES


def test_clean_pages_take_the_fast_parser_only(monkeypatch):
    def refuse(*args, **kwargs):
        raise AssertionError("the slow parser ran on a clean page")

    monkeypatch.setattr(values_module.json, "loads", refuse)
    page = CONTACTS_PAGE % b'"Ann \\u00e9 \\ud83d\\ude00 \\u0000"'
    body = make_client(FakeSession(FakeResponse(200, page)), FakeTime()).get("/contacts", "contacts")
    assert body["contacts"][0]["FirstName"] == "Ann é 😀 \x00"  # the NUL is the transform's to remove


# ----- the whole-response deadline -------------------------------------------------------------


class FakeSocket:
    def __init__(self):
        self.timeouts = []

    def settimeout(self, seconds):
        self.timeouts.append(seconds)


class TricklingRaw(FakeRaw):
    """A body arriving one byte per socket read, each read taking `seconds` on the fake clock."""

    def __init__(self, content, fake_time, seconds):
        super().__init__(content)
        self.connection = type("Connection", (), {"sock": FakeSocket()})()
        self.fake_time = fake_time
        self.seconds = seconds

    def read1(self, size, decode_content=True):
        self.fake_time.now += self.seconds
        return super().read1(1, decode_content)


class TricklingResponse(FakeResponse):
    def __init__(self, fake_time, seconds):
        super().__init__(200)
        self.raw = TricklingRaw(self.content, fake_time, seconds)
        self.closed = False

    def close(self):
        self.closed = True


class TricklingSession(FakeSession):
    """Every GET answers 200 with a TricklingResponse; records the timeouts it was given."""

    def __init__(self, fake_time, seconds_per_read):
        super().__init__()
        self.fake_time = fake_time
        self.seconds_per_read = seconds_per_read
        self.timeouts = []
        self.responses = []

    def get(self, url, timeout=None, stream=False, allow_redirects=True):
        self.urls.append(url)
        self.timeouts.append(timeout)
        self.responses.append(TricklingResponse(self.fake_time, self.seconds_per_read))
        return self.responses[-1]


def test_request_timeout_bounds_the_whole_response_not_each_read():
    """A body trickling in a byte at a time never trips a per-read timeout; the whole
    response must be in by request_timeout, else the try has timed out (and is retried)."""
    fake_time = FakeTime()
    session = TricklingSession(fake_time, seconds_per_read=0.5)
    client = make_client(session, fake_time)
    client.timeout = 2.0
    with pytest.raises(RetryableError, match=r"timed out after 2 s"):
        client.get("/lists", "lists")
    assert len(session.urls) == TRANSIENT_MAX_TRIES
    assert all(response.closed for response in session.responses), "a half-read response went back to the pool"
    assert session.timeouts[0].total == pytest.approx(2.0), "connect and headers are not bounded by the deadline"
    # each socket read may take only what is left until the deadline
    assert session.responses[0].raw.connection.sock.timeouts == pytest.approx([2.0, 1.5, 1.0, 0.5])


def test_a_slow_body_that_is_whole_by_the_deadline_is_read():
    fake_time = FakeTime()
    session = TricklingSession(fake_time, seconds_per_read=0.1)
    client = make_client(session, fake_time)
    client.timeout = 2.0
    assert client.get("/lists", "lists") == {"lists": []}
    assert len(session.urls) == 1 and not session.responses[0].closed


def test_a_deadline_already_passed_still_gives_urllib3_a_positive_timeout():
    fake_time = FakeTime()
    session = TricklingSession(fake_time, seconds_per_read=0.5)
    client = make_client(session, fake_time)
    client.timeout = 0.0
    with pytest.raises(RetryableError, match="timed out"):
        client.get("/lists", "lists")
    assert session.timeouts[0].total == pytest.approx(0.001)


# ----- the session, the server's clock, settings and metrics -----------------------------------


@pytest.mark.parametrize("headers", [{}, {"Date": "not a date"}, {"Date": ""}], ids=["no Date", "garbage", "empty"])
def test_server_time_is_none_without_a_usable_date_header(headers):
    body, server_time = make_client(pages_session(b'{"lists": []}', headers=headers), FakeTime()).request("/lists")
    assert body == {"lists": []} and server_time is None


def test_server_time_is_utc():
    session = pages_session(b'{"lists": []}', headers={"Date": "Sun, 06 Dec 2026 03:00:00 +0100"})
    _, server_time = make_client(session, FakeTime()).request("/lists")
    assert server_time is not None and server_time.tzinfo is datetime.UTC


def test_session_sends_the_key_and_reads_proxy_and_ca_settings_once(monkeypatch):
    monkeypatch.setenv("HTTPS_PROXY", "http://proxy.invalid:3128")
    monkeypatch.delenv("NO_PROXY", raising=False)
    monkeypatch.delenv("no_proxy", raising=False)
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", "/etc/ssl/unit-test-ca.pem")
    client = AutopilotClient({"api_key": API_KEY, "user_agent": "unit-test-agent"})
    session = client._session()
    assert session.headers["autopilotapikey"] == API_KEY
    assert session.headers["Accept"] == "application/json"
    assert session.headers["User-Agent"] == "unit-test-agent"
    assert session.proxies["https"] == "http://proxy.invalid:3128"
    assert session.verify == "/etc/ssl/unit-test-ca.pem"
    assert session.trust_env is False, "requests would re-read the environment on every request"
    assert client._session() is session
    others = []
    thread = threading.Thread(target=lambda: others.append(client._session()))
    thread.start()
    thread.join(10)
    assert others and others[0] is not session, "requests.Session is not shared between threads"


def test_session_without_a_ca_bundle_keeps_verifying(monkeypatch):
    monkeypatch.delenv("REQUESTS_CA_BUNDLE", raising=False)
    monkeypatch.delenv("CURL_CA_BUNDLE", raising=False)
    session = AutopilotClient({"api_key": API_KEY})._session()
    assert session.verify is True


def test_client_settings_come_from_the_config_with_their_defaults(monkeypatch):
    monkeypatch.delenv("REQUESTS_CA_BUNDLE", raising=False)
    monkeypatch.setenv("CURL_CA_BUNDLE", "/etc/ssl/curl-ca.pem")
    defaults = AutopilotClient({"api_key": API_KEY})
    assert defaults.base_url == client_module.DEFAULT_BASE_URL
    assert defaults.timeout == client_module.DEFAULT_REQUEST_TIMEOUT_SECONDS == 300
    assert defaults.limiter.interval == pytest.approx(RateLimiter.SAFETY / 5)
    assert defaults._session().verify == "/etc/ssl/curl-ca.pem", "CURL_CA_BUNDLE when REQUESTS_CA_BUNDLE is unset"
    configured = AutopilotClient({"api_key": API_KEY, "base_url": "http://127.0.0.1:8080/v1/", "request_timeout": "30"})
    assert configured.base_url == "http://127.0.0.1:8080/v1" and configured.timeout == 30.0


def test_bodies_are_streamed_and_decoded_as_the_server_compressed_them():
    """stream=True lets the deadline loop read the body; decode_content undoes gzip."""
    reads = []

    class RecordingRaw(FakeRaw):
        def read1(self, size, decode_content=None):  # None: urllib3 uses what requests set (no decoding)
            reads.append((size, decode_content))
            return super().read1(size, decode_content)

    class RecordingSession(FakeSession):
        def get(self, url, timeout=None, stream=False, allow_redirects=True):
            self.stream = stream
            response = super().get(url, timeout, stream, allow_redirects)
            response.raw = RecordingRaw(response.content)
            return response

    session = RecordingSession(FakeResponse(200))
    assert make_client(session, FakeTime()).get("/lists", "lists") == {"lists": []}
    assert session.stream is True
    assert reads and all(read == (client_module.BODY_CHUNK_BYTES, True) for read in reads)


@pytest.mark.parametrize(
    "path, name",
    [
        ("/contacts", "contacts"),
        ("/contacts/person_x", "contacts"),
        ("/contacts/custom_fields", "custom_fields"),
        ("/list/contactlist_x/contacts/person_y", "list_contacts"),
        ("/lists", "lists"),
        ("/smart_segments", "smart_segments"),
        ("/smart_segments/segment_x/contacts", "smart_segment_contacts"),
    ],
)
def test_request_metrics_name_the_endpoint_not_the_ids_in_the_path(path, name):
    assert client_module._endpoint_name(path) == name


@pytest.mark.parametrize("url", ["https://api2.autopilothq.com/v1/contacts", "http://127.0.0.1:8000/v1/contacts"])
def test_both_schemes_use_connections_that_signal_a_written_request(url):
    """The live API is https: its page ahead is handed over on the signal, not after the 5 ms bound."""
    session = AutopilotClient({"api_key": API_KEY})._session()
    adapter = session.get_adapter(url)
    assert isinstance(adapter, SentSignalAdapter)
    # the adapter's connection signals (as test_read_ahead checks of SentSignalAdapter itself)
    connection = adapter.poolmanager.connection_from_url(url).ConnectionCls
    assert connection.request is not urllib3.connection.HTTPConnection.request


# A real local socket (allowed in unit tests): the client against a server that trickles.


def _trickling_server(body_bytes, interval):
    """A one-shot HTTP server: headers at once, then the body a byte per `interval`."""
    server = socket.create_server(("127.0.0.1", 0))
    stop = threading.Event()

    def serve():
        conn, _ = server.accept()
        with conn:
            conn.recv(65536)
            conn.sendall(
                b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n" % len(body_bytes)
            )
            for index in range(len(body_bytes)):
                if stop.wait(interval):
                    return
                try:
                    conn.sendall(body_bytes[index : index + 1])
                except OSError:
                    return

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    return server, stop


def test_request_timeout_bounds_a_trickling_body():
    """Each byte comes well within the timeout, the whole (valid) body would take
    100 s: the request gives up once the whole response has taken request_timeout."""
    server, stop = _trickling_server(b'{"lists": []}' + b" " * 1000, 0.1)
    try:
        port = server.getsockname()[1]
        client = AutopilotClient(
            {
                "api_key": "k",
                "base_url": f"http://127.0.0.1:{port}/v1",
                "request_timeout": 0.5,
                "max_requests_per_second": 100,
            }
        )
        one_attempt = inspect.unwrap(AutopilotClient.request)  # without the retry decorators
        with pytest.raises(RetryableError, match=r"timed out after 0\.5 s"):
            one_attempt(client, "/lists", "lists")
    finally:
        stop.set()
        server.close()
