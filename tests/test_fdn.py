"""FDN: the released Keras weights through podm's importer against an independent NumPy re-implementation of
the stage (read straight from the HDF5 datasets), shapes, and one-line errors for bad weight files."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from conftest import eval_rows
from podm_cli.errors import DataNotFoundError, InputError
from podm_cli.methods.fdn import FDNMethod
from podm_cli.models.fdn import FDN, FDNStage
from podm_cli.models.fdn_weights import load_fdn, read_fdn_stages

SET = "weights/fdn/sigma_1.0-3.0"


@pytest.fixture
def fdn_dir(data_dir: Path) -> Path:
    d = data_dir / SET
    if not (d / "stage_02.hdf5").is_file():
        pytest.skip(f"{SET} absent (podm data fetch weights)")
    return d


# ---------------------------------------------------------------- the NumPy reference (float64)
def _raw_stage(path: Path) -> dict[str, np.ndarray]:
    """The single-stage file's datasets by their HDF5 paths, nothing renamed or transposed."""
    import h5py

    with h5py.File(path, "r") as f:
        out = {}
        for layer in [f"conv{j}" for j in range(1, 7)] + ["dense1", "dense2", "dense3", "lambda"]:
            out[f"{layer}/kernel"] = f[f"{layer}/{layer}/kernel:0"][()].astype(np.float64)
            out[f"{layer}/bias"] = f[f"{layer}/{layer}/bias:0"][()].astype(np.float64)
        out["filter_weights"] = f["x_out/x_out/filter_weights:0"][()].astype(np.float64)
    return out


