"""completed_passes: one record each time a versioned pass completes (stream, table version,
when), so that a warehouse can tell a complete pass from an interrupted one: a target that
ignores ACTIVATE_VERSION keeps an interrupted pass's rows under a version higher than the
last complete one (docs/state.md, "Removals").

Its records come from the run, not from the API: the runner writes one after each
ACTIVATE_VERSION that ends a pass (runner.Runner.apply). It has no state of its own: a pass
completes once, and a run that dies before its STATE is saved completes it again under the
same version, which the target's key (stream_name, table_version) keeps as one row."""

import datetime
from typing import Any, ClassVar

from tap_autopilot.streams.base import INCREMENTAL, NOTHING, PageResult, Run, Stream


class CompletedPasses(Stream):
    tap_stream_id = "completed_passes"
    key_properties: ClassVar[list[str]] = ["stream_name", "table_version"]
    replication_methods = (INCREMENTAL,)
    replication_key = "completed_at"
    from_the_run = True

    def sync(self, run: Run) -> PageResult:
        return NOTHING  # nothing to request: its records follow the other streams' passes


def completed_pass(stream_id: str, version: int, now: datetime.datetime) -> dict[str, Any]:
    """The completed_passes row of a pass of `stream_id` under `version`, completed `now`."""
    return {"stream_name": stream_id, "table_version": version, "completed_at": now}
