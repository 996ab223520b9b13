"""The `podm` command as a user meets it: help, config composition from anywhere, one-line errors."""

from __future__ import annotations

import pytest

from conftest import error_lines, run_podm


def test_help_lists_every_command(tmp_path):
    proc = run_podm(["--help"], tmp_path)
    assert proc.returncode == 0
    for command in ("train", "eval", "deblur", "converge", "data", "list"):
        assert f"  {command}" in proc.stdout


@pytest.mark.parametrize("app", ["eval", "train", "deblur", "converge"])
def test_cfg_job_resolves_from_any_directory(tmp_path, app):
    proc = run_podm([app, "--cfg", "job"], tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert "data:" in proc.stdout and "root:" in proc.stdout


def test_experiment_and_overrides_compose(tmp_path):
    proc = run_podm(["train", "+experiment=quick", "model.stages=3", "--cfg", "job"], tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert "stages: 3" in proc.stdout and "accelerator: cpu" in proc.stdout


def test_misspelt_config_key_is_one_line_exit_2(tmp_path):
    proc = run_podm(["eval", "operator.boundry=circular"], tmp_path)
    assert proc.returncode == 2
    lines = error_lines(proc)
    assert len(lines) == 1 and "boundry" in lines[0] and "Traceback" not in proc.stderr


@pytest.mark.parametrize(
    "override, fragment",
    [("operator.boundary=foo", "expected one of"), ("limit=abc", "Integer"), ("device=tpu", "device")],
)
def test_bad_config_values_are_one_line_exit_2(tmp_path, override, fragment):
    proc = run_podm(["eval", override, "methods=[]", "datasets=[levin]", "data.root=/nowhere"], tmp_path)
    assert proc.returncode == 2
    lines = error_lines(proc)
    assert len(lines) == 1 and fragment in lines[0], proc.stderr


@pytest.mark.parametrize("method, override, fragment", [
    ("rtf", "method_cfg.rtf.stages=0", "rtf: stages must be >= 1"),
    ("csf", "method_cfg.csf.stages=0", "csf: stages must be >= 1"),
])
def test_a_method_refusing_a_parameter_is_one_line_naming_why(tmp_path, method, override, fragment):
    """The method's own message, not Hydra's 'Error in call to target' (nor its 'Error executing job')."""
    proc = run_podm(["eval", f"methods=[{method}]", override, "datasets=[levin]", "data.root=/nowhere",
                     f"hydra.run.dir={tmp_path / 'run'}"], tmp_path)
    assert proc.returncode == 2
    lines = error_lines(proc)
    assert len(lines) == 1 and fragment in lines[0], proc.stderr
    assert "Error executing job" not in proc.stderr


def test_unknown_command_exit_2(tmp_path):
    proc = run_podm(["fly"], tmp_path)
    assert proc.returncode == 2 and "unknown command" in proc.stderr


def test_train_without_data_names_the_fetch_command(tmp_path):
    proc = run_podm(["train", "+experiment=quick", f"hydra.run.dir={tmp_path / 'run'}"], tmp_path,
                    env={"PODM_DATA": str(tmp_path / "nowhere"), "PODM_CACHE": str(tmp_path / "cache")})
    assert proc.returncode == 2
    lines = error_lines(proc)
    assert len(lines) == 1 and "podm data fetch" in lines[0], lines


def test_absent_data_names_the_fetch_command(tmp_path):
    proc = run_podm(["eval", "methods=[tv]", "datasets=[levin]", f"hydra.run.dir={tmp_path / 'run'}"],
                    tmp_path, env={"PODM_DATA": "/nowhere"})
    assert proc.returncode == 2, proc.stderr
    lines = error_lines(proc)
    assert len(lines) == 1 and "podm data fetch levin" in lines[0] and "/nowhere" in lines[0]


def test_multirun_sweeps_into_separate_dirs(tmp_path, data_dir):
    sweep = tmp_path / "sweep"
    proc = run_podm(["eval", "-m", "methods=[]", "datasets=[levin],[levin_valid]", "limit=1", "report=false",
                     f"hydra.sweep.dir={sweep}"], tmp_path, env={"PODM_DATA": str(data_dir)})
    assert proc.returncode == 0, proc.stderr
    assert sorted(p.name for p in sweep.iterdir() if p.is_dir()) == ["0", "1"]
    for job in ("0", "1"):
        assert (sweep / job / "results.json").is_file()


def test_wrong_group_choice_lists_the_options_and_guesses(tmp_path):
    proc = run_podm(["eval", "operator=circula", f"hydra.run.dir={tmp_path / 'run'}"], tmp_path)
    assert proc.returncode == 2
    lines = error_lines(proc)
    assert len(lines) == 1, lines
    assert "available options in 'operator': circular, valid" in lines[0] and "did you mean 'circular'" in lines[0]
    proc = run_podm(["deblur", "x.png", "method=hyperlaplacian", f"hydra.run.dir={tmp_path / 'run'}"], tmp_path)
    lines = error_lines(proc)
    assert proc.returncode == 2 and len(lines) == 1 and "available options in 'method':" in lines[0]
    assert "_schema" not in lines[0] and "rpodm" in lines[0]


@pytest.mark.parametrize("override, guess", [("operator.boundry=liu", "boundary"), ("limt=3", "limit"),
                                             ("method_cfg.hl.lamm=3", "lam")])
def test_misspelt_key_gets_a_did_you_mean(tmp_path, override, guess):
    proc = run_podm(["eval", override, f"hydra.run.dir={tmp_path / 'run'}"], tmp_path)
    lines = error_lines(proc)
    assert proc.returncode == 2 and len(lines) == 1 and f"did you mean '{guess}'?" in lines[0], lines


def test_a_bare_value_is_a_one_element_list():
    from podm_cli.apps import list_overrides

    assert list_overrides("eval", ["methods=tv", "datasets=levin"]) == ["methods=[tv]", "datasets=[levin]"]
    assert list_overrides("eval", ["methods=tv,hl"]) == ["methods=[tv,hl]"]
    assert list_overrides("eval", ["methods=[tv]", "methods=null"]) == ["methods=[tv]", "methods=null"]
    assert list_overrides("deblur", ["method=tv"]) == ["method=tv"]  # a group choice, not a list


def test_colour_codes_are_stripped_from_error_lines():
    from podm_cli.apps.errors import one_line_error
    from podm_cli.errors import PodmError

    assert one_line_error(PodmError("\x1b[1mWeights only load failed\x1b[0m: \x1b[31mbad\x1b[0m")) == \
        "Weights only load failed: bad"


def test_unwritable_output_folder_is_one_line_naming_it_and_the_way_out(tmp_path):
    (tmp_path / "outputs").write_text("a file where podm's output folder would be\n")
    proc = run_podm(["eval", "methods=[tv]", "datasets=[levin]"], tmp_path)
    assert proc.returncode == 2
    lines = error_lines(proc)
    assert len(lines) == 1 and "outputs/eval/" in lines[0], lines
    assert "PODM_OUTPUT" in lines[0] and "hydra.run.dir" in lines[0] and "Traceback" not in proc.stderr


def test_failed_run_leaves_no_empty_run_directory_nor_empty_log(tmp_path):
    proc = run_podm(["eval", "methods=[tv]", "datasets=[levin]"], tmp_path, env={"PODM_DATA": "/nowhere"})
    assert proc.returncode == 2
    assert not (tmp_path / "outputs").exists(), list((tmp_path / "outputs").rglob("*"))


# the groups of each app (configs/<app>.yaml defaults) that have a choice, and groups only other apps use
APP_GROUPS = {
    "eval": (["operator"], ["trainer", "prior", "denoiser", "experiment"]),
    "deblur": (["operator", "method"], ["trainer", "prior", "denoiser", "experiment"]),
    "train": (["operator", "prior", "denoiser", "trainer", "logger", "experiment"], ["method:"]),
}


@pytest.mark.parametrize("app", ["eval", "deblur", "train"])
def test_app_help_has_usage_examples_and_only_its_own_groups(tmp_path, app):
    from podm_cli.apps import config_dir

    proc = run_podm([app, "--help"], tmp_path)
    assert proc.returncode == 0, proc.stderr
    text = proc.stdout
    assert text.startswith(f"usage: podm {app}") and "examples:" in text and "Powered by Hydra" not in text
    groups = text.split("config groups (group=option):")[1]
    own, others = APP_GROUPS[app]
    for group in own:
        line = next(line for line in groups.splitlines() if line.strip().startswith(f"{group}:"))
        options = sorted(p.stem for p in (config_dir() / group).glob("*.yaml") if not p.stem.startswith("_"))
        listed = [o.strip() for o in line.split(":", 1)[1].split("  ")[0].split(",")]
        assert sorted(listed) == options, (group, listed)  # the help is kept in step with configs/
    for group in others:
        assert f"\n    {group.rstrip(':')}:" not in groups, group


@pytest.mark.parametrize("kind, default", [("methods", "rpodm"), ("datasets", "levin_real"),
                                           ("experiments", None)])
def test_list_prints_one_line_each_with_defaults_marked(tmp_path, kind, default):
    from podm_cli.apps import config_dir
    from podm_cli.data.datasets import PROTOCOLS

    proc = run_podm(["list", kind], tmp_path)
    assert proc.returncode == 0, proc.stderr
    lines = proc.stdout.splitlines()
    names = {"methods": [p.stem for p in (config_dir() / "method").glob("*.yaml")], "datasets": list(PROTOCOLS),
             "experiments": [p.stem for p in (config_dir() / "experiment").glob("*.yaml")]}[kind]
    for name in names:
        assert sum(line[2:].split(" ")[0] == name for line in lines) == 1, name
    if default:
        assert next(line for line in lines if line[2:].startswith(default + " ")).startswith("* ")
    assert run_podm(["list", "kernels"], tmp_path).returncode == 2
