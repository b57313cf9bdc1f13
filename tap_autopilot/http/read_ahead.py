"""A scan read one page ahead (read_ahead), and the signal that lets it hand a page over
only once the next page's request is on the wire (SentSignalAdapter).

Why the signal: CPython runs one thread at a time (the GIL). While the read-ahead thread
prepares page k+1's request, its system calls (urllib3 polls the kept-alive socket; requests
checks a CA bundle path) let the interpreter go, and the caller's thread, taking page k, would
keep it until its own next system call: the next request of the critical path would leave late
(measured: docs/performance.md#the-page-ahead). So a page is handed over once the next request
has been written, or after HANDOVER_WAIT_SECONDS when it is not written that soon (the limiter
holds it, a connection through a proxy that does not signal).
"""

import itertools
import queue
import threading
from collections.abc import Callable, Generator, Iterator
from typing import Any, TypeVar

import requests
import urllib3

from tap_autopilot.http.rate_limit import RateLimiter

T = TypeVar("T")

# The longest a caller waits for the next page's request to be written before it takes its
# page anyway. Written takes about a millisecond when nothing holds the request back.
HANDOVER_WAIT_SECONDS = 0.005

# This thread's callback for "a request has been written" (set only on read-ahead threads).
_sent_callbacks = threading.local()


def notify_when_sent(callback: Callable[[], None] | None) -> None:
    """On this thread, call `callback` each time a request has been written (None: stop)."""
    _sent_callbacks.callback = callback


def request_sent() -> None:
    """Tell this thread's read-ahead, if it has one, that its request has been written."""
    callback = getattr(_sent_callbacks, "callback", None)
    if callback is not None:
        callback()


class _SignalsSent:
    """urllib3 connection mixin: request() returns once the request is written (the
    response is read later, by getresponse()), so that is the moment to signal."""

    def request(self, *args: Any, **kwargs: Any) -> None:
        super().request(*args, **kwargs)  # type: ignore[misc]
        request_sent()


class _HTTPConnection(_SignalsSent, urllib3.connection.HTTPConnection):
    pass


class _HTTPSConnection(_SignalsSent, urllib3.connection.HTTPSConnection):
    pass


class _HTTPConnectionPool(urllib3.HTTPConnectionPool):
    ConnectionCls = _HTTPConnection


class _HTTPSConnectionPool(urllib3.HTTPSConnectionPool):
    ConnectionCls = _HTTPSConnection


class SentSignalAdapter(requests.adapters.HTTPAdapter):
    """requests' adapter, with connections that call request_sent() once a request is written."""

    def init_poolmanager(self, *args: Any, **kwargs: Any) -> None:
        super().init_poolmanager(*args, **kwargs)
        # A PoolManager keeps its pool classes per instance, for subclasses to replace.
        self.poolmanager.pool_classes_by_scheme = {"http": _HTTPConnectionPool, "https": _HTTPSConnectionPool}


def read_ahead(
    pages: Iterator[T], limiter: RateLimiter, start: int = 1, handover_wait: float = HANDOVER_WAIT_SECONDS
) -> Generator[T, None, None]:
    """`pages`, advanced on a thread of its own one item ahead of the caller: while the
    caller takes page k, page k+1 is already requested, and its request goes out the moment
    page k's cursor is known (no thread switch in between). Page k+1 is requested only once
    the caller has asked for page k (so has dropped page k-1): at most two pages, the one
    being taken and the one ahead. Before page `start` nothing is read ahead: a scan whose
    first page decides whether it goes on asks for page 2 only if it does. What advancing
    `pages` raises (after the client's usual retries) is raised here when the caller asks
    for that page. If the caller stops early, the page ahead is dropped unread.

    From page `start` on, page k is handed to the caller once page k+1's request has been
    written (see the module's docstring), or after `handover_wait` seconds.

    Each request passes the rate limiter with the priority the caller's thread had when it
    asked (the scheduler sets it per scan), and all of a scan's requests come from that one
    thread, so the limiter measures the scan's cycle and books its next slot (rate_limit.py).
    A daemon thread: a stopped run does not wait for a page nobody will read."""
    # The caller's asks, each with its priority (None: stop); the thread's answers, in order.
    asks: queue.SimpleQueue[float | None] = queue.SimpleQueue()
    answers: queue.SimpleQueue[Any] = queue.SimpleQueue()
    sent = threading.Event()  # the request after the last page handed over has been written

    def advance() -> None:
        notify_when_sent(sent.set)
        while (priority := asks.get()) is not None:
            limiter.set_priority(priority)
            try:
                item = next(pages)
            except BaseException as error:  # StopIteration too: raised to the caller, or the end
                sent.set()  # no request follows: nothing to wait for
                answers.put(error)
                return
            sent.clear()  # before the hand-over: set again by the next request
            answers.put(item)
            del item  # a page handed over is the caller's alone

    threading.Thread(target=advance, name=f"{threading.current_thread().name}-ahead", daemon=True).start()
    try:
        for number in itertools.count(1):
            asks.put(limiter.priority())
            if number == start:
                asks.put(limiter.priority())  # and the page after it: from here on, one ahead
            held = [answers.get()]
            if isinstance(held[0], StopIteration):
                return
            if isinstance(held[0], BaseException):
                raise held.pop()
            if number >= start:  # the next page is asked for: let its request go out first
                sent.wait(handover_wait)
            yield held.pop()  # (popped, not named: a suspended scan holds no page)
    finally:
        asks.put(None)
