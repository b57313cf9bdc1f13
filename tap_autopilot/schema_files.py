"""The streams' JSON schemas, as shipped in tap_autopilot/schemas/.

Imports nothing else from the package, so that any module (discover, transform)
can read a schema without importing the others."""

import json
import os
from typing import Any

SCHEMAS_DIR = os.path.join(os.path.dirname(__file__), "schemas")


def load_schema(stream_id: str) -> dict[str, Any]:
    """A fresh copy of the stream's schema (the caller may change it)."""
    with open(os.path.join(SCHEMAS_DIR, stream_id + ".json"), encoding="utf-8") as handle:
        return json.load(handle)
