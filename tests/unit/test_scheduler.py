"""The scheduler's rules: chains that have not started go first, then the chain with the
most pages left; the first error stops every worker and wait() raises it; without an
error every chain runs to its end. No server; threads wait on events, never on time."""

import threading
import time

import pytest

from tap_autopilot.scheduler import Scheduler

TIMEOUT = 10  # a safety net against a hung test, never a measured duration


def chain(name, remaining, steps, before_step=None):
    """A page chain: one step per page, yielding the pages it still has to go after each."""
    for left in remaining:
        if before_step is not None:
            before_step()
        steps.append(name)
        yield left


def gated(steps):
    """A first chain that blocks the only worker until the test has added the others."""
    release = threading.Event()
    started = threading.Event()

    def gate():
        started.set()
        assert release.wait(TIMEOUT)
        yield 0

    return gate(), started, release


def run_in_order(chains, workers=1):
    """Add chains while a gate holds the single worker, release it, return the order of steps."""
    steps: list[str] = []
    scheduler = Scheduler(workers)
    gate, started, release = gated(steps)
    scheduler.add(gate)
    assert started.wait(TIMEOUT)
    for name, remaining in chains:
        scheduler.add(chain(name, remaining, steps))
    release.set()
    scheduler.wait()
    return steps


def test_new_chains_go_first_in_the_order_added():
    steps = run_in_order([("a", [1]), ("b", [1]), ("c", [1])])
    assert steps[:3] == ["a", "b", "c"]


def test_the_chain_with_the_most_pages_left_goes_next():
    steps = run_in_order([("short", [2, 1, 0]), ("long", [9, 8, 7, 6, 5, 4, 3, 2, 1, 0]), ("mid", [4, 3, 2, 1, 0])])
    assert steps[:3] == ["short", "long", "mid"]  # first pages: unknown length, in order
    assert steps[3:10] == ["long"] * 5 + ["mid", "long"]  # 8..4 beats 4 (the older 4 wins a tie)
    assert steps.count("long") == 10 and steps.count("mid") == 5 and steps.count("short") == 3


def test_a_chain_that_does_not_know_its_length_goes_before_known_ones():
    steps = run_in_order([("known", [50, 49, 48]), ("unknown", [None, None, 0])])
    assert steps[:5] == ["known", "unknown", "unknown", "unknown", "known"]


def test_every_chain_runs_to_its_end():
    steps: list[str] = []
    lock = threading.Lock()

    def counted(name, pages):
        for left in range(pages - 1, -1, -1):
            with lock:
                steps.append(name)
            yield left

    scheduler = Scheduler(4)
    expected = {f"chain-{n}": n % 7 + 1 for n in range(40)}
    for name, pages in expected.items():
        scheduler.add(counted(name, pages))
    scheduler.wait()
    assert {name: steps.count(name) for name in expected} == expected


def test_a_chain_that_yields_nothing_completes():
    scheduler = Scheduler(2)
    scheduler.add(iter(()))
    scheduler.wait()


def test_wait_without_chains_returns():
    Scheduler(3).wait()


def test_first_error_stops_every_chain_and_wait_raises_it():
    steps: list[str] = []
    scheduler = Scheduler(1)
    gate, started, release = gated(steps)
    scheduler.add(gate)
    assert started.wait(TIMEOUT)

    def failing():
        steps.append("failing")
        raise ValueError("page 1 failed")
        yield  # a generator

    scheduler.add(failing())
    scheduler.add(chain("after", [3, 2, 1, 0], steps))
    release.set()
    with pytest.raises(ValueError, match="page 1 failed"):
        scheduler.wait()
    assert steps == ["failing"], "a chain was advanced after the first error"


def test_workers_finish_their_current_page_and_take_no_other_after_an_error():
    steps: list[str] = []
    scheduler = Scheduler(2)
    in_page = threading.Event()
    finish_page = threading.Event()

    def slow_page():
        in_page.set()
        assert finish_page.wait(TIMEOUT)

    scheduler.add(chain("slow", [5, 4, 3, 2, 1, 0], steps, before_step=slow_page))
    assert in_page.wait(TIMEOUT)

    def failing():
        raise RuntimeError("boom")
        yield

    scheduler.add(failing())
    scheduler.add(chain("queued", [1, 0], steps))
    # The other worker has failed before the slow page completes (the slow chain, the longest,
    # would otherwise keep its worker and take its next step before the error).
    deadline = time.monotonic() + TIMEOUT
    while scheduler._error is None and time.monotonic() < deadline:
        time.sleep(0.001)
    raised = []

    def wait():
        try:
            scheduler.wait()
        except RuntimeError as error:
            raised.append(error)

    waiter = threading.Thread(target=wait)
    waiter.start()
    finish_page.set()  # the slow chain's page in flight completes ...
    waiter.join(TIMEOUT)
    assert not waiter.is_alive() and len(raised) == 1
    assert steps == ["slow"]  # ... and no chain takes another step


def test_wait_raises_the_first_of_several_errors():
    scheduler = Scheduler(1)
    first, second = ValueError("first"), ValueError("second")
    scheduler.fail(first)
    scheduler.fail(second)
    with pytest.raises(ValueError) as raised:
        scheduler.wait()
    assert raised.value is first


