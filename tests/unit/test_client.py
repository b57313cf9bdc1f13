"""The client's rules: which answers are retried and which fail at once, how long it
waits, the 429 budget, and the rate limiter. A fake clock and sleep stand in for time
(no test waits), a fake session for the network (no server)."""

import datetime
import gc
import itertools
import json
import math
import threading
import time
import weakref

import pytest
import requests
import urllib3

from tap_autopilot.errors import AuthError, ConfigError, NotFoundError, RateLimitedError, RetryableError, TapError
from tap_autopilot.http import client as client_module
from tap_autopilot.http.client import AutopilotClient, Page, RateLimiter, read_ahead
from tap_autopilot.http.rate_limit import Booking
from tap_autopilot.http.read_ahead import SentSignalAdapter
from tap_autopilot.http.retry import (
    BACKOFF_BASE_ENV,
    BACKOFF_CAP_SECONDS,
    RATE_LIMIT_RETRY_SECONDS,
    TRANSIENT_MAX_TRIES,
    RetryPolicy,
    backoff_base_seconds,
)
from tap_autopilot.readers import ContactsScan
from tap_autopilot.streams import Lists, SmartSegments
from tap_autopilot.values import cleaning as values_module

API_KEY = "unit-test-key"


class FakeTime:
    """A clock that only moves when something sleeps. `on_sleep` runs inside a sleep,
    to let a test act while a thread waits."""

    def __init__(self, now=1000.0):
        self.now = now
        self.sleeps = []
        self.on_sleep = None

    def clock(self):
        return self.now

    def sleep(self, seconds):
        self.sleeps.append(seconds)
        self.now += seconds
        if self.on_sleep is not None:
            hook, self.on_sleep = self.on_sleep, None
            hook()


class FakeRaw:
    """The part of urllib3's response the client reads a streamed body through."""

    connection = None

    def __init__(self, content):
        self._content = content

    def read1(self, size, decode_content=True):
        chunk, self._content = self._content[:size], self._content[size:]
        return chunk


class FakeResponse:
    def __init__(self, status, body=b'{"lists": []}', headers=None):
        self.status_code = status
        self.content = body if isinstance(body, bytes) else body.encode()
        self.headers = headers or {}
        self.raw = FakeRaw(self.content)

    def close(self):
        pass


class FakeSession:
    """Answers each GET with the next scripted response (or raises the scripted exception);
    the last one repeats. Records every URL asked for."""

    def __init__(self, *script):
        self.script = list(script)
        self.urls = []

    def get(self, url, timeout=None, stream=False):
        self.urls.append(url)
        answer = self.script.pop(0) if len(self.script) > 1 else self.script[0]
        if isinstance(answer, BaseException):
            raise answer
        answer.raw = FakeRaw(answer.content)  # a repeated answer is read again from its start
        return answer


def make_client(session, fake_time, rate=5, uniform=None):
    client = AutopilotClient(
        {"api_key": API_KEY, "base_url": "http://autopilot.invalid/v1", "max_requests_per_second": rate},
        clock=fake_time.clock,
        sleep=fake_time.sleep,
    )
    client._session = lambda: session  # type: ignore[method-assign]  # the network, stubbed
    if uniform is not None:
        client.retry = RetryPolicy(base=1.0, clock=fake_time.clock, sleep=fake_time.sleep, uniform=uniform)
    return client


def recording(bounds, value=None):
    """A stand-in for random.uniform that records the range it is asked for and returns
    `value`, or the top of the range (which shows the backoff ceilings)."""

    def uniform(low, high):
        bounds.append((low, high))
        return high if value is None else value

    return uniform


# ----- 429 -------------------------------------------------------------------------------


def test_429_with_retry_after_waits_exactly_retry_after_then_succeeds():
    fake_time = FakeTime()
    session = FakeSession(FakeResponse(429, b"", {"Retry-After": "7"}), FakeResponse(200))
    client = make_client(session, fake_time)
    assert client.get("/lists", "lists") == {"lists": []}
    assert len(session.urls) == 2
    assert 7 in fake_time.sleeps
    assert sum(fake_time.sleeps) == pytest.approx(7, abs=client.limiter.interval)
    assert client.stats["rate_limited"] == 1 and client.stats["retries"] == 1


def test_429_with_retry_after_pauses_every_thread_through_the_limiter():
    fake_time = FakeTime()
    client = make_client(FakeSession(FakeResponse(429, b"", {"Retry-After": "30"})), fake_time)
    with pytest.raises(RateLimitedError):
        client._check_status("/lists", FakeResponse(429, b"", {"Retry-After": "30"}), b"")
    paused_at = fake_time.now
    other_thread_limiter = client.limiter  # shared by every thread of the client
    other_thread_limiter.acquire()
    assert fake_time.now >= paused_at + 30


def test_429_without_retry_after_backs_off_exponentially_with_full_jitter_up_to_the_cap():
    fake_time = FakeTime()
    bounds: list[tuple[float, float]] = []

    def uniform(low, high):
        bounds.append((low, high))
        return high

    throttled = [FakeResponse(429, b"")] * 8
    client = make_client(FakeSession(*throttled, FakeResponse(200)), fake_time, uniform=uniform)
    client.get("/lists", "lists")
    assert bounds == [
        (0, 1),
        (0, 2),
        (0, 4),
        (0, 8),
        (0, 16),
        (0, 32),
        (0, BACKOFF_CAP_SECONDS),
        (0, BACKOFF_CAP_SECONDS),
    ]


@pytest.mark.parametrize("header", ["Wed, 21 Oct 2015 07:28:00 GMT", "soon", ""])
def test_429_with_an_unusable_retry_after_falls_back_to_backoff(header):
    fake_time = FakeTime()
    bounds: list[tuple[float, float]] = []
    client = make_client(
        FakeSession(FakeResponse(429, b"", {"Retry-After": header}), FakeResponse(200)),
        fake_time,
        uniform=recording(bounds),
    )
    client.get("/lists", "lists")
    assert bounds == [(0, 1)]


def test_429_is_retried_until_the_rate_limit_budget_is_spent_then_raised():
    fake_time = FakeTime()
    session = FakeSession(FakeResponse(429, b"", {"Retry-After": "50"}))
    client = make_client(session, fake_time)
    started = fake_time.now
    with pytest.raises(RateLimitedError):
        client.get("/lists", "lists")
    assert fake_time.now - started == pytest.approx(RATE_LIMIT_RETRY_SECONDS, abs=1)
    assert len(session.urls) == RATE_LIMIT_RETRY_SECONDS // 50 + 1


def test_429_budget_counts_from_the_first_try_not_from_the_last_transient_failure():
    fake_time = FakeTime()
    long_pause = FakeResponse(429, b"", {"Retry-After": str(RATE_LIMIT_RETRY_SECONDS - 10)})
    session = FakeSession(long_pause, FakeResponse(500), FakeResponse(429, b"", {"Retry-After": "60"}))
    client = make_client(session, fake_time)
    started = fake_time.now
    with pytest.raises(RateLimitedError):
        client.get("/lists", "lists")
    assert fake_time.now - started <= RATE_LIMIT_RETRY_SECONDS
    assert len(session.urls) == 3


def test_429_gives_up_when_retry_after_falls_beyond_the_budget():
    fake_time = FakeTime()
    session = FakeSession(FakeResponse(429, b"", {"Retry-After": str(RATE_LIMIT_RETRY_SECONDS + 1)}))
    with pytest.raises(RateLimitedError):
        make_client(session, fake_time).get("/lists", "lists")
    assert len(session.urls) == 1


def test_429s_do_not_use_up_the_transient_tries():
    fake_time = FakeTime()
    answers = [FakeResponse(429, b"", {"Retry-After": "1"})] * (TRANSIENT_MAX_TRIES + 3)
    answers += [FakeResponse(500)] * (TRANSIENT_MAX_TRIES - 1) + [FakeResponse(200)]
    session = FakeSession(*answers)
    assert make_client(session, fake_time).get("/lists", "lists") == {"lists": []}
    assert len(session.urls) == len(answers)


# ----- transient failures ----------------------------------------------------------------

