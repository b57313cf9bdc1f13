"""Where a run starts: the state it was given, repaired where it is not in this tap's
shape (state_shape.py), and the start date of the streams without a bookmark. Each repair
is one WARNING, said before the sync writes anything."""

import datetime
import logging
from typing import Any

from tap_autopilot.converters import format_datetime, to_datetime
from tap_autopilot.state import State
from tap_autopilot.streams import STREAMS

LOGGER = logging.getLogger("tap_autopilot")


def start_date_for(config: dict[str, Any], state: State, run_began: datetime.datetime) -> datetime.datetime:
    """Where streams without a bookmark start: the config's start_date, else the state's
    default_start_date, else (a first run) one year before the run began, which the
    state keeps from then on (state.State.start_date). Says which when it is a default."""
    start_date, new = state.start_date(to_datetime(config.get("start_date")), run_began)
    if new:
        LOGGER.info(
            "No start_date in the config: starting from %s, one year before this first run began; the state "
            "keeps it (default_start_date), so later runs start streams without a bookmark from it too.",
            format_datetime(start_date),
        )
    elif not config.get("start_date"):
        LOGGER.info(
            "No start_date in the config: streams without a bookmark start from %s, the state's default_start_date.",
            format_datetime(start_date),
        )
    return start_date


def trusted_state(raw: object, config: dict[str, Any], run_began: datetime.datetime) -> tuple[State, datetime.datetime]:
    """The state given, as the sync may use it, and where streams without a bookmark start
    (start_date_for): repaired where it is not in this tap's shape (state_shape.tap_shape),
    in one WARNING, before anything is written."""
    state = State(raw, streams=list(STREAMS))
    if state.shape_problems:
        LOGGER.warning("The state is not in this tap's shape: %s.", "; ".join(state.shape_problems))
    return state, start_date_for(config, state, run_began)
