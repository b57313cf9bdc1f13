"""What the state folder's unit tests share."""

from tap_autopilot.state.document import MembershipPass, State


def state_with_passes() -> tuple[State, MembershipPass]:
    """A state with a pass in progress each way: an incremental scan, a versioned pass reading
    the contacts scan, and a membership pass reading each parent."""
    state = State(
        {
            "bookmarks": {
                "contacts": {"scan": {"threshold": "2024-01-01T00:00:00Z", "cursor": "q"}},
                "x": {"version": 3, "complete": False, "scan": {"cursor": "q"}},
                "m": {"version": 4, "complete": False, "in_progress": {"b": "q"}},
            }
        }
    )
    return state, state.membership_pass("m", ["a", "b"])
