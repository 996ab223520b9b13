"""Hydra edge of podm: one app per sub-command, each with its primary config in ``configs/``.

Library code never imports Hydra; the apps turn a composed config into plain arguments.
"""

from __future__ import annotations

import importlib
import os
import sys
from pathlib import Path

APP_MODULES = {
    "train": "podm_cli.apps.train",
    "eval": "podm_cli.apps.evaluate",
    "deblur": "podm_cli.apps.deblur",
    "converge": "podm_cli.apps.converge",
}


def config_dir() -> Path:
    """The folder holding ``eval.yaml``, ``train.yaml``, ... and the config groups.

    In a wheel the configs ship inside the package (``podm_cli/configs``); in a source checkout
    (editable install) they live at the repository root (``configs/``).
    """
    packaged = Path(__file__).resolve().parent.parent / "configs"
    if (packaged / "eval.yaml").is_file():
        return packaged
    checkout = Path(__file__).resolve().parents[3] / "configs"
    if (checkout / "eval.yaml").is_file():
        return checkout
    raise RuntimeError(f"podm configs not found (looked in {packaged} and {checkout}); broken install")


#: Hydra's command-line flags that take a value (``--cfg job``).
FLAGS_WITH_VALUE = {"--cfg", "-c", "--package", "-p", "--config-path", "-cp", "--config-name", "-cn",
                    "--config-dir", "-cd", "--experimental-rerun"}


def _quote(value: str) -> str:
    return "'" + value.replace("\\", "\\\\").replace("'", "\\'") + "'"


def positional_inputs_to_override(args: list[str]) -> list[str]:
    """``podm deblur a.png dir/ 'b*.png' kernel=k.png`` -> ``kernel=k.png inputs=['a.png','dir/','b*.png']``.

    Arguments without ``=`` that are not flags (nor a flag's value) are input paths.
    """
    paths, rest, expect_value = [], [], False
    for arg in args:
        if expect_value:
            rest.append(arg)
            expect_value = False
        elif arg.startswith("-"):
            rest.append(arg)
            expect_value = arg in FLAGS_WITH_VALUE
        elif "=" in arg:
            rest.append(arg)
        else:
            paths.append(arg)
    if paths:
        rest.append("inputs=[" + ",".join(_quote(p) for p in paths) + "]")
    return rest


def app_overrides(command: str, overrides: list[str]) -> list[str]:
    """The Hydra overrides of ``podm <command> <overrides>``: deblur's positional inputs become ``inputs=``,
    and eval gets every ``configs/method/*.yaml`` under ``method_cfg``."""
    if command == "deblur":
        overrides = positional_inputs_to_override(overrides)
    if command == "eval":
        from podm_cli.apps.methods import method_overrides

        overrides = _with_overrides(overrides, method_overrides(overrides))
    return overrides


def _with_overrides(args: list[str], extra: list[str]) -> list[str]:
    """``extra`` overrides inserted beside the user's own (Hydra's argparse wants them contiguous).

    >>> _with_overrides(["-m", "--cfg", "job", "limit=1"], ["x=1"])
    ['-m', '--cfg', 'job', 'x=1', 'limit=1']
    >>> _with_overrides(["--cfg", "job"], ["x=1"])
    ['--cfg', 'job', 'x=1']
    """
    expect_value = False
    for i, arg in enumerate(args):
        if expect_value:
            expect_value = False
        elif arg.startswith("-"):
            expect_value = arg in FLAGS_WITH_VALUE
        else:
            return [*args[:i], *extra, *args[i:]]
    return [*args, *extra]


#: Config keys that hold a list, per app: ``methods=tv`` / ``methods=tv,hl`` mean ``methods=[tv]`` / ``[tv,hl]``.
LIST_KEYS = {"eval": ("methods", "datasets")}


def list_overrides(command: str, args: list[str]) -> list[str]:
    """Accept a bare value for a list key: ``methods=tv`` -> ``methods=[tv]``, ``datasets=levin,sun`` ->
    ``datasets=[levin,sun]`` (outside ``-m`` sweeps, where a comma separates the runs of a sweep).

    >>> list_overrides("eval", ["methods=tv", "datasets=levin,sun", "methods=null", "limit=2"])
    ['methods=[tv]', 'datasets=[levin,sun]', 'methods=null', 'limit=2']
    >>> list_overrides("eval", ["-m", "methods=tv,hl"])
    ['-m', 'methods=tv,hl']
    """
    keys = LIST_KEYS.get(command, ())
    multirun = any(a in ("-m", "--multirun") for a in args)
    out = []
    for arg in args:
        key, sep, value = arg.partition("=")
        bare = value.strip() and value.strip()[0] not in "[(" and value.strip().lower() not in ("null", "none")
        if sep and key in keys and bare and not (multirun and "," in value):
            arg = f"{key}=[{value}]"
        out.append(arg)
    return out


