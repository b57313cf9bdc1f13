"""Where a run starts: the state it was given, repaired where it is not in this tap's
shape (state/shape.py) and not trusted where it lies after the run's start, and the start
date of the streams without a bookmark. Each repair is one WARNING, said before the sync
writes anything."""

import datetime
import logging
from typing import Any

from tap_autopilot.state.document import State
from tap_autopilot.streams import STREAMS
from tap_autopilot.values.converters import format_datetime, to_datetime

LOGGER = logging.getLogger("tap_autopilot")


def _moment(value: datetime.datetime) -> str:
    return f"{value.astimezone(datetime.UTC):%Y-%m-%dT%H:%M:%SZ}"


def start_date_for(config: dict[str, Any], state: State, run_began: datetime.datetime) -> datetime.datetime:
    """Where streams without a bookmark start: the config's start_date, else the state's
    default_start_date, else (a first run) one year before the run began, which the
    state keeps from then on (state.State.start_date). Says which when it is a default.
    A default_start_date later than the run's start is not trusted: a new one is taken."""
    future = state.drop_future_default(run_began)
    start_date, new = state.start_date(to_datetime(config.get("start_date")), run_began)
    if future is not None:
        LOGGER.warning(
            "The state's default_start_date %s is later than this run's start (%s), so it is not trusted: %s",
            format_datetime(future),
            _moment(run_began),
            f"streams without a bookmark start from {format_datetime(start_date)}, one year before this run, "
            "which the state keeps from now on."
            if new
            else "it is dropped (the config's start_date applies).",
        )
    elif new:
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
    """The state given, as the sync may use it, and where streams without a bookmark start:
    repaired where it is not in this tap's shape (state.shape.tap_shape), a default_start_date
    (start_date_for) or a bookmark (State.drop_future_bookmarks) later than the run's start
    not trusted. One WARNING for each repair, before anything is written."""
    state = State(raw, streams=list(STREAMS))
    if state.shape_problems:
        LOGGER.warning("The state is not in this tap's shape: %s.", "; ".join(state.shape_problems))
    start_date = start_date_for(config, state, run_began)
    for stream_id, name, value in state.drop_future_bookmarks(run_began):
        LOGGER.warning(
            "%s: the state's %s %s is later than this run's start (%s), so it is not trusted: the stream starts "
            "over, from the start date %s (nothing is skipped).",
            stream_id,
            name,
            value,
            _moment(run_began),
            format_datetime(start_date),
        )
    return state, start_date
