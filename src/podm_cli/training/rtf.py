"""Training a regression-tree-field cascade (podm_cli.models.rtf) on pairs made from BSDS500 images.

Stage by stage (greedy, like Schmidt et al. 2013: earlier stages fixed), each stage's tree grown level by
level as in Jancsary et al. 2012:

1. **fit** the leaf table (every leaf's ``3 + 3J`` parameters) by L-BFGS on the MSE of the stage's MAP to the
   sharp crops; the MAP is differentiated through the CG solve by the implicit-function rule
   (:func:`podm_cli.optim.cg.spd_solve`), so the loss gradient is exact up to the solver tolerance;
2. **split** every leaf: each pixel contributes ``G_p = dL/dtheta_p``, the loss gradient w.r.t. the
   parameters of the leaf it sits in (one backward pass with the leaf table spread over the pixels). A split
   of leaf ``l`` into ``L, R`` by ``feature > threshold`` is scored by ``||sum_L G||^2 + ||sum_R G||^2`` (each
   parameter scaled by its RMS over pixels): the first-order gain of letting the two halves take different
   parameters. Thresholds are quantiles of each feature; histograms make every split of every leaf one pass;
   children smaller than ``min_leaf`` pixels are not allowed; children start from their parent's parameters;
3. repeat until the tree has ``depth`` levels, then fit once more.

The first stage is a depth-0 tree on ``x' = y`` (a learned Wiener filter); ``lam = 1 / sigma_train^2`` is
fixed (only ratios of the CRF weights matter for the MAP, so learning it too would add a flat direction).
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import Tensor

from podm_cli.models.rtf import (
    FEATURE_NAMES,
    RegressionTree,
    RTFModel,
    RTFStage,
    n_params,
    rtf_features,
    rtf_filters,
    spread_leaf_params,
)
from podm_cli.physics import DataTerm
from podm_cli.training.pairs import BlurPairs, KernelPool, ValidationPairs, load_schelten, training_images

__all__ = ["RTFTrainData", "make_rtf_data", "train_rtf"]


@dataclass
class RTFTrainData:
    """Sharp / blurred crops ``(N, 1, H, W)`` on 0..1, kernels ``(N, 1, K, K)``, circular blur, noise ``sigma``."""

    sharp: Tensor
    blurred: Tensor
    kernels: Tensor
    sigma: float

    def data_term(self) -> DataTerm:
        """The circular data term of ``blurred``."""
        return DataTerm.build(self.blurred, self.kernels)


def make_rtf_data(root, split: str, n: int | None, crop: int, sigma: float = 0.01, seed: int = 0,
                  kernel_size: int = 31) -> RTFTrainData:
    """``n`` random crops of the ``train`` images (or the fixed ``val`` pairs) with Schelten / random-motion
    kernels (:mod:`podm_cli.training.pairs`: BSDS500 train+test without 12003; BSDS500 val minus BSD68)."""
    images = [im for _, im in training_images(root, split)]
    pool = KernelPool(load_schelten(root, kernel_size), kernel_size)
    if split == "val":
        ds = ValidationPairs(images, pool, crop=crop, sigma=sigma, seed=12345 + seed)
        n = len(ds) if n is None else min(int(n), len(ds))
    else:
        ds = BlurPairs(images, pool, crop=crop, length=int(n), sigma=sigma, seed=seed)
    items = [ds[i] for i in range(int(n))]
    return RTFTrainData(torch.stack([it["sharp"] for it in items]), torch.stack([it["blurred"] for it in items]),
                        torch.stack([it["kernel"] for it in items]), float(sigma))


def _psnr(mse255: float) -> float:
    return 10 * math.log10(255.0**2 / max(mse255, 1e-12))


class _StageProblem:
    """One stage's fixed inputs on one data set: ``y``, OTF, previous estimate, features, filter responses."""

    def __init__(self, data: RTFTrainData, x_prev: Tensor, filters: Tensor, rtol: float, max_iter: int):
        self.data, self.x_prev, self.filters = data, x_prev, filters
        self.data_term = data.data_term()
        self.features = rtf_features(x_prev, self.data_term)
        self.rtol, self.max_iter = rtol, max_iter

    def solve(self, stage: RTFStage, pix: Tensor) -> Tensor:
        return stage.solve(self.data_term, self.x_prev, self.filters, 1.0, pix=pix,
                           rtol=self.rtol, max_iter=self.max_iter)

    def loss(self, stage: RTFStage, pix: Tensor) -> Tensor:
        """MSE (0..255 scale) of the stage's MAP with per-pixel leaf parameters ``pix`` ``(N, P, H, W)``."""
        return ((self.solve(stage, pix) - self.data.sharp) ** 2).mean() * 255.0**2



