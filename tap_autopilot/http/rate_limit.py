"""The rate limiter every request of the tap passes (AutopilotClient.request), from any thread:
no window of the limit's length ever holds more starts than the limit, the most urgent
request goes first, and the critical scan's next request finds its room kept."""

import bisect
import math
import sys
import threading
import time
from collections.abc import Callable
from typing import NamedTuple


class RateLimiter:
    """Two rules, kept across every thread that shares the limiter:

    - The window: no `window` (SAFETY seconds) holds more than `room` starts (the rate; one
      start an interval for a fractional rate). Starts count when a thread really leaves
      acquire(), so one that woke late cannot arrive bunched with the next.
    - The grid: a scan's pages of known length start at least an interval apart, so that the
      other scans' requests go out evenly; an idle gap saves nothing up.

    The most urgent request goes first (the scheduler's pages left per scan; equal urgency
    first come first served). The scan with the most pages left is the critical path: each
    moment its next request waits lengthens the sync. So while its pace is below the limit, its
    next starts in the coming window are booked when that finishes sooner (_booking_is_sooner),
    and the others' requests leave them room. The request claiming a booking, and a scan's first
    page (its length unknown), start off the grid.
    The measurements behind these rules: docs/performance.md#the-rate-limiter."""

    # 2% slack on the window (20 ms a second): requests leave on time but can arrive bunched
    # (network, a busy server or client), and one 429 costs a whole pause. More slack costs
    # every sync the limit binds (docs/performance.md#the-rate-limiter).
    SAFETY = 1.02
    # Slots computed as sums of intervals may miss an interval by a rounding error.
    _EPSILON = 1e-9
    _FIRST_PAGE = sys.float_info.max  # the priority of a scan's first page
    _CRITICAL = math.inf  # the priority of the request that claims its booking
    # A booking is made this part of the scan's last cycle ahead: a request that comes a
    # little late still finds its room kept (the booking holds it for a whole window),
    # one that came early would wait for it.
    _BOOK_AHEAD = 0.9

    def __init__(
        self, rate: float, clock: Callable[[], float] = time.monotonic, sleep: Callable[[float], None] = time.sleep
    ) -> None:
        rate = float(rate)
        self.interval = self.SAFETY / rate
        self.room = int(rate) if rate >= 1 and rate == int(rate) else 1
        self.window = self.room * self.interval
        self._clock = clock
        self._sleep = sleep
        self._starts: list[float] = []  # real starts within the last window, in time order
        self._latest = -math.inf  # the latest slot on the grid that started
        self._paused_until = 0.0
        self._waiting: list[list[float]] = []  # [slot, priority] of each thread waiting, in order of asking
        self._booked: Booking | None = None  # the critical scan's next starts
        self._urgent: tuple[float, float, int] | None = None  # (priority, start, thread) of the critical scan
        # The pages all scans have left, now (the scheduler's pages_left, set by the sync;
        # without it, the booking scan's own are all there are).
        self.all_pages_left: Callable[[], float] = lambda: 0
        self._local = threading.local()
        self._lock = threading.Lock()
        self._fill_window(clock())

    def set_priority(self, priority: float) -> None:
        """This thread's urgency for its next requests (higher first; default 0: the scheduler
        passes its scan's pages left)."""
        self._local.priority = priority

    def priority(self) -> float:
        """This thread's priority as set_priority set it, to hand it to another thread that
        requests for the same scan (read_ahead's thread)."""
        return getattr(self._local, "priority", 0)

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
            self._waiting.append(ticket)
            self._schedule(ticket)
            slept_until = now
        while True:
            with self._lock:
                # A fake clock may stand still while this thread sleeps: it has slept until its target.
                now = max(self._clock(), slept_until)
                if ticket[0] <= now + self._EPSILON:
                    if self._paused_until <= now:
                        self._start(ticket, now, cycle, priority)
                        return
                    self._schedule()  # a pause that began while this thread waited holds it too
                target = ticket[0]
            wait = target - self._clock()
            if wait > 0:
                self._sleep(wait)
            slept_until = target

    def pause(self, seconds: float) -> None:
        """Hold every thread back: the server asked us to slow down."""
        with self._lock:
            until = self._clock() + seconds
            if until > self._paused_until:
                self._paused_until = until
                self._fill_window(until)

    def _fill_window(self, until: float) -> None:
        """Count the window before `until` as used, one start an interval: requests after it
        start an interval apart, no burst, until it has passed. At the start of a run, the
        server may count requests this process did not send (a discovery run a moment
        before, another run with the key: the benchmark's discovery drew a 429 from the
        first burst); after a 429, it counted more than we did."""
        for step in range(1, self.room):
            bisect.insort(self._starts, until - self.window + step * self.interval)

    def _start(self, ticket: list[float], now: float, cycle: float, priority: float) -> None:
        # Callers hold the lock.
        self._waiting.remove(ticket)
        if ticket[1] < self._FIRST_PAGE:
            # The grid follows the slot, not the real start: a thread that woke late does not
            # make every later request late (the window, which counts real starts, keeps the limit).
            self._latest = max(self._latest, ticket[0])
        bisect.insort(self._starts, now)
        self._local.started = now
        # The most urgent scan of known length that started a request within the last window:
        # only it books (the others' requests start while it is on its round trip).
        me, urgent = threading.get_ident(), self._urgent
        if priority < self._FIRST_PAGE and (
            urgent is None or priority >= urgent[0] or urgent[2] == me or urgent[1] + self.window <= now
        ):
            self._urgent = urgent = (priority, now, me)
        # Book only for the most urgent scan of known length; not after its last page (pages
        # left 1: a booking nobody claims keeps room unused); only while its pace is below the
        # limit (above it, its top priority gives it every slot); and only when that finishes
        # the pages left sooner than giving it the next slot of the grid.
        if (
            1 < priority < self._FIRST_PAGE
            and cycle > self.interval
            and urgent is not None
            and urgent[2] == me
            and self._booking_is_sooner(cycle, priority)
            and all(other[1] <= priority or other[1] >= self._FIRST_PAGE for other in self._waiting)
            and (self._booked is None or self._booked.priority <= priority or self._expired(now))
        ):
            booking = self._book(now, cycle, priority)
            if booking is not None:
                self._local.booking = self._booked = booking
        self._schedule()

    def _booking_is_sooner(self, cycle: float, pages_left: float) -> bool:
        """Whether booking the scan's next starts at its own pace finishes the pages all scans
        have left sooner than giving it the next slot of the grid. Booked, it never waits, but
        in a window holding k of its starts the other scans' requests have only the room left
        (k rounded up: a pace of 3.4 a window puts 4 in some), and the rest go after it. Not
        booked, it waits for the grid, so each of its cycles is rounded up to whole intervals,
        and the others' requests fill every slot between two of its own. Which costs more
        depends on the rate and the round trip (docs/performance.md#the-rate-limiter). The pages
        all scans have left are asked for now (`all_pages_left`): a request that waited long
        would have an old count."""
        interval, window = self.interval, self.window
        all_left = max(self.all_pages_left(), pages_left)
        others_left = all_left - pages_left
        free = self.room - math.ceil(window / cycle - self._EPSILON) if cycle > 0 else 0
        beside = pages_left * cycle * free / window  # the others' requests that fit while it runs
        booked = pages_left * cycle + max(0, others_left - beside) * interval
        on_the_grid = max(pages_left * math.ceil(cycle / interval - self._EPSILON) * interval, all_left * interval)
        return booked < on_the_grid

    def _book(self, now: float, cycle: float, priority: float) -> "Booking | None":
        """The scan's next starts within a window from now, a cycle apart (the first a little
        early), each where the window has room: the other scans' requests placed later leave
        them theirs, so that it can keep its pace however many requests the others have.
        None when none falls within the window (a cycle that held a 429's pause)."""
        counted = list(self._starts)
        slots: list[float] = []
        slot = now + self._BOOK_AHEAD * cycle
        # Not beyond its last page: priority is its pages left, this one included.
        while slot < now + self.window and len(slots) < priority - 1:
            slot = self._room_from(slot, counted)
            bisect.insort(counted, slot)
            slots.append(slot)
            slot += cycle
        return Booking(priority, slots) if slots else None

    def _expired(self, now: float) -> bool:
        """An unclaimed booking holds its room for a window, then no longer."""
        return self._booked is not None and self._booked.slots[0] + self.window <= now

    def _schedule(self, asking: list[float] | None = None) -> None:
        """Give every waiting thread its slot, the most urgent first (equal urgency in order
        of asking): the earliest at or after its current one that keeps the window (with the
        real starts, the booking and the slots of those placed before it), the end of a
        pause, and, on the grid, an interval from the slots placed before it and, for the
        thread `asking`, from the latest slot that started. Callers hold the lock."""
        horizon = self._clock() - self.window
        drop = bisect.bisect_right(self._starts, horizon)
        if drop:
            del self._starts[:drop]
        placed: list[list[float]] = []
        for ticket in sorted(self._waiting, key=lambda waiting: -waiting[1]):
            slot, priority = max(ticket[0], self._paused_until), ticket[1]
            off_grid = priority >= self._FIRST_PAGE
            # The booking holds its room against less urgent requests, and against first pages
            # (they go before the known ones, not before the critical request).
            booked = (
                self._booked.slots
                if self._booked is not None and (priority < self._booked.priority or priority == self._FIRST_PAGE)
                else []
            )
            counted: list[float] = []
            if len(self._starts) + len(placed) + len(booked) >= self.room:  # else every window has room
                counted = sorted([*self._starts, *(other[0] for other in placed), *booked])
            while True:
                before = slot
                if not off_grid:
                    if ticket is asking:
                        slot = max(slot, self._latest + self.interval)
                    for other in sorted(placed):
                        if other[1] < self._FIRST_PAGE and abs(other[0] - slot) < self.interval - self._EPSILON:
                            slot = other[0] + self.interval
                slot = self._room_from(slot, counted)
                if slot == before:
                    break
            ticket[0] = slot
            placed.append(ticket)

    def _room_from(self, slot: float, counted: list[float]) -> float:
        """The earliest moment at or after `slot` at which a start keeps every window within
        the room, given the starts (and slots) `counted`, in time order."""
        room, window = self.room, self.window
        if len(counted) < room:
            return slot
        while True:
            before = slot
            # The window ending at this start: its room-th latest start must be a window back.
            earlier = bisect.bisect_right(counted, slot)
            if earlier >= room:
                slot = max(slot, counted[earlier - room] + window)
            # The windows ending at the slots after it, which it would be in: each must have room.
            for later in counted[bisect.bisect_right(counted, slot) :]:
                if later >= slot + window:
                    break
                inside = bisect.bisect_right(counted, later) - bisect.bisect_right(counted, later - window)
                if inside >= room:
                    slot = later + self._EPSILON
                    break
            if slot == before:
                return slot


class Booking(NamedTuple):
    """The critical scan's next starts, held for it in the window (RateLimiter._book)."""

    priority: float  # its pages left when it booked
    slots: list[float]
