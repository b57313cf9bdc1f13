"""The command line: arguments, logging (with the API key redacted), exit codes.

main() parses arguments, validates the config, and runs discovery, a sync (runner.py) or
a reset (state/reset.py).
Every failure the user can fix ends in one CRITICAL line on stderr and exit 1 (75 for
a state file whose lock a pipeline run holds); tracebacks are only logged with --debug.
"""

import argparse
import datetime
import json
import logging
import os
import re
import signal
import sys
from typing import Any, NoReturn

from tap_autopilot import __version__
from tap_autopilot.catalog import check_names, given_names, select, split_names
from tap_autopilot.config import SETTINGS, validate_config
from tap_autopilot.discover import discover
from tap_autopilot.errors import ConfigError, Interrupted, RetryableError, StateInUseError, TapError
from tap_autopilot.http.client import AutopilotClient
from tap_autopilot.runner import STOP_WRITE_GRACE_SECONDS, exit_code_for, install_stop_signals, sync_until_stopped
from tap_autopilot.state.reset import reset_streams
from tap_autopilot.streams import STREAMS

LOGGER = logging.getLogger("tap_autopilot")

NAME = "tap-autopilot"
DESCRIPTION = "Singer tap for Autopilot: contacts, lists, smart segments and their memberships."
CAPABILITIES = ["catalog", "discover", "state", "properties", "about"]


def version() -> str:
    return __version__


# What may stand right before a secret that begins with a letter or digit: no letter or
# digit, or the end of an escape (\n, \x41, \u00e9, %20), which ends in one.
_TOKEN_START = r"(?:(?<![A-Za-z0-9])|(?<=\\[a-z])|(?<=\\x[0-9A-Fa-f]{2})|(?<=\\u[0-9A-Fa-f]{4})|(?<=%[0-9A-Fa-f]{2}))"
_TOKEN_END = r"(?![A-Za-z0-9])"
_ALPHANUMERIC = re.compile(r"[A-Za-z0-9]")


def secret_pattern(secrets: list[str]) -> "re.Pattern[str] | None":
    """Where a secret stands as a token of its own: never inside a longer word (a key "a"
    leaves "pages" alone), but wherever else it is written: in a header, a URL, quoted, in
    JSON, after an escape. An edge of the secret that is not a letter or digit needs no
    boundary. None when there is no secret."""
    parts = []
    for secret in sorted(set(filter(None, secrets)), key=len, reverse=True):  # the longest first
        before = _TOKEN_START if _ALPHANUMERIC.match(secret[0]) else ""
        after = _TOKEN_END if _ALPHANUMERIC.match(secret[-1]) else ""
        parts.append(before + re.escape(secret) + after)
    return re.compile("|".join(parts)) if parts else None


class _RedactingFormatter(logging.Formatter):
    """Belt and braces: no log line may carry the API key, whatever produced
    it. Redacts the whole formatted line, --debug tracebacks included."""

    def __init__(self, fmt: str) -> None:
        super().__init__(fmt)
        self._secrets: list[str] = []
        self._pattern: re.Pattern[str] | None = None

    @property
    def secrets(self) -> list[str]:
        return self._secrets

    @secrets.setter
    def secrets(self, secrets: list[str]) -> None:
        self._secrets = list(secrets)
        self._pattern = secret_pattern(self._secrets)

    def format(self, record: logging.LogRecord) -> str:
        text = super().format(record)
        return text if self._pattern is None else self._pattern.sub("<redacted>", text)


_FORMATTER = _RedactingFormatter("%(levelname)s %(message)s")


LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL")


def log_level(debug: bool, requested: str) -> int:
    """The tap's log level: DEBUG with --debug, else $LOG_LEVEL if it names a
    level (WARNING hides the INFO progress and METRIC lines), else INFO."""
    if debug:
        return logging.DEBUG
    level = logging.getLevelName(requested.strip().upper()) if requested else None
    return level if isinstance(level, int) else logging.INFO


def unknown_log_level(requested: str) -> bool:
    """The LOG_LEVEL rule: a $LOG_LEVEL that is set but names no level (verbose, 10) is
    warned about; the tap then logs at INFO."""
    return bool(requested.strip()) and not isinstance(logging.getLevelName(requested.strip().upper()), int)


