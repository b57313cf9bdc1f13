"""The rate limiter every request of the tap passes (AutopilotClient.request), from any thread:
request starts spaced evenly, the most urgent first, the critical scan's next slot booked ahead."""

import math
import sys
import threading
import time
from collections.abc import Callable


class RateLimiter:
    """Keeps request starts at least `interval` apart (1/rate with SAFETY's slack), however
    many threads share it, so that no one-second window ever holds more than `rate`
    requests (rounded up: even spacing at 2.5/s puts 3 in some windows). An idle gap saves
    nothing up: the next requests start one interval apart again.

    Slots go to the most urgent request first (the scheduler sets each worker's priority
    to its scan's pages left): a waiting thread's slot moves later when a more urgent
    request needs a start within an interval of it; equal urgency is first come first served.

    The critical path: the scan with the most pages left is sequential (each cursor comes
    from the page before), so every moment its next request waits for a slot lengthens the
    whole sync, while the other scans' requests could as well go a little later. So when
    the most urgent request starts, and its round trips rather than the limit bound what
    is left of the sync, it books its thread's next slot ahead, about when its
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

    def __init__(
        self, rate: float, clock: Callable[[], float] = time.monotonic, sleep: Callable[[float], None] = time.sleep
    ) -> None:
        self.interval = self.SAFETY / float(rate)
        self._clock = clock
        self._sleep = sleep
        self._latest = -math.inf  # the latest slot that started
        self._paused_until = 0.0
        self._waiting: list[list[float]] = []  # [slot, priority] of each thread waiting for its slot
        self._booked: list[float] | None = None  # [slot, priority]: the critical request's next slot
        self._local = threading.local()
        self._lock = threading.Lock()

    def set_priority(self, priority: float, pages_left: float = 0) -> None:
        """This thread's urgency for its next requests (higher first; default 0: the scheduler
        passes its scan's pages left), and the pages all scans have left."""
        self._local.priority = priority
        self._local.pages_left = pages_left

    def priority(self) -> tuple[float, float]:
        """This thread's (priority, pages left) as set_priority set them, to hand them to
        another thread that requests for the same scan (client.paginate's page ahead)."""
        return getattr(self._local, "priority", 0), getattr(self._local, "pages_left", 0)

    def acquire(self) -> None:
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
                    if self._paused_until <= now:
                        self._start(ticket, now, cycle, priority)
                        return
                    # A pause that began while this thread waited for its slot holds it too.
                    ticket[0] = now
                    self._place(ticket)
                target = ticket[0]
            wait = target - self._clock()
            if wait > 0:
                self._sleep(wait)
            slept_until = target

    def _start(self, ticket: list[float], now: float, cycle: float, priority: float) -> None:
        # Callers hold the lock.
        self._waiting.remove(ticket)
        # The next slots follow this one's slot, not its real start: a thread that woke late
        # does not make every later request late (spacing real starts instead cost 1-2 s at
        # 5 r/s on a busy machine, and did not prevent the 429s that bunched arrivals cause).
        self._latest = max(self._latest, ticket[0])
        self._local.started = now
        # Book ahead for the most urgent scan of known length only; not after its last page (pages
        # left 1: a booking nobody claims keeps a slot unused); and only while its round trips,
        # not the limit, bound what is left of the sync: otherwise it has time to spare, and
        # bookings (unclaimed in time when scans of like length take turns) cost 1.5 s at 5 r/s.
        if (
            priority * cycle > getattr(self._local, "pages_left", 0) * self.interval
            and 1 < priority < self._FIRST_PAGE
            and all(other[1] <= priority or other[1] >= self._FIRST_PAGE for other in self._waiting)
            and (self._booked is None or self._booked[1] <= priority or self._expired(now))
        ):
            self._local.booking = self._booked = [now + self._ahead(cycle, priority), priority]
            self._bump(self._booked)

    def _ahead(self, cycle: float, pages_left: float) -> float:
        """How far ahead of its start the critical request's next slot is booked: whichever
        of two ways finishes the scans' pages left sooner. Rounding its cycle up to whole
        intervals lets the others' requests fill every slot between two of its own, but
        makes it wait; booking it at its cycle never makes it wait, but the slots between
        its requests then hold one fewer of theirs (none when the cycle is under two
        intervals). At 5 r/s and 300 ms the first wins (booked at its cycle, a third of the
        limit went unused); at 20 r/s and 100 ms the second (rounded up, it waited half of
        each round trip)."""
        interval = self.interval
        intervals = max(1, math.ceil(cycle / interval - self._EPSILON))
        between = max(0, math.floor(cycle / interval + self._EPSILON) - 1)
        others_left = max(0, getattr(self._local, "pages_left", 0) - pages_left)
        rounded_up = max(pages_left * intervals, pages_left + others_left) * interval
        at_cycle = pages_left * cycle + max(0, others_left - pages_left * between) * interval
        return intervals * interval if rounded_up <= at_cycle else max(cycle, interval)

    def _expired(self, now: float) -> bool:
        return self._booked is not None and self._booked[0] + self.interval <= now

    def _place(self, ticket: list[float]) -> None:
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

    def _bump(self, ticket: list[float]) -> None:
        # Callers hold the lock.
        for other in sorted(self._held()):
            if other[1] < ticket[1] and abs(other[0] - ticket[0]) < self.interval - self._EPSILON:
                other[0] = ticket[0] + self.interval
                self._place(other)  # later only: a thread asleep until its old slot sleeps again

    def _held(self) -> list[list[float]]:
        return self._waiting if self._booked is None else [*self._waiting, self._booked]

    def pause(self, seconds: float) -> None:
        """Hold every thread back: the server asked us to slow down."""
        with self._lock:
            until = self._clock() + seconds
            self._paused_until = max(self._paused_until, until)