def test_fail_from_outside_stops_the_workers():
    steps: list[str] = []
    scheduler = Scheduler(1)
    gate, started, release = gated(steps)
    scheduler.add(gate)
    assert started.wait(TIMEOUT)
    scheduler.add(chain("later", [1, 0], steps))
    scheduler.fail(KeyboardInterrupt())
    release.set()
    with pytest.raises(KeyboardInterrupt):
        scheduler.wait()
    assert steps == []


def test_before_step_gets_the_pages_left_of_the_chain_about_to_step():
    """The sync hands it to the rate limiter: the longest scan also gets the next request slot."""
    seen: list[float] = []
    scheduler = Scheduler(1, before_step=seen.append)
    scheduler.add(chain("only", [5, 0], []))
    scheduler.wait()
    assert seen == [float("inf"), 5, 0]  # unknown before its first page, then what it yielded


def test_the_longest_chain_keeps_its_worker_and_the_others_keep_their_order():
    """With more than one worker, the chain with the most pages left is stepped again at once
    by its worker (its pages come one after another: a wait in the queue, even behind new
    chains' first pages, lengthens the sync); the other chains run on the other worker in
    the order a single worker gives them."""
    others = [("a", [1, 0]), ("b", [1, 0]), ("c", [1, 0])]
    alone = [step for step in run_in_order(others) if step != "long"]
    steps: list[str] = []
    threads: list[str] = []
    known, added, third, others_done = (threading.Event() for _ in range(4))

    def long_chain():
        for left in range(9, -1, -1):
            threads.append(threading.current_thread().name)
            if left == 8:  # its second step: it knows its length
                known.set()
                assert added.wait(TIMEOUT)  # new chains wait in the queue when this step ends
            elif left == 7:
                third.set()  # lets the other worker go on
                assert others_done.wait(TIMEOUT)  # holds its worker until the others are done
            yield left

    other_threads = set()

    def other(name, remaining):
        for left in remaining:
            steps.append(name)
            other_threads.add(threading.current_thread().name)
            if len(steps) == 2 * len(others):
                others_done.set()
            yield left

    scheduler = Scheduler(2)
    scheduler.add(long_chain())
    assert known.wait(TIMEOUT)
    started = threading.Event()

    def gate():  # holds the other worker until the longest chain's worker has chosen its next step
        started.set()
        assert third.wait(TIMEOUT)
        yield 0

    scheduler.add(gate())
    assert started.wait(TIMEOUT)
    for name, remaining in others:
        scheduler.add(other(name, remaining))
    added.set()
    scheduler.wait()
    assert steps == alone
    assert len(threads) == 10 and len(set(threads)) == 1, "the longest chain changed workers"
    assert not other_threads & set(threads), "the longest chain's worker left it for another chain"


def test_pages_left_counts_every_active_chain():
    """The rate limiter decides whether to book the longest scan's next starts by it (rate_limit.py)."""
    seen: list[float] = []
    scheduler = Scheduler(1)
    both_added = threading.Event()

    def first():
        assert both_added.wait(TIMEOUT)  # its first step waits until the other chain is queued too
        seen.append(scheduler.pages_left())
        yield 4
        seen.append(scheduler.pages_left())  # after the other chain's first step (unknown goes first)
        yield 0

    scheduler.add(first())
    scheduler.add(chain("other", [2, 0], []))
    both_added.set()
    scheduler.wait()
    # Two chains, neither knows its length yet: one page each; then 4 of its own and 2 of the other's.
    assert seen == [2, 4 + 2]


def test_workers_are_named_daemon_threads():
    """Daemon: a stopped run exits without waiting for a worker stuck in a request; named:
    log lines and thread dumps say which worker."""
    scheduler = Scheduler(2)
    try:
        assert [(thread.name, thread.daemon) for thread in scheduler._threads] == [
            ("autopilot-0", True),
            ("autopilot-1", True),
        ]
    finally:
        scheduler.wait()


def test_pages_left_follows_a_kept_chain_and_forgets_a_finished_one():
    """With two workers a lone chain keeps its worker; the pages it yields are what pages_left()
    counts, and once it ends (here two pages early) it counts no more; its worker lets go."""
    seen: list[float] = []
    scheduler = Scheduler(2, before_step=lambda left: seen.append(scheduler.pages_left()))
    scheduler.add(chain("ends early", [3, 2], []))
    scheduler.wait()
    assert seen == [1, 3, 2]  # unknown before its first page: one
    assert scheduler.pages_left() == 0
    assert scheduler._keeper is None, "the finished chain's worker still keeps it"


def test_a_kept_chain_yields_its_worker_to_a_queued_chain_with_more_pages_left():
    scheduler = Scheduler(2)
    with scheduler._cond:  # the workers wait for a notify this test never sends
        scheduler._heap = [(-10, 0, iter(()))]  # a chain with 10 pages left waits in the queue
        assert scheduler._keeps(11) and scheduler._keeper is threading.current_thread()
        assert not scheduler._keeps(5) and scheduler._keeper is None
        assert not scheduler._keeps(10), "a tie goes to the queued chain"
        scheduler._heap = []
    scheduler.wait()
