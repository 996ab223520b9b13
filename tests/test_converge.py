"""`podm converge` (paper Fig. 2): the study library on a synthetic problem with a stand-in denoiser, the
IRCNN curve against :class:`~podm_cli.methods.ircnn.IRCNN`, curve averaging for multiruns, and the Hydra
app in-process (its data test skips without the reference data)."""

from __future__ import annotations

import csv
import math
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F

from conftest import SHARED_DATA as DATA
from conftest import load_script
from podm_cli.errors import InputError
from podm_cli.evaluation.convergence import CURVE_COLUMNS, StudySample, check_methods, run_convergence
from podm_cli.evaluation.convergence_output import average_curves, read_curves, summary_lines, write_study
from podm_cli.optim import Deconvolution

D64 = torch.float64

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"



def gauss_denoiser(x: torch.Tensor, sigma: float) -> torch.Tensor:
    w = max(sigma * 255 / 10, 0.3)
    r = torch.arange(-3, 4, dtype=x.dtype)
    g = torch.exp(-(r**2) / (2 * w * w))
    g = (g / g.sum()).to(x.device)
    xp = F.pad(x, (3, 3, 3, 3), mode="circular")
    return F.conv2d(F.conv2d(xp, g.view(1, 1, 1, 7)), g.view(1, 1, 7, 1))


