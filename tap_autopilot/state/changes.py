"""The changes a scan makes to the state document, as data.

A scan returns them with the records of the page they account for; the runner writes
the records, then has the document apply the changes (State.apply), then writes STATE.
Values, not functions: they can be compared in a test and logged.
"""

import datetime
from dataclasses import dataclass


@dataclass(frozen=True)
class CompleteVersion:
    """A versioned pass completed: only its version is kept."""

    stream_id: str


@dataclass(frozen=True)
class SaveIncrementalScan:
    """Where an incremental scan stands after a page."""

    stream_id: str
    threshold: datetime.datetime
    cursor: str | None
    max_updated_at: datetime.datetime | None
    started_at: datetime.datetime | None


@dataclass(frozen=True)
class FinishIncrementalScan:
    """An incremental scan completed: the bookmark moves to the next threshold."""

    stream_id: str
    next_threshold: datetime.datetime


@dataclass(frozen=True)
class SaveScanCursor:
    """Where a versioned pass over the contacts scan stands (None: from the first page)."""

    stream_id: str
    cursor: str | None


@dataclass(frozen=True)
class ForgetScanCursor:
    """An incremental scan starts over; its threshold, newest updated_at and start stay."""

    stream_id: str


@dataclass(frozen=True)
class ParentAdvanced:
    """A membership pass read one more page of a parent."""

    stream_id: str
    parent_id: str
    cursor: str


@dataclass(frozen=True)
class ParentDone:
    """A membership pass read a parent's last page (or found it gone)."""

    stream_id: str
    parent_id: str


@dataclass(frozen=True)
class ParentRestarted:
    """A parent's saved cursor vanished: it is read again from its first page."""

    stream_id: str
    parent_id: str


StateChange = (
    CompleteVersion
    | SaveIncrementalScan
    | FinishIncrementalScan
    | SaveScanCursor
    | ForgetScanCursor
    | ParentAdvanced
    | ParentDone
    | ParentRestarted
)
