"""Turn the exceptions a user can cause into one line of text (the CLI exits 2 with it)."""

from __future__ import annotations

from hydra.errors import HydraException, MissingConfigException
from omegaconf.errors import OmegaConfBaseException

from podm_cli.errors import PodmError


def _first_line(text: str) -> str:
    return next((line.strip() for line in str(text).splitlines() if line.strip()), "")


def one_line_error(exc: BaseException) -> str | None:
    """One-line description of a user error, or ``None`` when ``exc`` is a bug (keep its traceback)."""
    if isinstance(exc, PodmError):
        return _first_line(str(exc)) or type(exc).__name__
    if isinstance(exc, (HydraException, MissingConfigException, OmegaConfBaseException)):
        if isinstance(exc.__cause__, PodmError):  # e.g. a method's constructor refused a parameter
            return one_line_error(exc.__cause__)
        head = _first_line(str(exc))
        cause = exc.__cause__
        if isinstance(cause, OmegaConfBaseException):
            detail = _first_line(str(cause))
            if detail and detail not in head:
                head = f"{head} {detail}" if head else detail
        return f"config: {head}" if head else f"config: {type(exc).__name__}"
    if isinstance(exc, ValueError) and str(exc).startswith("Only one of --run, --multirun"):
        return f"command line: {_first_line(str(exc))}"  # Hydra's check of conflicting mode flags
    cause = exc.__cause__ or exc.__context__
    if cause is not None and cause is not exc and isinstance(cause, PodmError):
        return one_line_error(cause)
    return None
