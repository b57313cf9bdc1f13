"""A scan's changes to the state, as data (state/changes.py): each, applied by State.apply,
does exactly what the document's method of the same change does."""

from collections.abc import Callable

import pytest

from tap_autopilot.state.changes import (
    CompleteVersion,
    FinishIncrementalScan,
    ForgetScanCursor,
    ParentAdvanced,
    ParentDone,
    ParentRestarted,
    SaveIncrementalScan,
    SaveScanCursor,
    StateChange,
)
from tap_autopilot.state.document import MembershipPass, State

# (a change as data, the same change made by the method) on a state with a pass in progress each way
from ..support import T0, at
from .support import state_with_passes

AS_DATA: dict[str, tuple[StateChange, Callable[[State, MembershipPass], object]]] = {
    "complete": (CompleteVersion("x"), lambda s, m: s.complete_version("x")),
    "save incremental": (
        SaveIncrementalScan("contacts", T0, "p", at(5), at(1)),
        lambda s, m: s.save_incremental_scan("contacts", T0, "p", at(5), at(1)),
    ),
    "finish incremental": (
        FinishIncrementalScan("contacts", T0),
        lambda s, m: s.finish_incremental_scan("contacts", T0),
    ),
    "save cursor": (SaveScanCursor("x", "p"), lambda s, m: s.save_scan_cursor("x", "p")),
    "forget cursor": (ForgetScanCursor("contacts"), lambda s, m: s.forget_scan("contacts")),
    "parent advanced": (ParentAdvanced("m", "b", "p"), lambda s, m: m.advance("b", "p")),
    "parent done": (ParentDone("m", "a"), lambda s, m: m.done("a")),
    "parent restarted": (ParentRestarted("m", "b"), lambda s, m: m.restart("b")),
}


@pytest.mark.parametrize("name", sorted(AS_DATA))
def test_a_change_as_data_does_what_its_method_does(name):
    change, method = AS_DATA[name]
    by_data, _ = state_with_passes()
    by_method, by_method_pass = state_with_passes()
    by_data.apply([change])
    method(by_method, by_method_pass)
    assert by_data.to_dict() == by_method.to_dict() != state_with_passes()[0].to_dict()