def _fit(problem: _StageProblem, stage: RTFStage, leaf: Tensor, iters: int, log, tag: str) -> None:
    """L-BFGS on the stage's leaf table (in place)."""
    table = stage.table.clone().float().requires_grad_(True)
    opt = torch.optim.LBFGS([table], lr=1.0, max_iter=iters, history_size=20, line_search_fn="strong_wolfe",
                            tolerance_grad=1e-10, tolerance_change=1e-12)
    count = [0]

    def closure():
        opt.zero_grad()
        loss = problem.loss(stage, spread_leaf_params(table, leaf))
        loss.backward()
        count[0] += 1
        if count[0] == 1 or count[0] % 10 == 0:
            log(f"    {tag} eval {count[0]:3d}  train {_psnr(float(loss.detach())):.3f} dB")
        return loss

    opt.step(closure)
    stage.table = table.detach().double()


def _pixel_gradients(problem: _StageProblem, stage: RTFStage, leaf: Tensor) -> Tensor:
    """``(N*H*W, P)``: each pixel's share of the loss gradient w.r.t. its leaf's parameters."""
    pix = spread_leaf_params(stage.table.float(), leaf).requires_grad_(True)
    (grad,) = torch.autograd.grad(problem.loss(stage, pix), [pix])
    return grad.permute(0, 2, 3, 1).reshape(-1, pix.shape[1])


def candidate_thresholds(features: Tensor, bins: int, sample: int = 200_000, seed: int = 0) -> Tensor:
    """``(NF, bins - 1)`` thresholds per feature: interior quantiles of a pixel sample (ties merged, padded +inf)."""
    nf = features.shape[1]
    flat = features.transpose(0, 1).reshape(nf, -1)
    g = torch.Generator().manual_seed(seed)
    idx = torch.randperm(flat.shape[1], generator=g)[:sample]
    q = torch.quantile(flat[:, idx].double(), torch.linspace(0, 1, bins + 1, dtype=torch.float64)[1:-1], dim=1).T
    out = torch.full_like(q, math.inf)
    for f in range(nf):
        u = torch.unique(q[f])
        out[f, : u.numel()] = u
    return out


def best_splits(grad: Tensor, leaf: Tensor, features: Tensor, thresholds: Tensor, leaves: int,
                min_leaf: int) -> list[tuple[int, float, float] | None]:
    """For every leaf, ``(feature, threshold, score)`` of the split maximising ``||G_L||^2 + ||G_R||^2`` (see
    the module docstring), or ``None`` when no split leaves ``min_leaf`` pixels on both sides."""
    scale = grad.pow(2).mean(0).sqrt().clamp_min(1e-30)
    gn = (grad / scale).double()
    lf = leaf.reshape(-1)
    nf, nt = thresholds.shape
    best_score = torch.full((leaves,), -math.inf, dtype=torch.float64)
    best_f = torch.zeros(leaves, dtype=torch.long)
    best_t = torch.zeros(leaves, dtype=torch.long)
    ones = torch.ones(lf.numel(), 1, dtype=torch.float64)
    for f in range(nf):
        v = features[:, f].reshape(-1)
        b = torch.bucketize(v.double(), thresholds[f].contiguous())  # bin i: thr[i-1] < v <= thr[i]
        idx = lf * (nt + 1) + b
        hist = torch.zeros(leaves * (nt + 1), gn.shape[1], dtype=torch.float64).index_add_(0, idx, gn)
        cnt = torch.zeros(leaves * (nt + 1), 1, dtype=torch.float64).index_add_(0, idx, ones)
        hist, cnt = hist.reshape(leaves, nt + 1, -1), cnt.reshape(leaves, nt + 1)
        left, nleft = hist.cumsum(1)[:, :-1], cnt.cumsum(1)[:, :-1]  # v <= thr[q]
        right, nright = hist.sum(1, keepdim=True) - left, cnt.sum(1, keepdim=True) - nleft
        score = left.pow(2).sum(-1) + right.pow(2).sum(-1)
        score = torch.where((nleft >= min_leaf) & (nright >= min_leaf) & torch.isfinite(thresholds[f])[None],
                            score, torch.full_like(score, -math.inf))
        s, q = score.max(1)
        better = s > best_score
        best_score = torch.where(better, s, best_score)
        best_f = torch.where(better, torch.full_like(best_f, f), best_f)
        best_t = torch.where(better, q, best_t)
    return [None if not math.isfinite(float(best_score[l])) else
            (int(best_f[l]), float(thresholds[best_f[l], best_t[l]]), float(best_score[l])) for l in range(leaves)]


def _grow(tree: RegressionTree, splits) -> RegressionTree:
    """The tree one level deeper: leaf ``l``'s node gets its split (or ``+inf``: no split)."""
    d = tree.depth
    feat = torch.cat([tree.feature, torch.zeros(2**d, dtype=torch.long)])
    thr = torch.cat([tree.threshold, torch.full((2**d,), math.inf, dtype=torch.float64)])
    for l, s in enumerate(splits):
        if s is not None:
            feat[2**d - 1 + l], thr[2**d - 1 + l] = s[0], s[1]
    return RegressionTree(feat, thr)


