"""Errors a person can act on.

Every error divekit raises on bad input is a :class:`DivekitError`: its message names the input,
what was expected and what to do. The CLI prints these without a traceback.
"""

import difflib


class DivekitError(Exception):
    """Bad input or a failed step, with a message that says how to fix it."""


class ConfigError(DivekitError, ValueError):
    """A configuration value or option is invalid."""


class DataError(DivekitError):
    """A dataset file is missing, corrupt, or cannot be downloaded."""


class ChecksumError(DataError):
    """A downloaded or cached file does not have the expected hash."""


class TrainingDiverged(DivekitError):
    """The loss became NaN or infinite; the last good checkpoint is kept."""


def did_you_mean(name: str, choices) -> str:
    """A ' Did you mean ...?' suffix naming the closest choices, or '' when nothing is close."""
    close = difflib.get_close_matches(name, list(choices), n=3, cutoff=0.5)
    return f" Did you mean {' or '.join(repr(c) for c in close)}?" if close else ""
