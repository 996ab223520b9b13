"""`podm eval` end to end on a few Levin images: files, keys, paper numbers, resume after a kill."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time

import pytest

from conftest import error_lines, run_podm

RESULT_KEYS = {"method", "dataset", "protocol", "psnr", "ssim", "n_images", "seconds_per_image",
               "paper_psnr", "paper_ssim", "source"}


def _eval(tmp_path, data_dir, run_dir, *extra):
    return run_podm(["eval", "methods=[tv]", "datasets=[levin]", "limit=3", "batch_size=1",
                     f"hydra.run.dir={run_dir}", *extra], tmp_path, env={"PODM_DATA": str(data_dir)})


def test_eval_writes_results_table_and_report(tmp_path, data_dir):
    run = tmp_path / "run"
    proc = _eval(tmp_path, data_dir, run, "methods=[tv,hl]", "limit=2")
    assert proc.returncode == 0, proc.stderr
    for name in ("results.json", "per_image.csv", "table.md", "report.html", "strip_levin.png"):
        assert (run / name).is_file(), name
    results = json.loads((run / "results.json").read_text())
    assert {"protocols", "rows", "git", "config"} <= results.keys()
    assert [r["method"] for r in results["rows"]] == ["tv", "hl"]
    for row in results["rows"]:
        assert RESULT_KEYS <= row.keys() and row["n_images"] == 2 and row["source"] == "recomputed"
        assert 20 < row["psnr"] < 45 and 0.5 < row["ssim"] <= 1
    assert results["rows"][0]["paper_psnr"] == 29.38 and results["rows"][1]["paper_psnr"] == 30.12
    assert results["protocols"]["levin"]["mode"] == "circular"
    assert "29.38" in proc.stdout and "(paper" in (run / "table.md").read_text()
    lines = (run / "per_image.csv").read_text().splitlines()
    assert lines[0] == "method,dataset,image,kernel,psnr,ssim,seconds,key" and len(lines) == 1 + 4


def test_resume_after_kill_gives_the_same_results(tmp_path, data_dir):
    whole = tmp_path / "whole"
    assert _eval(tmp_path, data_dir, whole).returncode == 0
    cut = tmp_path / "cut"
    env = {**os.environ, "PODM_DATA": str(data_dir)}
    proc = subprocess.Popen([sys.executable, "-m", "podm_cli.cli", "eval", "methods=[tv]", "datasets=[levin]",
                             "limit=3", "batch_size=1", f"hydra.run.dir={cut}"], cwd=tmp_path, env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    csv = cut / "per_image.csv"
    deadline = time.time() + 120
    while time.time() < deadline and proc.poll() is None:
        if csv.exists() and len(csv.read_text().splitlines()) >= 2:  # header + one image
            break
        time.sleep(0.05)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert not (cut / "results.json").exists(), "killed too late to test resume"
    resumed = _eval(tmp_path, data_dir, cut, "resume=true")
    assert resumed.returncode == 0, resumed.stderr
    a = json.loads((whole / "results.json").read_text())["rows"]
    b = json.loads((cut / "results.json").read_text())["rows"]
    strip = lambda rows: [{k: v for k, v in r.items() if k != "seconds_per_image"} for r in rows]  # noqa: E731
    assert strip(a) == strip(b)
    assert len((cut / "per_image.csv").read_text().splitlines()) == 1 + 3


def test_unknown_method_and_dataset_are_one_line(tmp_path, data_dir):
    for override, fragment in (("methods=[nope]", "unknown method 'nope'"), ("datasets=[kodak]", "unknown dataset")):
        proc = _eval(tmp_path, data_dir, tmp_path / "run", override)
        assert proc.returncode == 2
        lines = error_lines(proc)
        assert len(lines) == 1 and fragment in lines[0], proc.stderr


@pytest.mark.parametrize("protocol", ["levin_valid", "levin_real"])
def test_valid_protocols_run_with_boundary_handling(tmp_path, data_dir, protocol):
    run = tmp_path / protocol
    proc = _eval(tmp_path, data_dir, run, f"datasets=[{protocol}]", "limit=1", "report=false")
    assert proc.returncode == 0, proc.stderr
    row = json.loads((run / "results.json").read_text())["rows"][0]
    assert row["dataset"] == protocol and row["psnr"] > 22


def _rows(run):
    strip = lambda r: {k: v for k, v in r.items() if k != "seconds_per_image"}  # noqa: E731
    return [strip(r) for r in json.loads((run / "results.json").read_text())["rows"]]


def test_resume_recomputes_rows_whose_config_changed(tmp_path, data_dir):
    run = tmp_path / "run"
    assert _eval(tmp_path, data_dir, run, "methods=tv,hl", "limit=2").returncode == 0  # bare list: methods=[tv,hl]
    fresh = tmp_path / "fresh"
    assert _eval(tmp_path, data_dir, fresh, "methods=tv,hl", "limit=2", "method_cfg.hl.lam=100").returncode == 0
    resumed = _eval(tmp_path, data_dir, run, "methods=tv,hl", "limit=2", "method_cfg.hl.lam=100", "resume=true")
    assert resumed.returncode == 0, resumed.stderr
    assert "resuming: 2 of 4 rows kept" in resumed.stdout and "hl/levin" in resumed.stdout
    assert _rows(run) == _rows(fresh)  # hl's rows are lam=100's, not the old lam's
    assert _rows(run)[1]["psnr"] < _rows(run)[0]["psnr"] - 2  # lam=100 is far too smooth: a real change
    assert len((run / "per_image.csv").read_text().splitlines()) == 1 + 4
    same = _eval(tmp_path, data_dir, run, "methods=tv,hl", "limit=2", "method_cfg.hl.lam=100", "resume=true")
    assert "resuming: 4 of 4 rows kept" in same.stdout


def test_resume_where_no_run_was_is_one_line(tmp_path, data_dir):
    proc = _eval(tmp_path, data_dir, tmp_path / "nowhere", "resume=true")
    assert proc.returncode == 2
    lines = error_lines(proc)
    assert len(lines) == 1 and "no earlier run" in lines[0] and "nowhere" in lines[0], lines
    assert not (tmp_path / "nowhere").exists()  # the failed run leaves no empty run directory


def test_resumed_report_equals_an_uninterrupted_one(tmp_path, data_dir):
    import numpy as np
    from PIL import Image

    whole, cut = tmp_path / "whole", tmp_path / "cut"
    assert _eval(tmp_path, data_dir, whole, "methods=[tv,hl]").returncode == 0
    assert _eval(tmp_path, data_dir, cut, "methods=[tv,hl]").returncode == 0
    lines = (cut / "per_image.csv").read_text().splitlines()
    (cut / "per_image.csv").write_text("\n".join(lines[:2]) + "\n")  # as if killed after tv's first image
    for name in ("results.json", "table.md", "report.html", "strip_levin.png"):
        (cut / name).unlink()
    resumed = _eval(tmp_path, data_dir, cut, "methods=[tv,hl]", "resume=true")
    assert resumed.returncode == 0 and "resuming: 1 of 1 rows kept" in resumed.stdout, resumed.stderr
    assert _rows(cut) == _rows(whole)
    pixels = lambda run: np.asarray(Image.open(run / "strip_levin.png"))  # noqa: E731
    assert np.array_equal(pixels(cut), pixels(whole))  # every method's image in the strip


def test_limit_marks_a_subset_and_report_renders_markdown(tmp_path, data_dir):
    run = tmp_path / "run"
    proc = _eval(tmp_path, data_dir, run, "limit=2")
    assert proc.returncode == 0, proc.stderr
    assert "levin 2 of 32 images: not comparable with the paper" in proc.stdout
    assert "plan: 1 method (tv) x 1 dataset (levin 2 of 32 images) = 2 restorations; estimated" in proc.stdout
    assert "2 of 32 images" in (run / "table.md").read_text()
    report = (run / "report.html").read_text()
    assert "<code>levin</code>" in report and "`" not in report
    assert json.loads((run / "results.json").read_text())["protocols"]["levin"]["n_total"] == 32


def test_default_run_is_cpu_sized_covers_the_real_benchmark_and_says_how_to_get_the_full_table(data_dir):
    from hydra import compose, initialize_config_dir

    from podm_cli.apps import config_dir
    from podm_cli.apps.evaluate import apply_suite
    from podm_cli.apps.schema import register_schemas
    from podm_cli.evaluation.runner import describe_plan, resolve_datasets

    register_schemas()
    with initialize_config_dir(str(config_dir()), version_base="1.3"):
        cfg = compose("eval", [])
        full = compose("eval", ["suite=full"])
    names, limit, is_default = apply_suite(cfg)
    assert is_default and {"levin_real", "levin_valid_whole", "sun"} <= set(names)
    datasets, notices = resolve_datasets(names, data_dir, limit)
    plan, seconds = describe_plan(list(cfg.methods), datasets, "cpu")
    assert seconds is not None and seconds < 30 * 60, plan  # from measured per-image seconds, 2 CPU cores
    assert "rpodm" in cfg.methods and any(d.protocol == "levin_real" and len(d) == 32 for d in datasets)
    assert any("SUBSET" in n for n in notices)  # the subset is labelled
    names, limit, _ = apply_suite(full)
    assert limit is None and full.methods is None  # every method, every image


def test_default_run_prints_its_plan_first(tmp_path, data_dir):
    """`podm eval` with no arguments says what it will run and for how long before running (stopped early)."""
    env = {**os.environ, "PODM_DATA": str(data_dir), "OMP_NUM_THREADS": "1"}
    proc = subprocess.Popen([sys.executable, "-m", "podm_cli.cli", "eval", f"hydra.run.dir={tmp_path / 'run'}"],
                            cwd=tmp_path, env=env, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    try:
        first, second = proc.stdout.readline(), proc.stdout.readline()
    finally:
        proc.kill()
        proc.wait()
    assert first.startswith("plan: 6 methods") and "levin_real 32," in first and "min on 2 CPU cores" in first
    assert "podm eval suite=full (estimated" in second, second