def _setup_logging(debug: bool, requested_level: str = "") -> None:
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(_FORMATTER)
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(logging.WARNING)
    LOGGER.setLevel(log_level(debug, requested_level))
    if unknown_log_level(requested_level):
        LOGGER.warning(
            "LOG_LEVEL=%r is not a log level; logging at %s. It takes %s.",
            requested_level[:40],
            "DEBUG (--debug)" if debug else "INFO",
            ", ".join(LOG_LEVELS),
        )


def _parse_args(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog=NAME, description=DESCRIPTION)
    parser.add_argument("-c", "--config", help="config JSON file")
    parser.add_argument("-s", "--state", help="state JSON file from the last run")
    parser.add_argument(
        "--catalog", help="catalog JSON file with the selected streams (without it: every stream, default columns)"
    )
    parser.add_argument("-p", "--properties", help="legacy name for --catalog")
    parser.add_argument("-d", "--discover", action="store_true", help="print the catalog and exit")
    parser.add_argument(
        "--select",
        action="append",
        metavar="STREAM[,STREAM...]",
        help="with --discover: mark these streams selected (and the others not); repeatable",
    )
    parser.add_argument(
        "--exclude",
        action="append",
        metavar="STREAM.COLUMN[,...]",
        help="with --discover: leave these columns out (every stream selected unless --select says otherwise)",
    )
    parser.add_argument(
        "--reset-stream",
        action="append",
        metavar="STREAM[,STREAM...]",
        help="remove these streams' bookmarks from the --state file (every other byte kept), so the next run starts "
        "them again; repeatable. Exits 75 while a pipeline run holds the state's lock",
    )
    parser.add_argument("--about", action="store_true", help="print what this tap is and takes, as JSON")
    parser.add_argument("--version", action="store_true", help="print the version")
    parser.add_argument("--debug", action="store_true", help="verbose logs, with tracebacks")
    return parser.parse_args(argv)


def _load_json(path: str, what: str, flag: str) -> Any:
    try:
        with open(path, encoding="utf-8") as handle:
            return json.load(handle)
    except FileNotFoundError:
        raise ConfigError(f"The {what} file {path} does not exist. Check the {flag} path.") from None
    except (OSError, UnicodeDecodeError) as error:
        raise ConfigError(
            f"The {what} file {path} cannot be read ({type(error).__name__}). Check the {flag} path."
        ) from None
    except ValueError as error:
        raise ConfigError(f"The {what} file {path} is not valid JSON ({error}). Fix the file.") from None


def about() -> dict[str, Any]:
    return {
        "name": NAME,
        "version": version(),
        "description": DESCRIPTION,
        "capabilities": CAPABILITIES,
        "settings": [{k: v for k, v in s.items() if k != "kind"} for s in SETTINGS],
        "required_settings": [s["name"] for s in SETTINGS if s["required"]],
        "secret_settings": [s["name"] for s in SETTINGS if s["secret"]],
        "streams": list(STREAMS),
    }


def _print_document(text: str) -> None:
    """Print a command's whole answer (--version, --about, --discover) and flush it. A reader
    that closed the pipe early (`| head -1`) took what it wanted: exit at once without a word,
    with 141, as a process killed by SIGPIPE does, so that a pipeline under `set -o pipefail`
    sees the output cut as it does for any other command."""
    if sys.stdout is None:  # started with stdout closed (>&-)
        raise TapError("Standard output is closed: there is nowhere to print to.")
    try:
        sys.stdout.write(text + "\n")
        sys.stdout.flush()
    except BrokenPipeError:
        sys.stderr.flush()
        os._exit(exit_code_for(signal.SIGPIPE))  # stdout is gone: skip flushing it at exit


