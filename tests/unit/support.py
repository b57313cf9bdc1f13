"""What unit tests of several folders share (each folder's own helpers are in its support.py)."""


class Items(list):
    """A page's documents, weakly referenceable so a test can see it was dropped."""
