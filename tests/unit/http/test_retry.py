"""The retry policy (http/retry.py): which failures are retried, how often, how long it waits
between tries, the 429 budget; through the client, on a fake clock and a fake session."""

import itertools

import pytest
import requests

from tap_autopilot.errors import RateLimitedError, RetryableError
from tap_autopilot.http.retry import (
    BACKOFF_BASE_ENV,
    BACKOFF_CAP_SECONDS,
    RATE_LIMIT_RETRY_SECONDS,
    TRANSIENT_MAX_TRIES,
    RetryPolicy,
    backoff_base_seconds,
)

from .support import FakeResponse, FakeSession, FakeTime, make_client


def recording(bounds, value=None):
    """A stand-in for random.uniform that records the range it is asked for and returns
    `value`, or the top of the range (which shows the backoff ceilings)."""

    def uniform(low, high):
        bounds.append((low, high))
        return high if value is None else value

    return uniform


# ----- 429 -------------------------------------------------------------------------------------


def test_429_with_retry_after_waits_exactly_retry_after_then_succeeds():
    fake_time = FakeTime()
    session = FakeSession(FakeResponse(429, b"", {"Retry-After": "7"}), FakeResponse(200))
    client = make_client(session, fake_time)
    assert client.get("/lists", "lists") == {"lists": []}
    assert len(session.urls) == 2
    assert 7 in fake_time.sleeps
    assert sum(fake_time.sleeps) == pytest.approx(7, abs=client.limiter.interval)
    assert client.stats["rate_limited"] == 1 and client.stats["retries"] == 1


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


@pytest.mark.parametrize("header, wait", [("0", 0.0), ("-5", 0.0), ("2.5", 2.5)])
def test_retry_after_is_used_as_given_never_below_zero(header, wait):
    fake_time = FakeTime()
    client = make_client(FakeSession(FakeResponse(429, b"", {"Retry-After": header}), FakeResponse(200)), fake_time)
    client.get("/lists", "lists")
    assert fake_time.sleeps[0] == wait


# ----- transient failures ----------------------------------------------------------------------


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


def test_an_unexpected_exception_is_not_retried():
    fake_time = FakeTime()
    session = FakeSession(KeyError("bug"), FakeResponse(200))
    with pytest.raises(KeyError):
        make_client(session, fake_time).get("/lists", "lists")
    assert len(session.urls) == 1


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


# ----- the backoff base for subprocess tests ---------------------------------------------------


@pytest.mark.parametrize("value, expected", [(None, 1.0), ("0.05", 0.05), ("0", 0.0), ("-1", 1.0), ("fast", 1.0)])
def test_backoff_base_comes_from_the_environment_when_valid(monkeypatch, value, expected):
    if value is None:
        monkeypatch.delenv(BACKOFF_BASE_ENV, raising=False)
    else:
        monkeypatch.setenv(BACKOFF_BASE_ENV, value)
    assert backoff_base_seconds() == expected
    assert RetryPolicy().base == expected


def test_an_explicit_backoff_base_wins_over_the_environment(monkeypatch):
    monkeypatch.setenv(BACKOFF_BASE_ENV, "4")
    assert RetryPolicy(base=0.25).base == 0.25 and RetryPolicy().base == 4.0


def test_the_backoff_ceilings_start_at_the_base_and_double_up_to_the_cap():
    """The base scales every ceiling (the mutation run found a base of 1 in every other test)."""
    fake_time = FakeTime()
    bounds: list[tuple[float, float]] = []
    policy = RetryPolicy(base=0.25, clock=fake_time.clock, sleep=fake_time.sleep, uniform=recording(bounds))
    throttled = iter([RateLimitedError("429")] * 10)

    def attempt():
        error = next(throttled, None)
        if error is not None:
            raise error
        return "done"

    assert policy.call(attempt) == "done"
    assert bounds == [(0, 0.25), (0, 0.5), (0, 1), (0, 2), (0, 4), (0, 8), (0, 16), (0, 32), (0, 60), (0, 60)]
