"""The one HTTP client: session, auth header, timeout, rate limiter, retries and
error mapping, and the cursor pagination loop.

Every request of the tap goes through AutopilotClient.get(), from any thread.
"""

import datetime
import email.utils
import functools
import logging
import os
import random
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any, Concatenate, NamedTuple, ParamSpec, TypeVar
from urllib.parse import quote

import orjson
import requests
import urllib3
from singer import metrics

from tap_autopilot.config import DEFAULT_BASE_URL, DEFAULT_MAX_REQUESTS_PER_SECOND, DEFAULT_REQUEST_TIMEOUT_SECONDS
from tap_autopilot.errors import AuthError, ConfigError, NotFoundError, RateLimitedError, RetryableError, TapError
from tap_autopilot.rate_limit import RateLimiter
from tap_autopilot.read_ahead import SentSignalAdapter, read_ahead
from tap_autopilot.values import parse_body

LOGGER = logging.getLogger("tap_autopilot")

P = ParamSpec("P")
T = TypeVar("T")
Clock = Callable[[], float]  # monotonic seconds; injectable for tests
Sleep = Callable[[float], None]

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

    def __init__(
        self,
        base: float | None = None,
        clock: Clock = time.monotonic,
        sleep: Sleep = time.sleep,
        uniform: Callable[[float, float], float] = random.uniform,
    ) -> None:
        self.base = backoff_base_seconds() if base is None else base
        self._clock = clock
        self._sleep = sleep
        self._uniform = uniform

    def wait(self, error: RetryableError, attempt: int) -> float:
        """Seconds to wait before retrying after `error`, the `attempt`-th such failure (from 0)."""
        if error.retry_after is not None:
            return error.retry_after
        return self._uniform(0, min(BACKOFF_CAP_SECONDS, self.base * 2**attempt))

    def call(self, attempt: Callable[[], T], on_retry: Callable[[RetryableError, float, int], None] | None = None) -> T:
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


def backoff_base_seconds() -> float:
    """BACKOFF_BASE_SECONDS, or $TAP_AUTOPILOT_BACKOFF_SECONDS when it is a non-negative number."""
    try:
        value = float(os.environ[BACKOFF_BASE_ENV])
    except (KeyError, ValueError):
        return BACKOFF_BASE_SECONDS
    return value if value >= 0 else BACKOFF_BASE_SECONDS


def _parse_retry_after(value: Any) -> float | None:
    try:
        return max(0.0, float(value))
    except (TypeError, ValueError):
        return None  # an HTTP date or garbage: fall back to our own backoff


def _retried(method: Callable[Concatenate["AutopilotClient", P], T]) -> Callable[Concatenate["AutopilotClient", P], T]:
    """Run a client method under the client's RetryPolicy."""

    @functools.wraps(method)
    def retrying(self: "AutopilotClient", *args: P.args, **kwargs: P.kwargs) -> T:
        return self.retry.call(lambda: method(self, *args, **kwargs), self._log_retry)

    return retrying


# RequestStats counter name prefix: pages whose invalid UTF-8 was repaired, per endpoint.
INVALID_UTF8_PAGES = "invalid UTF-8 pages: "


