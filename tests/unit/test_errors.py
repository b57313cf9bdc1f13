"""The exception tree (errors.py): what the command line and the retry policy rely on."""

import signal

import pytest

from tap_autopilot import errors


@pytest.mark.parametrize(
    "error",
    [
        errors.ConfigError,
        errors.StateInUseError,
        errors.AuthError,
        errors.NotFoundError,
        errors.RetryableError,
        errors.RateLimitedError,
        errors.RestartScan,
    ],
)
def test_every_error_the_tap_raises_on_purpose_is_a_tap_error(error):
    """The command line turns a TapError into one CRITICAL line; anything else is 'unexpected'."""
    assert issubclass(error, errors.TapError)


def test_a_429_is_retried_as_any_retryable_failure_and_keeps_its_retry_after():
    error = errors.RateLimitedError("throttled", retry_after=2.5)
    assert isinstance(error, errors.RetryableError) and error.retry_after == 2.5
    assert errors.RetryableError("5xx").retry_after is None


def test_a_stop_passes_through_every_except_exception():
    """A handler for Exception (ours, singer-python's, requests') must not swallow a SIGTERM."""
    stop = errors.Interrupted(signal.SIGTERM)
    assert not isinstance(stop, Exception) and not isinstance(stop, errors.TapError)
    assert (stop.signum, str(stop), stop.sync_started, stop.final_state_written) == (
        signal.SIGTERM,
        "SIGTERM",
        False,
        False,
    )
