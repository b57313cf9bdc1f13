"""The sandbox's fault knobs: their defaults, their validation, and when a request gets one.

All API requests share one counter (stats()["requests"]); request number n
(1-based since the last reset_stats) gets the fault "X" when n % X_every == 0,
so faults are deterministic and a retried request is not faulted again (unless
X_every is 1).
"""

# Every fault knob and its default (all faults off). None restores a default.
FAULT_DEFAULTS = {
    "latency_ms": None,  # float: ms from each API request to its answer, building the page included
    "rate_limit": None,  # float: requests allowed per 1.0 s sliding window
    "retry_after": False,  # bool: send 'Retry-After: 1' with 429s (the live API sends none)
    "error_every": None,  # int: every Nth request -> 500
    "drop_every": None,  # int: every Nth request -> socket closed, no response
    "truncate_every": None,  # int: every Nth request -> 200 with half the body
    "missing_key_every": None,  # int: every Nth request -> 200 {"unexpected": true}
    "garble_every": None,  # int: every Nth request -> 200 not JSON inside, its ending (the bookmark) whole
    "stall_every": None,  # int: every Nth request -> sleep stall_seconds first
    "stall_seconds": 2.0,  # float
    "trickle_every": None,  # int: every Nth request -> headers at once, then the body a byte at a time
    "trickle_interval": 0.5,  # float: seconds between two bytes of a trickled body
}
_EVERY = (
    "error_every",
    "drop_every",
    "truncate_every",
    "missing_key_every",
    "garble_every",
    "stall_every",
    "trickle_every",
)


def check_faults(faults):
    """Validate and normalise fault kwargs; None means 'back to the default'."""
    out = {}
    for key, value in faults.items():
        if key not in FAULT_DEFAULTS:
            raise ValueError("unknown fault %r (known: %s)" % (key, ", ".join(FAULT_DEFAULTS)))
        if value is None:
            value = FAULT_DEFAULTS[key]
        elif key == "retry_after":
            value = bool(value)
        elif key in _EVERY:
            value = int(value)
            if value < 0:
                raise ValueError("%s must be >= 0" % key)
            value = value or None  # 0 also means off
        else:
            value = float(value)
            if value < 0:
                raise ValueError("%s must be >= 0" % key)
            if key == "rate_limit" and not value:
                value = None  # 0 means off, like the *_every knobs
        out[key] = value
    return out


def hit(n, every):
    return bool(every) and n % every == 0
