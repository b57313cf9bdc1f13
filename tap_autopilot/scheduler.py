"""Runs scans concurrently, the scan with the most pages left first.

What add() takes is a scan's steps: a generator that reads and writes one page each
time it is advanced and then yields how many pages it still has to go (None while it
does not know yet); streams.base.PageScan writes the contract down. Cursor pagination
is sequential within a scan, so the sync's length is bounded below by its longest scan:
always advancing the scan with the most pages left keeps that scan busy and the others
filling the rest of the rate limit, instead of leaving one long scan to run alone at the
end. With more than one worker, the scan with the most pages left keeps its worker
between pages (see _keeps). Workers hold at most one page each. before_step(pages left),
if given, runs on the worker before each step: the runner makes it the worker's priority
in the rate limiter, which also asks pages_left() when it decides whether the scan with
the most pages left gets its next starts booked (rate_limit.py).
"""

import heapq
import itertools
import threading
from collections.abc import Callable

from tap_autopilot.streams.base import Steps

UNKNOWN = float("inf")  # a scan that has not read its first page yet goes first


class Scheduler:
    def __init__(self, workers: int, before_step: Callable[[float], None] | None = None) -> None:
        self._before_step = before_step
        self._heap: list[tuple[float, int, Steps]] = []
        self._order = itertools.count()
        self._cond = threading.Condition()
        self._active = 0  # scans added and not finished
        self._closed = False  # no more scans will be added
        self._error: BaseException | None = None
        self._keeper: threading.Thread | None = None  # the worker keeping the longest scan (see _keeps)
        self._left: dict[int, float] = {}  # pages left of each active scan, by id of its steps
        self._threads = [
            threading.Thread(target=self._work, name=f"autopilot-{n}", daemon=True) for n in range(workers)
        ]
        for thread in self._threads:
            thread.start()

    def add(self, steps: Steps) -> None:
        with self._cond:
            self._active += 1
            self._push(UNKNOWN, steps)

    def pages_left(self) -> float:
        """The pages every active scan has left (one for a scan that does not know yet)."""
        with self._cond:
            return sum(1 if left == UNKNOWN else left for left in self._left.values())

    def _push(self, remaining: float | None, steps: Steps) -> None:
        self._left[id(steps)] = UNKNOWN if remaining is None else remaining
        heapq.heappush(self._heap, (-(UNKNOWN if remaining is None else remaining), next(self._order), steps))
        self._cond.notify()

    def _work(self) -> None:
        steps: Steps | None
        steps, urgency = None, 0.0  # the scan this worker steps (again, when it is the longest)
        while True:
            if steps is None:
                with self._cond:
                    while not self._heap and self._error is None and not (self._closed and self._active == 0):
                        self._cond.wait()
                    if self._error is not None or not self._heap:
                        self._cond.notify_all()
                        return
                    urgency, _, steps = heapq.heappop(self._heap)
            try:
                if self._before_step is not None:
                    self._before_step(-urgency)
                remaining = next(steps)
            except StopIteration:
                with self._cond:
                    self._active -= 1
                    self._left.pop(id(steps), None)
                    if self._keeper is threading.current_thread():
                        self._keeper = None
                    self._cond.notify_all()
                steps = None
                continue
            except BaseException as error:  # any failure stops the run; wait() re-raises it
                self.fail(error)
                return
            with self._cond:
                if self._keeps(remaining):
                    assert remaining is not None  # _keeps keeps only a scan that knows its length
                    urgency = -remaining
                    self._left[id(steps)] = remaining
                    continue
                self._push(remaining, steps)
                steps = None

    def _keeps(self, remaining: float | None) -> bool:
        """Whether this worker steps its scan again at once (callers hold the condition): with
        more than one worker, the scan with the most pages left keeps its worker, while the
        other workers take the rest in the usual order. Its pages come one after another, so
        each wait in the queue, even behind first pages, lengthens the whole sync."""
        me = threading.current_thread()
        if len(self._threads) < 2 or remaining is None or self._error is not None or self._keeper not in (None, me):
            kept = False
        else:
            known = [-urgency for urgency, _, _ in self._heap if -urgency != UNKNOWN]
            kept = remaining > max(known, default=-1)
        if self._keeper is me and not kept:
            self._keeper = None
        elif kept:
            self._keeper = me
        return kept

    def fail(self, error: BaseException) -> None:
        """Stop every worker after its current page; wait() raises the first error."""
        with self._cond:
            if self._error is None:
                self._error = error
            self._cond.notify_all()

    def wait(self) -> None:
        """Block until every scan has finished, then raise the first error if any."""
        with self._cond:
            self._closed = True
            self._cond.notify_all()
            while self._active and self._error is None:
                self._cond.wait()
        for thread in self._threads:
            thread.join()
        if self._error is not None:
            raise self._error
