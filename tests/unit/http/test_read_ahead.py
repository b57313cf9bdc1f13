"""read_ahead hands a page over once the next page's request is written (the interpreter's
lock would otherwise go to the thread taking the page first), and the session's adapter
says when a request is written."""

import socket
import threading

import urllib3

from tap_autopilot.http.client import AutopilotClient
from tap_autopilot.http.pagination import Page
from tap_autopilot.http.rate_limit import RateLimiter
from tap_autopilot.http.read_ahead import SentSignalAdapter, notify_when_sent, read_ahead, request_sent

from .support import TIMEOUT

HELD = 0.2  # how long a test watches a page that must not be handed over yet


def taken_in_background(read, log):
    """Take the first page of `read` on another thread: (the thread, an Event set when taken)."""
    taken = threading.Event()

    def take():
        log.append(next(read))
        taken.set()

    thread = threading.Thread(target=take, daemon=True)
    thread.start()
    return thread, taken


def test_a_page_is_handed_over_once_the_next_page_s_request_is_written():
    log: list[str] = []
    written = threading.Event()

    def pages():
        yield "page 1"
        assert written.wait(TIMEOUT)  # page 2's request is being prepared until then
        log.append("page 2's request written")
        request_sent()
        yield "page 2"

    read = read_ahead(pages(), RateLimiter(1000), handover_wait=TIMEOUT)
    _, taken = taken_in_background(read, log)
    assert not taken.wait(HELD)  # held: the next request has not gone out
    written.set()
    assert taken.wait(TIMEOUT)
    assert log == ["page 2's request written", "page 1"]
    assert list(read) == ["page 2"]


def test_a_page_is_handed_over_after_the_wait_when_the_next_request_is_not_written():
    log: list[str] = []
    release = threading.Event()

    def pages():
        yield "page 1"
        release.wait(TIMEOUT)  # the limiter holds page 2's request
        yield "page 2"

    read = read_ahead(pages(), RateLimiter(1000), handover_wait=0.01)
    _, taken = taken_in_background(read, log)
    assert taken.wait(TIMEOUT)
    assert log == ["page 1"]
    release.set()
    assert list(read) == ["page 2"]


def test_the_last_page_and_a_failure_ahead_are_not_waited_for():
    def one_page():
        yield "only page"

    def failing_after_one():
        yield "page 1"
        raise RuntimeError("page 2 failed")

    for pages in (one_page(), failing_after_one()):
        log: list[str] = []
        thread, taken = taken_in_background(read_ahead(pages, RateLimiter(1000), handover_wait=60), log)
        assert taken.wait(TIMEOUT)  # not the 60 s wait: no request follows
        thread.join(TIMEOUT)
        assert log in (["only page"], ["page 1"])


def test_before_the_first_page_read_ahead_nothing_is_waited_for():
    def pages():
        yield "probe page"
        yield "page 2"

    log: list[str] = []
    _, taken = taken_in_background(read_ahead(pages(), RateLimiter(1000), start=2, handover_wait=60), log)
    assert taken.wait(TIMEOUT)  # page 2 is not asked for yet, so there is no request to wait for
    assert log == ["probe page"]


def test_the_adapter_signals_once_the_request_is_written_before_the_answer():
    server = socket.create_server(("127.0.0.1", 0))
    port = server.getsockname()[1]
    received, answer, signalled = threading.Event(), threading.Event(), threading.Event()

    def serve():
        conn, _ = server.accept()
        with conn:
            data = b""
            while b"\r\n\r\n" not in data:
                data += conn.recv(65536)
            received.set()
            answer.wait(TIMEOUT)
            conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 2\r\n\r\n{}")

    threading.Thread(target=serve, daemon=True).start()
    client = AutopilotClient({"api_key": "k", "base_url": f"http://127.0.0.1:{port}", "max_requests_per_second": 100})
    result = []

    def get():
        notify_when_sent(signalled.set)
        result.append(client.get("/lists"))

    thread = threading.Thread(target=get, daemon=True)
    thread.start()
    assert signalled.wait(TIMEOUT)
    assert not answer.is_set()  # signalled while the answer was still to come
    assert received.wait(TIMEOUT)
    answer.set()
    thread.join(TIMEOUT)
    server.close()
    assert result == [{}]


def test_a_thread_without_a_read_ahead_is_not_signalled_and_https_is_signalled_too():
    request_sent()  # no callback on this thread: nothing happens
    pools = SentSignalAdapter().poolmanager.pool_classes_by_scheme
    assert issubclass(pools["http"].ConnectionCls, urllib3.connection.HTTPConnection)
    assert issubclass(pools["https"].ConnectionCls, urllib3.connection.HTTPSConnection)
    for pool in pools.values():
        assert pool.ConnectionCls.request is not urllib3.connection.HTTPConnection.request


def test_the_read_ahead_thread_is_a_daemon_so_a_stopped_run_does_not_wait_for_it():
    # A run stopped mid-scan (SIGTERM, a fatal error) exits without waiting for the page ahead:
    # the thread that reads it is a daemon.
    release = threading.Event()

    def pages():
        yield "page 1"
        release.wait(TIMEOUT)  # page 2's answer never comes while the test looks
        yield "page 2"

    before = set(threading.enumerate())
    read = read_ahead(pages(), RateLimiter(1000), handover_wait=0.01)
    assert next(read) == "page 1"
    ahead = [thread for thread in threading.enumerate() if thread not in before]
    release.set()
    assert [thread.name.endswith("-ahead") for thread in ahead] == [True]
    assert ahead[0].daemon
    assert list(read) == ["page 2"]


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
