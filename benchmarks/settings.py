"""Paths, sizes and limits shared by the benchmark's modules, and log()."""

import os
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BENCH_DIR = os.path.join(ROOT, "benchmarks")
VENV_PY = os.path.join(ROOT, ".venv", "bin", "python")
TAP = os.path.join(ROOT, ".venv", "bin", "tap-autopilot")
PUBLISHED_PY = os.path.join(ROOT, ".tools", "tap-autopilot-0.3.0", "bin", "python")
PUBLISHED_WRAPPER = os.path.join(BENCH_DIR, "published_tap.py")
SEQUENTIAL_CLIENT = os.path.join(BENCH_DIR, "sequential_client.py")
RESULTS_MD = os.path.join(BENCH_DIR, "RESULTS.md")

API_KEY = "sandbox-key"
START_DATE = "2000-01-01T00:00:00Z"  # before every generated updated_at: all contacts
UNLIMITED_RATE = 1000  # the tap's max_requests_per_second when the sandbox has no limit
PAGE = 100

ALL = ("contacts", "lists", "lists_contacts", "smart_segments", "smart_segments_contacts")
PUBLISHED_ALL = ("contacts", "lists", "smart_segments", "smart_segments_contacts")
MIX_LABELS = {
    ALL: "all 5",
    PUBLISHED_ALL: "0.3.0's 4",
    ("contacts",): "contacts",
    ("smart_segments", "smart_segments_contacts"): "segments+members",
}

# Scenario sizes: full run, and --quick.
SIZES = {
    "full": {
        "s1": dict(contacts=10_000, lists=3, segments=2),
        "s2": dict(contacts=100_000, lists=3, segments=2),
        "s3": dict(contacts=5_000, lists=10, segments=5),
        "s4": dict(contacts=5_000, lists=10, segments=5),
        "s5": dict(contacts=10_000, lists=3, segments=2),
        "s6": dict(contacts=3_000, lists=12, segments=3),  # the list-heavy account
        # The rate-limit regimes: the contacts scan against the rate limit.
        "s7": dict(contacts=4_000, lists=10, segments=5),
        "s8": dict(contacts=5_000, lists=10, segments=5),
        "s9": dict(contacts=5_000, lists=10, segments=8),
        "s10": dict(contacts=3_000, lists=6, segments=6),
    },
    "quick": {
        "s1": dict(contacts=1_000, lists=3, segments=2),
        "s2": dict(contacts=3_000, lists=3, segments=2),
        "s3": dict(contacts=500, lists=4, segments=2),
        "s4": dict(contacts=300, lists=3, segments=2),
        "s5": dict(contacts=1_000, lists=3, segments=2),
        "s6": dict(contacts=600, lists=12, segments=3),
        "s7": dict(contacts=400, lists=4, segments=2),
        "s8": dict(contacts=1_000, lists=4, segments=2),
        "s9": dict(contacts=1_000, lists=4, segments=3),
        "s10": dict(contacts=300, lists=3, segments=2),
    },
}
SEED = 7

# Validation: every RECORD up to this many per stream, then one in STRIDE.
VALIDATE_ALL_UP_TO = 10_000
VALIDATE_STRIDE = 50
QUICK_VALIDATE_ALL_UP_TO = 500
QUICK_VALIDATE_STRIDE = 10


def log(message):
    print(message, file=sys.stderr, flush=True)
