"""The rate limiter (http/rate_limit.py): the window, the grid, the most urgent request first,
the pause after a 429, and the critical scan's booked starts. A fake clock (or a simulated
one for several threads) stands in for time: no test waits."""

import itertools
import math
import threading

import pytest

from tap_autopilot.http.rate_limit import Booking, RateLimiter

from .support import TIMEOUT, FakeTime


class SlackOf105(RateLimiter):
    """The limiter with 1.1.0's 5% slack: the slots some tests below name (1000.105 at 10 r/s)
    were written for it; the rules they check do not depend on the slack."""

    SAFETY = 1.05


def assert_no_window_over(starts, most, window=1.0):
    starts = sorted(starts)
    for i, first in enumerate(starts):
        in_window = sum(1 for s in starts[i:] if s < first + window)
        assert in_window <= most, f"{in_window} starts in the {window} s from {first}"


# ----- the window and the pause ----------------------------------------------------------------


@pytest.mark.parametrize("rate, window", [(1, 1), (5, 1), (10, 1), (20, 1), (100, 1), (2.5, 2), (0.5, 2)])
def test_rate_limiter_no_one_second_window_holds_more_than_rate_starts(rate, window):
    """For a fractional rate the bound holds over the shortest window with a whole number of requests."""
    fake_time = FakeTime()
    limiter = RateLimiter(rate, clock=fake_time.clock, sleep=fake_time.sleep)
    starts = []
    for _ in range(int(rate * 10) + 5):
        limiter.acquire()
        starts.append(fake_time.now)
    assert_no_window_over(starts, rate * window, window)
    assert starts[-1] - starts[0] < len(starts) / rate * 1.1, "the limiter is far slower than its rate"


