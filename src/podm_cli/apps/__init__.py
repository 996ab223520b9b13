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


def _reporting_user_errors(command: str, task):
    """Wrap a Hydra task so a user error (:func:`podm_cli.apps.errors.one_line_error`) ends the run with one
    line and exit code 2.

    Raised inside the task, the error would otherwise be logged by Hydra's job runner as well.
    """
    import functools

    @functools.wraps(task)
    def wrapped(cfg):
        try:
            return task(cfg)
        except Exception as exc:  # noqa: BLE001 - user errors (also wrapped by Hydra's instantiate) end here
            from podm_cli.apps.errors import one_line_error

            message = one_line_error(exc)
            if message is None:
                raise
            print(f"podm {command}: error: {message}", file=sys.stderr)
            raise SystemExit(2) from None

    return wrapped


def run_app(command: str, overrides: list[str]) -> int:
    """Run the Hydra app for ``command`` with ``overrides`` exactly as typed on the command line."""
    import hydra

    from podm_cli.apps.schema import register_schemas

    register_schemas()
    module = importlib.import_module(APP_MODULES[command])
    # Hydra re-raises instead of printing its own multi-line report; the CLI prints one line.
    # A user who sets HYDRA_FULL_ERROR=1 keeps Hydra's full traceback.
    user_full_error = os.environ.get("HYDRA_FULL_ERROR")
    os.environ["HYDRA_FULL_ERROR"] = "1"
    overrides = app_overrides(command, overrides)
    saved_argv = sys.argv
    sys.argv = [f"podm {command}", *overrides]
    try:
        entry = hydra.main(version_base="1.3", config_path=str(config_dir()), config_name=command)(
            _reporting_user_errors(command, module.main)
        )
        entry()
    finally:
        sys.argv = saved_argv
        if user_full_error is None:
            os.environ.pop("HYDRA_FULL_ERROR", None)
        else:
            os.environ["HYDRA_FULL_ERROR"] = user_full_error
    return 0
