"""The ``podm`` command: dispatches ``train|eval|deblur|converge`` to Hydra apps and ``data`` to argparse.

Every Hydra override after the sub-command is passed through unchanged, e.g.::

    podm eval methods=[tv,hl] datasets=[levin] limit=4
    podm train -m +experiment=quick model.stages=1,2
    podm eval --cfg job

A user error (bad input file, missing data, misspelt config key) prints one line on stderr and exits 2.
"""

from __future__ import annotations

import os
import sys

from podm_cli import __version__

HYDRA_COMMANDS = {
    "train": "train RPODM end to end with Lightning (podm train +experiment=levin)",
    "eval": "benchmark methods on the Levin/Sun protocols and print the paper's table",
    "deblur": "restore your own blurry image(s) with a known kernel",
    "converge": "PODM vs FISTA vs IRCNN convergence study (paper Fig. 2)",
}
OTHER_COMMANDS = {
    "data": "fetch / locate datasets and weights (podm data fetch levin --source DIR|URL)",
    "list": "what there is to choose from: podm list methods | datasets | experiments",
}

USAGE = """usage: podm <command> [hydra overrides | --help | --cfg job | -m ...]

PODM / RPODM non-blind deconvolution (Liu et al., NeurIPS 2018).

commands:
{commands}

Each Hydra command takes overrides (key=value, +experiment=NAME, -m for multirun sweeps);
`podm <command> --help` lists its config groups, `podm <command> --cfg job` prints its config.
"""


def _usage() -> str:
    rows = {**HYDRA_COMMANDS, **OTHER_COMMANDS}
    return USAGE.format(commands="\n".join(f"  {name:<9} {text}" for name, text in rows.items()))


def main(argv: list[str] | None = None) -> int:
    """Entry point of the ``podm`` console script; returns the process exit code."""
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or argv[0] in ("-h", "--help", "help"):
        print(_usage())
        return 0
    if argv[0] in ("-V", "--version"):
        print(f"podm {__version__}")
        return 0
    command, rest = argv[0], argv[1:]
    if command == "list":
        return _guarded(lambda: list_choices(rest), command)
    if command == "data":
        from podm_cli.apps.data import main as data_main

        return _guarded(lambda: data_main(rest), command)
    if command not in HYDRA_COMMANDS:
        choices = ", ".join([*HYDRA_COMMANDS, *OTHER_COMMANDS])
        print(f"podm: error: unknown command '{command}' (choose from {choices})", file=sys.stderr)
        return 2
    from podm_cli.apps import run_app

    return _guarded(lambda: run_app(command, rest), command)


LIST_KINDS = ("methods", "datasets", "experiments")


def _yaml_summary(path) -> str:
    """The first comment line of a config file (``# @package`` lines skipped), shortened to one clause."""
    for line in path.read_text().splitlines():
        text = line.lstrip("# ").strip()
        if not line.startswith("#") or not text or text.startswith("@package"):
            continue
        return text if len(text) <= 80 else text[:77].rsplit(" ", 1)[0] + " ..."
    return ""


def list_choices(args: list[str]) -> int:
    """``podm list methods|datasets|experiments``: one line each, the defaults marked."""
    import yaml

    from podm_cli.apps import config_dir
    from podm_cli.errors import PodmError

    if len(args) != 1 or args[0] not in LIST_KINDS:
        raise PodmError(f"usage: podm list {'|'.join(LIST_KINDS)}")
    kind, configs = args[0], config_dir()
    eval_cfg = yaml.safe_load((configs / "eval.yaml").read_text())
    suite = eval_cfg["suites"][eval_cfg["suite"]]
    deblur_defaults = yaml.safe_load((configs / "deblur.yaml").read_text())["defaults"]
    deblur_method = next(d["method"] for d in deblur_defaults if isinstance(d, dict) and "method" in d)
    rows = []
    if kind == "methods":
        for path in sorted((configs / "method").glob("*.yaml")):
            marks = [m for m, on in (("eval default", path.stem in (suite["methods"] or [path.stem])),
                                     ("deblur default", path.stem == deblur_method)) if on]
            rows.append((path.stem, marks, _yaml_summary(path)))
    elif kind == "datasets":
        from podm_cli.data.datasets import PROTOCOLS

        defaults = suite["datasets"]
        for name, spec in PROTOCOLS.items():
            marks = []
            if name in defaults:
                count = defaults[name]
                marks.append("eval default" + (f", first {count}" if count else ""))
            note = spec.note if len(spec.note) <= 80 else spec.note[:77].rsplit(" ", 1)[0] + " ..."
            rows.append((name, marks, note))
    else:
        for path in sorted((configs / "experiment").glob("*.yaml")):
            rows.append((path.stem, [], _yaml_summary(path)))
    width = max(len(name) for name, _, _ in rows)
    for name, marks, text in rows:
        flag = "*" if marks else " "
        mark = f" [{'; '.join(marks)}]" if marks else ""
        print(f"{flag} {name:<{width}}  {text}{mark}")
    if kind == "methods":
        print("* = a default: `podm eval` (suite=cpu) runs the eval defaults, `podm deblur` the deblur default")
    elif kind == "datasets":
        print("* = in `podm eval`'s default suite (suite=cpu); sun falls back to sun_substitute without Sun's data")
    else:
        print("use as: podm train +experiment=NAME")
    return 0


def _guarded(call, command: str) -> int:
    """Run ``call``; user errors become one line on stderr and exit code 2."""
    from podm_cli.apps.errors import one_line_error

    if os.environ.get("HYDRA_FULL_ERROR") == "1":  # the user asked for full tracebacks
        return int(call() or 0)
    try:
        code = call()
    except KeyboardInterrupt:
        print(f"podm {command}: interrupted", file=sys.stderr)
        return 130
    except SystemExit as exc:  # argparse, Hydra's own --help/--info, or a reported user error
        return exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 2)
    except Exception as exc:  # noqa: BLE001 - classified below, bugs re-raised
        message = one_line_error(exc)
        if message is None:
            raise
        print(f"podm {command}: error: {message}", file=sys.stderr)
        return 2
    return int(code or 0)


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
