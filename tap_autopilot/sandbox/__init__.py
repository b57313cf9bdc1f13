"""A local stand-in for the Autopilot REST API v1 (demo, integration tests, benchmarks).

    from tap_autopilot.sandbox import Sandbox
    with Sandbox(contacts=300, seed=7) as sb:
        ...  # point the tap at sb.base_url with api key "sandbox-key"

Run it standalone with ``python -m tap_autopilot.sandbox --help``.
"""

from .dataset import Dataset
from .server import FAULT_DEFAULTS, Sandbox

__all__ = ["Dataset", "Sandbox", "FAULT_DEFAULTS"]
