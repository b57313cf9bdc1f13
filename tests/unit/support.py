"""What unit tests of several folders share (each folder's own helpers are in its support.py)."""

import datetime

UTC = datetime.UTC
# A fixed "now" for the state's clocks, and a start_date before it: no test reads today's date.
T0 = datetime.datetime(2024, 1, 1, tzinfo=UTC)
START = datetime.datetime(2015, 1, 1, tzinfo=UTC)


def at(minutes: float) -> datetime.datetime:
    """T0 plus `minutes`."""
    return T0 + datetime.timedelta(minutes=minutes)


class Items(list):
    """A page's documents, weakly referenceable so a test can see it was dropped."""
