"""--reset-stream: streams' bookmarks removed from a state file, in one write, under the
state's lock (state_file.py), every other byte of the file as it was (state.reset_stream)."""

import logging
import os

from tap_autopilot import state_file
from tap_autopilot.errors import ConfigError
from tap_autopilot.selection import split_names
from tap_autopilot.state import NoBookmarkError, StateFileError, reset_stream
from tap_autopilot.streams import STREAMS

LOGGER = logging.getLogger("tap_autopilot")


def stream_names(requested: list[str]) -> list[str]:
    """The streams named by the --reset-stream options (each may hold a comma list), each
    once, in the order given; ConfigError for none or an unknown one, before anything is read."""
    names = list(dict.fromkeys(split_names(requested)))
    if not names:
        raise ConfigError(
            f"--reset-stream needs a stream name: --reset-stream STREAM[,STREAM...]. The streams are "
            f"{', '.join(STREAMS)}."
        )
    for name in names:
        if name not in STREAMS:
            raise ConfigError(
                f"--reset-stream {name}: there is no such stream. The streams are {', '.join(STREAMS)}. "
                "Nothing was reset."
            )
    return names


def reset_streams(state_path: str | None, requested: list[str]) -> None:
    """Remove the bookmarks of the streams named from the state file, all in one write, while
    holding the state's lock (StateInUseError while a pipeline run holds it). A stream with no
    bookmark already starts from the beginning: that is said, and is no failure."""
    if not state_path:
        raise ConfigError(
            "--reset-stream needs the state file: tap-autopilot --state state.json --reset-stream STREAM[,STREAM...]."
        )
    names = stream_names(requested)
    if not os.path.exists(state_path):  # before the lock: no lock file beside a mistyped path
        raise ConfigError(f"The state file {state_path} does not exist. Check the --state path.")
    with state_file.locked(state_path):
        try:
            with open(state_path, "rb") as handle:
                text = handle.read().decode("utf-8")  # bytes: line ends kept as they are
        except FileNotFoundError:
            raise ConfigError(f"The state file {state_path} does not exist. Check the --state path.") from None
        except (OSError, UnicodeDecodeError) as error:
            raise ConfigError(f"The state file {state_path} cannot be read ({type(error).__name__}).") from None
        removed, absent = [], []
        for name in names:
            try:
                text = reset_stream(text, name)
                removed.append(name)
            except NoBookmarkError:
                absent.append(name)
            except StateFileError as error:
                raise ConfigError(f"The state file {state_path} {error}. Nothing was reset.") from None
        if removed:
            try:
                state_file.replace(state_path, text.encode("utf-8"), purpose="reset")
            except OSError as error:
                raise ConfigError(
                    f"The state file {state_path} cannot be replaced ({type(error).__name__}): check the folder's "
                    "permissions and free space; the file is unchanged."
                ) from None
    for name in removed:
        LOGGER.info(
            "Reset %s in %s: its bookmark is removed and every other byte is as it was. The next run reads it "
            "again %s.",
            name,
            state_path,
            "from the start date" if name == "contacts" else "under a new table version",
        )
    for name in absent:
        LOGGER.warning(
            "%s has no bookmark in %s: nothing to reset; the next run starts it from the beginning, as asked.%s",
            name,
            state_path,
            "" if removed else " The file is unchanged.",
        )
