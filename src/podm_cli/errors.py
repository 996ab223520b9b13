"""Errors a user can cause (bad input, missing data, wrong config value).

The CLI turns every :class:`PodmError` into one line on stderr and exit code 2; anything else is a bug
and keeps its traceback.
"""


class PodmError(Exception):
    """A problem with the user's input or environment, reported as one line (exit code 2)."""


class InputError(PodmError, ValueError):
    """An input file or value is unusable (unreadable image, invalid kernel, bad sigma, ...)."""


class DataNotFoundError(PodmError, FileNotFoundError):
    """Reference data or weights are missing; the message says how to fetch them."""