def run(args: argparse.Namespace) -> None:
    if args.version:
        _print_document(f"{NAME} {version()}")
        return
    if args.about:
        _print_document(json.dumps(about(), indent=2))
        return
    if args.reset_stream is not None:
        reset_streams(args.state, split_names(args.reset_stream), list(STREAMS))
        return
    if not args.config:
        raise ConfigError(
            "No config given. Run: tap-autopilot --config config.json [--discover | --catalog "
            "catalog.json [--state state.json]]"
        )
    run_began = datetime.datetime.now(datetime.UTC)  # no start_date or bookmark may be later
    selected_names = given_names("--select", args.select)
    excluded_names = given_names("--exclude", args.exclude) or []
    if selected_names is not None or excluded_names:
        if not args.discover:
            raise ConfigError(
                "--select and --exclude go with --discover: tap-autopilot --config C --discover --select ..."
            )
        check_names(list(STREAMS), selected_names, excluded_names)  # before any request
    raw_config = _load_json(args.config, "config", "--config")
    # Known to the log formatter before validation: a message about another setting may quote it.
    key = raw_config.get("api_key") if isinstance(raw_config, dict) else None
    if isinstance(key, str):
        _FORMATTER.secrets = sorted({secret for secret in (key, key.strip()) if secret}, key=len, reverse=True)
    config = validate_config(raw_config, now=run_began)
    catalog_path = args.catalog or args.properties
    catalog: dict[str, Any] | None = None  # read below unless --discover; None: every stream
    state: dict[str, Any] = {}
    if not args.discover:
        if catalog_path:
            catalog = _load_json(catalog_path, "catalog", "--catalog" if args.catalog else "--properties")
            if not isinstance(catalog, dict) or not isinstance(catalog.get("streams"), list):
                raise ConfigError(
                    f"The catalog file {catalog_path} has no 'streams' list. Create it with "
                    "tap-autopilot --config config.json --discover."
                )
        if args.state:
            state = _load_json(args.state, "state", "--state")
            if not isinstance(state, dict):
                raise ConfigError(f"The state file {args.state} must hold a JSON object.")

    client = AutopilotClient(config)
    if args.discover:
        catalog = discover(client)
        if selected_names is not None or excluded_names:
            select(catalog, selected_names, excluded_names)
        _print_document(json.dumps(catalog, indent=2))
        return
    if catalog is None:
        catalog = select(discover(client))
        LOGGER.info(
            "No --catalog given: syncing every stream (%s) with its default columns. To choose streams or "
            "columns: tap-autopilot --config C --discover --select STREAM --exclude STREAM.COLUMN > catalog.json.",
            ", ".join(entry["tap_stream_id"] for entry in catalog["streams"]),
        )
    sync_until_stopped(client, config, state, catalog, run_began)


def _exit_stopped(stop: Interrupted) -> NoReturn:
    """Log how to resume after a SIGTERM/SIGINT and exit 128 + the signal number
    at once: requests still in flight (even a stuck one) are dropped."""
    name = signal.Signals(stop.signum).name
    if not stop.sync_started:
        LOGGER.warning("Stopped by %s before the sync began; nothing was written.", name)
    elif stop.final_state_written:
        LOGGER.warning(
            "Stopped by %s. The last STATE written covers every record written: run again with it "
            "(--state) to continue where this run stopped.",
            name,
        )
    elif stop.output_closed:
        LOGGER.critical(
            "Stopped by %s after the output was closed (has the target exited?): the final STATE could not be "
            "written. Run again with the last state the target saved (--state).",
            name,
        )
    else:
        LOGGER.critical(
            "Stopped by %s while the output was blocked for %d s (is the target reading?); the last "
            "complete STATE line covers every record before it: run again with it (--state).",
            name,
            STOP_WRITE_GRACE_SECONDS,
        )
    sys.stderr.flush()
    os._exit(exit_code_for(stop.signum))  # skip joining threads stuck in a request


def main(argv: list[str] | None = None) -> None:
    args = _parse_args(sys.argv[1:] if argv is None else argv)
    _setup_logging(args.debug, os.environ.get("LOG_LEVEL", ""))
    install_stop_signals()
    try:
        run(args)
    except Interrupted as stop:
        _exit_stopped(stop)
    except StateInUseError as error:  # before TapError, which it is: "try again later", not a mistake
        LOGGER.critical("%s", error)
        sys.exit(os.EX_TEMPFAIL)
    except RetryableError as error:  # before TapError, which it is
        LOGGER.debug("Details:", exc_info=True)
        LOGGER.critical(
            "Autopilot could not be reached or kept failing, retries exhausted: %s. Check base_url and the "
            "network, then run again with the last state.",
            error,
        )
        sys.exit(1)
    except TapError as error:
        LOGGER.debug("Details:", exc_info=True)
        LOGGER.critical("%s", error)
        sys.exit(1)
    except BrokenPipeError:
        # The target exited: whatever it accepted is covered by the STATE it saw.
        sys.stderr.write("CRITICAL The output pipe closed (did the target exit?). Stopping.\n")
        os._exit(1)  # stdout is gone: skip flushing it at exit
    except Exception as error:
        LOGGER.debug("Details:", exc_info=True)
        LOGGER.critical(
            "Unexpected error (%s): %s. Run with --debug for details and report it.", type(error).__name__, error
        )
        sys.exit(1)
