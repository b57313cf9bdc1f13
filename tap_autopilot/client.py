"""The one HTTP client: session, auth header, timeout, rate limiter, retries and
error mapping, and the cursor pagination loop.

Every request of the tap goes through AutopilotClient.get(), from any thread.
"""

import datetime
import email.utils
import functools
import logging
import math
import os
import random
import sys
import threading
import time
from typing import Any, NamedTuple
from urllib.parse import quote

import orjson
import requests
import urllib3
from singer import metrics

from tap_autopilot.config import DEFAULT_BASE_URL, DEFAULT_MAX_REQUESTS_PER_SECOND, DEFAULT_REQUEST_TIMEOUT_SECONDS
from tap_autopilot.errors import AuthError, NotFoundError, RateLimitedError, RetryableError, TapError

LOGGER = logging.getLogger("tap_autopilot")

PAGE_SIZE = 100
# Largest piece of a response body taken from the socket at once.
BODY_CHUNK_BYTES = 256 * 1024

# How long a run keeps retrying before it gives up. Throttling is normal and
# expected, so 429s get a generous budget; anything else gets a few tries.
RATE_LIMIT_RETRY_SECONDS = 600
TRANSIENT_MAX_TRIES = 5
BACKOFF_CAP_SECONDS = 60
# The first backoff's ceiling (each next one doubles, up to the cap). Tests that run the
# CLI as a subprocess set this environment variable to a small value so that they do not
# wait seconds of real backoff; users have no reason to.
BACKOFF_BASE_ENV = "TAP_AUTOPILOT_BACKOFF_SECONDS"
BACKOFF_BASE_SECONDS = 1.0