def _np_otf(psf: np.ndarray, shape) -> np.ndarray:
    """Full complex OTF, the PSF's centre (kh // 2, kw // 2) moved to the origin."""
    pad = np.zeros(shape)
    kh, kw = psf.shape
    pad[:kh, :kw] = psf
    return np.fft.fft2(np.roll(pad, (-(kh // 2), -(kw // 2)), axis=(0, 1)))


def _np_cconv(x: np.ndarray, k: np.ndarray) -> np.ndarray:
    return np.real(np.fft.ifft2(np.fft.fft2(x) * _np_otf(k, x.shape)))


def _np_edgetaper(img: np.ndarray, k: np.ndarray, n: int = 3) -> np.ndarray:
    def profile(p, m):
        z = np.real(np.fft.ifft(np.abs(np.fft.fft(p, m - 1)) ** 2))
        z = np.append(z, z[0])
        return 1 - z / z.max()

    alpha = np.outer(profile(k.sum(1), img.shape[0]), profile(k.sum(0), img.shape[1]))
    for _ in range(n):
        img = alpha * img + (1 - alpha) * _np_cconv(img, k)
    return img


def _np_elu(v):
    return np.where(v > 0, v, np.expm1(np.minimum(v, 0)))


def _np_conv_same(x: np.ndarray, kern: np.ndarray, bias: np.ndarray) -> np.ndarray:
    """Keras Conv2D (cross-correlation, zero 'same' padding): x (H, W, in), kern (3, 3, in, out)."""
    H, W, _ = x.shape
    xp = np.pad(x, ((1, 1), (1, 1), (0, 0)))
    out = np.zeros((H, W, kern.shape[3])) + bias
    for dy in range(3):
        for dx in range(3):
            out += xp[dy : dy + H, dx : dx + W, :] @ kern[dy, dx]
    return out


def _np_dct_filters(fw: np.ndarray, atoms_transposed: bool = True) -> np.ndarray:
    """The 24 5x5 filters: the DCT basis (one flattened atom per column, the transposed 2-D inverse DCT of
    each unit coefficient but the DC) times ``filter_weights``, read back as (5, 5, 24)."""
    from scipy.fft import idctn

    basis = np.zeros((25, 24))
    for i in range(1, 25):
        d = np.zeros((5, 5))
        d.flat[i] = 1
        atom = idctn(d, norm="ortho")
        basis[:, i - 1] = (atom.T if atoms_transposed else atom).flatten()
    return (basis @ fw).reshape(5, 5, 24)


def _np_stage(w: dict, x: np.ndarray, obs: np.ndarray, k: np.ndarray, s255: float, mask: np.ndarray | None,
              atoms_transposed: bool = True):
    """One FDN stage on 2-D float64 arrays (``mask``: 1 on y's region, or None at the first stage)."""
    v = np.array([[1.0 / s255**2]])
    for layer in ("dense1", "dense2", "dense3"):
        v = _np_elu(v @ w[f"{layer}/kernel"] + w[f"{layer}/bias"])
    lam = float(np.logaddexp(0.0, v @ w["lambda/kernel"] + w["lambda/bias"])[0, 0])  # softplus
    h = np.pad(x, 20, mode="edge")[..., None]
    for j in range(1, 7):
        h = _np_conv_same(h, w[f"conv{j}/kernel"], w[f"conv{j}/bias"])
        h = _np_elu(h) if j < 6 else h
    cnn = h[20:-20, 20:-20, 0]
    filters = _np_dct_filters(w["filter_weights"], atoms_transposed)
    reg = sum(np.abs(_np_otf(filters[:, :, i], x.shape)) ** 2 for i in range(24))
    K = _np_otf(k, x.shape)
    phi = obs if mask is None else mask * obs + (1 - mask) * _np_cconv(x, k)
    num = lam * np.conj(K) * np.fft.fft2(phi) + np.fft.fft2(cnn)
    return np.real(np.fft.ifft2(num / (lam * np.abs(K) ** 2 + reg)))


def _smooth(n: int) -> int:
    """The least 7-smooth integer >= n (the FFT-friendly grid size)."""
    while True:
        m = n
        for f in (2, 3, 5, 7):
            while m % f == 0:
                m //= f
        if m == 1:
            return n
        n += 1


def _np_fdn(weights: list[dict], y: np.ndarray, k: np.ndarray, s255: float, flip: bool = False,
            atoms_transposed: bool = True) -> np.ndarray:
    """The cascade on a ``valid`` y: replicate padding to the 7-smooth grid (y centred), edgetaper x3 at
    t = 0, then y on its region and the re-blurred estimate outside it."""
    (h, w), (kh, kw) = y.shape, k.shape
    H, W = _smooth(h + kh - 1), _smooth(w + kw - 1)
    py, px = (H - h) // 2, (W - w) // 2
    obs = _np_edgetaper(np.pad(y, ((py, H - h - py), (px, W - w - px)), mode="edge"), k)
    mask = np.zeros(obs.shape)
    mask[py : py + h, px : px + w] = 1
    inner = np.zeros(obs.shape)
    inner[py : py + h, px : px + w] = y
    kk = k[::-1, ::-1] if flip else k
    x = obs
    for t, wt in enumerate(weights):
        x = _np_stage(wt, x, obs if t == 0 else inner, kk, s255, mask if t > 0 else None, atoms_transposed)
    return x[py : py + h, px : px + w]


def _scene(seed: int = 0):
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:33, 0:41]  # grid 40 x 45 (7-smooth): 3 rows above y, 4 below
    y = 0.5 + 0.3 * np.sin(xx / 3.0) * np.cos(yy / 5.0) + 0.05 * rng.standard_normal((33, 41))
    k = rng.random((7, 5)) ** 3
    k[3, 4] += 0.5  # clearly asymmetric: a flip or transpose changes the result
    return y, k / k.sum()


def test_import_matches_numpy_stages(fdn_dir):
    """Two imported greedy stages (the second with boundary adjustment) = the NumPy reference, and the
    reference is sensitive to what could go wrong in an import (kernel flip, conv-weight transpose)."""
    y, k = _scene()
    raw = [_raw_stage(fdn_dir / f"stage_{t:02d}.hdf5") for t in (1, 2)]
    ref = _np_fdn(raw, y, k, 1.5)
    net, cfg = load_fdn(fdn_dir, finetuned=False, stages=2)
    assert cfg == {"sigma_range": (1.0, 3.0), "n_stages": 10}
    got = net(torch.from_numpy(y)[None, None].float(), torch.from_numpy(k).float(), torch.tensor([1.5 / 255]))
    got = got[0, 0].double().numpy()
    assert got.shape == y.shape
    assert np.abs(got - ref).max() < 1e-5
    # one stage alone also matches (no boundary adjustment involved)
    one = FDN([net.stages[0]])(torch.from_numpy(y)[None, None].float(), torch.from_numpy(k).float(),
                               torch.tensor([1.5 / 255]))
    assert np.abs(one[0, 0].double().numpy() - _np_fdn(raw[:1], y, k, 1.5)).max() < 1e-5
    # what a wrong import would produce is far from it
    assert np.abs(_np_fdn(raw, y, k, 1.5, flip=True) - ref).max() > 1e-2
    swapped = [dict(w, **{f"conv{j}/kernel": w[f"conv{j}/kernel"].transpose(1, 0, 2, 3) for j in range(1, 7)})
               for w in raw]
    assert np.abs(_np_fdn(swapped, y, k, 1.5) - ref).max() > 1e-2
    transposed = [dict(w, filter_weights=w["filter_weights"].T) for w in raw]
    assert np.abs(_np_fdn(transposed, y, k, 1.5) - ref).max() > 1e-2
    assert np.abs(_np_fdn(raw, y, k, 1.5, atoms_transposed=False) - ref).max() > 1e-2


def test_stacked_files_hold_the_stages(fdn_dir):
    """stages_01-10_greedy.hdf5 holds stage_01..10 in order; the fine-tuned file holds 10 other stages."""
    greedy = read_fdn_stages(fdn_dir / "stages_01-10_greedy.hdf5")
    tuned = read_fdn_stages(fdn_dir / "stages_01-10_finetuned.hdf5")
    assert len(greedy) == len(tuned) == 10
    for t in (0, 9):
        single = read_fdn_stages(fdn_dir / f"stage_{t + 1:02d}.hdf5")[0]
        assert all(np.array_equal(single[n], greedy[t][n]) for n in single)
        assert not np.array_equal(single["conv1/kernel"], tuned[t]["conv1/kernel"])


def test_method_shapes_and_stages(fdn_dir):
    m = FDNMethod(weights="sigma_1.0-3.0", finetuned=False, stages=2,
                  data_root=fdn_dir.parents[2]).with_boundary(boundary="liu")
    assert m.boundary == "adjust"  # FDN keeps its own boundary handling
    y = torch.rand(2, 3, 30, 34)
    k = torch.ones(5, 7) / 35
    assert m(y, k, 0.01, mode="valid").shape == y.shape
    assert m(y, k, 0.01, mode="circular").shape == y.shape
    seen = []
    x = m(y[:1], k, 1.5 / 255, mode="valid", on_stage=lambda t, v: seen.append((t, v)))
    assert [(t, tuple(v.shape)) for t, v in seen] == [(0, (1, 3, 30, 34)), (1, (1, 3, 30, 34))]
    assert torch.equal(seen[-1][1], x)
    # colour = each channel alone; sigma outside the trained range is clamped to it
    grey = m(y[:1, 1:2], k, 1.5 / 255, mode="valid")
    assert torch.allclose(x[:, 1:2], grey, atol=1e-5)
    assert torch.equal(m(y[:1], k, 0.1 / 255, mode="valid"), m(y[:1], k, 1.0 / 255, mode="valid"))


def test_auto_weights_follow_the_noise_level(fdn_dir):
    """weights=auto (the default) restores with the authors' 1..3/255 model inside its range and with the wide
    0.1..12.75/255 one outside it, exactly as the named sets do."""
    root = fdn_dir.parents[2]
    auto = FDNMethod(finetuned=False, stages=1, data_root=root)
    assert auto.weights == "auto"
    assert {f.split("/")[2] for f in auto.requirements.files} == {"sigma_1.0-3.0", "sigma_0.1-12.75"}
    assert [auto.weights_for(s / 255) for s in (0.5, 1.0, 2.55, 3.0, 3.5, 7.65)] == \
        ["sigma_0.1-12.75"] + ["sigma_1.0-3.0"] * 3 + ["sigma_0.1-12.75"] * 2
    assert auto.weight_set(torch.tensor([2.0, 5.0]) / 255) == "sigma_0.1-12.75"  # one level outside: the wide set
    y, k = torch.rand(1, 1, 24, 24), torch.ones(3, 3) / 9
    for s, name in ((2.0, "sigma_1.0-3.0"), (7.65, "sigma_0.1-12.75")):
        named = FDNMethod(weights=name, finetuned=False, stages=1, data_root=root)
        assert torch.equal(auto(y, k, s / 255, mode="valid"), named(y, k, s / 255, mode="valid"))
    narrow = FDNMethod(weights="sigma_1.0-3.0", finetuned=False, stages=1, data_root=root)
    assert not torch.allclose(auto(y, k, 7.65 / 255, mode="valid"), narrow(y, k, 7.65 / 255, mode="valid"), atol=1e-3)
    assert FDNMethod().missing(root / "nowhere") is not None


def test_eval_notice_names_the_weight_set_per_protocol(fdn_dir):
    from types import SimpleNamespace

    from podm_cli.apps.evaluate import record_weight_sets
    from podm_cli.methods.tv import TV

    methods = {"fdn": FDNMethod(data_root=fdn_dir.parents[2]), "tv": TV()}
    datasets = [SimpleNamespace(protocol="levin_real", sigma=1.5 / 255, kernel="approximate"),
                SimpleNamespace(protocol="levin_valid_whole[sigma=0.03]", sigma=0.03, kernel="exact"),
                SimpleNamespace(protocol="sun", sigma=0.01, kernel="exact")]
    outcome = SimpleNamespace(rows=[{"method": m, "dataset": d.protocol} for m in methods for d in datasets[:2]])
    assert record_weight_sets(outcome, datasets, methods) == [
        "fdn weights: levin_real sigma_1.0-3.0; levin_valid_whole[sigma=0.03] sigma_0.1-12.75"]


def test_untrained_cascade_shapes():
    net = FDN([FDNStage(), FDNStage()])
    y = torch.rand(3, 2, 20, 21)
    k = torch.rand(3, 1, 4, 6)
    k = k / k.sum(dim=(-2, -1), keepdim=True)
    assert net(y, k, torch.full((3,), 0.01)).shape == y.shape
    assert net(y, k, torch.full((3,), 0.01), mode="circular").shape == y.shape


def test_missing_and_corrupt_weights(tmp_path):
    with pytest.raises(DataNotFoundError, match="stage_01.hdf5"):
        read_fdn_stages(tmp_path / "stage_01.hdf5")
    with pytest.raises(DataNotFoundError, match="config.json"):
        load_fdn(tmp_path)
    (tmp_path / "config.json").write_text(json.dumps({"sigma_range": [1.0, 3.0], "n_stages": 10}))
    (tmp_path / "stage_01.hdf5").write_bytes(b"not an hdf5 file")
    with pytest.raises(InputError, match="not a readable HDF5 file") as err:
        load_fdn(tmp_path, finetuned=False, stages=1)
    assert "\n" not in str(err.value)
    import h5py

    with h5py.File(tmp_path / "stage_01.hdf5", "w") as f:
        f.attrs["layer_names"] = [b"conv1"]
        f.create_group("conv1")
    with pytest.raises(InputError, match="not an FDN stage"):
        load_fdn(tmp_path, finetuned=False, stages=1)
    (tmp_path / "config.json").write_text("{}")
    with pytest.raises(InputError, match="not an FDN config.json"):
        load_fdn(tmp_path)
    with pytest.raises(InputError, match="stages must be 1..10"):
        FDNMethod(stages=11)
    msg = FDNMethod().missing(tmp_path)
    assert "podm data fetch weights" in msg and "\n" not in msg


@pytest.mark.slow
def test_podm_eval_runs_fdn_on_levin_real(tmp_path, data_dir, fdn_dir):
    """`podm eval methods=[fdn]` labels the row and scores the first captured blur as measured in docs/fdn.md
    (35.09 dB with the fine-tuned cascade, Levin's scoring)."""
    row = eval_rows(tmp_path, data_dir, "methods=[fdn]", "datasets=[levin_real]", "limit=1", "device=cpu")["fdn"]
    assert row["source"] == "official weights (FDN, Kruse et al. 2017)"
    assert row["psnr"] == pytest.approx(35.09, abs=0.05)
