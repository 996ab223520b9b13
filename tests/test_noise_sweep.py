"""The noise sweep of `podm eval` (``sigma=``: every dataset once per noise level, the level in the protocol's
name) and the noise-following defaults of TV and HL (``sigma_ref: 0.01`` in their configs)."""

from __future__ import annotations

import json
import math

import pytest
import torch
from hydra import compose, initialize_config_dir

from conftest import error_lines, run_podm
from podm_cli.apps import config_dir
from podm_cli.apps.evaluate import apply_suite
from podm_cli.apps.methods import build_method
from podm_cli.apps.schema import register_schemas
from podm_cli.errors import InputError
from podm_cli.evaluation.paper import paper_numbers, published_numbers
from podm_cli.evaluation.report import file_stem, print_table, table_blocks, table_legend
from podm_cli.evaluation.runner import describe_plan, noise_levels, resolve_datasets
from podm_cli.optim.schedules import MIN_NOISE_SIGMA

SWEEP = [0.005, 0.01, 0.02, 0.03]


def _eval_cfg(*overrides: str):
    register_schemas()
    with initialize_config_dir(str(config_dir()), version_base="1.3"):
        return compose("eval", list(overrides))


# ----------------------------------------------------------------------------------------- the option
def test_noise_levels_accept_a_number_or_a_list_and_refuse_anything_else():
    assert noise_levels(None) is None
    assert noise_levels(0.02) == [0.02] and noise_levels(0) == [0.0] and noise_levels(1) == [1.0]
    assert noise_levels(SWEEP + [0.01]) == SWEEP  # repeats dropped, order kept
    for bad in ([], -0.01, 1.5, "abc", "0.02", True, float("nan"), [0.01, "x"], [0.01, -1], [[0.01]]):
        with pytest.raises(InputError, match=r"sigma must be a noise level on \[0, 1\]"):
            noise_levels(bad)


def test_suite_noise_names_the_sweep_and_sigma_overrides_it():
    cfg = _eval_cfg("suite=noise")
    names, limit, is_default = apply_suite(cfg)
    assert names == ["levin_valid_whole"] and limit is None and is_default
    assert list(cfg.sigma) == SWEEP
    assert list(cfg.methods) == ["tv", "hl", "ircnn", "rpodm", "fdn", "csf", "rtf"]
    cfg = _eval_cfg("suite=noise", "sigma=0.02")
    _, _, is_default = apply_suite(cfg)
    assert cfg.sigma == 0.02 and not is_default
    cfg = _eval_cfg()  # the default suite names no levels: each protocol at its own
    apply_suite(cfg)
    assert cfg.sigma is None


# ----------------------------------------------------------------------------------------- datasets x levels
def test_every_dataset_once_per_level_named_by_its_level(data_dir):
    datasets, notices = resolve_datasets(["levin_valid_whole", "levin_real"], data_dir, 1, [0.005, 0.01, 0.02])
    assert [d.protocol for d in datasets] == [
        "levin_valid_whole[sigma=0.005]", "levin_valid_whole", "levin_valid_whole[sigma=0.02]",
        "levin_real[sigma=0.005]", "levin_real[sigma=0.01]", "levin_real[sigma=0.02]",
    ]
    assert [d[0].sigma for d in datasets] == [0.005, 0.01, 0.02] * 2  # what methods are given
    assert all(len(d) == 1 and d.n_total == 32 for d in datasets)
    synthetic = [d[0] for d in datasets[:3]]
    assert torch.equal(synthetic[0].sharp, synthetic[2].sharp)
    noise = [float((s.blurred - synthetic[1].blurred).std()) for s in synthetic]  # against the 1 % draw
    assert noise[1] == 0 and 0.003 < noise[0] < 0.007 and 0.007 < noise[2] < 0.013  # same seed, scaled noise
    captured = [d[0].blurred for d in datasets[3:]]
    assert torch.equal(captured[0], captured[2])  # captured data: only the given sigma changes
    assert "Gaussian noise of std 0.02" in datasets[2].note and "only the noise level given" in datasets[5].note
    assert "levin_valid_whole" == datasets[1].protocol and "here sigma" not in datasets[1].note
    assert any(n.startswith("noise sweep: every dataset at sigma 0.005, 0.01, 0.02") and "levin_real" in n
               for n in notices)
    assert sum("SUBSET" in n for n in notices) == 6
    line, seconds = describe_plan(["tv", "hl"], datasets, "cpu")
    assert "2 methods (tv, hl) x 6 datasets" in line and "= 12 restorations" in line
    one_level, _ = resolve_datasets(["levin_valid_whole", "levin_real"], data_dir, 1, [0.02])
    _, seconds_one = describe_plan(["tv", "hl"], one_level, "cpu")
    assert seconds == pytest.approx(3 * seconds_one, rel=0.01)  # the estimate counts every level