def _init_row(j: int, previous: RTFStage | None, b0: float, a0: float, taus: Sequence[float] = ()) -> Tensor:
    row = torch.zeros(1, n_params(j, taus), dtype=torch.float64)
    if previous is None:  # the Wiener filter: tiny unary, b_j = b0, g = 0
        row[0, 0] = math.log(1e-6)
        row[0, 3 : 3 + j] = math.log(b0)
    else:  # start close to the previous stage: weak pull to x', its filter weights, shrink responses of x'
        row[0, 0], row[0, 2] = math.log(a0), 1.0
        row[0, 3 : 3 + j] = previous.table[:, 3 : 3 + j].mean(0)
        row[0, 3 + 2 * j : 3 + 3 * j] = 0.8  # g = 0.8 r; the shrinkers start at 0
    return row


def train_rtf(data: RTFTrainData, val: RTFTrainData | None, depths: Sequence[int] = (0, 5, 5, 5),
              fit_iters: int = 25, bins: int = 32, min_leaf: int = 2000, rtol: float = 1e-5, max_iter: int = 400,
              shrink_taus: Sequence[float] = (), filter_size: int = 3, log: Callable[[str], None] = print,
              checkpoint: Path | None = None, max_seconds: float | None = None) -> tuple[RTFModel, list[dict]]:
    """Train the cascade (module docstring); ``depths[t]`` is stage ``t``'s tree depth (``depths[0]`` is
    usually 0); ``shrink_taus`` the shrinkage basis of the tree stages (:func:`podm_cli.models.rtf.response_basis`).
    Checkpoints the model after every stage; stops adding stages when ``max_seconds`` is up."""
    t0 = time.time()
    sigma = data.sigma
    filters = rtf_filters(data.blurred.dtype, filter_size)
    j = filters.shape[0]
    log_lam = torch.tensor(math.log(1.0 / sigma**2), dtype=torch.float64)
    model = RTFModel([], rtf_filters(size=filter_size), sigma_train=sigma, meta={})
    history: list[dict] = []
    x_train, x_val = data.blurred, None if val is None else val.blurred
    for t, depth in enumerate(depths):
        if max_seconds is not None and time.time() - t0 > max_seconds:
            log(f"time budget reached before stage {t + 1}")
            break
        prob = _StageProblem(data, x_train, filters, rtol, max_iter)
        prev = model.stages[-1] if model.stages else None
        taus = tuple(shrink_taus) if prev is not None else ()  # the Wiener stage is stationary
        stage = RTFStage(RegressionTree.stump(), _init_row(j, prev, 100.0, 10.0, taus), log_lam, taus)
        if prev is None:  # coarse grid for the filter weight of the Wiener start
            leaf0 = torch.zeros(data.sharp.shape[0], *data.sharp.shape[-2:], dtype=torch.long)
            best = None
            for lb in torch.linspace(math.log(1.0), math.log(1e4), 9).tolist():
                stage.table = _init_row(j, None, math.exp(lb), 0.0)
                with torch.no_grad():
                    value = float(prob.loss(stage, spread_leaf_params(stage.table.float(), leaf0)))
                if best is None or value < best[1]:
                    best = (lb, value)
            stage.table = _init_row(j, None, math.exp(best[0]), 0.0)
            log(f"stage {t + 1}: Wiener start b = {math.exp(best[0]):.4g} ({_psnr(best[1]):.3f} dB)")
        thr = candidate_thresholds(prob.features, bins) if depth > 0 else None
        for level in range(depth + 1):
            leaf = stage.tree.leaf_index(prob.features)
            _fit(prob, stage, leaf, fit_iters, log, f"stage {t + 1} depth {level}")
            if level == depth:
                break
            grad = _pixel_gradients(prob, stage, leaf)
            splits = best_splits(grad, leaf, prob.features, thr, stage.tree.leaves, min_leaf)
            used = [FEATURE_NAMES[s[0]] for s in splits if s is not None]
            stage.tree = _grow(stage.tree, splits)
            stage.table = stage.table.repeat_interleave(2, dim=0)
            log(f"  stage {t + 1}: split {len(used)}/{len(splits)} leaves at depth {level} "
                f"(features: {', '.join(sorted(set(used)))})")
        model.stages.append(stage)
        with torch.no_grad():
            x_train = prob.solve(stage, stage.pixel_params(prob.features).float())
            rec = {"stage": t + 1, "depth": stage.tree.depth, "leaves_used": int(stage.tree.leaf_index(
                prob.features).unique().numel()),
                   "train_psnr": _psnr(float(((x_train.clamp(0, 1) - data.sharp) ** 2).mean()) * 255**2)}
            if val is not None:
                vprob = _StageProblem(val, x_val, filters, rtol, max_iter)
                x_val = vprob.solve(stage, stage.pixel_params(vprob.features).float())
                rec["val_psnr"] = _psnr(float(((x_val.clamp(0, 1) - val.sharp) ** 2).mean()) * 255**2)
        rec["seconds"] = round(time.time() - t0, 1)
        history.append(rec)
        log(f"stage {t + 1} done: depth {rec['depth']}, train {rec['train_psnr']:.3f} dB, "
            f"val {rec.get('val_psnr', float('nan')):.3f} dB ({rec['seconds']:.0f} s)")
        model.meta = {"history": history}
        if checkpoint is not None:
            model.save(checkpoint)
    return model, history
