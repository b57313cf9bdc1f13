"""The one HTTP client: session, auth header, timeout, rate limiter, retries and
error mapping, and the bookmark pagination loop.

Every request of the tap goes through AutopilotClient.get(), from any thread.
"""
import datetime
import email.utils
import logging
import os
import random
import threading
import time
from typing import NamedTuple, Optional
from urllib.parse import quote

import backoff
import orjson
import requests
import urllib3
from singer import metrics

LOGGER = logging.getLogger("tap_autopilot")

DEFAULT_BASE_URL = "https://api2.autopilothq.com/v1"
PAGE_SIZE = 100
# Largest piece of a response body taken from the socket at once.
BODY_CHUNK_BYTES = 256 * 1024

# How long a run keeps retrying before it gives up. Throttling is normal and
# expected, so 429s get a generous budget; anything else gets a few tries.
RATE_LIMIT_RETRY_SECONDS = 600
TRANSIENT_MAX_TRIES = 5
BACKOFF_CAP_SECONDS = 60


class TapError(Exception):
    """A fatal error with a message fit for the user's eyes (no key, no traceback)."""


class AuthError(TapError):
    pass


class NotFoundError(TapError):
    pass


class RetryableError(Exception):
    """A failure worth retrying: 5xx, transport error, unusable 200 body."""

    retry_after = None


class RateLimitedError(RetryableError):
    def __init__(self, message, retry_after=None):
        super().__init__(message)
        self.retry_after = retry_after


class RateLimiter:
    """Spaces request starts evenly so that no one-second window ever holds
    more than `rate` requests, however many threads share it."""

    # 5% slack: requests leave evenly spaced but can arrive bunched (network,
    # a busy server or client), and one 429 costs a whole Retry-After pause.
    SAFETY = 1.05

    def __init__(self, rate):
        self.interval = self.SAFETY / float(rate)
        self._next = 0.0
        self._lock = threading.Lock()

    def acquire(self):
        with self._lock:
            now = time.monotonic()
            start = max(now, self._next)
            self._next = start + self.interval
        delay = start - now
        if delay > 0:
            time.sleep(delay)

    def pause(self, seconds):
        """Hold every thread back: the server asked us to slow down."""
        with self._lock:
            self._next = max(self._next, time.monotonic() + seconds)


def _wait_times(base=1.0, cap=BACKOFF_CAP_SECONDS):
    """backoff wait generator: the server's Retry-After when it gave one,
    else exponential backoff with full jitter."""
    error = yield
    attempt = 0
    while True:
        if getattr(error, "retry_after", None) is not None:
            wait = error.retry_after
        else:
            wait = random.uniform(0, min(cap, base * 2 ** attempt))
        attempt += 1
        error = yield wait


def _parse_retry_after(value):
    try:
        return max(0.0, float(value))
    except (TypeError, ValueError):
        return None  # an HTTP date or garbage: fall back to our own backoff


def _log_retry(details):
    error = details["exception"]
    LOGGER.warning("%s; retrying in %.1f s (attempt %d)", error, details["wait"], details["tries"])
    client = details["args"][0]
    client.stats.count("retries")


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
    def __init__(self, config, stats=None):
        self.base_url = config.get("base_url", DEFAULT_BASE_URL).rstrip("/")
        self.timeout = float(config.get("request_timeout", 300))
        self.limiter = RateLimiter(float(config.get("max_requests_per_second", 5)))
        self.stats = stats or RequestStats()
        self._headers = {"autopilotapikey": config["api_key"], "Accept": "application/json"}
        if config.get("user_agent"):
            self._headers["User-Agent"] = config["user_agent"]
        # requests.Session is not documented as thread-safe: one per thread.
        self._local = threading.local()
        # Set by the first 400/401/403: no thread sends another request after it.
        self._rejected = None
        self._environment = {
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

    @backoff.on_exception(_wait_times, RetryableError, max_tries=TRANSIENT_MAX_TRIES,
                          giveup=lambda e: isinstance(e, RateLimitedError), jitter=None,
                          on_backoff=_log_retry, logger=None)
    @backoff.on_exception(_wait_times, RateLimitedError, max_time=RATE_LIMIT_RETRY_SECONDS,
                          jitter=None, on_backoff=_log_retry, logger=None)
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
            metrics.log(LOGGER, metrics.Point("timer", metrics.Metric.http_request_duration,
                                              time.monotonic() - started,
                                              {"endpoint": endpoint, "http_status_code": status}))

    def _fetch(self, path, deadline):
        """The response and its whole body, all of it by `deadline` (a monotonic time).

        requests' own timeout limits each socket read, so a body trickling in a
        byte at a time would never trip it. urllib3's total timeout bounds connecting
        and waiting for the headers; the body is then read one socket read at a time,
        each allowed only what is left until the deadline."""
        response = self._session().get(self.base_url + path, stream=True,
                                       timeout=urllib3.Timeout(total=max(deadline - time.monotonic(), 0.001)))
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

    def paginate(self, path, data_key, bookmark=None):
        """Yield a Page for each page of a bookmark-paged
        endpoint, starting after `bookmark` if given. next_bookmark is None on
        the last page. A bookmark the API has already given is an error: the
        published tap looped forever on that."""
        seen = set()
        while True:
            page_path = path if bookmark is None else f"{path}/{quote(str(bookmark), safe='')}"
            body, server_time = self.request(page_path, data_key)
            next_bookmark = body.get("bookmark") or None
            if next_bookmark is not None:
                if next_bookmark in seen or next_bookmark == bookmark:
                    raise TapError(f"Autopilot repeated the page bookmark {next_bookmark} on {path}; "
                                   "stopping to avoid an endless loop.")
                seen.add(next_bookmark)
            # Hand the page over without keeping it: a suspended scan holds no page.
            yield Page(body.pop(data_key, None) or [], next_bookmark, body.get("total_contacts"), server_time)
            if next_bookmark is None:
                return
            bookmark = next_bookmark


class Page(NamedTuple):
    items: list
    next_bookmark: Optional[str]   # None on the last page
    total: Optional[int]           # the API's total_contacts
    server_time: Optional[datetime.datetime]


def _server_time(response):
    """The API's clock from the Date header, to bookmark scans in its time."""
    try:
        return email.utils.parsedate_to_datetime(response.headers["Date"]).astimezone(datetime.timezone.utc)
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