def test_paper_numbers_only_beside_the_paper_noise_level(capsys):
    assert paper_numbers("hl", "levin_valid_whole") == (30.12, 0.90)
    assert paper_numbers("hl", "levin_valid_whole[sigma=0.02]") == (None, None)
    assert paper_numbers("hl", "levin[seed=3]") == (30.12, 0.90)  # another draw of the same noise level
    assert paper_numbers("hl", "sun[sigma=0.02,seed=1]") == (None, None)
    assert published_numbers("rtf", "levin_real[sigma=0.01]") is None
    rows = []
    for dataset, psnr in (("levin_valid_whole", 29.8), ("levin_valid_whole[sigma=0.02]", 27.7)):
        paper_psnr, paper_ssim = paper_numbers("hl", dataset)
        rows.append({"method": "hl", "dataset": dataset, "psnr": psnr, "ssim": 0.8, "n_images": 1,
                     "seconds_per_image": 0.1, "source": "recomputed", "paper_psnr": paper_psnr,
                     "paper_ssim": paper_ssim, "published": published_numbers("hl", dataset)})
    methods, blocks = table_blocks(rows)
    assert methods == ["hl"] and len(blocks) == 2  # one block per noise level
    assert blocks[0][0] == ("PSNR levin_valid_whole", ["29.80 (paper 30.12)"])
    assert blocks[1] == [("PSNR levin_valid_whole[sigma=0.02]", ["27.70"]),
                         ("SSIM levin_valid_whole[sigma=0.02]", ["0.800"])]
    assert any("[sigma=...]" in line for line in table_legend(rows))
    print_table(rows, [], ["noise sweep: levin_valid_whole[sigma=0.02]"])
    out = capsys.readouterr().out
    assert "levin_valid_whole[sigma=0.02]" in out.replace("\n", "")  # brackets are not taken as rich markup
    assert file_stem("levin_valid_whole[sigma=0.02]") == "levin_valid_whole_sigma-0.02"


# ----------------------------------------------------------------------------------------- end to end
def test_eval_sweep_end_to_end_and_resume_keys(tmp_path, data_dir):
    run = tmp_path / "run"
    args = ["eval", "methods=[tv]", "datasets=[levin_valid_whole]", "limit=1", "sigma=[0.01,0.02]", "batch_size=1",
            f"hydra.run.dir={run}"]
    env = {"PODM_DATA": str(data_dir)}
    proc = run_podm(args, tmp_path, env=env)
    assert proc.returncode == 0, proc.stderr[-2000:]
    results = json.loads((run / "results.json").read_text())
    assert list(results["protocols"]) == ["levin_valid_whole", "levin_valid_whole[sigma=0.02]"]
    rows = {r["dataset"]: r for r in results["rows"]}
    assert rows["levin_valid_whole"]["psnr"] > rows["levin_valid_whole[sigma=0.02]"]["psnr"] + 1
    assert rows["levin_valid_whole"]["paper_psnr"] == 29.38
    assert rows["levin_valid_whole[sigma=0.02]"]["paper_psnr"] is None
    assert results["config"]["sigma"] == [0.01, 0.02]
    csv_datasets = [line.split(",")[1] for line in (run / "per_image.csv").read_text().splitlines()[1:]]
    assert csv_datasets == ["levin_valid_whole", "levin_valid_whole[sigma=0.02]"]
    assert "| PSNR levin_valid_whole[sigma=0.02] |" in (run / "table.md").read_text()
    assert (run / "strip_levin_valid_whole_sigma-0.02.png").is_file()
    assert "= 2 restorations" in proc.stdout
    resumed = run_podm([*args, "resume=true"], tmp_path, env=env)
    assert resumed.returncode == 0 and "resuming: 2 of 2 rows kept" in resumed.stdout, resumed.stderr[-2000:]
    other = run_podm([*args[:4], "sigma=[0.02,0.03]", *args[5:], "resume=true", "report=false"], tmp_path, env=env)
    assert other.returncode == 0 and "resuming: 1 of 2 rows kept" in other.stdout, other.stderr[-2000:]
    assert "tv/levin_valid_whole[sigma=0.03]" in other.stdout.replace("\n", "")


