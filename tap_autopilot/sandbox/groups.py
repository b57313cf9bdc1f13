"""Lists and smart segments: membership is a hash threshold plus removals, so a
group costs no memory per contact until its pages are asked for."""

from array import array

from .ids import mix64

# Share of list members per list (cycled). 0.0 gives an empty list; 0.45 makes a
# 300-contact dataset's first list span two pages.
LIST_SHARES = (0.45, 0.1, 0.0, 0.3, 0.02, 0.6)
SEGMENT_SHARES = (0.4, 0.05, 0.0, 0.25)


class Group:
    """A list or smart segment: membership is a hash threshold plus removals."""

    def __init__(self, group_id, title, salt, share):
        self.id = group_id
        self.title = title
        self.salt = salt
        self.threshold = int(share * (1 << 64))
        self.removed = set()  # contact indexes explicitly taken out
        self.members: array[int] | None = None  # array('I') of member indexes in API order, built on first use

    def is_member(self, i):
        return self.threshold and mix64(self.salt ^ i) < self.threshold and i not in self.removed


def new_group(dataset_salt, make_id, j, shares, titles, kind, recordings):
    """The j-th list (kind 1) or segment (kind 2) of a dataset: id, title and share drawn
    from the dataset's salt; titles repeat with a number past the end of `titles`."""
    salt = mix64(dataset_salt ^ mix64(kind * 1000003 + j))
    title = titles[j % len(titles)]
    if j >= len(titles):
        title = "%s %d" % (title, j // len(titles) + 1)
    return Group(make_id(salt, j, recordings), title, salt, shares[j % len(shares)])