class RequestStats:
    """Thread-safe counters for the end-of-run summary and progress lines."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.counts = {"requests": 0, "retries": 0, "rate_limited": 0}

    def count(self, name: str, amount: int = 1) -> None:
        with self._lock:
            self.counts[name] = self.counts.get(name, 0) + amount

    def __getitem__(self, name: str) -> int:
        return self.counts.get(name, 0)

    def repaired_pages(self) -> dict[str, int]:
        """{endpoint: pages whose invalid UTF-8 was replaced with U+FFFD}."""
        with self._lock:
            return {
                name[len(INVALID_UTF8_PAGES) :]: count
                for name, count in sorted(self.counts.items())
                if name.startswith(INVALID_UTF8_PAGES)
            }


class AutopilotClient:
    def __init__(
        self,
        config: dict[str, Any],
        stats: RequestStats | None = None,
        clock: Clock = time.monotonic,
        sleep: Sleep = time.sleep,
    ) -> None:
        self.base_url = config.get("base_url", DEFAULT_BASE_URL).rstrip("/")
        self.timeout = float(config.get("request_timeout", DEFAULT_REQUEST_TIMEOUT_SECONDS))
        self._clock = clock  # monotonic: the limiter's, the retries' and each response's deadline
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
        self._rejected: str | None = None
        self._environment: dict[str, Any] = {
            "proxies": requests.utils.get_environ_proxies(self.base_url),
            "verify": os.environ.get("REQUESTS_CA_BUNDLE") or os.environ.get("CURL_CA_BUNDLE"),
        }

    def _session(self) -> requests.Session:
        session = getattr(self._local, "session", None)
        if session is None:
            session = self._local.session = requests.Session()
            for prefix in ("http://", "https://"):
                session.mount(prefix, SentSignalAdapter())  # read_ahead hands pages over on its signal
            session.headers.update(self._headers)
            # Read proxy and CA settings from the environment once, not on
            # every request (requests re-scans os.environ per call otherwise).
            session.proxies.update(self._environment["proxies"])
            if self._environment["verify"]:
                session.verify = self._environment["verify"]
            session.trust_env = False
        return session

    def get(self, path: str, data_key: str | None = None, expect_list: bool = False) -> Any:
        """GET base_url + path and return its JSON body. With data_key, the
        body must be an object holding that key; with expect_list, a JSON
        array (else the 200 is retried)."""
        return self.request(path, data_key, expect_list)[0]

    def _log_retry(self, error: RetryableError, wait: float, tries: int) -> None:
        LOGGER.warning("%s; retrying in %.1f s (attempt %d)", error, wait, tries)
        self.stats.count("retries")

    @_retried
    def request(
        self, path: str, data_key: str | None = None, expect_list: bool = False
    ) -> tuple[Any, datetime.datetime | None]:
        """get(), also returning the server's clock: (body, Date header as an
        aware datetime, or None)."""
        self.limiter.acquire()
        if self._rejected is not None:  # another thread's request was refused: fail at once
            raise AuthError(self._rejected)
        self.stats.count("requests")
        endpoint = _endpoint_name(path)
        started = time.monotonic()
        status: int | str = "failed"
        try:
            try:
                response, content = self._fetch(path, self._clock() + self.timeout)
            except (requests.exceptions.Timeout, urllib3.exceptions.TimeoutError):
                raise RetryableError(f"GET {path} timed out after {self.timeout:g} s") from None
            except requests.exceptions.InvalidHeader:
                # Our own header, refused before it was sent: no retry can help (the value is not shown).
                raise ConfigError(
                    "The config's api_key or user_agent holds a character no HTTP header may (a line "
                    "break?). Copy the key again from Autopilot's settings."
                ) from None
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

    def _fetch(self, path: str, deadline: float) -> tuple[requests.Response, bytes]:
        """The response and its whole body, all of it by `deadline` (a time of the client's clock).

        requests' own timeout limits each socket read, so a body trickling in a
        byte at a time would never trip it. urllib3's total timeout bounds connecting
        and waiting for the headers; the body is then read one socket read at a time,
        each allowed only what is left until the deadline."""
        # requests hands a urllib3 Timeout through as it is; its type stubs know only numbers.
        timeout: Any = urllib3.Timeout(total=max(deadline - self._clock(), 0.001))
        response = self._session().get(self.base_url + path, stream=True, timeout=timeout)
        try:
            sock = getattr(response.raw.connection, "sock", None)
            chunks = []
            while True:
                left = deadline - self._clock()
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

    def _decode(
        self, path: str, response: requests.Response, content: bytes, data_key: str | None, expect_list: bool = False
    ) -> Any:
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
            body, repaired = parse_body(content)
        except ValueError:
            raise RetryableError(f"GET {path} returned a body that is not valid JSON") from None
        if repaired:
            self.stats.count(INVALID_UTF8_PAGES + _endpoint_name(path))
            LOGGER.warning("GET %s: the body is not valid UTF-8; its invalid bytes were replaced with U+FFFD.", path)
        if data_key is not None and not (isinstance(body, dict) and data_key in body):
            raise RetryableError(f"GET {path} returned no '{data_key}' in its body")
        if expect_list and not isinstance(body, list):
            raise RetryableError(f"GET {path} returned a body of an unexpected shape (not a list)")
        return body

    def paginate(
        self, path: str, data_key: str, cursor: str | None = None, ahead_from: int | None = None
    ) -> Iterator["Page"]:
        """Yield a Page for each page of a cursor-paged endpoint, starting after
        `cursor` if given. The API names its cursor "bookmark"; next_cursor is None
        on the last page. A cursor the API has already given is an error: the
        published tap looped forever on that.

        From page `ahead_from` on (1: the first), the next page's request goes out as soon
        as its cursor is known, while the caller takes the page before it (read_ahead)."""
        pages = self._pages(path, data_key, cursor)
        return pages if ahead_from is None else read_ahead(pages, self.limiter, ahead_from)

    def _pages(self, path: str, data_key: str, cursor: str | None) -> Iterator["Page"]:
        """paginate() without reading ahead: the one pagination loop."""
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


def _server_time(response: requests.Response) -> datetime.datetime | None:
    """The API's clock from the Date header, to time scans by its clock."""
    try:
        return email.utils.parsedate_to_datetime(response.headers["Date"]).astimezone(datetime.UTC)
    except (KeyError, TypeError, ValueError, IndexError):
        return None


def _endpoint_name(path: str) -> str:
    """A low-cardinality name for metrics: '/list/contactlist_x/contacts/p' -> 'list_contacts'."""
    parts = path.strip("/").split("/")
    if parts[0] == "list":
        return "list_contacts"
    if parts[0] == "smart_segments" and len(parts) > 1:
        return "smart_segment_contacts"
    if parts[0] == "contacts" and len(parts) > 1 and parts[1] == "custom_fields":
        return "custom_fields"
    return parts[0]


def _error_message(content: bytes) -> str:
    try:
        return str(orjson.loads(content).get("message"))[:200]
    except (ValueError, AttributeError):
        return content[:200].decode("utf-8", "replace")
