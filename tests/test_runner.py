"""The evaluation runner (:class:`podm_cli.evaluation.runner.EvalRunner`) on an in-memory dataset: no
reference data needed, so a clean clone's CI runs it. Scores, per-image rows, batching by shape, skipped
methods and resume are checked against numbers computed here."""

from __future__ import annotations

import csv
from dataclasses import dataclass, field
from pathlib import Path

import pytest
import torch

from conftest import IdentityMethod, checker_scene
from podm_cli.data.datasets import Sample
from podm_cli.evaluation.runner import EvalRunner
from podm_cli.methods.hl import HyperLaplacian
from podm_cli.metrics import Scoring, score
from podm_cli.physics import Blur, add_gaussian_noise


@dataclass
class MemoryDataset:
    """Three circular blurs of the checker scene (two 48 px, one 40 px: two shape batches), 1 % noise."""

    protocol: str = "memory"
    mode: str = "circular"
    scoring: Scoring = field(default_factory=Scoring)
    note: str = "in-memory test protocol"
    root: Path = Path("/nowhere")
    kernel: str = "exact"
    samples: list = field(default_factory=list)

    def __post_init__(self):
        kernels = [torch.ones(5, 5) / 25, torch.eye(7) / 7, torch.ones(3, 9) / 27]
        for i, (n, k) in enumerate(zip((48, 48, 40), kernels)):
            sharp = checker_scene(n)[0].float()
            blurred = add_gaussian_noise(Blur(k.double())(sharp[None].double()), 0.01, seed=i)[0].float()
            self.samples.append(Sample(blurred, sharp, k, 0.01, f"im{i}_k{i + 1}"))

    def __len__(self):
        return len(self.samples)

    def __getitem__(self, index):
        return self.samples[index]


class Absent(IdentityMethod):
    name = "absent"

    def missing(self, data_root):
        return f"absent needs its weights under {data_root}"


class Exploding(IdentityMethod):
    def restore(self, data, sigma, on_stage=None):
        raise AssertionError("a resumed run recomputed a finished row")


class SigmaRecorder(IdentityMethod):
    """Records the noise levels it is asked to restore with."""

    approximate_kernel_sigma_scale = 3.0

    def __init__(self):
        self.seen = []

    def restore(self, data, sigma, on_stage=None):
        self.seen.extend(sigma.tolist())
        return data.initial()


def test_an_approximate_kernel_raises_the_input_sigma_by_the_methods_factor(tmp_path):
    """On a protocol whose kernel is approximate (levin_real) the method restores with its factor x sigma; on an
    exact one with sigma itself."""
    for kernel, want in (("exact", 0.01), ("approximate", 0.03)):
        method = SigmaRecorder()
        EvalRunner({"rec": method}, [MemoryDataset(kernel=kernel)], tmp_path / kernel).run()
        assert method.seen and all(abs(s - want) < 1e-6 for s in method.seen), (kernel, method.seen)


def _csv_rows(path: Path) -> list[dict]:
    with open(path, newline="") as fh:
        return list(csv.DictReader(fh))


@pytest.fixture
def dataset():
    return MemoryDataset()


def test_scores_rows_and_skips(tmp_path, dataset):
    methods = {"identity": IdentityMethod(), "hl": HyperLaplacian(lam=2000.0), "absent": Absent()}
    outcome = EvalRunner(methods, [dataset], tmp_path, batch_size=8, progress=False).run()
    assert [s.method for s in outcome.skipped] == ["absent"] and "/nowhere" in outcome.skipped[0].reason
    rows = {r["method"]: r for r in outcome.rows}
    assert set(rows) == {"identity", "hl"} and all(r["n_images"] == 3 for r in rows.values())
    # identity scores the blurred inputs themselves
    expected = [float(score(s.blurred[None].double().clamp(0, 1), s.sharp[None].double(), Scoring())[0][0])
                for s in dataset.samples]
    assert rows["identity"]["psnr"] == pytest.approx(sum(expected) / 3, abs=1e-3)
    assert rows["hl"]["psnr"] > rows["identity"]["psnr"] + 3  # it deblurs
    assert outcome.protocols["memory"]["n_images"] == 3 and outcome.protocols["memory"]["mode"] == "circular"
    per_image = _csv_rows(tmp_path / "per_image.csv")
    assert len(per_image) == 6
    assert {(r["image"], r["kernel"]) for r in per_image} == {("im0", "k1"), ("im1", "k2"), ("im2", "k3")}
    assert set(outcome.examples["memory"]) >= {"blurred", "sharp", "identity", "hl"}


def test_resume_keeps_finished_rows(tmp_path, dataset):
    """Rows whose hash (method config, protocol, code version) matches are kept, not recomputed; a changed
    hash recomputes them."""
    same = {"identity": "fingerprint-1"}
    first = EvalRunner({"identity": IdentityMethod()}, [dataset], tmp_path, progress=False,
                       fingerprints=same).run()
    again = EvalRunner({"identity": Exploding()}, [dataset], tmp_path, resume=True, progress=False,
                       fingerprints=same).run()
    assert again.rows[0]["psnr"] == first.rows[0]["psnr"] and again.rows[0]["n_images"] == 3
    assert len(_csv_rows(tmp_path / "per_image.csv")) == 3
    with pytest.raises(AssertionError, match="recomputed"):  # another config: the rows are recomputed
        EvalRunner({"identity": Exploding()}, [dataset], tmp_path, resume=True, progress=False,
                   fingerprints={"identity": "fingerprint-2"}).run()


def test_batches_stack_only_equal_shapes(tmp_path, dataset):
    seen = []

    class Recorder(IdentityMethod):
        def restore(self, data, sigma, on_stage=None):
            seen.append((tuple(data.y.shape), tuple(data.kernel.shape)))
            return data.initial()

    EvalRunner({"r": Recorder()}, [dataset], tmp_path, batch_size=8, progress=False).run()
    # two 48 px images with different kernel shapes, then the 40 px one: three batches of one
    assert [s[0][0] for s in seen] == [1, 1, 1]
    seen.clear()
    same = MemoryDataset()
    same.samples = [same.samples[0]._replace(name=f"im{i}_k1") for i in range(5)]
    EvalRunner({"r": Recorder()}, [same], tmp_path / "b", batch_size=2, progress=False).run()
    assert [s[0][0] for s in seen] == [2, 2, 1]
