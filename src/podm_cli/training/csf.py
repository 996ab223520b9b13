"""Training of podm's own cascades of shrinkage fields (:mod:`podm_cli.models.csf`), greedy then joint.

Data (disjoint from every test set): grey crops of the images the caller lists (``scripts/train_csf.py``:
the clean list of :mod:`podm_cli.data.training_list`, BSDS500 *train + test* without ``12003``; never val =
BSD68, never Levin/Sun/Set12), blurred circularly by real camera-shake kernels of Schelten et al. 2015
(sides <= 35 px) and random motion trajectories (:func:`podm_cli.kernels.random_motion_kernel`), never the
Levin kernels, Gaussian noise of the target level (1 % = 2.55 on the models' 0..255 scale), seeded.

Training (Schmidt & Roth 2014): stage ``t`` minimises the MSE of its output to the sharp crops with the
previous stages fixed (*greedy*, L-BFGS on the full batch), then all stages together (*joint*).
Parameters per stage: ``log lam_t``, the RBF weights of every shrinkage function and, for non-pairwise
models, the filters (initialised to the non-DC DCT atoms).  Shrinkage starts from a smooth
soft-shrinkage ``v^3 / (v^2 + tau^2)`` (``tau`` = 3 noise sigmas); ``lam`` from a coarse grid search.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from torch import Tensor

from podm_cli.models.csf import SCALE, CSFModel, dct_filters, fit_rbf_weights, pairwise_filters, run_cascade
from podm_cli.physics import DataTerm

__all__ = ["CSFTrainData", "identity_weights", "load_csf_data", "train_csf"]


@dataclass
class CSFTrainData:
    sharp: Tensor  # (N, 1, H, W) on 0..255
    blurred: Tensor  # (N, 1, H, W) on 0..255
    kernels: Tensor  # (N, 1, K, K)
    _data: DataTerm | None = field(default=None, init=False, repr=False)

    def data_term(self) -> DataTerm:
        """The (circular) data term of ``blurred`` on the [0, 1] scale the cascade runs on."""
        if self._data is None:
            self._data = DataTerm.build(self.blurred / SCALE, self.kernels)
        return self._data


def identity_weights(means: Tensor, precision: float, span: float = 250.0) -> Tensor:
    """RBF weights making ``psi(v) ~ v`` on ``[-span, span]`` (an initialisation; tests)."""
    return fit_rbf_weights(lambda v: v, means, precision, -span, span)


def _pad_kernel(k: np.ndarray, size: int) -> Tensor:
    k = np.clip(k, 0, None)
    out = np.zeros((size, size))
    oy, ox = (size - k.shape[0]) // 2, (size - k.shape[1]) // 2
    out[oy : oy + k.shape[0], ox : ox + k.shape[1]] = k / k.sum()
    return torch.from_numpy(out)


def load_csf_data(root, files, n: int, crop: int = 96, sigma: float = 0.01, seed: int = 0,
                  max_kernel: int = 35) -> CSFTrainData:
    """``n`` crops (one per file, cycling), half Schelten kernels, half random motion kernels."""
    import scipy.io

    from podm_cli.imageio import read_image
    from podm_cli.kernels import random_motion_kernel
    from podm_cli.physics import Blur

    rng = np.random.default_rng(seed)
    g = torch.Generator().manual_seed(seed)
    mats = scipy.io.loadmat(Path(root) / "train/kernels_schelten2015.mat")["kernels"].ravel()
    schelten = [np.asarray(k, dtype=np.float64) for k in mats if max(k.shape) <= max_kernel]
    xs, ks = [], []
    for i in range(n):
        x, _ = read_image(files[i % len(files)], mode="gray")
        h, w = x.shape[-2:]
        t, l = int(rng.integers(0, h - crop + 1)), int(rng.integers(0, w - crop + 1))
        xs.append(x[:, t : t + crop, l : l + crop].double())
        if i % 2 == 0:
            ks.append(_pad_kernel(schelten[int(rng.integers(len(schelten)))], max_kernel))
        else:
            size = int(rng.choice([13, 17, 21, 25, 29, 33]))
            ks.append(_pad_kernel(random_motion_kernel(size, generator=g).numpy(), max_kernel))
    sharp = torch.stack(xs) * SCALE
    kernels = torch.stack(ks)[:, None]
    blurred = Blur(kernels)(sharp)
    noise = torch.randn(blurred.shape, generator=g, dtype=torch.float64) * (sigma * SCALE)
    return CSFTrainData(sharp.float(), (blurred + noise).float(), kernels.float())


def _psnr(x: Tensor, ref: Tensor) -> float:
    mse = float(((x.clamp(0, SCALE) - ref) ** 2).mean())
    return 10 * math.log10(SCALE**2 / mse)


def train_csf(data: CSFTrainData, val: CSFTrainData | None, stages: int = 3, filter_size: int | None = None,
              sigma: float = 0.01, greedy_iters: int = 60, joint_iters: int = 40, log=print,
              checkpoint: Path | None = None, max_seconds: float | None = None) -> tuple[CSFModel, list[dict]]:
    """Greedy-then-joint training; ``filter_size=None`` = pairwise (fixed ``[1, -1]`` filters)."""
    t_start = time.time()
    filters0 = pairwise_filters() if filter_size is None else dct_filters(int(filter_size))
    nf = filters0.shape[0]
    proto = CSFModel(torch.zeros(1, dtype=torch.float64), filters0[None], torch.zeros(1, nf, 53),
                     sigma=sigma * SCALE)
    means = proto.means
    tau = 3.0 * sigma * SCALE
    w0 = fit_rbf_weights(lambda v: v**3 / (v**2 + tau**2), means, proto.precision, -250.0, 250.0).float()
    learn_filters = filter_size is not None
    log_lam = [torch.zeros((), requires_grad=True) for _ in range(stages)]
    weights = [w0.expand(nf, -1).clone().requires_grad_(True) for _ in range(stages)]
    filt = [filters0.float().clone().requires_grad_(learn_filters) for _ in range(stages)]
    history: list[dict] = []

    def model_now(n_st: int) -> CSFModel:
        return CSFModel(torch.stack([ll.detach().exp() for ll in log_lam[:n_st]]).double(),
                        torch.stack([f.detach() for f in filt[:n_st]]).double(),
                        torch.stack([w.detach() for w in weights[:n_st]]).double(),
                        sigma=sigma * SCALE, meta={"trained_stages": n_st})

    def forward(d: CSFTrainData, first: int, last: int, x0: Tensor) -> Tensor:
        """Stages ``first..last-1`` from ``x0`` (0..255) on ``d``'s data term; the output on 0..255."""
        lam = torch.stack([log_lam[t].exp() for t in range(first, last)])
        f = torch.stack(filt[first:last])
        w = torch.stack(weights[first:last])
        return SCALE * run_cascade(proto, d.data_term(), lam=lam, filters=f, weights=w, x0=x0 / SCALE)

    def evaluate(d: CSFTrainData, n_st: int) -> list[float]:
        with torch.no_grad():
            outs = run_cascade(model_now(n_st), d.data_term(), return_all=True)
        return [_psnr(SCALE * o, d.sharp) for o in outs]

    def lbfgs(params, loss_fn, iters: int, tag: str):
        opt = torch.optim.LBFGS(params, lr=1.0, max_iter=iters, history_size=20, line_search_fn="strong_wolfe",
                                tolerance_grad=1e-9, tolerance_change=1e-12)
        count = [0]

        def closure():
            opt.zero_grad()
            loss = loss_fn()
            loss.backward()
            count[0] += 1
            if count[0] % 10 == 1:
                lv = float(loss.detach())
                log(f"  {tag} eval {count[0]:4d}  loss {lv:.4f}  psnr {10 * math.log10(SCALE**2 / lv):.3f}")
            return loss

        opt.step(closure)

    x_prev = data.blurred
    for t in range(stages):
        if max_seconds is not None and time.time() - t_start > max_seconds:
            log(f"time budget reached before greedy stage {t + 1}")
            stages = t
            break
        # coarse grid for lam_t with the initial shrinkage
        best = None
        for ll in np.linspace(math.log(1e-3), math.log(1e4), 15):
            with torch.no_grad():
                log_lam[t].fill_(float(ll))
                loss = float(((forward(data, t, t + 1, x_prev) - data.sharp) ** 2).mean())
            if best is None or loss < best[1]:
                best = (float(ll), loss)
        with torch.no_grad():
            log_lam[t].fill_(best[0])
        log(f"greedy stage {t + 1}: init lam {math.exp(best[0]):.4g} (grid), psnr {10 * math.log10(SCALE**2 / best[1]):.3f}")
        params = [log_lam[t], weights[t]] + ([filt[t]] if learn_filters else [])
        xp = x_prev
        lbfgs(params, lambda: ((forward(data, t, t + 1, xp) - data.sharp) ** 2).mean(), greedy_iters, f"greedy {t + 1}")
        with torch.no_grad():
            x_prev = forward(data, t, t + 1, x_prev)
        rec = {"phase": "greedy", "stage": t + 1, "lam": float(log_lam[t].detach().exp()),
               "train_psnr": evaluate(data, t + 1), "val_psnr": evaluate(val, t + 1) if val is not None else None,
               "seconds": time.time() - t_start}
        history.append(rec)
        log(f"greedy stage {t + 1} done: train psnr per stage {np.round(rec['train_psnr'], 3).tolist()}  "
            f"val {np.round(rec['val_psnr'], 3).tolist() if rec['val_psnr'] else '-'}  ({rec['seconds']:.0f}s)")
        if checkpoint is not None:
            m = model_now(t + 1)
            m.meta.update({"phase": "greedy", "history": history})
            m.save(checkpoint)
    if joint_iters > 0 and stages > 0 and (max_seconds is None or time.time() - t_start < max_seconds):
        params = [p for t in range(stages) for p in ([log_lam[t], weights[t]] + ([filt[t]] if learn_filters else []))]
        lbfgs(params, lambda: ((forward(data, 0, stages, data.blurred) - data.sharp) ** 2).mean(), joint_iters, "joint")
        rec = {"phase": "joint", "stage": stages, "lam": [float(ll.detach().exp()) for ll in log_lam[:stages]],
               "train_psnr": evaluate(data, stages), "val_psnr": evaluate(val, stages) if val is not None else None,
               "seconds": time.time() - t_start}
        history.append(rec)
        log(f"joint done: train psnr per stage {np.round(rec['train_psnr'], 3).tolist()}  "
            f"val {np.round(rec['val_psnr'], 3).tolist() if rec['val_psnr'] else '-'}  ({rec['seconds']:.0f}s)")
    model = model_now(stages)
    model.meta.update({"phase": history[-1]["phase"] if history else "none", "history": history})
    if checkpoint is not None:
        model.save(checkpoint)
    return model, history
