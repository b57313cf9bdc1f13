"""Resetting streams in a state file: their bookmarks removed from its text, every other
byte as it was (reset_stream), all in one write under the state's lock (file.py).

The text is edited rather than parsed and dumped again so that a state file someone keeps
under version control or reads by eye changes by exactly the entries removed."""

import json
import logging
import os
from collections.abc import Sequence
from typing import Any

from tap_autopilot.errors import ConfigError
from tap_autopilot.state import file

LOGGER = logging.getLogger("tap_autopilot")


class StateFileError(ConfigError):
    """A state file that reset_stream cannot change (the message says why)."""


class NoBookmarkError(StateFileError):
    """The stream has no bookmark to remove: it already starts from the beginning."""


# The top-level keys of a state this tap writes (module docstring).
_KEYS_THIS_TAP_WRITES = ("currently_syncing", "bookmarks", "default_start_date")


def _skip_space(text: str, position: int) -> int:
    while position < len(text) and text[position] in " \t\n\r":
        position += 1
    return position


def _members(text: str, start: int) -> list[tuple[str, int, int, int]]:
    """[(key, key_start, value_start, value_end)] of the JSON object whose '{' is text[start]."""
    decoder = json.JSONDecoder()
    members: list[tuple[str, int, int, int]] = []
    position = _skip_space(text, start + 1)
    if text[position] == "}":
        return members
    while True:
        key_start = position
        key, position = decoder.raw_decode(text, position)
        value_start = _skip_space(text, _skip_space(text, position) + 1)  # past ':'
        _, value_end = decoder.raw_decode(text, value_start)
        members.append((key, key_start, value_start, value_end))
        position = _skip_space(text, value_end)
        if text[position] == "}":
            return members
        position = _skip_space(text, position + 1)  # past ','


def _member(text: str, start: int, key: str) -> tuple[str, int, int, int]:
    # Only called for a key json.loads found in that object, so it is there.
    return next(member for member in _members(text, start) if member[0] == key)


def _unique_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    # json.loads keeps the last of a repeated key, the text edit would find the first.
    keys = [key for key, _ in pairs]
    if len(set(keys)) < len(keys):
        repeated = next(key for key in keys if keys.count(key) > 1)
        raise StateFileError(f"holds the key {repeated!r} twice in one object: keep one of them, then reset again")
    return dict(pairs)


def reset_stream(text: str, stream_id: str) -> str:
    """The text of a state file without the stream's bookmark entry, every other byte as
    it was: the next run starts that stream again (contacts from the start date, a
    full-table stream under a new version) and every other stream where it was. Takes a
    Singer state or Meltano's {"singer_state": ...}. Edits the text rather than
    rewriting the document so that nothing else changes, formatting included.
    NoBookmarkError when the stream has no entry; StateFileError when the text is not a
    state this tap can change (not JSON, a key twice, not this tap's shape)."""
    try:
        document = json.loads(text, object_pairs_hook=_unique_keys)
    except ValueError as error:
        raise StateFileError(f"is not valid JSON ({error})") from None
    if not isinstance(document, dict):
        raise StateFileError("does not hold a JSON object")
    start = _skip_space(text, 0)
    if "bookmarks" not in document and isinstance(document.get("singer_state"), dict):  # Meltano's
        start = _member(text, start, "singer_state")[2]
        document = document["singer_state"]
    bookmarks = document.get("bookmarks")
    if "bookmarks" in document and not isinstance(bookmarks, dict):
        raise StateFileError("holds 'bookmarks' that is not an object: check that --state names this tap's state file")
    if bookmarks is None and set(document) - set(_KEYS_THIS_TAP_WRITES):  # e.g. the config file given as --state
        raise StateFileError(
            "has no 'bookmarks' and keys this tap never writes: check that --state names this tap's state file"
        )
    if not isinstance(bookmarks, dict) or stream_id not in bookmarks:
        raise NoBookmarkError(f"has no bookmark for {stream_id!r}: that stream already starts from the beginning")
    entries = _members(text, _member(text, start, "bookmarks")[2])
    index = [entry[0] for entry in entries].index(stream_id)
    if index + 1 < len(entries):  # up to the next entry's key, its comma included
        cut = entries[index][1], entries[index + 1][1]
    elif index > 0:  # the last: from the end of the one before, its comma included
        cut = entries[index - 1][3], entries[index][3]
    else:
        cut = entries[index][1], entries[index][3]
    return text[: cut[0]] + text[cut[1] :]


def stream_names(requested: list[str], known: Sequence[str]) -> list[str]:
    """The streams named by the --reset-stream options (each may hold a comma list), each
    once, in the order given; ConfigError for none or an unknown one, before anything is read."""
    names = list(dict.fromkeys(requested))
    if not names:
        raise ConfigError(
            f"--reset-stream needs a stream name: --reset-stream STREAM[,STREAM...]. The streams are "
            f"{', '.join(known)}."
        )
    for name in names:
        if name not in known:
            raise ConfigError(
                f"--reset-stream {name}: there is no such stream. The streams are {', '.join(known)}. "
                "Nothing was reset."
            )
    return names


def reset_streams(state_path: str | None, requested: list[str], known: Sequence[str]) -> None:
    """Remove the bookmarks of the streams named from the state file, all in one write, while
    holding the state's lock (StateInUseError while a pipeline run holds it). A stream with no
    bookmark already starts from the beginning: that is said, and is no failure."""
    if not state_path:
        raise ConfigError(
            "--reset-stream needs the state file: tap-autopilot --state state.json --reset-stream STREAM[,STREAM...]."
        )
    names = stream_names(requested, known)
    if not os.path.exists(state_path):  # before the lock: no lock file beside a mistyped path
        raise ConfigError(f"The state file {state_path} does not exist. Check the --state path.")
    with file.locked(state_path):
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
                file.replace(state_path, text.encode("utf-8"), purpose="reset")
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