TRANSIENT = {
    "500": FakeResponse(500),
    "502": FakeResponse(502),
    "503": FakeResponse(503),
    "599": FakeResponse(599),
    "connection-error": requests.exceptions.ConnectionError("reset by peer"),
    "timeout": requests.exceptions.ReadTimeout("read timed out"),
    "connect-timeout": requests.exceptions.ConnectTimeout("connect timed out"),
    "chunked-encoding": requests.exceptions.ChunkedEncodingError("broken body"),
    "200-not-json": FakeResponse(200, b'{"lists": [tru'),
    "200-without-its-key": FakeResponse(200, b'{"error": "busy"}'),
    "200-not-an-object": FakeResponse(200, b'["lists"]'),
}


@pytest.mark.parametrize("answer", list(TRANSIENT.values()), ids=list(TRANSIENT))
def test_transient_failure_is_tried_transient_max_tries_times_then_raised(answer):
    fake_time = FakeTime()
    session = FakeSession(answer)
    client = make_client(session, fake_time)
    with pytest.raises(RetryableError) as raised:
        client.get("/lists", "lists")
    assert not isinstance(raised.value, RateLimitedError)
    assert "/lists" in str(raised.value)
    assert len(session.urls) == TRANSIENT_MAX_TRIES
    assert client.stats["retries"] == TRANSIENT_MAX_TRIES - 1


@pytest.mark.parametrize("answer", list(TRANSIENT.values()), ids=list(TRANSIENT))
def test_transient_failure_then_success_returns_the_body(answer):
    fake_time = FakeTime()
    session = FakeSession(answer, answer, FakeResponse(200))
    assert make_client(session, fake_time).get("/lists", "lists") == {"lists": []}
    assert len(session.urls) == 3


def test_expect_list_retries_a_200_that_is_not_a_list():
    fake_time = FakeTime()
    session = FakeSession(FakeResponse(200, b'{"fields": []}'), FakeResponse(200, b"[]"))
    assert make_client(session, fake_time).get("/contacts/custom_fields", expect_list=True) == []
    assert len(session.urls) == 2


def test_transient_failures_back_off_exponentially_with_full_jitter():
    fake_time = FakeTime()
    bounds: list[tuple[float, float]] = []
    client = make_client(FakeSession(FakeResponse(500)), fake_time, uniform=recording(bounds))
    with pytest.raises(RetryableError):
        client.get("/lists", "lists")
    assert bounds == [(0, 2**n) for n in range(TRANSIENT_MAX_TRIES - 1)]


def test_backoff_jitter_is_drawn_from_zero_to_the_ceiling():
    draws: list[tuple[float, float]] = []
    policy = RetryPolicy(base=1.0, uniform=recording(draws, 0.25))
    fourth = next(itertools.islice(policy.ceilings(), 3, None))  # the ceiling of a kind's 4th failure
    assert policy.wait(RetryableError("x"), fourth) == 0.25
    assert draws == [(0, 8)]


# ----- fatal answers ---------------------------------------------------------------------


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


@pytest.mark.parametrize("status", [204, 301, 402, 405, 409, 418, 422])
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


def test_an_unexpected_exception_is_not_retried():
    fake_time = FakeTime()
    session = FakeSession(KeyError("bug"), FakeResponse(200))
    with pytest.raises(KeyError):
        make_client(session, fake_time).get("/lists", "lists")
    assert len(session.urls) == 1


# ----- the backoff base for subprocess tests ----------------------------------------------


@pytest.mark.parametrize("value, expected", [(None, 1.0), ("0.05", 0.05), ("0", 0.0), ("-1", 1.0), ("fast", 1.0)])
def test_backoff_base_comes_from_the_environment_when_valid(monkeypatch, value, expected):
    if value is None:
        monkeypatch.delenv(BACKOFF_BASE_ENV, raising=False)
    else:
        monkeypatch.setenv(BACKOFF_BASE_ENV, value)
    assert backoff_base_seconds() == expected
    assert RetryPolicy().base == expected


# ----- the rate limiter -------------------------------------------------------------------


class SlackOf105(RateLimiter):
    """The limiter with 1.1.0's 5% slack: the slots some tests below name (1000.105 at 10 r/s)
    were written for it; the rules they check do not depend on the slack."""

    SAFETY = 1.05


def assert_no_window_over(starts, most, window=1.0):
    starts = sorted(starts)
    for i, first in enumerate(starts):
        in_window = sum(1 for s in starts[i:] if s < first + window)
        assert in_window <= most, f"{in_window} starts in the {window} s from {first}"


@pytest.mark.parametrize("rate, window", [(1, 1), (5, 1), (10, 1), (20, 1), (100, 1), (2.5, 2), (0.5, 2)])
def test_rate_limiter_no_one_second_window_holds_more_than_rate_starts(rate, window):
    """For a fractional rate the bound holds over the shortest window with a whole number of requests."""
    fake_time = FakeTime()
    limiter = RateLimiter(rate, clock=fake_time.clock, sleep=fake_time.sleep)
    starts = []
    for _ in range(int(rate * 10) + 5):
        limiter.acquire()
        starts.append(fake_time.now)
    assert_no_window_over(starts, rate * window, window)
    assert starts[-1] - starts[0] < len(starts) / rate * 1.1, "the limiter is far slower than its rate"