def test_rate_limiter_spaces_starts_across_threads():
    """Many threads, one limiter: every start gets its own slot. The clock stands still and
    each sleep records the time its thread will start at."""
    starts = []
    lock = threading.Lock()

    def sleep(seconds):
        with lock:
            starts.append(1000.0 + seconds)

    limiter = RateLimiter(10, clock=lambda: 1000.0, sleep=sleep)

    def worker():
        for _ in range(25):
            limiter.acquire()

    threads = [threading.Thread(target=worker) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(10)
    starts.append(1000.0)  # the first acquire did not sleep
    assert len(starts) == 200 and len(set(starts)) == 200
    assert_no_window_over(starts, 10)


def test_rate_limiter_pause_holds_every_later_request():
    fake_time = FakeTime()
    limiter = RateLimiter(5, clock=fake_time.clock, sleep=fake_time.sleep)
    limiter.acquire()
    limiter.pause(12)
    paused_at = fake_time.now
    limiter.acquire()
    assert fake_time.now >= paused_at + 12
    limiter.acquire()
    assert fake_time.now >= paused_at + 12 + limiter.interval


def test_rate_limiter_pause_holds_a_thread_already_waiting_for_its_slot():
    fake_time = FakeTime()
    limiter = RateLimiter(5, clock=fake_time.clock, sleep=fake_time.sleep)
    limiter.acquire()  # takes the slot at `now`
    pauses: list[float] = []

    def pause_meanwhile():
        pauses.append(fake_time.now)
        limiter.pause(30)

    fake_time.on_sleep = pause_meanwhile
    limiter.acquire()  # waits for the next slot; a 429 pauses meanwhile
    assert pauses, "the second acquire never waited"
    assert fake_time.now >= pauses[0] + 30


def test_rate_limiter_a_shorter_pause_does_not_shorten_a_longer_one():
    fake_time = FakeTime()
    limiter = RateLimiter(5, clock=fake_time.clock, sleep=fake_time.sleep)
    limiter.pause(20)
    limiter.pause(1)
    started = fake_time.now
    limiter.acquire()
    assert fake_time.now >= started + 20


# ----- the most urgent first -------------------------------------------------------------------


def limiter_with_waiting_threads(waiting):
    """A limiter whose first slot (1000.0) is taken, with threads of [slot, priority] asleep
    until their slots; the clock stands still. Returns it and the start of each later acquire."""
    limiter = SlackOf105(10, clock=lambda: 1000.0, sleep=lambda seconds: None)
    limiter.acquire()
    limiter._waiting = waiting
    starts: list[float] = []
    limiter._sleep = lambda seconds: starts.append(1000.0 + seconds)
    return limiter, starts


def test_rate_limiter_gives_a_more_urgent_thread_the_earliest_slot_a_waiting_thread_holds():
    """The longest scan bounds the sync: when it asks for a slot, it takes the earliest
    one held by a less urgent waiting thread, which waits for the next slot instead."""
    limiter, starts = limiter_with_waiting_threads([[1000.105, 1], [1000.21, 1]])
    limiter.set_priority(50)
    limiter.acquire()
    assert starts == [pytest.approx(1000.105)], "the urgent thread did not take the earliest waiting slot"
    assert sorted(slot for slot, _ in limiter._waiting) == [pytest.approx(1000.21), pytest.approx(1000.315)]


def test_rate_limiter_equal_urgency_keeps_first_come_first_served():
    limiter, starts = limiter_with_waiting_threads([[1000.105, 7]])
    limiter.set_priority(7)
    limiter.acquire()
    assert starts == [pytest.approx(1000.21)]
    assert limiter._waiting == [[pytest.approx(1000.105), 7]]


def test_rate_limiter_a_thread_whose_slot_was_taken_waits_for_its_new_slot():
    """Moved to a later slot while it slept, a thread sleeps again rather than start early."""
    fake_time = FakeTime()
    limiter = SlackOf105(10, clock=fake_time.clock, sleep=fake_time.sleep)
    limiter.acquire()  # 1000.0

    def an_urgent_thread_arrives():  # runs while this thread sleeps towards its slot (1000.105)
        with limiter._lock:
            mine = limiter._waiting[0]
            mine[0] += limiter.interval  # what an urgent acquire does: moves it one slot later

    fake_time.on_sleep = an_urgent_thread_arrives
    limiter.acquire()
    assert fake_time.now == pytest.approx(1000.21), "started at the slot it lost"
    assert limiter._waiting == []


def test_rate_limiter_a_thread_without_a_priority_is_the_least_urgent():
    """Threads outside the scheduler never set a priority: they take no slot from a scan's
    thread, even one whose scan has 0 pages left."""
    limiter, starts = limiter_with_waiting_threads([[1000.105, 0]])
    limiter.acquire()
    assert starts == [pytest.approx(1000.21)]


def test_rate_limiter_an_urgent_thread_takes_the_earliest_slot_not_the_least_urgent_thread_s():
    limiter, starts = limiter_with_waiting_threads([[1000.105, 5], [1000.21, 1]])
    limiter.set_priority(50)
    limiter.acquire()
    assert starts == [pytest.approx(1000.105)]


# ----- the critical scan among others, on simulated time ---------------------------------------


class VirtualTime:
    """Simulated time for several threads: time moves only when every thread of the
    simulation is asleep, straight to the earliest wake-up. No real waiting."""

    def __init__(self, threads, now=1000.0):
        self.now = now
        self._threads = threads
        self._asleep: list[float] = []
        self._cond = threading.Condition()
        self.done = 0

    def clock(self):
        return self.now

    def sleep(self, seconds):
        with self._cond:
            until = self.now + seconds
            self._asleep.append(until)
            if len(self._asleep) + self.done == self._threads:
                self._advance()
            while self.now < until:
                assert self._cond.wait(TIMEOUT), "the simulation hung"
            self._asleep.remove(until)

    def finished(self):
        with self._cond:
            self.done += 1
            if self._asleep and len(self._asleep) + self.done == self._threads:
                self._advance()

    def _advance(self):
        self.now = max(self.now, min(self._asleep))
        self._cond.notify_all()


def simulate(rate, critical_round_trip, others, other_round_trip, pages, others_left):
    """One scan of `pages` pages at the top priority (its pages left) and `others` threads
    of less urgent scans that always want a request, each request one round trip long; the
    scheduler tells each thread the pages all scans have left, `others_left` of them the
    other scans'. Returns the critical scan's (asked, started) times, every start as
    (time, who), and the limiter."""
    clock = VirtualTime(others + 1)
    limiter = RateLimiter(rate, clock=clock.clock, sleep=clock.sleep)
    critical: list[tuple[float, float]] = []
    starts: list[tuple[float, str]] = []
    lock = threading.Lock()
    stop = threading.Event()
    critical_left = [pages]
    limiter.all_pages_left = lambda: critical_left[0] + others_left

    def scan(name, priority, round_trip, count):
        try:
            for page in range(count):
                if stop.is_set():
                    return
                limiter.set_priority(priority(page))
                if name == "critical":
                    critical_left[0] = pages - page
                asked = clock.now
                limiter.acquire()
                with lock:
                    starts.append((clock.now, name))
                    if name == "critical":
                        critical.append((asked, clock.now))
                clock.sleep(round_trip)
        finally:
            if name == "critical":
                stop.set()
            clock.finished()

    threads = [
        threading.Thread(target=scan, args=("critical", lambda page: 100 + pages - page, critical_round_trip, pages))
    ]
    threads += [
        threading.Thread(target=scan, args=(f"other-{n}", lambda page, n=n: 5 - n, other_round_trip, 10**6))
        for n in range(others)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(TIMEOUT)
    assert not any(thread.is_alive() for thread in threads), "the simulation hung"
    return critical, starts, limiter


def critical_waits(critical):
    """How long each of the critical scan's requests waited, after the two that measure its cycle."""
    return [started - asked for asked, started in critical[2:]]


def assert_the_others_fill_the_limit(starts, rate):
    """At least 90% of the slots the limit allows are used (others arriving between two slots
    cost a little; booking the critical scan at its exact cycle lost a third at 5 r/s and 300 ms)."""
    span = starts[-1][0] - starts[0][0]
    assert len(starts) >= 0.9 * span * rate / RateLimiter.SAFETY, "the other scans did not fill the rest"


@pytest.mark.parametrize("rate, round_trip", [(20, 0.11), (20, 0.1), (50, 0.05), (5, 0.3), (10, 0.107)])
def test_rate_limiter_the_critical_scan_is_sent_without_waiting_while_other_scans_saturate_the_limit(rate, round_trip):
    """The scan with the most pages left bounds the sync (the others have few pages left):
    once it has measured its cycle, each of its requests starts the moment it asks, while
    three less urgent threads ask for every slot."""
    critical, starts, _ = simulate(rate, round_trip, others=3, other_round_trip=0.107, pages=30, others_left=3)
    assert len(critical) == 30
    assert critical_waits(critical) == [0.0] * 28
    assert sum(1 for _, who in starts if who != "critical") > 0
    assert_no_window_over([time for time, _ in starts], rate)


@pytest.mark.parametrize("rate, round_trip", [(20, 0.11), (50, 0.05), (5, 0.3), (5, 0.1)])
def test_rate_limiter_when_the_rate_limit_binds_the_critical_scan_leaves_no_slot_unused(rate, round_trip):
    """The other scans have more requests left than fit beside the critical scan's at its pace:
    it is not booked (its starts would leave them less room than the limit allows) and waits
    less than an interval for the grid, whose every slot is used."""
    critical, starts, limiter = simulate(rate, round_trip, others=3, other_round_trip=0.107, pages=30, others_left=500)
    assert max(critical_waits(critical)) < limiter.interval
    assert_the_others_fill_the_limit(starts, rate)


@pytest.mark.parametrize("rate, round_trip", [(20, 0.1), (50, 0.05), (5, 0.3), (2.5, 0.2)])
def test_rate_limiter_booking_ahead_keeps_every_one_second_window_within_the_limit(rate, round_trip):
    _, starts, _ = simulate(rate, round_trip, others=3, other_round_trip=0.093, pages=40, others_left=30)
    times = [time for time, _ in starts]
    if rate == int(rate):
        assert_no_window_over(times, rate)
    else:
        assert_no_window_over(times, rate * 2, 2)
    # The limiter's own window (SAFETY seconds) holds no more either; the other scans keep the grid.
    assert_no_window_over(times, max(1, int(rate)), max(1, int(rate)) * RateLimiter.SAFETY / rate - 1e-9)
    others = sorted(time for time, who in starts if who != "critical")
    assert min(b - a for a, b in itertools.pairwise(others)) >= RateLimiter.SAFETY / rate - 1e-9


def test_rate_limiter_less_urgent_threads_keep_their_order_around_the_critical_scan():
    """Booking ahead moves the other scans' requests later, never past one another:
    the more urgent of them still goes first, equal ones first come first served."""
    _, starts, _ = simulate(20, 0.1, others=3, other_round_trip=0.107, pages=20, others_left=500)
    others = [who for _, who in starts if who != "critical"]
    # other-0 is the most urgent of them (priority 5), then other-1 (4), then other-2 (3):
    # a less urgent one never starts while a more urgent one has been waiting since before it asked.
    assert others.count("other-0") >= others.count("other-1") >= others.count("other-2")


def test_rate_limiter_an_idle_gap_does_not_let_saved_up_slots_go_out_as_a_burst():
    fake_time = FakeTime()
    limiter = RateLimiter(10, clock=fake_time.clock, sleep=fake_time.sleep)
    limiter.acquire()
    fake_time.now += 60  # a minute without a request
    starts = []
    for _ in range(5):
        limiter.acquire()
        starts.append(fake_time.now)
    gaps = [b - a for a, b in itertools.pairwise(starts)]
    assert gaps == [pytest.approx(limiter.interval)] * 4


def test_rate_limiter_a_thread_that_wakes_late_does_not_make_the_next_requests_late():
    """The slots stay an interval apart as planned: one request that started late (its thread
    woke late on a busy machine) does not push every later one back."""
    fake_time = FakeTime()
    limiter = SlackOf105(10, clock=fake_time.clock, sleep=fake_time.sleep)
    limiter.acquire()  # 1000.0

    def wake_late():
        fake_time.now += 0.03

    fake_time.on_sleep = wake_late
    limiter.acquire()  # planned for 1000.105, started at 1000.135
    assert fake_time.now == pytest.approx(1000.135)
    limiter.acquire()
    assert fake_time.now == pytest.approx(1000.21)


def test_rate_limiter_after_an_idle_gap_does_not_spend_saved_up_slots_as_a_burst():
    """Slots not used while nobody asked are gone: after a minute idle, requests start at
    once and then at the rate again, never all together."""
    fake_time = FakeTime()
    limiter = RateLimiter(5, clock=fake_time.clock, sleep=fake_time.sleep)
    limiter.acquire()
    fake_time.now += 60  # idle
    idle_until = fake_time.now
    starts = []
    for _ in range(10):
        limiter.acquire()
        starts.append(fake_time.now)
    assert starts[0] == idle_until, "the first request after the gap waited"
    assert_no_window_over(starts, 5)


# ----- booking the critical scan's next starts (RateLimiter._start, _book) ---------------------


def limiter_after_one_cycle(priority, pages_left, cycle=0.3, waiting=(), booked=None):
    """A limiter (10 r/s, fake time) whose thread of `priority`, all scans having `pages_left`
    pages left, has started one request and asks for the next `cycle` seconds later, while
    threads of [slot, priority] wait far ahead and another thread's booking is `booked`."""
    fake_time = FakeTime()
    limiter = RateLimiter(10, clock=fake_time.clock, sleep=fake_time.sleep)
    limiter.all_pages_left = lambda: pages_left
    limiter.set_priority(priority)
    limiter.acquire()  # its first start: no cycle measured yet, nothing booked
    assert limiter._booked is None
    limiter._waiting = [list(ticket) for ticket in waiting]
    limiter._booked = booked
    fake_time.now += cycle
    limiter.acquire()
    return limiter, fake_time


FAR = 2000.0  # a slot far from every slot the test's thread takes


def test_rate_limiter_books_the_critical_scan_s_next_starts_within_a_window_at_its_pace():
    """30 pages at 0.3 s take 9 s, and the 10 pages of the others fit beside them; on the grid
    each cycle would round up to 3 intervals (9.2 s). Booked: its next starts in the coming
    window, a cycle apart, the first a tenth of a cycle early."""
    limiter, fake_time = limiter_after_one_cycle(30, 40)
    now = fake_time.now
    assert limiter._booked is not None and limiter._booked.priority == 30
    assert limiter._booked.slots == [pytest.approx(now + 0.27), pytest.approx(now + 0.57), pytest.approx(now + 0.87)]


def test_rate_limiter_books_nothing_after_a_cycle_longer_than_the_window():
    """A cycle that held a 429's pause: no start of it falls within the coming window, so
    nothing is booked (an empty booking once broke the next request's acquire)."""
    limiter, _ = limiter_after_one_cycle(30, 40, cycle=5.0)
    assert limiter._booked is None
    limiter.acquire()  # and the next request goes as usual
    assert limiter._booked is None or limiter._booked.slots


def test_rate_limiter_books_nothing_while_its_pace_is_above_the_limit():
    """A cycle shorter than an interval: its top priority already gives it every slot it can use."""
    limiter, _ = limiter_after_one_cycle(30, 40, cycle=0.05)
    assert limiter._booked is None


def test_rate_limiter_books_nothing_while_the_grid_finishes_the_pages_left_sooner():
    """470 pages of the others: at its pace they would get 6 of the 10 starts of each window,
    and finish later than on the grid, which it waits for at most an interval."""
    limiter, _ = limiter_after_one_cycle(30, 500)
    assert limiter._booked is None


@pytest.mark.parametrize(("priority", "books"), [(2, True), (1, False), (math.inf, False)])
def test_rate_limiter_books_for_a_scan_with_pages_left_after_this_one_and_known_length_only(priority, books):
    """Pages left 1: its last page, a booking would go unclaimed; infinite: a first page, length unknown."""
    limiter, _ = limiter_after_one_cycle(priority, 2)
    assert (limiter._booked is not None) is books
    if books:
        assert len(limiter._booked.slots) == 1, "booked beyond its last page"


@pytest.mark.parametrize(
    ("waiting", "books"),
    [
        ([[FAR, 30]], True),  # as urgent: it may still book
        ([[FAR, 31]], False),  # a more urgent scan waits: the critical scan is that one
        ([[FAR, RateLimiter._FIRST_PAGE]], True),  # a first page (length unknown) does not count
    ],
)
def test_rate_limiter_books_only_for_the_most_urgent_scan_of_known_length(waiting, books):
    limiter, _ = limiter_after_one_cycle(30, 40, waiting=waiting)
    assert (limiter._booked is not None and limiter._booked.priority == 30) is books


def test_rate_limiter_books_only_for_the_scan_that_started_the_most_urgent_request_in_the_window():
    """The critical scan is on its round trip while the others' requests start: a less urgent
    scan does not book (its claims would go before the critical scan's requests)."""
    fake_time = FakeTime()
    limiter = RateLimiter(10, clock=fake_time.clock, sleep=fake_time.sleep)
    limiter.all_pages_left = lambda: 40
    limiter.set_priority(30)
    limiter.acquire()  # the critical scan's request, then its round trip

    def other_scan():
        limiter.set_priority(5)
        limiter.acquire()
        limiter.acquire()

    other = threading.Thread(target=other_scan)
    other.start()
    other.join(TIMEOUT)
    assert limiter._booked is None


@pytest.mark.parametrize(("other", "replaced"), [(29, True), (30, True), (31, False)])
def test_rate_limiter_a_booking_yields_to_an_as_urgent_scan_s_not_to_a_more_urgent_one(other, replaced):
    limiter, _ = limiter_after_one_cycle(30, 40, booked=Booking(other, [FAR]))
    assert (limiter._booked is getattr(limiter._local, "booking", None)) is replaced


def test_rate_limiter_the_critical_request_claims_its_booking_and_starts_at_once_off_the_grid():
    """A little early, just after another scan's request started: the grid would make it
    wait an interval; the window has room, so it starts at once, and the less urgent thread
    asleep until the booked slot keeps its slot (the window has room for both)."""
    limiter, fake_time = limiter_after_one_cycle(30, 40)
    booking = limiter._booked.slots[0]
    less_urgent = [booking, 5]
    limiter._waiting.append(less_urgent)
    fake_time.now = asked = booking - 0.01
    limiter._latest = asked  # another scan's request, on the grid, started just now
    limiter.acquire()
    assert fake_time.now == asked, "the critical request waited"
    assert less_urgent[0] == pytest.approx(booking)
    assert limiter._booked is not None and limiter._booked.slots[0] > asked, "not booked again from its new start"


def test_rate_limiter_a_booking_holds_its_room_against_less_urgent_requests():
    """Room for two more starts in the window: the booked start keeps one, a request that asks
    first takes the other, and the next one waits until the window has room again. (First
    pages, off the grid, so that only the window holds them.)"""
    fake_time = FakeTime()
    limiter = RateLimiter(5, clock=fake_time.clock, sleep=fake_time.sleep)
    now = fake_time.now
    limiter._starts = [now - 0.9, now - 0.8, now - 0.7]  # three of five in the window
    limiter._booked = Booking(30, [now + 0.05])
    limiter._schedule()
    ticket = [now, RateLimiter._FIRST_PAGE]
    limiter._waiting.append(ticket)
    limiter._schedule(ticket)
    assert ticket[0] == now
    other = [now, RateLimiter._FIRST_PAGE]
    limiter._waiting.append(other)
    limiter._schedule(other)
    # The window ending at the booking is full: it goes after the booking, once the first start has left.
    assert other[0] == pytest.approx(now - 0.9 + limiter.window)


@pytest.mark.parametrize(
    ("rate", "cycle", "mine", "all_left", "sooner"),
    [
        (5, 0.3, 30, 67, False),  # scenario 10: 4 of its starts in some windows leave the others 1 of 5
        (20, 0.105, 50, 106, True),  # scenario 8: on the grid, each round trip would round up to 3 intervals
        (50, 0.053, 50, 123, True),  # scenario 9
        (20, 0.105, 10, 500, False),  # the others' 490 pages bind: the grid uses every slot
    ],
)
def test_rate_limiter_books_when_that_finishes_the_pages_left_sooner(rate, cycle, mine, all_left, sooner):
    limiter = RateLimiter(rate)
    limiter.all_pages_left = lambda: all_left
    limiter.set_priority(mine)
    assert limiter._booking_is_sooner(cycle, mine) is sooner


def test_rate_limiter_a_booking_unclaimed_a_window_after_its_first_slot_holds_no_one_back():
    fake_time = FakeTime()
    limiter = RateLimiter(10, clock=fake_time.clock, sleep=fake_time.sleep)
    limiter._booked = Booking(30, [fake_time.now - limiter.window])  # another thread's, its request never came
    limiter.acquire()
    assert fake_time.sleeps == [] and limiter._booked is None


def test_rate_limiter_the_first_window_is_counted_as_used_evenly():
    """The server may count requests this process did not send (a discovery run a moment
    before): the first requests, even first pages, start an interval apart, not as a burst."""
    fake_time = FakeTime()
    limiter = RateLimiter(5, clock=fake_time.clock, sleep=fake_time.sleep)
    limiter.set_priority(math.inf)  # first pages: off the grid
    starts = []
    for _ in range(5):
        limiter.acquire()
        starts.append(fake_time.now)
    assert [b - a for a, b in itertools.pairwise(starts)] == [pytest.approx(limiter.interval)] * 4


def test_rate_limiter_after_a_pause_the_window_is_counted_as_used_evenly():
    """After a 429 the server counted more than we did: no burst when the pause ends."""
    fake_time = FakeTime()
    limiter = RateLimiter(5, clock=fake_time.clock, sleep=fake_time.sleep)
    limiter.set_priority(math.inf)
    fake_time.now += 10  # the first window has passed
    limiter.pause(3)
    starts = []
    for _ in range(3):
        limiter.acquire()
        starts.append(fake_time.now)
    assert starts[0] == pytest.approx(1013.0)
    assert [b - a for a, b in itertools.pairwise(starts)] == [pytest.approx(limiter.interval)] * 2


# ----- slots exactly one interval apart do not collide (RateLimiter._schedule) -----------------


def test_rate_limiter_an_urgent_thread_leaves_a_less_urgent_slot_one_interval_later_alone():
    limiter, starts = limiter_with_waiting_threads([[1000.0 + 2 * SlackOf105.SAFETY / 10, 1]])
    limiter.set_priority(50)
    limiter.acquire()
    assert starts == [pytest.approx(1000.105)]
    assert limiter._waiting == [[1000.0 + 2 * SlackOf105.SAFETY / 10, 1]]


def test_rate_limiter_a_less_urgent_thread_takes_the_slot_one_interval_before_an_urgent_one():
    limiter, starts = limiter_with_waiting_threads([[1000.0 + 2 * SlackOf105.SAFETY / 10, 50]])
    limiter.acquire()
    assert starts == [pytest.approx(1000.105)]


def test_rate_limiter_a_thread_held_by_a_pause_keeps_its_urgency():
    """Held by a 429's pause while it waited, a thread is placed again after the pause
    as urgent as it was: a more urgent thread waiting for the pause's end goes first."""
    fake_time = FakeTime()
    limiter = SlackOf105(10, clock=fake_time.clock, sleep=fake_time.sleep)
    limiter.acquire()  # 1000.0
    limiter.set_priority(1)

    def a_429_pauses_while_an_urgent_thread_waits():
        limiter.pause(30)
        limiter._waiting.append([fake_time.now + 30, 5])

    fake_time.on_sleep = a_429_pauses_while_an_urgent_thread_waits
    limiter.acquire()  # sleeps towards 1000.105; the pause holds it
    assert fake_time.now == pytest.approx(1000.105 + 30 + limiter.interval)


# ----- rules the mutation run found unchecked (docs/development.md) ----------------------------


def limiter_past_its_first_window(rate=10):
    """A limiter on fake time whose first window (counted as used) has passed: every window has room."""
    fake_time = FakeTime()
    limiter = RateLimiter(rate, clock=fake_time.clock, sleep=fake_time.sleep)
    fake_time.now += 10
    return limiter, fake_time


def on_a_thread(action):
    """action() on a thread of its own (another scan's worker), waited for."""
    thread = threading.Thread(target=action)
    thread.start()
    thread.join(TIMEOUT)


def start_on_a_thread(limiter, fake_time, priority, then=0.0):
    """One request of another scan's thread (its priority set there), the clock moved `then` after it."""
    on_a_thread(lambda: (limiter.set_priority(priority), limiter.acquire()))
    fake_time.now += then


def start_twice(limiter, fake_time, priority, cycle=0.3):
    """Two requests of this thread's scan (`priority` pages left), a cycle apart: the second may book."""
    limiter.set_priority(priority)
    limiter.acquire()
    fake_time.now += cycle
    limiter.acquire()


@pytest.mark.parametrize("rate", [0.5, 2.5])
def test_rate_limiter_a_fractional_rate_keeps_one_start_a_window_of_one_interval(rate):
    """2.5 r/s is not 2 starts in a window of 2 intervals (a burst of two): one start an interval."""
    limiter = RateLimiter(rate)
    assert limiter.room == 1
    assert limiter.window == pytest.approx(limiter.interval) == pytest.approx(RateLimiter.SAFETY / rate)


def test_rate_limiter_priority_is_what_this_thread_set_and_0_on_a_thread_that_set_none():
    """read_ahead hands the caller's priority to its own thread through priority()."""
    limiter = RateLimiter(10)
    limiter.set_priority(7)
    elsewhere = []
    on_a_thread(lambda: elsewhere.append(limiter.priority()))
    assert limiter.priority() == 7
    assert elsewhere == [0]


def test_rate_limiter_without_the_scheduler_s_count_the_booking_scan_s_pages_are_all_there_are():
    """A limiter no sync has given all_pages_left still books for the critical scan."""
    limiter, fake_time = limiter_past_its_first_window()
    start_twice(limiter, fake_time, 30)
    assert limiter._booked is not None and limiter._booked.priority == 30


def test_rate_limiter_a_first_page_neither_waits_for_the_grid_nor_moves_it():
    limiter, fake_time = limiter_past_its_first_window()
    limiter.set_priority(5)
    limiter.acquire()  # a page of a scan of known length, on the grid
    grid = fake_time.now
    fake_time.now += 0.01
    limiter.set_priority(math.inf)
    limiter.acquire()  # a scan's first page: at once, though the grid's next slot is an interval on
    assert fake_time.now == pytest.approx(grid + 0.01)
    limiter.set_priority(5)
    limiter.acquire()  # the next known page: an interval after the last one on the grid, not after the first page
    assert fake_time.now == pytest.approx(grid + limiter.interval)


def test_rate_limiter_a_waiting_first_page_does_not_push_a_known_page_off_its_slot():
    limiter, fake_time = limiter_past_its_first_window()
    limiter.acquire()
    grid = fake_time.now
    limiter._waiting = [[grid + limiter.interval, RateLimiter._FIRST_PAGE]]  # asleep until the grid's next slot
    limiter.acquire()
    assert fake_time.now == pytest.approx(grid + limiter.interval)


def test_rate_limiter_another_scan_s_first_page_does_not_take_the_critical_scan_s_booking_role():
    """The segments' first pages start while the contacts scan is on its round trip."""
    limiter, fake_time = limiter_past_its_first_window()
    limiter.all_pages_left = lambda: 40
    limiter.set_priority(30)
    limiter.acquire()
    start_on_a_thread(limiter, fake_time, math.inf, then=0.3)
    limiter.acquire()
    assert limiter._booked is not None and limiter._booked.priority == 30


def test_rate_limiter_a_less_urgent_scan_does_not_book_while_the_critical_one_started_within_the_window():
    """Scan B (5 pages left) would finish sooner booked, were it the critical scan; A (6) is."""
    limiter, fake_time = limiter_past_its_first_window()
    limiter.all_pages_left = lambda: 11
    limiter.set_priority(6)
    limiter.acquire()  # A, then its round trip
    on_a_thread(lambda: start_twice(limiter, fake_time, 5))  # B
    assert limiter._booked is None


def test_rate_limiter_a_more_urgent_scan_takes_the_booking_role_at_once():
    limiter, fake_time = limiter_past_its_first_window()
    limiter.all_pages_left = lambda: 46
    start_on_a_thread(limiter, fake_time, 6)  # A, 6 pages left, then its round trip
    start_twice(limiter, fake_time, 40)
    assert limiter._booked is not None and limiter._booked.priority == 40


def test_rate_limiter_a_window_after_the_critical_scan_s_last_start_the_next_scan_may_book():
    """The critical scan finished (or stalled): its role does not outlive a window."""
    limiter, fake_time = limiter_past_its_first_window()
    limiter.all_pages_left = lambda: 5
    start_on_a_thread(limiter, fake_time, 30, then=limiter.window + 0.1)
    start_twice(limiter, fake_time, 5)
    assert limiter._booked is not None and limiter._booked.priority == 5


def test_rate_limiter_a_worker_that_ran_the_critical_scan_books_nothing_for_another_scan_s_first_page():
    """Scheduler workers move between scans: a first page's length is unknown, so nothing is booked for it."""
    limiter, fake_time = limiter_past_its_first_window()
    limiter.all_pages_left = lambda: 40
    start_twice(limiter, fake_time, 30)
    assert limiter._booked is not None  # it was the critical scan
    limiter._booked = limiter._local.booking = None
    fake_time.now += 0.3
    limiter.set_priority(math.inf)
    limiter.acquire()
    assert limiter._booked is None


def test_rate_limiter_keeps_only_the_last_window_of_starts():
    """A long run's starts are dropped once a window old: the limiter's memory stays flat."""
    limiter, fake_time = limiter_past_its_first_window()
    for _ in range(50):
        limiter.acquire()
        fake_time.now += 0.5
    limiter.acquire()
    assert len(limiter._starts) <= 3