class _RunState:
    """What the wrapped task saw: whether it started, and its run directory (run mode only)."""

    def __init__(self):
        self.started = False
        self.run_dir: Path | None = None
        self.output_root: Path | None = None


def _tidy_failed_run(command: str, state: _RunState) -> None:
    """After a failed run: remove a run directory that holds nothing but Hydra's bookkeeping (``.hydra/``,
    empty logs), or say where the partial results are."""
    import shutil

    run_dir = state.run_dir
    if run_dir is None or not run_dir.is_dir():
        return
    useful = [p for p in run_dir.rglob("*") if p.is_file() and p.stat().st_size > 0
              and ".hydra" not in p.relative_to(run_dir).parts and p.suffix != ".log"]
    if useful:
        hint = " (continue with resume=true hydra.run.dir=" + str(run_dir) + ")" if command == "eval" else ""
        print(f"podm {command}: partial results kept in {run_dir}{hint}", file=sys.stderr)
        return
    shutil.rmtree(run_dir / ".hydra", ignore_errors=True)
    for log in run_dir.glob("*.log"):
        log.unlink(missing_ok=True)
    # the run directory, then its empty parents inside the output root (outputs/eval, outputs)
    root = state.output_root.resolve() if state.output_root is not None else None
    folder = run_dir.resolve()
    while folder != Path.cwd().resolve():
        try:
            folder.rmdir()
        except OSError:
            break
        if root is None or folder == root or root not in folder.parents:
            break
        folder = folder.parent


def _reporting_user_errors(command: str, task, state: _RunState):
    """Wrap a Hydra task so a user error (:func:`podm_cli.apps.errors.one_line_error`) ends the run with one
    line and exit code 2, and a failed run leaves no empty run directory behind.

    Raised inside the task, the error would otherwise be logged by Hydra's job runner as well.
    """
    import functools

    @functools.wraps(task)
    def wrapped(cfg):
        from hydra.core.hydra_config import HydraConfig
        from hydra.types import RunMode

        state.started = True
        hydra_cfg = HydraConfig.get()
        if hydra_cfg.mode == RunMode.RUN:
            state.run_dir = Path(hydra_cfg.runtime.output_dir)
            state.output_root = Path(cfg.paths.output_root) if "paths" in cfg else None
        try:
            return task(cfg)
        except BaseException as exc:
            from podm_cli.apps.errors import one_line_error

            _tidy_failed_run(command, state)
            message = one_line_error(exc) if isinstance(exc, Exception) else None
            if message is None:
                raise
            print(f"podm {command}: error: {message}", file=sys.stderr)
            raise SystemExit(2) from None

    return wrapped


def _close_run_log_files() -> None:
    """Detach the run's log files that Hydra's job logging attached, so a later run in the same process (the
    tests, a notebook) never writes into, or re-opens, a run directory that is finished or deleted."""
    import logging

    for logger in (logging.getLogger(), *(logging.getLogger(n) for n in list(logging.root.manager.loggerDict))):
        for handler in list(getattr(logger, "handlers", ())):
            if isinstance(handler, logging.FileHandler):
                logger.removeHandler(handler)
                handler.close()


def run_app(command: str, overrides: list[str]) -> int:
    """Run the Hydra app for ``command`` with ``overrides`` exactly as typed on the command line."""
    import hydra

    from podm_cli.apps.schema import register_schemas
    from podm_cli.errors import PodmError

    register_schemas()
    module = importlib.import_module(APP_MODULES[command])
    # Hydra re-raises instead of printing its own multi-line report; the CLI prints one line.
    # A user who sets HYDRA_FULL_ERROR=1 keeps Hydra's full traceback.
    user_full_error = os.environ.get("HYDRA_FULL_ERROR")
    os.environ["HYDRA_FULL_ERROR"] = "1"
    overrides = app_overrides(command, list_overrides(command, overrides))
    saved_argv = sys.argv
    sys.argv = [f"podm {command}", *overrides]
    state = _RunState()
    try:
        entry = hydra.main(version_base="1.3", config_path=str(config_dir()), config_name=command)(
            _reporting_user_errors(command, module.main, state)
        )
        entry()
    except OSError as exc:
        if state.started or exc.filename is None:  # e.g. a closed pipe (podm eval --help | head)
            raise
        # Hydra creates the run directory (and writes .hydra/, the log) before the task starts.
        where = exc.filename or "the run directory"
        raise PodmError(
            f"cannot create the run directory {where}: {exc.strerror or exc}; run podm from a writable "
            f"directory, or set PODM_OUTPUT=DIR (or hydra.run.dir=DIR) to a writable one"
        ) from None
    finally:
        sys.argv = saved_argv
        _close_run_log_files()
        if user_full_error is None:
            os.environ.pop("HYDRA_FULL_ERROR", None)
        else:
            os.environ["HYDRA_FULL_ERROR"] = user_full_error
    return 0