def test_rate_limiter_spaces_starts_across_threads():
    """Many threads, one limiter: every start gets its own slot. The clock stands still and
    each sleep records the time its thread will start at."""
    starts = []
    lock = threading.Lock()

    def sleep(seconds):
        with lock:
            starts.append(1000.0 + seconds)

    limiter = RateLimiter(10, clock=lambda: 1000.0, sleep=sleep)

    def worker():
        for _ in range(25):
            limiter.acquire()

    threads = [threading.Thread(target=worker) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(10)
    starts.append(1000.0)  # the first acquire did not sleep
    assert len(starts) == 200 and len(set(starts)) == 200
    assert_no_window_over(starts, 10)


def test_rate_limiter_pause_holds_every_later_request():
    fake_time = FakeTime()
    limiter = RateLimiter(5, clock=fake_time.clock, sleep=fake_time.sleep)
    limiter.acquire()
    limiter.pause(12)
    paused_at = fake_time.now
    limiter.acquire()
    assert fake_time.now >= paused_at + 12
    limiter.acquire()
    assert fake_time.now >= paused_at + 12 + limiter.interval


def test_rate_limiter_pause_holds_a_thread_already_waiting_for_its_slot():
    fake_time = FakeTime()
    limiter = RateLimiter(5, clock=fake_time.clock, sleep=fake_time.sleep)
    limiter.acquire()  # takes the slot at `now`
    pauses: list[float] = []

    def pause_meanwhile():
        pauses.append(fake_time.now)
        limiter.pause(30)

    fake_time.on_sleep = pause_meanwhile
    limiter.acquire()  # waits for the next slot; a 429 pauses meanwhile
    assert pauses, "the second acquire never waited"
    assert fake_time.now >= pauses[0] + 30


def test_rate_limiter_a_shorter_pause_does_not_shorten_a_longer_one():
    fake_time = FakeTime()
    limiter = RateLimiter(5, clock=fake_time.clock, sleep=fake_time.sleep)
    limiter.pause(20)
    limiter.pause(1)
    started = fake_time.now
    limiter.acquire()
    assert fake_time.now >= started + 20


def test_client_rate_limiter_uses_max_requests_per_second():
    client = make_client(FakeSession(FakeResponse(200)), FakeTime(), rate=8)
    assert client.limiter.interval == pytest.approx(RateLimiter.SAFETY / 8)


def limiter_with_waiting_threads(waiting):
    """A limiter whose first slot (1000.0) is taken, with threads of [slot, priority] asleep
    until their slots; the clock stands still. Returns it and the start of each later acquire."""
    limiter = SlackOf105(10, clock=lambda: 1000.0, sleep=lambda seconds: None)
    limiter.acquire()
    limiter._waiting = waiting
    starts: list[float] = []
    limiter._sleep = lambda seconds: starts.append(1000.0 + seconds)
    return limiter, starts


def test_rate_limiter_gives_a_more_urgent_thread_the_earliest_slot_a_waiting_thread_holds():
    """The longest scan bounds the sync: when it asks for a slot, it takes the earliest
    one held by a less urgent waiting thread, which waits for the next slot instead."""
    limiter, starts = limiter_with_waiting_threads([[1000.105, 1], [1000.21, 1]])
    limiter.set_priority(50)
    limiter.acquire()
    assert starts == [pytest.approx(1000.105)], "the urgent thread did not take the earliest waiting slot"
    assert sorted(slot for slot, _ in limiter._waiting) == [pytest.approx(1000.21), pytest.approx(1000.315)]


def test_rate_limiter_equal_urgency_keeps_first_come_first_served():
    limiter, starts = limiter_with_waiting_threads([[1000.105, 7]])
    limiter.set_priority(7)
    limiter.acquire()
    assert starts == [pytest.approx(1000.21)]
    assert limiter._waiting == [[pytest.approx(1000.105), 7]]


def test_rate_limiter_a_thread_whose_slot_was_taken_waits_for_its_new_slot():
    """Moved to a later slot while it slept, a thread sleeps again rather than start early."""
    fake_time = FakeTime()
    limiter = SlackOf105(10, clock=fake_time.clock, sleep=fake_time.sleep)
    limiter.acquire()  # 1000.0

    def an_urgent_thread_arrives():  # runs while this thread sleeps towards its slot (1000.105)
        with limiter._lock:
            mine = limiter._waiting[0]
            mine[0] += limiter.interval  # what an urgent acquire does: moves it one slot later

    fake_time.on_sleep = an_urgent_thread_arrives
    limiter.acquire()
    assert fake_time.now == pytest.approx(1000.21), "started at the slot it lost"
    assert limiter._waiting == []


# ----- pages always parse (docs/values.md) ------------------------------------------------

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


class VirtualTime:
    """Simulated time for several threads: time moves only when every thread of the
    simulation is asleep, straight to the earliest wake-up. No real waiting."""

    def __init__(self, threads, now=1000.0):
        self.now = now
        self._threads = threads
        self._asleep: list[float] = []
        self._cond = threading.Condition()
        self.done = 0

    def clock(self):
        return self.now

    def sleep(self, seconds):
        with self._cond:
            until = self.now + seconds
            self._asleep.append(until)
            if len(self._asleep) + self.done == self._threads:
                self._advance()
            while self.now < until:
                assert self._cond.wait(TIMEOUT), "the simulation hung"
            self._asleep.remove(until)

    def finished(self):
        with self._cond:
            self.done += 1
            if self._asleep and len(self._asleep) + self.done == self._threads:
                self._advance()

    def _advance(self):
        self.now = max(self.now, min(self._asleep))
        self._cond.notify_all()


TIMEOUT = 10  # a safety net against a hung test, never a measured duration


def simulate(rate, critical_round_trip, others, other_round_trip, pages, others_left):
    """One scan of `pages` pages at the top priority (its pages left) and `others` threads
    of less urgent scans that always want a request, each request one round trip long; the
    scheduler tells each thread the pages all scans have left, `others_left` of them the
    other scans'. Returns the critical scan's (asked, started) times, every start as
    (time, who), and the limiter."""
    clock = VirtualTime(others + 1)
    limiter = RateLimiter(rate, clock=clock.clock, sleep=clock.sleep)
    critical: list[tuple[float, float]] = []
    starts: list[tuple[float, str]] = []
    lock = threading.Lock()
    stop = threading.Event()
    critical_left = [pages]
    limiter.all_pages_left = lambda: critical_left[0] + others_left

    def scan(name, priority, round_trip, count):
        try:
            for page in range(count):
                if stop.is_set():
                    return
                limiter.set_priority(priority(page))
                if name == "critical":
                    critical_left[0] = pages - page
                asked = clock.now
                limiter.acquire()
                with lock:
                    starts.append((clock.now, name))
                    if name == "critical":
                        critical.append((asked, clock.now))
                clock.sleep(round_trip)
        finally:
            if name == "critical":
                stop.set()
            clock.finished()

    threads = [
        threading.Thread(target=scan, args=("critical", lambda page: 100 + pages - page, critical_round_trip, pages))
    ]
    threads += [
        threading.Thread(target=scan, args=(f"other-{n}", lambda page, n=n: 5 - n, other_round_trip, 10**6))
        for n in range(others)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(TIMEOUT)
    assert not any(thread.is_alive() for thread in threads), "the simulation hung"
    return critical, starts, limiter


def critical_waits(critical):
    """How long each of the critical scan's requests waited, after the two that measure its cycle."""
    return [started - asked for asked, started in critical[2:]]


def assert_the_others_fill_the_limit(starts, rate):
    """At least 90% of the slots the limit allows are used (others arriving between two slots
    cost a little; booking the critical scan at its exact cycle lost a third at 5 r/s and 300 ms)."""
    span = starts[-1][0] - starts[0][0]
    assert len(starts) >= 0.9 * span * rate / RateLimiter.SAFETY, "the other scans did not fill the rest"


@pytest.mark.parametrize("rate, round_trip", [(20, 0.11), (20, 0.1), (50, 0.05), (5, 0.3), (10, 0.107)])
def test_rate_limiter_the_critical_scan_is_sent_without_waiting_while_other_scans_saturate_the_limit(rate, round_trip):
    """The scan with the most pages left bounds the sync (the others have few pages left):
    once it has measured its cycle, each of its requests starts the moment it asks, while
    three less urgent threads ask for every slot."""
    critical, starts, _ = simulate(rate, round_trip, others=3, other_round_trip=0.107, pages=30, others_left=3)
    assert len(critical) == 30
    assert critical_waits(critical) == [0.0] * 28
    assert sum(1 for _, who in starts if who != "critical") > 0
    assert_no_window_over([time for time, _ in starts], rate)


@pytest.mark.parametrize("rate, round_trip", [(20, 0.11), (50, 0.05), (5, 0.3), (5, 0.1)])
def test_rate_limiter_when_the_rate_limit_binds_the_critical_scan_leaves_no_slot_unused(rate, round_trip):
    """The other scans have more requests left than fit beside the critical scan's at its pace:
    it is not booked (its starts would leave them less room than the limit allows) and waits
    less than an interval for the grid, whose every slot is used."""
    critical, starts, limiter = simulate(rate, round_trip, others=3, other_round_trip=0.107, pages=30, others_left=500)
    assert max(critical_waits(critical)) < limiter.interval
    assert_the_others_fill_the_limit(starts, rate)


@pytest.mark.parametrize("rate, round_trip", [(20, 0.1), (50, 0.05), (5, 0.3), (2.5, 0.2)])
def test_rate_limiter_booking_ahead_keeps_every_one_second_window_within_the_limit(rate, round_trip):
    _, starts, _ = simulate(rate, round_trip, others=3, other_round_trip=0.093, pages=40, others_left=30)
    times = [time for time, _ in starts]
    if rate == int(rate):
        assert_no_window_over(times, rate)
    else:
        assert_no_window_over(times, rate * 2, 2)
    # The limiter's own window (SAFETY seconds) holds no more either; the other scans keep the grid.
    assert_no_window_over(times, max(1, int(rate)), max(1, int(rate)) * RateLimiter.SAFETY / rate - 1e-9)
    others = sorted(time for time, who in starts if who != "critical")
    assert min(b - a for a, b in itertools.pairwise(others)) >= RateLimiter.SAFETY / rate - 1e-9


def test_rate_limiter_less_urgent_threads_keep_their_order_around_the_critical_scan():
    """Booking ahead moves the other scans' requests later, never past one another:
    the more urgent of them still goes first, equal ones first come first served."""
    _, starts, _ = simulate(20, 0.1, others=3, other_round_trip=0.107, pages=20, others_left=500)
    others = [who for _, who in starts if who != "critical"]
    # other-0 is the most urgent of them (priority 5), then other-1 (4), then other-2 (3):
    # a less urgent one never starts while a more urgent one has been waiting since before it asked.
    assert others.count("other-0") >= others.count("other-1") >= others.count("other-2")


def test_rate_limiter_an_idle_gap_does_not_let_saved_up_slots_go_out_as_a_burst():
    fake_time = FakeTime()
    limiter = RateLimiter(10, clock=fake_time.clock, sleep=fake_time.sleep)
    limiter.acquire()
    fake_time.now += 60  # a minute without a request
    starts = []
    for _ in range(5):
        limiter.acquire()
        starts.append(fake_time.now)
    gaps = [b - a for a, b in itertools.pairwise(starts)]
    assert gaps == [pytest.approx(limiter.interval)] * 4


def test_rate_limiter_a_thread_that_wakes_late_does_not_make_the_next_requests_late():
    """The slots stay an interval apart as planned: one request that started late (its thread
    woke late on a busy machine) does not push every later one back."""
    fake_time = FakeTime()
    limiter = SlackOf105(10, clock=fake_time.clock, sleep=fake_time.sleep)
    limiter.acquire()  # 1000.0

    def wake_late():
        fake_time.now += 0.03

    fake_time.on_sleep = wake_late
    limiter.acquire()  # planned for 1000.105, started at 1000.135
    assert fake_time.now == pytest.approx(1000.135)
    limiter.acquire()
    assert fake_time.now == pytest.approx(1000.21)


def test_rate_limiter_after_an_idle_gap_does_not_spend_saved_up_slots_as_a_burst():
    """Slots not used while nobody asked are gone: after a minute idle, requests start at
    once and then at the rate again, never all together."""
    fake_time = FakeTime()
    limiter = RateLimiter(5, clock=fake_time.clock, sleep=fake_time.sleep)
    limiter.acquire()
    fake_time.now += 60  # idle
    idle_until = fake_time.now
    starts = []
    for _ in range(10):
        limiter.acquire()
        starts.append(fake_time.now)
    assert starts[0] == idle_until, "the first request after the gap waited"
    assert_no_window_over(starts, 5)


# ----- the whole-response deadline ---------------------------------------------------------


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

    def get(self, url, timeout=None, stream=False):
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


# ----- pagination --------------------------------------------------------------------------


def pages_session(*bodies, headers=None):
    return FakeSession(*(FakeResponse(200, body, headers) for body in bodies))


def test_paginate_follows_the_bookmark_until_a_page_has_none():
    session = pages_session(
        b'{"contacts": [{"id": 1}], "bookmark": "person_a/b", "total_contacts": 3}',
        b'{"contacts": [{"id": 2}], "bookmark": "person_c"}',
        b'{"contacts": [{"id": 3}]}',
        headers={"Date": "Sun, 06 Dec 2026 03:00:00 +0100"},
    )
    pages = list(make_client(session, FakeTime()).paginate("/contacts", "contacts"))
    assert [page.items for page in pages] == [[{"id": 1}], [{"id": 2}], [{"id": 3}]]
    assert [page.next_cursor for page in pages] == ["person_a/b", "person_c", None]
    assert pages[0].meta == {"total_contacts": 3}, "the page's meta keeps the rest of the body, not items or bookmark"
    # Page 1's cursor is not at its end (parsed first); page 2 ends with it (its cursor read first,
    # parsed after): each page carries its Date header's time either way.
    assert [page.server_time for page in pages] == [datetime.datetime(2026, 12, 6, 2, tzinfo=datetime.UTC)] * 3
    base = "http://autopilot.invalid/v1/contacts"
    assert session.urls == [base, base + "/person_a%2Fb", base + "/person_c"], "the cursor is one quoted segment"


def test_paginate_starts_after_the_given_cursor():
    session = pages_session(b'{"contacts": []}')
    pages = list(make_client(session, FakeTime()).paginate("/contacts", "contacts", cursor="person_x"))
    assert session.urls == ["http://autopilot.invalid/v1/contacts/person_x"]
    assert pages[0].items == [] and pages[0].next_cursor is None


@pytest.mark.parametrize("body", [b'{"contacts": null, "bookmark": ""}', b'{"contacts": [], "bookmark": null}'])
def test_paginate_an_empty_bookmark_is_the_last_page(body):
    pages = list(make_client(pages_session(body), FakeTime()).paginate("/contacts", "contacts"))
    assert len(pages) == 1 and pages[0].items == [] and pages[0].next_cursor is None


def test_paginate_stops_on_a_cursor_cycle():
    """The published tap looped forever when the API gave a bookmark it had given before."""
    session = pages_session(
        b'{"contacts": [], "bookmark": "person_a"}',
        b'{"contacts": [], "bookmark": "person_b"}',
        b'{"contacts": [], "bookmark": "person_a"}',
    )
    with pytest.raises(
        TapError, match=r"repeated the page bookmark person_a on /contacts; stopping to avoid an endless loop\."
    ):
        list(make_client(session, FakeTime()).paginate("/contacts", "contacts"))
    assert len(session.urls) == 3


def test_paginate_stops_when_a_page_points_at_itself():
    session = pages_session(b'{"contacts": [], "bookmark": "person_x"}')
    with pytest.raises(TapError, match="repeated the page bookmark person_x"):
        list(make_client(session, FakeTime()).paginate("/contacts", "contacts", cursor="person_x"))
    assert len(session.urls) == 1


@pytest.mark.parametrize("headers", [{}, {"Date": "not a date"}, {"Date": ""}], ids=["no Date", "garbage", "empty"])
def test_server_time_is_none_without_a_usable_date_header(headers):
    body, server_time = make_client(pages_session(b'{"lists": []}', headers=headers), FakeTime()).request("/lists")
    assert body == {"lists": []} and server_time is None


# ----- the session, messages, logs ----------------------------------------------------------


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


@pytest.mark.parametrize(
    "body, shown",
    [
        (b'{"message": "' + b"m" * 300 + b'"}', "m" * 200),
        (b"<html>" + b"h" * 300, "<html>" + "h" * 194),
        (b'["not", "an", "object"]', '["not", "an", "object"]'),
    ],
    ids=["json message", "html", "json list"],
)
def test_other_statuses_show_the_answer_s_message_cut_to_200_characters(body, shown):
    with pytest.raises(TapError) as raised:
        make_client(FakeSession(FakeResponse(418, body)), FakeTime()).get("/lists", "lists")
    assert str(raised.value).endswith(": " + shown)


def test_each_retry_is_logged_with_its_error_wait_and_try_and_counted(caplog):
    fake_time = FakeTime()
    client = make_client(FakeSession(FakeResponse(503), FakeResponse(200)), fake_time, uniform=lambda low, high: 0.75)
    with caplog.at_level("WARNING", logger="tap_autopilot"):
        client.get("/lists", "lists")
    assert caplog.messages == ["Autopilot answered 503 to GET /lists; retrying in 0.8 s (attempt 1)"]
    assert client.stats["retries"] == 1


# ----- settings, counters and smaller rules found by the mutation run -------------------------------


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
        def get(self, url, timeout=None, stream=False):
            self.stream = stream
            response = super().get(url, timeout, stream)
            response.raw = RecordingRaw(response.content)
            return response

    session = RecordingSession(FakeResponse(200))
    assert make_client(session, FakeTime()).get("/lists", "lists") == {"lists": []}
    assert session.stream is True
    assert reads and all(read == (client_module.BODY_CHUNK_BYTES, True) for read in reads)


def test_a_deadline_already_passed_still_gives_urllib3_a_positive_timeout():
    fake_time = FakeTime()
    session = TricklingSession(fake_time, seconds_per_read=0.5)
    client = make_client(session, fake_time)
    client.timeout = 0.0
    with pytest.raises(RetryableError, match="timed out"):
        client.get("/lists", "lists")
    assert session.timeouts[0].total == pytest.approx(0.001)


def test_requests_are_counted_once_per_try():
    client = make_client(FakeSession(FakeResponse(503), FakeResponse(200)), FakeTime(), uniform=lambda low, high: 0)
    client.get("/lists", "lists")
    assert (client.stats["requests"], client.stats["retries"], client.stats["rate_limited"]) == (2, 1, 0)


def test_retry_logs_name_each_failure_and_count_the_tries(caplog):
    session = FakeSession(
        FakeResponse(429, b"", {"Retry-After": "0"}),
        FakeResponse(200, b'{"lists": {}}'),
        FakeResponse(200, b"[]"),
    )
    client = make_client(session, FakeTime(), uniform=lambda low, high: 0.5)
    with caplog.at_level("WARNING", logger="tap_autopilot"):
        assert client.get("/contacts/custom_fields", expect_list=True) == []
    # (the second answer is a JSON object, not the list asked for; the third is a list: accepted)
    assert caplog.messages == [
        "Autopilot throttled GET /contacts/custom_fields (429); retrying in 0.0 s (attempt 1)",
        "GET /contacts/custom_fields returned a body of an unexpected shape (not a list); "
        "retrying in 0.5 s (attempt 2)",
    ]


@pytest.mark.parametrize("header, wait", [("0", 0.0), ("-5", 0.0), ("2.5", 2.5)])
def test_retry_after_is_used_as_given_never_below_zero(header, wait):
    fake_time = FakeTime()
    client = make_client(FakeSession(FakeResponse(429, b"", {"Retry-After": header}), FakeResponse(200)), fake_time)
    client.get("/lists", "lists")
    assert fake_time.sleeps[0] == wait


def test_an_explicit_backoff_base_wins_over_the_environment(monkeypatch):
    monkeypatch.setenv(BACKOFF_BASE_ENV, "4")
    assert RetryPolicy(base=0.25).base == 0.25 and RetryPolicy().base == 4.0


def test_a_page_without_its_data_key_is_retried():
    session = pages_session(b'{"bookmark": null}', b'{"contacts": [{"id": 1}]}')
    pages = list(make_client(session, FakeTime()).paginate("/contacts", "contacts"))
    assert [page.items for page in pages] == [[{"id": 1}]] and len(session.urls) == 2


def test_server_time_is_utc():
    session = pages_session(b'{"lists": []}', headers={"Date": "Sun, 06 Dec 2026 03:00:00 +0100"})
    _, server_time = make_client(session, FakeTime()).request("/lists")
    assert server_time is not None and server_time.tzinfo is datetime.UTC


def test_an_error_body_that_is_not_utf8_is_shown_with_replacement_characters():
    with pytest.raises(TapError) as raised:
        make_client(FakeSession(FakeResponse(418, b"\xffbad")), FakeTime()).get("/lists", "lists")
    assert str(raised.value).endswith(": \ufffdbad")


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


def test_rate_limiter_a_thread_without_a_priority_is_the_least_urgent():
    """Threads outside the scheduler never set a priority: they take no slot from a scan's
    thread, even one whose scan has 0 pages left."""
    limiter, starts = limiter_with_waiting_threads([[1000.105, 0]])
    limiter.acquire()
    assert starts == [pytest.approx(1000.21)]


def test_rate_limiter_an_urgent_thread_takes_the_earliest_slot_not_the_least_urgent_thread_s():
    limiter, starts = limiter_with_waiting_threads([[1000.105, 5], [1000.21, 1]])
    limiter.set_priority(50)
    limiter.acquire()
    assert starts == [pytest.approx(1000.105)]


# ---- reading ahead: the next page requested while the caller takes the current one ----------


def contacts_page(ids, bookmark=None):
    body = {"contacts": [{"contact_id": cid} for cid in ids], "total_contacts": 6}
    if bookmark is not None:
        body["bookmark"] = bookmark
    return FakeResponse(200, json.dumps(body))


THREE_PAGES = (
    contacts_page(["p1", "p2"], "p2"),
    contacts_page(["p3", "p4"], "p4"),
    contacts_page(["p5", "p6"]),
)


class SignallingSession(FakeSession):
    """A FakeSession that tells a waiting test each time it is asked for a page."""

    def __init__(self, *script):
        super().__init__(*script)
        self.asked = threading.Semaphore(0)

    def get(self, url, timeout=None, stream=False):
        try:
            return super().get(url, timeout, stream)
        finally:
            self.asked.release()

    def wait_for_request(self):
        # A bound only so that a broken implementation fails instead of hanging: nothing is timed.
        assert self.asked.acquire(timeout=30), "the request never went out"


def test_reading_ahead_from_page_2_asks_for_page_2_only_once_the_first_is_taken():
    """A scan whose first page decides whether it goes on: page 2 is requested when the caller
    asks for it, and from then on each next page ahead of the caller's ask."""
    asked, produced = [0], []
    third = threading.Event()

    def pages():
        for n in range(4):
            produced.append((n, asked[0]))
            if n == 2:
                third.set()
            yield Page([n], str(n), {}, None)

    read = read_ahead(pages(), RateLimiter(1000), start=2)
    asked[0] = 1
    assert next(read).items == [0]
    asked[0] = 2
    assert next(read).items == [1]
    assert third.wait(TIMEOUT), "page 3 was not requested ahead"
    assert produced == [(0, 1), (1, 2), (2, 2)]
    assert [page.items[0] for page in read] == [2, 3]


def test_the_next_page_is_requested_before_the_current_one_is_written():
    session = SignallingSession(*THREE_PAGES)
    pages = make_client(session, FakeTime()).paginate("/contacts", "contacts", ahead_from=1)
    first = next(pages)
    session.wait_for_request()
    session.wait_for_request()  # the second page's request, while the caller still holds the first
    assert [doc["contact_id"] for doc in first.items] == ["p1", "p2"]
    assert session.urls == ["http://autopilot.invalid/v1/contacts", "http://autopilot.invalid/v1/contacts/p2"]
    assert [[doc["contact_id"] for doc in page.items] for page in pages] == [["p3", "p4"], ["p5", "p6"]]
    assert len(session.urls) == 3  # no page requested twice, nothing after the last


def test_reading_ahead_requests_a_page_only_once_the_caller_asked_for_the_one_before():
    asked, early = [0], []

    def pages():
        for n in range(6):
            if n > asked[0]:  # page n needs the caller's ask for page n - 1 (the n-th ask)
                early.append((n, asked[0]))
            yield Page([n], str(n), {}, None)

    read = read_ahead(pages(), RateLimiter(1000))
    got = []
    for _ in range(6):
        asked[0] += 1
        got.append(next(read).items[0])
    assert got == [0, 1, 2, 3, 4, 5]
    assert early == []  # never more than the page taken and the one ahead


def test_a_prefetched_page_that_fails_is_retried_as_before():
    first, second, last = THREE_PAGES
    outcomes = {}
    for ahead in (False, True):
        session = FakeSession(first, FakeResponse(500), second, last)
        client = make_client(session, FakeTime(), uniform=lambda low, high: 0.0)
        pages = client.paginate("/contacts", "contacts", ahead_from=1 if ahead else None)
        ids = [doc["contact_id"] for page in pages for doc in page.items]
        outcomes[ahead] = (ids, session.urls, client.stats["retries"])
    assert outcomes[True] == outcomes[False]
    assert outcomes[True][0] == ["p1", "p2", "p3", "p4", "p5", "p6"]
    assert outcomes[True][2] == 1


def test_an_error_on_the_page_ahead_is_raised_when_that_page_is_read():
    session = SignallingSession(THREE_PAGES[0], FakeResponse(401))
    pages = make_client(session, FakeTime()).paginate("/contacts", "contacts", ahead_from=1)
    first = next(pages)
    session.wait_for_request()
    session.wait_for_request()  # the page ahead has failed, the caller still has its page
    assert [doc["contact_id"] for doc in first.items] == ["p1", "p2"]
    with pytest.raises(AuthError):
        next(pages)


def test_a_repeated_bookmark_still_stops_a_scan_that_reads_ahead():
    session = FakeSession(contacts_page(["p1", "p2"], "p2"), contacts_page(["p3"], "p2"))
    pages = make_client(session, FakeTime()).paginate("/contacts", "contacts", ahead_from=1)
    next(pages)
    with pytest.raises(TapError, match="repeated the page bookmark"):
        next(pages)
    assert len(session.urls) == 2


def test_a_caller_that_stops_early_leaves_at_most_the_page_ahead_requested():
    session = SignallingSession(*THREE_PAGES)
    pages = make_client(session, FakeTime()).paginate("/contacts", "contacts", ahead_from=1)
    next(pages)
    pages.close()
    session.wait_for_request()
    session.wait_for_request()
    assert len(session.urls) == 2  # the first page and the one ahead; the thread asks for nothing after


@pytest.mark.parametrize(
    "body, cursor",
    [
        (b'{"contacts": [], "total_contacts": 2, "bookmark": "person_1"}', "person_1"),
        (b'{"contacts":[],"bookmark" : "person_\xc3\xa9"}\r\n', "person_\u00e9"),
        (b'{"bookmark": "person_1", "contacts": []}', None),  # the key elsewhere: parsed first
        (b'{"contacts": [], "meta": {"bookmark": "person_1"}}', None),  # not the page's own
        (b'{"contacts": [], "bookmark": "person_\\"1"}', None),  # an escape: only the parser reads it
        (b'{"contacts": [], "bookmark": ""}', None),
        (b'{"contacts": [], "bookmark": "person_\xff"}', None),  # not UTF-8: the parser repairs it
        (b'{"contacts": []}', None),
    ],
)
def test_cursor_at_end_reads_the_next_cursor_only_from_a_body_that_ends_with_it(body, cursor):
    assert client_module.cursor_at_end(body) == cursor


class PathSession(FakeSession):
    """Answers each GET from the script of its path (each script's last answer repeats), so that
    the page ahead and a page read again on the caller's thread need no order between them."""

    def __init__(self, scripts):
        super().__init__(FakeResponse(500))
        self.scripts = {path: list(answers) for path, answers in scripts.items()}
        self._lock = threading.Lock()

    def get(self, url, timeout=None, stream=False):
        with self._lock:
            self.urls.append(url)
            script = self.scripts[url.removeprefix("http://autopilot.invalid/v1")]
            answer = script.pop(0) if len(script) > 1 else script[0]
        return FakeResponse(answer.status_code, answer.content, answer.headers)


def test_reading_ahead_the_next_request_goes_out_before_the_page_is_parsed_on_the_caller_s_thread():
    session = SignallingSession(*THREE_PAGES)
    client = make_client(session, FakeTime())
    parse, caller = client.parse, threading.current_thread()
    parsed_on: list[tuple[str, bool]] = []  # (path, on the caller's thread)

    def parse_once_the_next_request_went_out(path, content, data_key, expect_list=False):
        if not parsed_on:  # page 1: a parse before page 2's request would wait here for ever
            session.wait_for_request()
            session.wait_for_request()
        parsed_on.append((path, threading.current_thread() is caller))
        return parse(path, content, data_key, expect_list)

    client.parse = parse_once_the_next_request_went_out
    pages = client.paginate("/contacts", "contacts", ahead_from=1)
    assert [doc["contact_id"] for page in pages for doc in page.items] == ["p1", "p2", "p3", "p4", "p5", "p6"]
    # pages 1 and 2 end with their cursors: parsed by the caller; the last page has none: parsed first
    assert sorted(parsed_on) == [("/contacts", True), ("/contacts/p2", True), ("/contacts/p4", False)]
    assert len(session.urls) == 3


def test_a_page_that_ends_with_its_cursor_but_is_not_json_is_read_again_and_its_page_ahead_kept(caplog):
    broken = FakeResponse(200, b'{"contacts": [{"contact_id": "p1"}, oops], "bookmark": "p2"}')
    session = PathSession(
        {"/contacts": [broken, THREE_PAGES[0]], "/contacts/p2": [THREE_PAGES[1]], "/contacts/p4": [THREE_PAGES[2]]}
    )
    pages = make_client(session, FakeTime()).paginate("/contacts", "contacts", ahead_from=1)
    assert [doc["contact_id"] for page in pages for doc in page.items] == ["p1", "p2", "p3", "p4", "p5", "p6"]
    assert sorted(session.urls).count("http://autopilot.invalid/v1/contacts") == 2  # page 1 read again
    assert session.urls.count("http://autopilot.invalid/v1/contacts/p2") == 1  # the page ahead kept
    assert "not valid JSON; reading that page again" in caplog.text


def test_a_page_read_again_that_ends_elsewhere_stops_the_scan():
    broken = FakeResponse(200, b'{"contacts": [oops], "bookmark": "p2"}')
    session = PathSession({"/contacts": [broken, contacts_page(["p1", "p9"], "p9")], "/contacts/p2": [THREE_PAGES[1]]})
    pages = make_client(session, FakeTime()).paginate("/contacts", "contacts", ahead_from=1)
    with pytest.raises(TapError, match=r"ends elsewhere.*Run again with the last state"):
        next(pages)


def test_a_page_read_again_is_checked_like_any_page_and_keeps_its_first_reading_s_server_time():
    """Read again, a page must be a page: a body without its documents' key is retried (not
    taken as an empty last page). The page keeps the server time of its first reading, the
    earlier one."""
    first = {"Date": "Sun, 06 Dec 2026 03:00:00 GMT"}
    later = {"Date": "Sun, 06 Dec 2026 03:00:05 GMT"}
    broken = FakeResponse(200, b'{"contacts": [{"contact_id": "p1"}, oops], "bookmark": "p2"}', first)
    keyless = FakeResponse(200, b'{"unexpected": true}', later)
    again = FakeResponse(200, THREE_PAGES[0].content, later)
    session = PathSession(
        {"/contacts": [broken, keyless, again], "/contacts/p2": [THREE_PAGES[1]], "/contacts/p4": [THREE_PAGES[2]]}
    )
    pages = list(make_client(session, FakeTime()).paginate("/contacts", "contacts", ahead_from=1))
    assert [doc["contact_id"] for page in pages for doc in page.items] == ["p1", "p2", "p3", "p4", "p5", "p6"]
    assert session.urls.count("http://autopilot.invalid/v1/contacts") == 3  # broken, keyless, the page
    assert pages[0].server_time == datetime.datetime(2026, 12, 6, 3, tzinfo=datetime.UTC)


class Items(list):
    """A page's documents, weakly referenceable so a test can see it was dropped."""


@pytest.mark.parametrize("ahead_from", [None, 1])
def test_paginate_holds_no_page_while_the_caller_is_suspended(ahead_from):
    """A scan waiting in the scheduler's queue holds no page: the client's generators keep no
    reference to a page they handed over (one held by each of 8 waiting segment scans was
    4 MB of peak RSS in scenario 9)."""
    client = make_client(FakeSession(*THREE_PAGES), FakeTime())
    parse = client.parse

    def parse_into_items(path, content, data_key, expect_list=False):
        body = parse(path, content, data_key, expect_list)
        body[data_key] = Items(body[data_key])
        return body

    client.parse = parse_into_items
    pages = client.paginate("/contacts", "contacts", ahead_from=ahead_from)
    taken = 0
    for _ in range(3):
        page = next(pages)
        items = weakref.ref(page.items)
        taken += len(page.items)
        del page
        # The page-ahead thread drops its own name for a page just after handing it over.
        deadline = time.monotonic() + TIMEOUT  # a safety net only: the reference goes within microseconds
        gc.collect()
        while items() is not None and time.monotonic() < deadline:
            time.sleep(0.001)
            gc.collect()
        assert items() is None, "the client kept a page it handed over"
    assert taken == 6


# ----- booking the critical scan's next starts (rate_limit.RateLimiter._start, _book) -----------


def limiter_after_one_cycle(priority, pages_left, cycle=0.3, waiting=(), booked=None):
    """A limiter (10 r/s, fake time) whose thread of `priority`, all scans having `pages_left`
    pages left, has started one request and asks for the next `cycle` seconds later, while
    threads of [slot, priority] wait far ahead and another thread's booking is `booked`."""
    fake_time = FakeTime()
    limiter = RateLimiter(10, clock=fake_time.clock, sleep=fake_time.sleep)
    limiter.all_pages_left = lambda: pages_left
    limiter.set_priority(priority)
    limiter.acquire()  # its first start: no cycle measured yet, nothing booked
    assert limiter._booked is None
    limiter._waiting = [list(ticket) for ticket in waiting]
    limiter._booked = booked
    fake_time.now += cycle
    limiter.acquire()
    return limiter, fake_time


FAR = 2000.0  # a slot far from every slot the test's thread takes


def test_rate_limiter_books_the_critical_scan_s_next_starts_within_a_window_at_its_pace():
    """30 pages at 0.3 s take 9 s, and the 10 pages of the others fit beside them; on the grid
    each cycle would round up to 3 intervals (9.2 s). Booked: its next starts in the coming
    window, a cycle apart, the first a tenth of a cycle early."""
    limiter, fake_time = limiter_after_one_cycle(30, 40)
    now = fake_time.now
    assert limiter._booked is not None and limiter._booked.priority == 30
    assert limiter._booked.slots == [pytest.approx(now + 0.27), pytest.approx(now + 0.57), pytest.approx(now + 0.87)]


def test_rate_limiter_books_nothing_after_a_cycle_longer_than_the_window():
    """A cycle that held a 429's pause: no start of it falls within the coming window, so
    nothing is booked (an empty booking once broke the next request's acquire)."""
    limiter, _ = limiter_after_one_cycle(30, 40, cycle=5.0)
    assert limiter._booked is None
    limiter.acquire()  # and the next request goes as usual
    assert limiter._booked is None or limiter._booked.slots


def test_rate_limiter_books_nothing_while_its_pace_is_above_the_limit():
    """A cycle shorter than an interval: its top priority already gives it every slot it can use."""
    limiter, _ = limiter_after_one_cycle(30, 40, cycle=0.05)
    assert limiter._booked is None


def test_rate_limiter_books_nothing_while_the_grid_finishes_the_pages_left_sooner():
    """470 pages of the others: at its pace they would get 6 of the 10 starts of each window,
    and finish later than on the grid, which it waits for at most an interval."""
    limiter, _ = limiter_after_one_cycle(30, 500)
    assert limiter._booked is None


@pytest.mark.parametrize(("priority", "books"), [(2, True), (1, False), (math.inf, False)])
def test_rate_limiter_books_for_a_scan_with_pages_left_after_this_one_and_known_length_only(priority, books):
    """Pages left 1: its last page, a booking would go unclaimed; infinite: a first page, length unknown."""
    limiter, _ = limiter_after_one_cycle(priority, 2)
    assert (limiter._booked is not None) is books
    if books:
        assert len(limiter._booked.slots) == 1, "booked beyond its last page"


@pytest.mark.parametrize(
    ("waiting", "books"),
    [
        ([[FAR, 30]], True),  # as urgent: it may still book
        ([[FAR, 31]], False),  # a more urgent scan waits: the critical scan is that one
        ([[FAR, RateLimiter._FIRST_PAGE]], True),  # a first page (length unknown) does not count
    ],
)
def test_rate_limiter_books_only_for_the_most_urgent_scan_of_known_length(waiting, books):
    limiter, _ = limiter_after_one_cycle(30, 40, waiting=waiting)
    assert (limiter._booked is not None and limiter._booked.priority == 30) is books


def test_rate_limiter_books_only_for_the_scan_that_started_the_most_urgent_request_in_the_window():
    """The critical scan is on its round trip while the others' requests start: a less urgent
    scan does not book (its claims would go before the critical scan's requests)."""
    fake_time = FakeTime()
    limiter = RateLimiter(10, clock=fake_time.clock, sleep=fake_time.sleep)
    limiter.all_pages_left = lambda: 40
    limiter.set_priority(30)
    limiter.acquire()  # the critical scan's request, then its round trip

    def other_scan():
        limiter.set_priority(5)
        limiter.acquire()
        limiter.acquire()

    other = threading.Thread(target=other_scan)
    other.start()
    other.join(TIMEOUT)
    assert limiter._booked is None


@pytest.mark.parametrize(("other", "replaced"), [(29, True), (30, True), (31, False)])
def test_rate_limiter_a_booking_yields_to_an_as_urgent_scan_s_not_to_a_more_urgent_one(other, replaced):
    limiter, _ = limiter_after_one_cycle(30, 40, booked=Booking(other, [FAR]))
    assert (limiter._booked is getattr(limiter._local, "booking", None)) is replaced


def test_rate_limiter_the_critical_request_claims_its_booking_and_starts_at_once_off_the_grid():
    """A little early, just after another scan's request started: the grid would make it
    wait an interval; the window has room, so it starts at once, and the less urgent thread
    asleep until the booked slot keeps its slot (the window has room for both)."""
    limiter, fake_time = limiter_after_one_cycle(30, 40)
    booking = limiter._booked.slots[0]
    less_urgent = [booking, 5]
    limiter._waiting.append(less_urgent)
    fake_time.now = asked = booking - 0.01
    limiter._latest = asked  # another scan's request, on the grid, started just now
    limiter.acquire()
    assert fake_time.now == asked, "the critical request waited"
    assert less_urgent[0] == pytest.approx(booking)
    assert limiter._booked is not None and limiter._booked.slots[0] > asked, "not booked again from its new start"


def test_rate_limiter_a_booking_holds_its_room_against_less_urgent_requests():
    """Room for two more starts in the window: the booked start keeps one, a request that asks
    first takes the other, and the next one waits until the window has room again. (First
    pages, off the grid, so that only the window holds them.)"""
    fake_time = FakeTime()
    limiter = RateLimiter(5, clock=fake_time.clock, sleep=fake_time.sleep)
    now = fake_time.now
    limiter._starts = [now - 0.9, now - 0.8, now - 0.7]  # three of five in the window
    limiter._booked = Booking(30, [now + 0.05])
    limiter._schedule()
    ticket = [now, RateLimiter._FIRST_PAGE]
    limiter._waiting.append(ticket)
    limiter._schedule(ticket)
    assert ticket[0] == now
    other = [now, RateLimiter._FIRST_PAGE]
    limiter._waiting.append(other)
    limiter._schedule(other)
    # The window ending at the booking is full: it goes after the booking, once the first start has left.
    assert other[0] == pytest.approx(now - 0.9 + limiter.window)


@pytest.mark.parametrize(
    ("rate", "cycle", "mine", "all_left", "sooner"),
    [
        (5, 0.3, 30, 67, False),  # scenario 10: 4 of its starts in some windows leave the others 1 of 5
        (20, 0.105, 50, 106, True),  # scenario 8: on the grid, each round trip would round up to 3 intervals
        (50, 0.053, 50, 123, True),  # scenario 9
        (20, 0.105, 10, 500, False),  # the others' 490 pages bind: the grid uses every slot
    ],
)
def test_rate_limiter_books_when_that_finishes_the_pages_left_sooner(rate, cycle, mine, all_left, sooner):
    limiter = RateLimiter(rate)
    limiter.all_pages_left = lambda: all_left
    limiter.set_priority(mine)
    assert limiter._booking_is_sooner(cycle, mine) is sooner


def test_rate_limiter_a_booking_unclaimed_a_window_after_its_first_slot_holds_no_one_back():
    fake_time = FakeTime()
    limiter = RateLimiter(10, clock=fake_time.clock, sleep=fake_time.sleep)
    limiter._booked = Booking(30, [fake_time.now - limiter.window])  # another thread's, its request never came
    limiter.acquire()
    assert fake_time.sleeps == [] and limiter._booked is None


def test_rate_limiter_the_first_window_is_counted_as_used_evenly():
    """The server may count requests this process did not send (a discovery run a moment
    before): the first requests, even first pages, start an interval apart, not as a burst."""
    fake_time = FakeTime()
    limiter = RateLimiter(5, clock=fake_time.clock, sleep=fake_time.sleep)
    limiter.set_priority(math.inf)  # first pages: off the grid
    starts = []
    for _ in range(5):
        limiter.acquire()
        starts.append(fake_time.now)
    assert [b - a for a, b in itertools.pairwise(starts)] == [pytest.approx(limiter.interval)] * 4


def test_rate_limiter_after_a_pause_the_window_is_counted_as_used_evenly():
    """After a 429 the server counted more than we did: no burst when the pause ends."""
    fake_time = FakeTime()
    limiter = RateLimiter(5, clock=fake_time.clock, sleep=fake_time.sleep)
    limiter.set_priority(math.inf)
    fake_time.now += 10  # the first window has passed
    limiter.pause(3)
    starts = []
    for _ in range(3):
        limiter.acquire()
        starts.append(fake_time.now)
    assert starts[0] == pytest.approx(1013.0)
    assert [b - a for a, b in itertools.pairwise(starts)] == [pytest.approx(limiter.interval)] * 2


# ----- slots exactly one interval apart do not collide (rate_limit.RateLimiter._place, _bump) -----


def test_rate_limiter_an_urgent_thread_leaves_a_less_urgent_slot_one_interval_later_alone():
    limiter, starts = limiter_with_waiting_threads([[1000.0 + 2 * SlackOf105.SAFETY / 10, 1]])
    limiter.set_priority(50)
    limiter.acquire()
    assert starts == [pytest.approx(1000.105)]
    assert limiter._waiting == [[1000.0 + 2 * SlackOf105.SAFETY / 10, 1]]


def test_rate_limiter_a_less_urgent_thread_takes_the_slot_one_interval_before_an_urgent_one():
    limiter, starts = limiter_with_waiting_threads([[1000.0 + 2 * SlackOf105.SAFETY / 10, 50]])
    limiter.acquire()
    assert starts == [pytest.approx(1000.105)]


def test_rate_limiter_a_thread_held_by_a_pause_keeps_its_urgency():
    """Held by a 429's pause while it waited, a thread is placed again after the pause
    as urgent as it was: a more urgent thread waiting for the pause's end goes first."""
    fake_time = FakeTime()
    limiter = SlackOf105(10, clock=fake_time.clock, sleep=fake_time.sleep)
    limiter.acquire()  # 1000.0
    limiter.set_priority(1)

    def a_429_pauses_while_an_urgent_thread_waits():
        limiter.pause(30)
        limiter._waiting.append([fake_time.now + 30, 5])

    fake_time.on_sleep = a_429_pauses_while_an_urgent_thread_waits
    limiter.acquire()  # sleeps towards 1000.105; the pause holds it
    assert fake_time.now == pytest.approx(1000.105 + 30 + limiter.interval)


# ----- the limiter's rules that mutation testing found unchecked (docs/development.md) ------------


def limiter_past_its_first_window(rate=10):
    """A limiter on fake time whose first window (counted as used) has passed: every window has room."""
    fake_time = FakeTime()
    limiter = RateLimiter(rate, clock=fake_time.clock, sleep=fake_time.sleep)
    fake_time.now += 10
    return limiter, fake_time


def on_a_thread(action):
    """action() on a thread of its own (another scan's worker), waited for."""
    thread = threading.Thread(target=action)
    thread.start()
    thread.join(TIMEOUT)


def start_on_a_thread(limiter, fake_time, priority, then=0.0):
    """One request of another scan's thread (its priority set there), the clock moved `then` after it."""
    on_a_thread(lambda: (limiter.set_priority(priority), limiter.acquire()))
    fake_time.now += then


def start_twice(limiter, fake_time, priority, cycle=0.3):
    """Two requests of this thread's scan (`priority` pages left), a cycle apart: the second may book."""
    limiter.set_priority(priority)
    limiter.acquire()
    fake_time.now += cycle
    limiter.acquire()


@pytest.mark.parametrize("rate", [0.5, 2.5])
def test_rate_limiter_a_fractional_rate_keeps_one_start_a_window_of_one_interval(rate):
    """2.5 r/s is not 2 starts in a window of 2 intervals (a burst of two): one start an interval."""
    limiter = RateLimiter(rate)
    assert limiter.room == 1
    assert limiter.window == pytest.approx(limiter.interval) == pytest.approx(RateLimiter.SAFETY / rate)


def test_rate_limiter_priority_is_what_this_thread_set_and_0_on_a_thread_that_set_none():
    """read_ahead hands the caller's priority to its own thread through priority()."""
    limiter = RateLimiter(10)
    limiter.set_priority(7)
    elsewhere = []
    on_a_thread(lambda: elsewhere.append(limiter.priority()))
    assert limiter.priority() == 7
    assert elsewhere == [0]


def test_rate_limiter_without_the_scheduler_s_count_the_booking_scan_s_pages_are_all_there_are():
    """A limiter no sync has given all_pages_left still books for the critical scan."""
    limiter, fake_time = limiter_past_its_first_window()
    start_twice(limiter, fake_time, 30)
    assert limiter._booked is not None and limiter._booked.priority == 30


def test_rate_limiter_a_first_page_neither_waits_for_the_grid_nor_moves_it():
    limiter, fake_time = limiter_past_its_first_window()
    limiter.set_priority(5)
    limiter.acquire()  # a page of a scan of known length, on the grid
    grid = fake_time.now
    fake_time.now += 0.01
    limiter.set_priority(math.inf)
    limiter.acquire()  # a scan's first page: at once, though the grid's next slot is an interval on
    assert fake_time.now == pytest.approx(grid + 0.01)
    limiter.set_priority(5)
    limiter.acquire()  # the next known page: an interval after the last one on the grid, not after the first page
    assert fake_time.now == pytest.approx(grid + limiter.interval)


def test_rate_limiter_a_waiting_first_page_does_not_push_a_known_page_off_its_slot():
    limiter, fake_time = limiter_past_its_first_window()
    limiter.acquire()
    grid = fake_time.now
    limiter._waiting = [[grid + limiter.interval, RateLimiter._FIRST_PAGE]]  # asleep until the grid's next slot
    limiter.acquire()
    assert fake_time.now == pytest.approx(grid + limiter.interval)


def test_rate_limiter_another_scan_s_first_page_does_not_take_the_critical_scan_s_booking_role():
    """The segments' first pages start while the contacts scan is on its round trip."""
    limiter, fake_time = limiter_past_its_first_window()
    limiter.all_pages_left = lambda: 40
    limiter.set_priority(30)
    limiter.acquire()
    start_on_a_thread(limiter, fake_time, math.inf, then=0.3)
    limiter.acquire()
    assert limiter._booked is not None and limiter._booked.priority == 30


def test_rate_limiter_a_less_urgent_scan_does_not_book_while_the_critical_one_started_within_the_window():
    """Scan B (5 pages left) would finish sooner booked, were it the critical scan; A (6) is."""
    limiter, fake_time = limiter_past_its_first_window()
    limiter.all_pages_left = lambda: 11
    limiter.set_priority(6)
    limiter.acquire()  # A, then its round trip
    on_a_thread(lambda: start_twice(limiter, fake_time, 5))  # B
    assert limiter._booked is None


def test_rate_limiter_a_more_urgent_scan_takes_the_booking_role_at_once():
    limiter, fake_time = limiter_past_its_first_window()
    limiter.all_pages_left = lambda: 46
    start_on_a_thread(limiter, fake_time, 6)  # A, 6 pages left, then its round trip
    start_twice(limiter, fake_time, 40)
    assert limiter._booked is not None and limiter._booked.priority == 40


def test_rate_limiter_a_window_after_the_critical_scan_s_last_start_the_next_scan_may_book():
    """The critical scan finished (or stalled): its role does not outlive a window."""
    limiter, fake_time = limiter_past_its_first_window()
    limiter.all_pages_left = lambda: 5
    start_on_a_thread(limiter, fake_time, 30, then=limiter.window + 0.1)
    start_twice(limiter, fake_time, 5)
    assert limiter._booked is not None and limiter._booked.priority == 5


def test_rate_limiter_a_worker_that_ran_the_critical_scan_books_nothing_for_another_scan_s_first_page():
    """Scheduler workers move between scans: a first page's length is unknown, so nothing is booked for it."""
    limiter, fake_time = limiter_past_its_first_window()
    limiter.all_pages_left = lambda: 40
    start_twice(limiter, fake_time, 30)
    assert limiter._booked is not None  # it was the critical scan
    limiter._booked = limiter._local.booking = None
    fake_time.now += 0.3
    limiter.set_priority(math.inf)
    limiter.acquire()
    assert limiter._booked is None


def test_rate_limiter_keeps_only_the_last_window_of_starts():
    """A long run's starts are dropped once a window old: the limiter's memory stays flat."""
    limiter, fake_time = limiter_past_its_first_window()
    for _ in range(50):
        limiter.acquire()
        fake_time.now += 0.5
    limiter.acquire()
    assert len(limiter._starts) <= 3


def test_paginate_reads_ahead_from_the_page_the_scan_names():
    """A scan whose first page decides whether it goes on (ahead_from=2): page 2 is not asked
    for while the caller holds page 1 (the mutation run found ahead_from unchecked here)."""
    session = SignallingSession(*THREE_PAGES)
    pages = make_client(session, FakeTime()).paginate("/contacts", "contacts", ahead_from=2)
    first = next(pages)
    assert [doc["contact_id"] for doc in first.items] == ["p1", "p2"]
    assert session.urls == ["http://autopilot.invalid/v1/contacts"]
    assert [doc["contact_id"] for page in pages for doc in page.items] == ["p3", "p4", "p5", "p6"]


@pytest.mark.parametrize("url", ["https://api2.autopilothq.com/v1/contacts", "http://127.0.0.1:8000/v1/contacts"])
def test_both_schemes_use_connections_that_signal_a_written_request(url):
    """The live API is https: its page ahead is handed over on the signal, not after the 5 ms bound."""
    session = AutopilotClient({"api_key": API_KEY})._session()
    adapter = session.get_adapter(url)
    assert isinstance(adapter, SentSignalAdapter)
    # the adapter's connection signals (as test_read_ahead checks of SentSignalAdapter itself)
    connection = adapter.poolmanager.connection_from_url(url).ConnectionCls
    assert connection.request is not urllib3.connection.HTTPConnection.request
