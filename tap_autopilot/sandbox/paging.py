"""The pages a contacts endpoint serves: PAGE_SIZE contacts in API order (ascending
contact_id as strings), each page after the contact its bookmark names."""

import bisect
from collections.abc import Callable, Sequence

PAGE_SIZE = 100


class Page:
    """One page of a contacts endpoint: contact indexes, total, next bookmark or None."""

    __slots__ = ("bookmark", "indexes", "total")

    def __init__(self, indexes, total, bookmark):
        self.indexes = indexes
        self.total = total
        self.bookmark = bookmark


def position_after(seq: Sequence[int], contact_id: str, id_of: Callable[[int], str]) -> int:
    """Position in seq (indexes in API order) of the first contact whose id sorts after
    contact_id, in O(log n) id comparisons; contact_id need not be in seq."""
    return bisect.bisect_right(seq, contact_id, key=id_of)


def page_after(seq, bookmark: str | None, id_of: Callable[[int], str]) -> Page:
    """The page of seq after the bookmarked contact (from the start when None); a page's
    bookmark is its last contact's id, None on the last page."""
    pos = 0 if bookmark is None else position_after(seq, bookmark, id_of)
    idx = seq[pos : pos + PAGE_SIZE].tolist()
    more = pos + PAGE_SIZE < len(seq)
    return Page(idx, len(seq), id_of(idx[-1]) if more else None)
