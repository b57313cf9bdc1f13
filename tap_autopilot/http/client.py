"""The one HTTP client: session, auth header, timeout, rate limiter, retries and the
mapping of each answer to a body or an error.

Every request of the tap goes through AutopilotClient.request(), from any thread; paged
endpoints through AutopilotClient.paginate (pagination.py).
"""

import datetime
import email.utils
import functools
import logging
import os
import threading
import time
import urllib.parse
from collections.abc import Callable, Iterator
from typing import Any, Concatenate, ParamSpec, TypeVar

import orjson
import requests
import urllib3
from singer import metrics

from tap_autopilot.config import DEFAULT_BASE_URL, DEFAULT_MAX_REQUESTS_PER_SECOND, DEFAULT_REQUEST_TIMEOUT_SECONDS
from tap_autopilot.errors import AuthError, ConfigError, NotFoundError, RateLimitedError, RetryableError, TapError
from tap_autopilot.http.pagination import Page, UnparsedPage, cursor_at_end, paginate
from tap_autopilot.http.rate_limit import RateLimiter
from tap_autopilot.http.read_ahead import SentSignalAdapter
from tap_autopilot.http.retry import Clock, RetryPolicy, Sleep, parse_retry_after
from tap_autopilot.values.cleaning import parse_body

LOGGER = logging.getLogger("tap_autopilot")

P = ParamSpec("P")
T = TypeVar("T")

# Largest piece of a response body taken from the socket at once.
BODY_CHUNK_BYTES = 256 * 1024
# The endpoints every account has, the first ones a run asks for: a 404 on one of them
# before any 200 means that base_url is not the API root (no /v1, or a path too many).
API_ROOT_PATHS = frozenset({"/contacts", "/contacts/custom_fields", "/lists", "/smart_segments"})


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
        # Set by the first 200: base_url is the API's (the sync holds its output until then).
        self.answered = False
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
        """Before each wait the retry policy decided on. A Retry-After holds every thread back,
        here rather than on the 429: one the policy gives up on (past its budget) must not leave
        the other threads asleep in the limiter while the run ends."""
        LOGGER.warning("%s; retrying in %.1f s (attempt %d)", error, wait, tries)
        self.stats.count("retries")
        if isinstance(error, RateLimitedError) and error.retry_after is not None:
            self.limiter.pause(error.retry_after)

    @_retried
    def request(
        self, path: str, data_key: str | None = None, expect_list: bool = False, cursor_first: bool = False
    ) -> tuple[Any, datetime.datetime | None]:
        """get(), also returning the server's clock: (body, Date header as an
        aware datetime, or None). With cursor_first, a 200 whose body ends with its next
        cursor is not parsed here: the body is an UnparsedPage (pagination.py parses it)."""
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
            self._check_status(path, response, content)
            self.answered = True
            server_time = _server_time(response)
            if cursor_first and data_key is not None and (next_cursor := cursor_at_end(content)) is not None:
                return UnparsedPage(path, data_key, content, next_cursor, server_time), server_time
            return self.parse(path, content, data_key, expect_list), server_time
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
        # No redirect is followed: requests would send our own API key header on to any host
        # the redirect names (it strips only Authorization), and from https to plain http.
        response = self._session().get(self.base_url + path, stream=True, timeout=timeout, allow_redirects=False)
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

    def _check_status(self, path: str, response: requests.Response, content: bytes) -> None:
        """Raise what a status other than 200 means (retried or not)."""
        status = response.status_code
        if status == 429:
            self.stats.count("rate_limited")
            retry_after = parse_retry_after(response.headers.get("Retry-After"))
            raise RateLimitedError(f"Autopilot throttled GET {path} (429)", retry_after)
        if status in (400, 401, 403):
            self._rejected = f"Autopilot rejected the API key ({status}). Check api_key."
            raise AuthError(self._rejected)
        if status == 404:
            if path in API_ROOT_PATHS and not self.answered:
                raise ConfigError(
                    f"Config 'base_url' {self.base_url} answered 404 for {path}: it must be the API root, ending "
                    f"with /v1 (the default is {DEFAULT_BASE_URL})."
                )
            raise NotFoundError(f"Autopilot has no {path} (404).")
        if status >= 500:
            raise RetryableError(f"Autopilot answered {status} to GET {path}")
        if 300 <= status < 400:
            raise ConfigError(
                f"Config 'base_url' {self.base_url} answered {status} to GET {path}, a redirect to "
                f"{_redirect_target(response.headers.get('Location'))}. The tap follows no redirect, so that the "
                "API key goes nowhere else: set base_url to the API root it should reach."
            )
        if status != 200:
            raise TapError(f"Autopilot answered {status} to GET {path}: {_error_message(content)}")

    def parse(self, path: str, content: bytes, data_key: str | None, expect_list: bool = False) -> Any:
        """A 200's body, checked for the shape asked for (else RetryableError: the page is read again)."""
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
    ) -> Iterator[Page]:
        """Each page of a cursor-paged endpoint (pagination.paginate: the next cursor read
        from a page's end, the page ahead from page `ahead_from` on)."""
        return paginate(self, path, data_key, cursor, ahead_from)


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


def _redirect_target(location: str | None) -> str:
    """Where a redirect points, as scheme://host[:port] only (a path or query could hold anything)."""
    try:
        parts = urllib.parse.urlsplit(location or "")
        host = parts.hostname
        port = parts.port
    except ValueError:
        return "an address that is not a URL"
    if not host:
        return "another path of the same server"
    return f"{parts.scheme}://{host}" + (f":{port}" if port else "")


def _error_message(content: bytes) -> str:
    """An error answer's message (its "message", else "error"), else its text: on one line, at
    most 200 characters."""
    try:
        body = orjson.loads(content)
        text = str(body.get("message") or body.get("error") or content.decode("utf-8", "replace"))
    except (ValueError, AttributeError):
        text = content.decode("utf-8", "replace")
    return " ".join(text.split())[:200]
