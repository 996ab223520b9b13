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
    assert lines[0] == "method,dataset,image,kernel,psnr,ssim,seconds" and len(lines) == 1 + 4


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
