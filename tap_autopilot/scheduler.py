"""Runs scans concurrently, the scan with the most pages left first.

What add() takes (its parameter is named `chain`) is a scan's steps: a generator
that reads and writes one page each time it is advanced and then yields how many
pages it still has to go (None while it does not know yet); scans.PageScan
writes the contract down. Cursor pagination is sequential within a scan, so the
sync's length is bounded below by its longest scan: always advancing the scan
with the most pages left keeps that scan busy and the others filling the rest
of the rate limit, instead of leaving one long scan to run alone at the end.
Workers hold at most one page each. before_step(pages left), if given, runs on the
worker before each step: the sync passes the rate limiter's set_priority, so that
the scan with the most pages left also gets the next request slot.
"""

import heapq
import itertools
import threading
from collections.abc import Callable, Iterator

UNKNOWN = float("inf")  # a scan that has not read its first page yet goes first

# A scan's steps: each advance reads and writes one page, then yields the pages left (None: unknown).
Steps = Iterator[int | None]


class Scheduler:
    def __init__(self, workers: int, before_step: Callable[[float], None] | None = None) -> None:
        self._before_step = before_step
        self._heap: list[tuple[float, int, Steps]] = []
        self._order = itertools.count()
        self._cond = threading.Condition()
        self._active = 0  # scans added and not finished
        self._closed = False  # no more scans will be added
        self._error: BaseException | None = None
        self._threads = [
            threading.Thread(target=self._work, name=f"autopilot-{n}", daemon=True) for n in range(workers)
        ]
        for thread in self._threads:
            thread.start()

    def add(self, chain: Steps) -> None:
        with self._cond:
            self._active += 1
            self._push(UNKNOWN, chain)

    def _push(self, remaining: float | None, chain: Steps) -> None:
        heapq.heappush(self._heap, (-(UNKNOWN if remaining is None else remaining), next(self._order), chain))
        self._cond.notify()

    def _work(self) -> None:
        while True:
            with self._cond:
                while not self._heap and self._error is None and not (self._closed and self._active == 0):
                    self._cond.wait()
                if self._error is not None or not self._heap:
                    self._cond.notify_all()
                    return
                urgency, _, chain = heapq.heappop(self._heap)
            try:
                if self._before_step is not None:
                    self._before_step(-urgency)
                remaining = next(chain)
            except StopIteration:
                with self._cond:
                    self._active -= 1
                    self._cond.notify_all()
                continue
            except BaseException as error:  # any failure stops the run; wait() re-raises it
                self.fail(error)
                return
            with self._cond:
                self._push(remaining, chain)

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
