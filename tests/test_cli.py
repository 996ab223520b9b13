"""The `podm` command as a user meets it: help, config composition from anywhere, one-line errors."""

from __future__ import annotations

import pytest

from conftest import error_lines, run_podm


def test_help_lists_every_command(tmp_path):
    proc = run_podm(["--help"], tmp_path)
    assert proc.returncode == 0
    for command in ("train", "eval", "deblur", "converge", "data"):
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
