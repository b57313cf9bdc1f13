"""A local stand-in for the Autopilot REST API v1 (demo, integration tests, benchmarks).

    from tap_autopilot.sandbox import Sandbox
    with Sandbox(contacts=300, seed=7) as sb:
        ...  # point the tap at sb.base_url with api key "sandbox-key"

Run it standalone with ``python -m tap_autopilot.sandbox --help``.

    server.py      the Sandbox: lifecycle, fault settings, stats
    handler.py     HTTP: routing, auth, injected faults, admin endpoints
    faults.py      the fault knobs, their defaults and when a request gets one
    dataset.py     the account: contacts in id order, lists, segments, mutations
    paging.py      a page of contacts after a bookmark, by bisection in id order
    groups.py      lists and smart segments: membership by hash threshold, removals
    documents.py   contact documents (recordings-like or dense) and their JSON
    ids.py         hashing and every id form (contacts, lists, segments, mail deliveries)
    timestamps.py  ISO-8601 and RFC 1123 texts from epoch ms
    vocabulary.py  the word pools and the custom field definitions
"""

from .dataset import Dataset
from .faults import FAULT_DEFAULTS
from .server import Sandbox

__all__ = ["FAULT_DEFAULTS", "Dataset", "Sandbox"]