@pytest.mark.parametrize("value", ["abc", "[]"])  # a negative or > 1 level: test_noise_levels_...
def test_bad_sigma_is_one_line_exit_2(tmp_path, value):
    proc = run_podm(["eval", "methods=[tv]", "datasets=[levin]", f"sigma={value}", f"hydra.run.dir={tmp_path}/r"],
                    tmp_path)
    lines = error_lines(proc)
    assert proc.returncode == 2 and len(lines) == 1, proc.stderr
    assert "sigma must be a noise level on [0, 1]" in lines[0]


# ----------------------------------------------------------------------------------------- TV / HL follow sigma
@pytest.mark.parametrize("name", ["tv", "hl"])
def test_tv_and_hl_weights_follow_sigma_by_default(name):
    method = build_method(name)  # from configs/method/<name>.yaml
    at = lambda s: float(method.weight(torch.tensor([s], dtype=torch.float64)))  # noqa: E731
    assert method.sigma_ref == 0.01 and at(0.01) == method.lam
    assert at(0.02) / at(0.01) == pytest.approx(2 ** -1.5, rel=1e-12)
    assert at(0.0) == at(1e-6) == at(MIN_NOISE_SIGMA) == pytest.approx(method.lam * (0.01 / MIN_NOISE_SIGMA) ** 1.5)
    with pytest.raises(InputError):
        method.weight(torch.tensor([-0.01]))


@pytest.mark.parametrize("name", ["tv", "hl"])
def test_noise_free_input_is_restored_not_refused(name):
    from podm_cli.physics import Blur

    x = torch.zeros(1, 1, 48, 48, dtype=torch.float64)
    x[..., 12:36, 16:30] = 0.8
    k = torch.ones(5, 5, dtype=torch.float64) / 25
    y = Blur(k)(x)
    out = build_method(name)(y, k, 0.0)
    assert torch.isfinite(out).all()
    err = lambda est: float(((est - x) ** 2).mean())  # noqa: E731
    assert err(out) < err(y)  # a deblurred estimate, not an amplified-noise inverse filter


def test_deblur_hl_passes_the_sigma_it_uses(monkeypatch):
    """`podm deblur method=hl`: the method gets restore_image's sigma (the estimate raised to noise_floor)."""
    from podm_cli.restore import restore_image

    register_schemas()
    with initialize_config_dir(str(config_dir()), version_base="1.3"):
        from podm_cli.apps import app_overrides

        cfg = compose("deblur", app_overrides("deblur", ["method=hl"]))
    method = build_method("method", cfg.method)
    seen = []
    original = method.restore
    monkeypatch.setattr(method, "restore", lambda data, sigma, on_stage=None: (
        seen.append(sigma.clone()), original(data, sigma, on_stage))[1])
    image = torch.rand(1, 40, 40, generator=torch.Generator().manual_seed(0))
    kernel = torch.ones(3, 3) / 9
    _, used = restore_image(image, kernel, method, "auto", noise_floor=float(cfg.noise_floor), tile=0)
    assert used >= 0.02 and seen and float(seen[0][0]) == pytest.approx(used)
    assert float(method.weight(seen[0])[0]) == pytest.approx(method.lam * (0.01 / used) ** 1.5)
    assert math.isclose(float(cfg.noise_floor), 0.02)
