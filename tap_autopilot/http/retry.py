"""The retry policy every request of the tap runs under (client.AutopilotClient.request):
which failures are retried, how often, and how long to wait between tries."""

import math
import os
import random
import time
from collections.abc import Callable, Iterator
from typing import Any, TypeVar

import backoff

from tap_autopilot.errors import RateLimitedError, RetryableError

T = TypeVar("T")
Clock = Callable[[], float]  # monotonic seconds; injectable for tests
Sleep = Callable[[float], None]

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

    The backoff library gives the ceilings (backoff.expo); the jitter is its full_jitter rule,
    a uniform draw from 0 to the ceiling, made here from the injected source (full_jitter draws
    from the random module itself). Not its decorators: they call time.sleep and the wall clock
    themselves, so the 429 budget could only be tested by waiting it out, and the two nested
    ones it takes (429s, other failures) let every other failure restart that budget, which
    measured several times longer to give up (docs/performance.md#retries).
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

    def ceilings(self) -> Iterator[float]:
        """The backoff ceilings of one kind of failure, one per failure: the base, then twice
        the one before, up to BACKOFF_CAP_SECONDS."""
        ceilings = backoff.expo(factor=self.base, max_value=BACKOFF_CAP_SECONDS)
        next(ceilings)  # backoff's wait generators yield None first (its decorators prime them so)
        return ceilings

    def wait(self, error: RetryableError, ceiling: float) -> float:
        """Seconds to wait before retrying after `error`: its Retry-After, else full jitter under `ceiling`."""
        if error.retry_after is not None:
            return error.retry_after
        return self._uniform(0, ceiling)

    def call(self, attempt: Callable[[], T], on_retry: Callable[[RetryableError, float, int], None] | None = None) -> T:
        """attempt() until it returns, retrying as the class says; on_retry(error, wait, tries)
        is called before each wait."""
        started = self._clock()
        tries = failed = 0
        # Each kind's ceilings, made at its first failure: a request that succeeds makes none.
        throttled_ceilings: Iterator[float] | None = None
        failed_ceilings: Iterator[float] | None = None
        retrying: RetryableError
        while True:
            tries += 1
            try:
                return attempt()
            except RateLimitedError as error:
                throttled_ceilings = throttled_ceilings or self.ceilings()
                wait = self.wait(error, next(throttled_ceilings))  # a Retry-After counts as an attempt too
                if self._clock() - started + wait > RATE_LIMIT_RETRY_SECONDS:
                    raise  # the next try would come after the budget
                retrying = error
            except RetryableError as error:
                failed += 1
                if failed >= TRANSIENT_MAX_TRIES:
                    raise
                failed_ceilings = failed_ceilings or self.ceilings()
                wait = self.wait(error, next(failed_ceilings))
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


def parse_retry_after(value: Any) -> float | None:
    try:
        seconds = float(value)
    except (TypeError, ValueError):
        return None  # an HTTP date or garbage: fall back to our own backoff
    return max(0.0, seconds) if math.isfinite(seconds) else None