class RateLimiter:
    """Keeps request starts at least `interval` apart (1/rate with SAFETY's slack), however
    many threads share it, so that no one-second window ever holds more than `rate`
    requests (rounded up: even spacing at 2.5/s puts 3 in some windows). The spacing is
    checked when a request really starts, not only when its slot was planned: a thread
    that wakes late pushes the next ones back instead of starting close behind another.
    An idle gap saves nothing up: the next requests start one interval apart again.

    Slots go to the most urgent request first (the scheduler sets each worker's priority
    to its scan's pages left): a waiting thread's slot moves later when a more urgent
    request needs a start within an interval of it; equal urgency is first come first served.

    The critical path: the scan with the most pages left is sequential (each cursor comes
    from the page before), so every moment its next request waits for a slot lengthens the
    whole sync, while the other scans' requests could as well go a little later. So when
    the most urgent request starts, it books its thread's next slot ahead, about when its
    next request is expected (its last cycle: round trip plus the page's processing), and
    less urgent requests are placed at least an interval away from that booking. When the
    request comes it starts before every other: at once if the spacing allows, the booking
    having kept the slot free, moving less urgent threads back."""

    # 5% slack: requests leave evenly spaced but can arrive bunched (network,
    # a busy server or client), and one 429 costs a whole Retry-After pause.
    SAFETY = 1.05
    # Slots computed as sums of intervals may miss an interval by a rounding error.
    _EPSILON = 1e-9
    _FIRST_PAGE = sys.float_info.max  # the priority of a scan's first page
    _CRITICAL = math.inf  # the priority of the request that claims its booking

    def __init__(self, rate, clock=time.monotonic, sleep=time.sleep):
        self.interval = self.SAFETY / float(rate)
        self._clock = clock
        self._sleep = sleep
        self._latest = -math.inf  # the latest start
        self._paused_until = 0.0
        self._waiting: list[list[float]] = []  # [slot, priority] of each thread waiting for its slot
        self._booked: list[float] | None = None  # [slot, priority]: the critical request's next slot
        self._local = threading.local()
        self._lock = threading.Lock()

    def set_priority(self, priority, pages_left=0):
        """This thread's urgency for its next requests (higher first; default 0: the scheduler
        passes its scan's pages left), and the pages all scans have left."""
        self._local.priority = priority
        self._local.pages_left = pages_left

    def acquire(self):
        """Block until this thread may start a request."""
        local = self._local
        # A scan's first page (its length unknown: the scheduler's infinite priority) goes
        # before the known ones, but not before the critical request.
        priority = min(getattr(local, "priority", 0), self._FIRST_PAGE)
        with self._lock:
            now = self._clock()
            cycle = now - getattr(local, "started", now)  # the round trip and page since its last start
            ticket = [now, priority]
            if self._booked is not None and self._booked is getattr(local, "booking", None):
                self._booked = None  # claimed: the critical request goes before every other
                ticket[1] = self._CRITICAL
            elif self._expired(now):
                self._booked = None
            self._place(ticket)
            self._waiting.append(ticket)
            slept_until = now
        while True:
            with self._lock:
                # A fake clock may stand still while this thread sleeps: it has slept until its target.
                now = max(self._clock(), slept_until)
                if ticket[0] <= now + self._EPSILON:
                    if self._paused_until <= now and abs(now - self._latest) >= self.interval - self._EPSILON:
                        self._start(ticket, now, cycle, priority)
                        return
                    # Paused meanwhile (a 429), or another request started late, close before this one.
                    ticket[0] = now
                    self._place(ticket)
                target = ticket[0]
            wait = target - self._clock()
            if wait > 0:
                self._sleep(wait)
            slept_until = target

    def _start(self, ticket, now, cycle, priority):
        # Callers hold the lock.
        self._waiting.remove(ticket)
        self._latest = max(self._latest, now)
        self._local.started = now
        # Book ahead for the most urgent scan of known length only.
        if (
            cycle > 0
            and 0 < priority < self._FIRST_PAGE
            and all(other[1] <= priority or other[1] >= self._FIRST_PAGE for other in self._waiting)
            and (self._booked is None or self._booked[1] <= priority or self._expired(now))
        ):
            self._local.booking = self._booked = [now + self._ahead(cycle, priority), priority]
            self._bump(self._booked)

    def _ahead(self, cycle, pages_left):
        """How far ahead of its start the critical request's next slot is booked. The others'
        requests fit between two of its own only a whole number of intervals apart: while
        they have enough requests left to fill those slots (the sync is bound by the rate
        limit), the booking rounds its cycle up to whole intervals, wasting no slot; while
        they have not (the sync is bound by this scan's round trips), it is booked at its
        cycle and never waits. (At 5 r/s and 300 ms, booked at its cycle, a third of the
        limit went unused; at 20 r/s and 100 ms, rounded up, it waited half its round trip.)"""
        intervals = max(1, math.ceil(cycle / self.interval - self._EPSILON))
        others_left = getattr(self._local, "pages_left", 0) - pages_left
        if others_left >= pages_left * (intervals - 1):
            return intervals * self.interval
        return max(cycle, self.interval)

    def _expired(self, now):
        return self._booked is not None and self._booked[0] + self.interval <= now

    def _place(self, ticket):
        """Move `ticket` to its earliest slot at or after its current one that keeps an
        interval from the latest start, the end of a pause, and every slot held by an
        equally or more urgent request; then move less urgent slots out of its way.
        Callers hold the lock."""
        slot, priority = ticket
        slot = max(slot, self._latest + self.interval, self._paused_until)
        held = [other for other in self._held() if other is not ticket]
        for other in sorted(held):
            if other[1] >= priority and abs(other[0] - slot) < self.interval - self._EPSILON:
                slot = other[0] + self.interval
        ticket[0] = slot
        self._bump(ticket)

    def _bump(self, ticket):
        # Callers hold the lock.
        for other in sorted(self._held()):
            if other[1] < ticket[1] and abs(other[0] - ticket[0]) < self.interval - self._EPSILON:
                other[0] = ticket[0] + self.interval
                self._place(other)  # later only: a thread asleep until its old slot sleeps again

    def _held(self):
        return self._waiting if self._booked is None else [*self._waiting, self._booked]

    def pause(self, seconds):
        """Hold every thread back: the server asked us to slow down."""
        with self._lock:
            until = self._clock() + seconds
            self._paused_until = max(self._paused_until, until)


