"""Every exception the tap raises, in one tree.

    TapError                the root: whatever the tap raises on purpose
        ConfigError         the config, catalog or state given cannot be used
        StateInUseError     another process holds the state file's lock (exit 75)
        AuthError           Autopilot refused the API key (400, 401, 403)
        NotFoundError       404
        RetryableError      worth another try: 5xx, transport error, unusable 200 body
            RateLimitedError    429
        RestartScan         a scan's saved cursor vanished: the scan starts over

    Interrupted             a BaseException, outside the tree (see its docstring)

The CLI turns a TapError into one CRITICAL line and exit 1 (75 for StateInUseError);
each message is fit for the user's eyes (no key, no traceback).
"""

import signal


class TapError(Exception):
    """A fatal error with a message fit for the user's eyes (no key, no traceback)."""


class ConfigError(TapError):
    pass


class StateInUseError(TapError):
    """Another process (a pipeline run) holds the state file's lock: the CLI exits 75
    (EX_TEMPFAIL, "try again later"), not 1, so that a script can tell it from a mistake."""


class AuthError(TapError):
    pass


class NotFoundError(TapError):
    pass


class RetryableError(TapError):
    """A failure worth retrying: 5xx, transport error, unusable 200 body. Fatal
    only once the client's RetryPolicy gives up on it."""

    retry_after: float | None = None


class RateLimitedError(RetryableError):
    def __init__(self, message: str, retry_after: float | None = None) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class RestartScan(TapError):
    """The cursor a scan resumed after no longer exists (its contact was deleted).
    Caught by the scan itself (streams.base.PageScan), which starts over from its first page."""


class Interrupted(BaseException):
    """Raised in the main thread by the first SIGTERM or SIGINT.

    Not a TapError, and not even an Exception: like KeyboardInterrupt it must pass
    through every `except Exception` (the sync's own handlers, singer-python's,
    requests') up to the CLI, which writes the final STATE and exits 128 + signum."""

    def __init__(self, signum: int) -> None:
        super().__init__(signal.Signals(signum).name)
        self.signum = signum
        self.sync_started = False  # set by the code it unwinds
        self.final_state_written = False
        self.output_closed = False  # the final STATE could not be written: the reader had gone
