"""Turn the exceptions a user can cause into one line of text (the CLI exits 2 with it)."""

from __future__ import annotations

import difflib
import re

from hydra.errors import HydraException, MissingConfigException
from omegaconf.errors import OmegaConfBaseException

from podm_cli.errors import PodmError

#: Terminal control sequences (colours, bold: ``\x1b[1m``) that torch and rich put in their messages.
_ANSI = re.compile(r"\x1b\[[0-9;?]*[ -/]*[@-~]|\x1b[@-Z\\-_]")


def strip_ansi(text: str) -> str:
    r"""``text`` without terminal colour / style codes.

    >>> strip_ansi("\x1b[1mWeights only load failed\x1b[0m")
    'Weights only load failed'
    """
    return _ANSI.sub("", str(text))


def _first_line(text: str) -> str:
    return next((line.strip() for line in strip_ansi(text).splitlines() if line.strip()), "")


def _available_options(text: str) -> tuple[str, list[str]] | None:
    """Hydra's "Available options in 'GROUP':" block of a missing-config error: (group, options)."""
    match = re.search(r"Available options in '([^']+)':\n((?:\t[^\n]*\n?)*)", text)
    if not match:
        return None
    options = [o.strip() for o in match.group(2).splitlines() if o.strip() and not o.strip().startswith("_")]
    return match.group(1), options


def _did_you_mean(word: str, choices) -> str:
    close = difflib.get_close_matches(str(word), [str(c) for c in choices], n=1, cutoff=0.6)
    return f"; did you mean '{close[0]}'?" if close else ""


def _config_error(exc: BaseException) -> str:
    """One line for a Hydra / OmegaConf error, keeping the part that helps: the available options of a
    config group, a "did you mean" for a misspelt key."""
    text = strip_ansi(str(exc))
    head = _first_line(text)
    cause = exc.__cause__
    if isinstance(exc, MissingConfigException):
        found = _available_options(text)
        if found:
            group, options = found
            wanted = re.search(r"Could not find '[^']*/([^'/]+)'", head)
            hint = _did_you_mean(wanted.group(1), options) if wanted else ""
            head = f"{head} (available options in '{group}': {', '.join(options)}){hint}"
        return head
    if isinstance(cause, OmegaConfBaseException):
        key = getattr(cause, "key", None)
        parent = getattr(cause, "parent_node", None)
        detail = _first_line(str(cause))
        if detail and detail not in head:
            head = f"{head} {detail}" if head else detail
        if key is not None and parent is not None and hasattr(parent, "keys"):
            keys = [k for k in parent.keys() if str(k) != "hydra" and not str(k).startswith("_")]
            head += _did_you_mean(key, keys)
    return head


def one_line_error(exc: BaseException) -> str | None:
    """One-line description of a user error, or ``None`` when ``exc`` is a bug (keep its traceback)."""
    if isinstance(exc, PodmError):
        return _first_line(str(exc)) or type(exc).__name__
    if isinstance(exc, (HydraException, MissingConfigException, OmegaConfBaseException)):
        if isinstance(exc.__cause__, PodmError):  # e.g. a method's constructor refused a parameter
            return one_line_error(exc.__cause__)
        head = _config_error(exc)
        return f"config: {head}" if head else f"config: {type(exc).__name__}"
    if isinstance(exc, ValueError) and str(exc).startswith("Only one of --run, --multirun"):
        return f"command line: {_first_line(str(exc))}"  # Hydra's check of conflicting mode flags
    cause = exc.__cause__ or exc.__context__
    if cause is not None and cause is not exc and isinstance(cause, PodmError):
        return one_line_error(cause)
    return None