def synthetic_sample(n: int = 32) -> StudySample:
    g = torch.Generator().manual_seed(0)
    a = torch.rand(1, 1, n // 4, n // 4, generator=g, dtype=D64)
    x = F.interpolate(a, size=(n, n), mode="bicubic", align_corners=False).clamp(0, 1)
    k = torch.zeros(7, 7, dtype=D64)
    k[3, :] = 1
    k = k / k.sum()
    y = Deconvolution.circular(x, k).A(x) + 0.01 * torch.randn(x.shape, generator=g, dtype=D64)
    return StudySample(y=y, kernel=k, sigma=0.01, truth=x, name="synthetic", protocol="test")


@pytest.fixture(scope="module")
def report():
    return run_convergence(
        synthetic_sample(),
        methods=["fista", "mfista", "ircnn", "podm"],
        denoiser=gauss_denoiser,
        max_iterations=40,
        podm={"stages": 8, "denoiser_first": 48 / 255, "denoiser_last": 4 / 255},
        ircnn={"stages": 8, "denoiser_first": 49 / 255, "denoiser_last": 13 / 255},
        device="cpu",
    )


def test_study_runs_every_method_on_the_same_objective(report):
    assert list(report.runs) == ["fista", "mfista", "ircnn", "podm"]
    psi0 = {m: float(r.psi[0]) for m, r in report.runs.items()}
    assert len({round(v, 12) for v in psi0.values()}) == 1  # same Psi(y) for all
    s = report.summaries()
    assert s["podm"]["acceptance_rate"] is not None and 0 <= s["podm"]["acceptance_rate"] <= 1
    assert s["fista"]["acceptance_rate"] is None
    for summary in s.values():
        assert summary["iterations"] <= 40 and math.isfinite(summary["final_psi"])
        assert math.isfinite(summary["final_psnr"])
    # MFISTA is monotone
    psi = report.runs["mfista"].psi
    assert torch.all(psi[1:] <= psi[:-1])
    c = report.comparison()
    assert set(c) >= {"podm_iterations_to_fista_final_psi", "fista_iterations_to_podm_final_psi"}


def test_summary_lines_and_comparison(report):
    lines = summary_lines(report)
    assert len(lines) == 1 + 4 + 2
    assert lines[1].startswith("FISTA") and "final PSNR" in lines[1]
    assert "acceptance" in lines[4]
    assert "FISTA's final Psi" in lines[5] and lines[6].startswith("FISTA reaches PODM's final Psi")


def test_write_study_outputs(report, tmp_path):
    paths = write_study(report, tmp_path)
    assert {p.name for p in paths.values()} == {"curves.csv", "summary.json", "psi.png", "rel_change.png", "psnr.png"}
    for key in ("psi", "rel_change", "psnr"):
        assert paths[key].read_bytes()[:8] == PNG_MAGIC
    with open(paths["curves"], newline="") as fh:
        rows = list(csv.DictReader(fh))
    assert tuple(rows[0]) == CURVE_COLUMNS
    for m, run in report.runs.items():
        mine = [r for r in rows if r["method"] == m]
        assert len(mine) == int(run.result.iterations[0]) + 1
        assert [int(r["iteration"]) for r in mine] == list(range(len(mine)))
        assert float(mine[-1]["psi"]) == pytest.approx(float(run.psi[-1]), rel=1e-12)
    podm_acc = {r["accepted"] for r in rows if r["method"] == "podm" and r["iteration"] != "0"}
    assert podm_acc <= {"0", "1", ""} and podm_acc & {"0", "1"}
    assert not list(tmp_path.glob(".*tmp*"))  # no temp files left behind
    import json

    summary = json.loads(paths["summary"].read_text())
    assert summary["methods"]["podm"]["iterations"] == int(report.runs["podm"].result.iterations[0])


def test_study_ircnn_curve_is_the_ircnn_method():
    """The study's "IRCNN" run (its schedule from the method's config keys, not held past it) ends where the
    ``ircnn`` method does, and the curve records Psi along the way (stand-in bank)."""
    from podm_cli.methods.ircnn import IRCNN
    from podm_cli.nets.bank import DenoiserBank
    from podm_cli.nets.ircnn import IRCNNDenoiser

    torch.manual_seed(0)
    nets = [IRCNNDenoiser(channels=4) for _ in range(25)]
    for net in nets:
        for p in net.parameters():
            p.data.mul_(0.1)
    bank = DenoiserBank(nets).to(torch.float64)
    s = synthetic_sample(24)
    cfg = {"stages": 5, "denoiser_first": 40 / 255, "denoiser_last": 10 / 255, "rho_divisor": 2.0}
    expect = IRCNN(bank=bank, **cfg)(s.y, s.kernel, 0.01)
    study = run_convergence(s, methods=["ircnn"], bank=bank, ircnn=cfg, ircnn_hold_last=False, tolerance=0.0,
                            device="cpu")
    run = study.runs["ircnn"]
    assert int(run.result.iterations[0]) == 5 and bool(torch.isfinite(run.psi).all())
    assert torch.allclose(run.result.x.clamp(0, 1), expect, atol=1e-12)
    other = IRCNN(bank=bank, **{**cfg, "rho_divisor": 3.0})(s.y, s.kernel, 0.01)
    assert not torch.allclose(other, expect, atol=1e-4)  # the config keys really reach the schedule


def _write_curves(path: Path, rows: list[tuple]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(CURVE_COLUMNS)
        for method, it, psi, rel, psnr, acc in rows:
            w.writerow([method, it, psi, rel, psnr, acc, "", "", ""])
    return path


def test_average_curves_fill_modes(tmp_path):
    a = _write_curves(tmp_path / "0" / "curves.csv", [
        ("podm", 0, 4.0, "", 20.0, ""), ("podm", 1, 2.0, 0.5, 22.0, 1), ("podm", 2, 1.0, 0.1, 24.0, 0)])
    b = _write_curves(tmp_path / "1" / "curves.csv", [
        ("podm", 0, 2.0, "", 30.0, ""), ("podm", 1, 1.0, 0.3, 31.0, 1)])
    assert read_curves(a)["podm"][0]["rel_change"] != read_curves(a)["podm"][0]["rel_change"]  # NaN
    last = {r["iteration"]: r for r in average_curves([a, b], fill="last")}
    assert last[0]["psi"] == 3.0 and math.isnan(last[0]["rel_change"]) and last[0]["n"] == 2
    assert last[1]["accepted"] == 1.0 and last[1]["rel_change"] == pytest.approx(0.4)
    assert last[2]["n"] == 2 and last[2]["psi"] == 1.0 and last[2]["psnr"] == pytest.approx(27.5)
    assert last[2]["accepted"] == 0.0  # the stopped run contributes no acceptance
    none = {r["iteration"]: r for r in average_curves([a, b], fill="none")}
    assert none[2]["n"] == 1 and none[2]["psnr"] == 24.0
    with pytest.raises(InputError):
        average_curves([])


def test_average_curves_script(tmp_path):
    _write_curves(tmp_path / "sweep" / "0" / "curves.csv", [("fista", 0, 2.0, "", 20.0, ""), ("fista", 1, 1.0, 0.2, 21.0, "")])
    _write_curves(tmp_path / "sweep" / "1" / "curves.csv", [("fista", 0, 4.0, "", 22.0, ""), ("fista", 1, 3.0, 0.1, 23.0, "")])
    mod = load_script("average_curves")
    assert mod.main([str(tmp_path / "sweep")]) == 0
    with open(tmp_path / "sweep" / "curves_mean.csv", newline="") as fh:
        rows = list(csv.DictReader(fh))
    assert [float(r["psi"]) for r in rows] == [3.0, 2.0]
    assert (tmp_path / "sweep" / "psnr_mean.png").read_bytes()[:8] == PNG_MAGIC
    assert mod.main([str(tmp_path / "empty")]) == 2


def test_check_methods():
    assert check_methods(("podm", "fista")) == ["podm", "fista"]
    with pytest.raises(InputError, match="unknown convergence method"):
        check_methods(["adam"])


def test_app_reports_missing_data_in_one_line(tmp_path, capsys):
    from podm_cli.cli import main

    code = main(["converge", f"data.root={tmp_path / 'nodata'}", f"hydra.run.dir={tmp_path / 'run'}"])
    err = capsys.readouterr().err
    assert code == 2
    assert "podm data fetch levin" in err and "Traceback" not in err
    assert not (tmp_path / "run" / "curves.csv").exists()
    code = main(["converge", "methods=[adam]", f"hydra.run.dir={tmp_path / 'run2'}"])
    assert code == 2 and "unknown convergence method" in capsys.readouterr().err


@pytest.mark.data
def test_app_tiny_levin_run_writes_curves_and_plots(tmp_path, capsys):
    if not (DATA / "levin" / "gt" / "im_1.png").exists() or not (DATA / "weights" / "ircnn_gray_keras").exists():
        pytest.skip(f"reference data not found under {DATA}")
    from podm_cli.cli import main

    run = tmp_path / "run"
    code = main([
        "converge", f"data.root={DATA}", "crop=40", "max_iterations=4", "podm.stages=3",
        "ircnn.stages=3", "device=cpu", f"hydra.run.dir={run}",
    ])
    out = capsys.readouterr().out
    assert code == 0
    for name in ("curves.csv", "psi.png", "rel_change.png", "psnr.png", "summary.json"):
        assert (run / name).is_file(), name
    with open(run / "curves.csv", newline="") as fh:
        rows = list(csv.DictReader(fh))
    assert {r["method"] for r in rows} == {"fista", "ircnn", "podm"}
    assert "levin[crop=40] im1_k1" in out and "PODM" in out and "FISTA reaches PODM's final Psi" in out