class RetryPolicy:
    """Which failures are retried, how often, and how long to wait between tries.

    A RateLimitedError (429) is retried while the next try still falls within
    RATE_LIMIT_RETRY_SECONDS of the first; any other RetryableError up to TRANSIENT_MAX_TRIES tries in all; every
    other exception at once. The wait is the server's Retry-After when it gave one, else
    exponential backoff with full jitter (429s and other failures each count their own
    attempts). Clock, sleep and the jitter's random source are injectable for tests.

    Why not the backoff library's decorators, as 1.0 used: backoff calls time.sleep
    and datetime.now itself, so the 10-minute 429 budget could only be tested by
    waiting 10 minutes; and its two nested decorators let every 5xx restart that
    budget (measured with the budget cut to 2 s, a 429 with Retry-After 0.5 and every
    4th answer a 500: they gave up after 16.4 s and 20 requests, this loop after 1.5 s
    and 5). This loop is small.
    """

    def __init__(self, base=None, clock=time.monotonic, sleep=time.sleep, uniform=random.uniform):
        self.base = backoff_base_seconds() if base is None else base
        self._clock = clock
        self._sleep = sleep
        self._uniform = uniform

    def wait(self, error, attempt):
        """Seconds to wait before retrying after `error`, the `attempt`-th such failure (from 0)."""
        if error.retry_after is not None:
            return error.retry_after
        return self._uniform(0, min(BACKOFF_CAP_SECONDS, self.base * 2**attempt))

    def call(self, attempt, on_retry=None):
        """attempt() until it returns, retrying as the class says; on_retry(error, wait, tries)
        is called before each wait."""
        started = self._clock()
        tries = throttled = failed = 0
        retrying: RetryableError
        while True:
            tries += 1
            try:
                return attempt()
            except RateLimitedError as error:
                wait = self.wait(error, throttled)
                if self._clock() - started + wait > RATE_LIMIT_RETRY_SECONDS:
                    raise  # the next try would come after the budget
                throttled += 1
                retrying = error
            except RetryableError as error:
                failed += 1
                if failed >= TRANSIENT_MAX_TRIES:
                    raise
                wait = self.wait(error, failed - 1)
                retrying = error
            if on_retry is not None:
                on_retry(retrying, wait, tries)
            self._sleep(wait)


def backoff_base_seconds():
    """BACKOFF_BASE_SECONDS, or $TAP_AUTOPILOT_BACKOFF_SECONDS when it is a non-negative number."""
    try:
        value = float(os.environ[BACKOFF_BASE_ENV])
    except (KeyError, ValueError):
        return BACKOFF_BASE_SECONDS
    return value if value >= 0 else BACKOFF_BASE_SECONDS


def _parse_retry_after(value):
    try:
        return max(0.0, float(value))
    except (TypeError, ValueError):
        return None  # an HTTP date or garbage: fall back to our own backoff


def _retried(method):
    """Run a client method under the client's RetryPolicy."""

    @functools.wraps(method)
    def retrying(self, *args, **kwargs):
        return self.retry.call(lambda: method(self, *args, **kwargs), self._log_retry)

    return retrying


class RequestStats:
    """Thread-safe counters for the end-of-run summary and progress lines."""

    def __init__(self):
        self._lock = threading.Lock()
        self.counts = {"requests": 0, "retries": 0, "rate_limited": 0}

    def count(self, name, amount=1):
        with self._lock:
            self.counts[name] = self.counts.get(name, 0) + amount

    def __getitem__(self, name):
        return self.counts.get(name, 0)


