"""Expected records and the fewest requests per stream for a sandbox size (the dataset is
deterministic: computed here, in-process)."""

import math

from settings import PAGE, log

_EXPECTED: dict[tuple, dict | None] = {}


def _pages(documents):
    """The pages a scan of `documents` reads: an empty one reads one."""
    return max(1, math.ceil(documents / PAGE))


def expected(size):
    """Records per stream and the minimum requests per stream for a sandbox size,
    or None when the dataset module cannot tell (it is another engineer's code)."""
    key = tuple(sorted(size.items()))
    if key in _EXPECTED:
        return _EXPECTED[key]
    try:
        from tap_autopilot.sandbox import Dataset

        ds = Dataset(contacts=size["contacts"], lists=size["lists"], segments=size["segments"], seed=size["seed"])
        lists = ds.lists()
        segments = ds.segments()
        list_sizes = [len(ds.list_members(item["list_id"])) for item in lists]
        segment_sizes = [len(ds.segment_members(item["segment_id"])) for item in segments]
        result = {
            "records": {
                "contacts": len(ds),
                "lists": len(lists),
                "lists_contacts": sum(list_sizes),
                "smart_segments": len(segments),
                "smart_segments_contacts": sum(segment_sizes),
            },
            "pages": {
                "contacts": _pages(len(ds)),
                "lists_contacts": sum(_pages(n) for n in list_sizes),
                "smart_segments_contacts": sum(_pages(n) for n in segment_sizes),
            },
            # The longest scan of each kind: its pages come one after another.
            "longest": {
                "contacts": _pages(len(ds)),
                "lists_contacts": max((_pages(n) for n in list_sizes), default=0),
                "smart_segments_contacts": max((_pages(n) for n in segment_sizes), default=0),
            },
        }
    except Exception as error:
        log(f"bench: cannot compute the expected counts from the sandbox dataset ({error!r})")
        result = None
    _EXPECTED[key] = result
    return result


def minimum_requests(streams, exp):
    if exp is None:
        return None
    pages = exp["pages"]
    total = 0
    if "contacts" in streams:
        total += pages["contacts"]
    if "lists" in streams or "lists_contacts" in streams:
        total += 1
    if "lists_contacts" in streams:
        total += pages["lists_contacts"]
    if "smart_segments" in streams or "smart_segments_contacts" in streams:
        total += 1
    if "smart_segments_contacts" in streams:
        total += pages["smart_segments_contacts"]
    return total


def longest_scan(streams, exp, lists_contacts_source="auto"):
    """(pages, scan) of the longest sequential scan a sync of `streams` makes, or None: the
    contacts scan (which also reads memberships unless they are read list by list), a list's
    or a segment's members."""
    if exp is None:
        return None
    longest = exp["longest"]
    scans = []
    if "contacts" in streams or ("lists_contacts" in streams and lists_contacts_source != "lists"):
        scans.append((longest["contacts"], "contacts"))
    if "lists_contacts" in streams and lists_contacts_source == "lists":
        scans.append((longest["lists_contacts"], "a list's members"))
    if "smart_segments_contacts" in streams:
        scans.append((longest["smart_segments_contacts"], "a segment's members"))
    return max(scans, default=None)
