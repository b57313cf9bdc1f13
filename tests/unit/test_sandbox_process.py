"""The sandbox's own process (`python -m tap_autopilot.sandbox`): what it sets before it serves."""

import sys

import pytest

from tap_autopilot.sandbox import __main__ as sandbox_main


def test_the_sandbox_process_lets_a_due_answer_go_within_half_a_millisecond(monkeypatch):
    """`python -m tap_autopilot.sandbox` (the demo's and the benchmark's) shortens the
    interpreter's switch interval before it serves: an answer due while another thread
    builds a page leaves at its time, as a real server's would (sandbox/__main__.py)."""
    seen = {}

    class Started(Exception):
        pass

    class RecordingSandbox:
        def __init__(self, **settings):
            pass

        def start(self):
            seen["switch interval"] = sys.getswitchinterval()
            raise Started()  # serving is not this test's subject

    monkeypatch.setattr(sandbox_main, "Sandbox", RecordingSandbox)
    monkeypatch.setattr(sandbox_main.signal, "signal", lambda *args: None)
    before = sys.getswitchinterval()
    sys.setswitchinterval(0.005)  # Python's default, whatever an earlier test left
    try:
        with pytest.raises(Started):
            sandbox_main.main(["--port", "0"])
    finally:
        sys.setswitchinterval(before)
    assert seen["switch interval"] == pytest.approx(0.0005)