class AutopilotClient:
    def __init__(self, config, stats=None, clock=time.monotonic, sleep=time.sleep):
        self.base_url = config.get("base_url", DEFAULT_BASE_URL).rstrip("/")
        self.timeout = float(config.get("request_timeout", DEFAULT_REQUEST_TIMEOUT_SECONDS))
        self.limiter = RateLimiter(
            float(config.get("max_requests_per_second", DEFAULT_MAX_REQUESTS_PER_SECOND)), clock=clock, sleep=sleep
        )
        self.retry = RetryPolicy(clock=clock, sleep=sleep)
        self.stats = stats or RequestStats()
        self._headers = {"autopilotapikey": config["api_key"], "Accept": "application/json"}
        if config.get("user_agent"):
            self._headers["User-Agent"] = config["user_agent"]
        # requests.Session is not documented as thread-safe: one per thread.
        self._local = threading.local()
        # Set by the first 400/401/403: no thread sends another request after it.
        self._rejected = None
        self._environment: dict[str, Any] = {
            "proxies": requests.utils.get_environ_proxies(self.base_url),
            "verify": os.environ.get("REQUESTS_CA_BUNDLE") or os.environ.get("CURL_CA_BUNDLE"),
        }

    def _session(self):
        session = getattr(self._local, "session", None)
        if session is None:
            session = self._local.session = requests.Session()
            session.headers.update(self._headers)
            # Read proxy and CA settings from the environment once, not on
            # every request (requests re-scans os.environ per call otherwise).
            session.proxies.update(self._environment["proxies"])
            if self._environment["verify"]:
                session.verify = self._environment["verify"]
            session.trust_env = False
        return session

    def get(self, path, data_key=None, expect_list=False):
        """GET base_url + path and return its JSON body. With data_key, the
        body must be an object holding that key; with expect_list, a JSON
        array (else the 200 is retried)."""
        return self.request(path, data_key, expect_list)[0]

    def _log_retry(self, error, wait, tries):
        LOGGER.warning("%s; retrying in %.1f s (attempt %d)", error, wait, tries)
        self.stats.count("retries")

    @_retried
    def request(self, path, data_key=None, expect_list=False):
        """get(), also returning the server's clock: (body, Date header as an
        aware datetime, or None)."""
        self.limiter.acquire()
        if self._rejected is not None:  # another thread's request was refused: fail at once
            raise AuthError(self._rejected)
        self.stats.count("requests")
        endpoint = _endpoint_name(path)
        started = time.monotonic()
        status = "failed"
        try:
            try:
                response, content = self._fetch(path, started + self.timeout)
            except (requests.exceptions.Timeout, urllib3.exceptions.TimeoutError):
                raise RetryableError(f"GET {path} timed out after {self.timeout:g} s") from None
            except (requests.exceptions.RequestException, urllib3.exceptions.HTTPError, OSError) as error:
                raise RetryableError(f"GET {path} failed ({type(error).__name__})") from None
            status = response.status_code
            return self._decode(path, response, content, data_key, expect_list), _server_time(response)
        finally:
            metrics.log(
                LOGGER,
                metrics.Point(
                    "timer",
                    metrics.Metric.http_request_duration,
                    time.monotonic() - started,
                    {"endpoint": endpoint, "http_status_code": status},
                ),
            )

    def _fetch(self, path, deadline):
        """The response and its whole body, all of it by `deadline` (a monotonic time).

        requests' own timeout limits each socket read, so a body trickling in a
        byte at a time would never trip it. urllib3's total timeout bounds connecting
        and waiting for the headers; the body is then read one socket read at a time,
        each allowed only what is left until the deadline."""
        response = self._session().get(
            self.base_url + path, stream=True, timeout=urllib3.Timeout(total=max(deadline - time.monotonic(), 0.001))
        )
        try:
            sock = getattr(response.raw.connection, "sock", None)
            chunks = []
            while True:
                left = deadline - time.monotonic()
                if left <= 0:
                    raise requests.exceptions.Timeout()
                if sock is not None:
                    sock.settimeout(left)
                chunk = response.raw.read1(BODY_CHUNK_BYTES, decode_content=True)
                if not chunk:
                    break
                chunks.append(chunk)
        except BaseException:
            response.close()  # never hand a half-read connection back to the pool
            raise
        return response, b"".join(chunks)

    def _decode(self, path, response, content, data_key, expect_list=False):
        status = response.status_code
        if status == 429:
            self.stats.count("rate_limited")
            retry_after = _parse_retry_after(response.headers.get("Retry-After"))
            if retry_after is not None:
                self.limiter.pause(retry_after)
            raise RateLimitedError(f"Autopilot throttled GET {path} (429)", retry_after)
        if status in (400, 401, 403):
            self._rejected = f"Autopilot rejected the API key ({status}). Check api_key."
            raise AuthError(self._rejected)
        if status == 404:
            raise NotFoundError(f"Autopilot has no {path} (404).")
        if status >= 500:
            raise RetryableError(f"Autopilot answered {status} to GET {path}")
        if status != 200:
            raise TapError(f"Autopilot answered {status} to GET {path}: {_error_message(content)}")
        try:
            body = orjson.loads(content)
        except ValueError:
            raise RetryableError(f"GET {path} returned a body that is not valid JSON") from None
        if data_key is not None and not (isinstance(body, dict) and data_key in body):
            raise RetryableError(f"GET {path} returned no '{data_key}' in its body")
        if expect_list and not isinstance(body, list):
            raise RetryableError(f"GET {path} returned a body of an unexpected shape (not a list)")
        return body

    def paginate(self, path, data_key, cursor=None):
        """Yield a Page for each page of a cursor-paged endpoint, starting after
        `cursor` if given. The API names its cursor "bookmark"; next_cursor is None
        on the last page. A cursor the API has already given is an error: the
        published tap looped forever on that."""
        seen = set()
        while True:
            page_path = path if cursor is None else f"{path}/{quote(str(cursor), safe='')}"
            body, server_time = self.request(page_path, data_key)
            next_cursor = body.pop("bookmark", None) or None
            if next_cursor is not None:
                if next_cursor in seen or next_cursor == cursor:
                    raise TapError(
                        f"Autopilot repeated the page bookmark {next_cursor} on {path}; "
                        "stopping to avoid an endless loop."
                    )
                seen.add(next_cursor)
            # Hand the page over without keeping it: a suspended scan holds no page.
            yield Page(
                items=body.pop(data_key, None) or [], next_cursor=next_cursor, meta=body, server_time=server_time
            )
            if next_cursor is None:
                return
            cursor = next_cursor


class Page(NamedTuple):
    items: list
    next_cursor: str | None  # None on the last page
    meta: dict  # the rest of the body (e.g. total_contacts)
    server_time: datetime.datetime | None


def _server_time(response):
    """The API's clock from the Date header, to time scans by its clock."""
    try:
        return email.utils.parsedate_to_datetime(response.headers["Date"]).astimezone(datetime.UTC)
    except (KeyError, TypeError, ValueError, IndexError):
        return None


def _endpoint_name(path):
    """A low-cardinality name for metrics: '/list/contactlist_x/contacts/p' -> 'list_contacts'."""
    parts = path.strip("/").split("/")
    if parts[0] == "list":
        return "list_contacts"
    if parts[0] == "smart_segments" and len(parts) > 1:
        return "smart_segment_contacts"
    if parts[0] == "contacts" and len(parts) > 1 and parts[1] == "custom_fields":
        return "custom_fields"
    return parts[0]


def _error_message(content):
    try:
        return str(orjson.loads(content).get("message"))[:200]
    except (ValueError, AttributeError):
        return content[:200].decode("utf-8", "replace")
