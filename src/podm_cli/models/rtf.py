"""Regression tree fields (Jancsary et al. 2012) for non-blind deblurring (Schmidt et al. 2013), as a cascade.

One **stage** is a Gaussian CRF over the image ``x`` (0..1 scale) given the blurred ``y``, the kernel ``k``
and the previous stage's estimate ``x'`` (``y`` itself for the first stage)::

    E(x) = lam/2 ||k * x - y||^2 + sum_p a_p/2 (x_p - m_p)^2 + sum_j sum_p b_jp/2 ((f_j x)_p - g_jp)^2

with ``J`` fixed filters ``f_j`` (the non-DC DCT atoms, 3x3 by default; ``f_j x`` is circular correlation). The
potentials at pixel ``p`` come from the leaf ``l(p)`` that a regression tree picks from local features of
``x'`` and ``y`` (:func:`rtf_features`): with leaf parameters ``theta_l``::

    a_p = exp(theta_l[0]),  m_p = theta_l[1] + theta_l[2] x'_p,
    b_jp = exp(theta_l[3 + j]),  g_jp = theta_l[3 + J + j] + theta_l[3 + 2J + j] (f_j x')_p,

i.e. per leaf a unary pull towards a linear function of ``x'`` and, per filter, a precision and a
"shrinkage" of the previous response. With ``shrink_taus`` the shrinkage is richer: ``g_jp`` is a per-leaf
linear combination of ``1, r, r^3 / (r^2 + tau^2)`` (``r = (f_j x')_p``, one term per ``tau``), i.e. in
Jancsary et al.'s terms the linear parameters of a leaf multiply a basis of feature functions.

Every ``a_p > 0``, so the MAP is the unique solution of the sparse SPD system

    (lam K^T K + diag(a) + sum_j F_j^T diag(b_j) F_j) x = lam K^T y + a m + sum_j F_j^T (b_j g_j),

solved by CG with the stationary (FFT-diagonal) system as preconditioner (:func:`gcrf_map`). The blur,
its OTF and the observation come from a circular :class:`~podm_cli.physics.DataTerm` (per channel: ``y`` is
its observation, for ``valid`` data ``y`` extended once; a CG solve cannot follow a changing observation). ``lam`` is
``exp(log_lam) (sigma_train / sigma)^2``: a model trained at one noise level stays a MAP estimator at another.

A depth-0 tree (one leaf) is a stationary Gaussian CRF: its MAP is the Wiener (Tikhonov) deconvolution
(:func:`stationary_map`; tested). The cascade's first stage is such a depth-0 RTF on ``x' = y``.

>>> import torch
>>> from podm_cli.models.rtf import RTFModel
>>> from podm_cli.physics import DataTerm
>>> model = RTFModel.stationary(lam=1e4, b=10.0)
>>> y = torch.rand(1, 1, 24, 24); k = torch.ones(3, 3) / 9
>>> model.run(DataTerm.build(y, k), 0.01).shape
torch.Size([1, 1, 24, 24])
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

from podm_cli.errors import InputError
from podm_cli.models.csf import dct_filters
from podm_cli.npzfile import load_npz, save_npz
from podm_cli.optim.cg import spd_solve
from podm_cli.paths import asset_path
from podm_cli.physics import DataTerm, psf2otf

__all__ = ["FEATURE_NAMES", "RTFModel", "RTFStage", "RegressionTree", "default_rtf_path", "gcrf_map",
           "rtf_features", "rtf_filters", "spread_leaf_params", "stationary_map"]

FEATURE_NAMES = ("x_prev", "y", "grad_mag", "grad_mag_smooth", "local_std", "laplacian") + tuple(
    f"dct{j}" for j in range(1, 9)) + ("residual", "grad_mag_coarse")


def default_rtf_path(name: str = "rtf_sigma1.npz") -> Path:
    """An RTF model shipped in the package (``podm_cli/assets/<name>``)."""
    return asset_path(name)


def rtf_filters(dtype=torch.float64, size: int = 3) -> Tensor:
    """The ``J = size^2 - 1`` filters ``(J, size, size)``: the non-DC DCT atoms (orthonormal); 3x3 by default."""
    return dct_filters(int(size)).to(dtype)


# ------------------------------------------------------------------------------------------ filtering
def filter_responses(x: Tensor, filters: Tensor) -> Tensor:
    """``(f_j x)`` for ``x`` ``(N, 1, H, W)``: circular correlation with ``filters`` ``(J, s, s)`` (``s`` odd)
    -> ``(N, J, H, W)``."""
    r = filters.shape[-1] // 2
    return F.conv2d(F.pad(x, (r, r, r, r), mode="circular"), filters[:, None].to(x.dtype))


def filter_adjoint(z: Tensor, filters: Tensor) -> Tensor:
    """``sum_j F_j^T z_j`` for ``z`` ``(N, J, H, W)`` -> ``(N, 1, H, W)``: the exact adjoint of
    :func:`filter_responses`."""
    r = filters.shape[-1] // 2
    return F.conv2d(F.pad(z, (r, r, r, r), mode="circular"), filters.flip(-1, -2)[None].to(z.dtype))


def _smooth(x: Tensor, s: float = 1.5) -> Tensor:
    r = int(math.ceil(3 * s))
    t = torch.arange(-r, r + 1, dtype=x.dtype, device=x.device)
    g = torch.exp(-0.5 * (t / s) ** 2)
    g = g / g.sum()
    x = F.conv2d(F.pad(x, (r, r, 0, 0), mode="circular"), g.reshape(1, 1, 1, -1))
    return F.conv2d(F.pad(x, (0, 0, r, r), mode="circular"), g.reshape(1, 1, -1, 1))


def _grad_mag(x: Tensor) -> Tensor:
    gx = (torch.roll(x, -1, -1) - torch.roll(x, 1, -1)) / 2
    gy = (torch.roll(x, -1, -2) - torch.roll(x, 1, -2)) / 2
    return torch.sqrt(gx * gx + gy * gy + 1e-12)


def rtf_features(x_prev: Tensor, data: DataTerm) -> Tensor:
    """Per-pixel features the trees split on, ``(N, 16, H, W)`` (names: :data:`FEATURE_NAMES`): ``x'``, ``y``,
    gradient magnitude of ``x'`` and of ``x'`` smoothed (Gaussian 1.5 px), local standard deviation (5x5),
    Laplacian, the responses of ``x'`` to the 8 non-DC 3x3 DCT atoms, the local data misfit
    ``|k * x' - y|`` (smoothed, 1.5 px: where the estimate rings or is wrong) and the gradient magnitude at a
    coarse scale (Gaussian 3 px); ``y`` is ``data``'s observation. All circular, so they match the CRF's
    boundary."""
    y = data.observation()
    mean5 = F.avg_pool2d(F.pad(x_prev, (2, 2, 2, 2), mode="circular"), 5, stride=1)
    sq5 = F.avg_pool2d(F.pad(x_prev * x_prev, (2, 2, 2, 2), mode="circular"), 5, stride=1)
    std5 = torch.sqrt((sq5 - mean5 * mean5).clamp_min(0) + 1e-12)
    lap = torch.roll(x_prev, 1, -1) + torch.roll(x_prev, -1, -1) + torch.roll(x_prev, 1, -2) + torch.roll(
        x_prev, -1, -2) - 4 * x_prev
    return torch.cat([x_prev, y, _grad_mag(x_prev), _grad_mag(_smooth(x_prev)), std5, lap,
                      filter_responses(x_prev, rtf_filters(x_prev.dtype).to(x_prev.device)),
                      _smooth((data.blur(x_prev) - y).abs()),
                      _grad_mag(_smooth(x_prev, 3.0))], dim=1)


# ------------------------------------------------------------------------------------------ tree
@dataclass
class RegressionTree:
    """A complete binary tree of ``depth`` levels over per-pixel features: internal node ``i`` (level order,
    children ``2i+1``, ``2i+2``) sends a pixel right when ``features[feature[i]] > threshold[i]``. A node
    that was not split has threshold ``+inf`` (everything goes left; its right subtree is never reached)."""

    feature: Tensor  # (2^depth - 1,) long
    threshold: Tensor  # (2^depth - 1,) float64

    @property
    def depth(self) -> int:
        return int(round(math.log2(self.feature.numel() + 1)))

    @property
    def leaves(self) -> int:
        return 2**self.depth

    @classmethod
    def stump(cls) -> "RegressionTree":
        """Depth 0: one leaf."""
        return cls(torch.zeros(0, dtype=torch.long), torch.zeros(0, dtype=torch.float64))

    def leaf_index(self, features: Tensor) -> Tensor:
        """``(N, H, W)`` leaf of every pixel of ``features`` ``(N, NF, H, W)``, in ``0 .. leaves-1``."""
        n, _, h, w = features.shape
        node = torch.zeros(n, h, w, dtype=torch.long, device=features.device)
        feat = self.feature.to(features.device)
        thr = self.threshold.to(device=features.device, dtype=features.dtype)
        for _ in range(self.depth):
            v = features.gather(1, feat[node][:, None]).squeeze(1)
            node = 2 * node + 1 + (v > thr[node]).long()
        return node - (2**self.depth - 1)


# ------------------------------------------------------------------------------------------ the CRF
def _precond(den: Tensor, shape):
    return lambda r: torch.fft.irfft2(torch.fft.rfft2(r) / den, s=shape)


def _filter_power(filters: Tensor, shape, dtype, device) -> Tensor:
    """``|F_j|^2`` on the rfft grid, ``(J, H, W//2+1)``."""
    otf = psf2otf(filters.flip(-1, -2).to(device=device, dtype=dtype)[None], shape)[0]
    return otf.real**2 + otf.imag**2


def gcrf_map(data: DataTerm, lam: Tensor, a: Tensor, m: Tensor, b: Tensor, g: Tensor, filters: Tensor,
             rtol: float = 1e-5, max_iter: int = 400) -> Tensor:
    """MAP of the Gaussian CRF (module docstring) for a batch on the grid of ``data`` (circular, one channel:
    ``y = data.observation()`` ``(N, 1, H, W)``): ``a, m`` ``(N, 1, H, W)``, ``b, g`` ``(N, J, H, W)``,
    ``lam`` ``(N,)`` or scalar. Differentiable in ``lam, a, m, b, g`` (implicit gradient through the CG
    solve)."""
    y = data.observation()
    lam = torch.as_tensor(lam, dtype=y.dtype, device=y.device).reshape(-1, 1, 1, 1)
    filters = filters.to(y.dtype)

    def kt_k(v: Tensor) -> Tensor:
        return torch.fft.irfft2(torch.fft.rfft2(v) * data.otf_sq, s=data.grid)

    def apply_h(v: Tensor, lam_: Tensor, a_: Tensor, b_: Tensor) -> Tensor:
        return lam_ * kt_k(v) + a_ * v + filter_adjoint(b_ * filter_responses(v, filters), filters)

    c = lam * data.blur_adjoint(y) + a * m + filter_adjoint(b * g, filters)
    with torch.no_grad():  # the stationary system (mean potentials) is diagonal in Fourier: the preconditioner
        fp = _filter_power(filters, data.grid, y.dtype, y.device)
        den = lam * data.otf_sq + a.mean((1, 2, 3), keepdim=True) + (b.mean((2, 3))[..., None, None] * fp).sum(
            1, keepdim=True)
    return spd_solve(apply_h, c, (lam, a, b), _precond(den, data.grid), rtol=rtol, max_iter=max_iter)


def stationary_map(data: DataTerm, lam: float, a: float, m: float, b: Tensor, filters: Tensor) -> Tensor:
    """Closed-form MAP of the CRF with constant ``a, m, b_j`` and ``g = 0``: the Wiener (Tikhonov)
    deconvolution ``(lam conj(K) Y + a m delta) / (lam |K|^2 + a + sum_j b_j |F_j|^2)``, i.e. the data
    term's quadratic solve with weight ``1 / lam`` and ``reg_sq = a + sum_j b_j |F_j|^2``."""
    y = data.observation()
    fp = _filter_power(filters, data.grid, y.dtype, y.device)
    reg_sq = a + (b.to(y.dtype).reshape(-1, 1, 1) * fp).sum(0)
    extra = torch.fft.rfft2(torch.full_like(y, a * m / lam))
    return data.solve_quadratic(extra, 1.0 / lam, reg_sq)


# ------------------------------------------------------------------------------------------ stage / cascade
def n_params(j: int, shrink_taus: Sequence[float] = ()) -> int:
    """Parameters per leaf for ``j`` filters and the given shrinkage basis."""
    return 3 + j * (3 + len(shrink_taus))


def response_basis(responses: Tensor, shrink_taus: Sequence[float]) -> list[Tensor]:
    """The functions of ``r = f_j x'`` that ``g_j`` is a per-leaf linear combination of: ``1, r`` and the
    smooth shrinkers ``r^3 / (r^2 + tau^2)`` (one per ``tau``)."""
    out = [torch.ones_like(responses), responses]
    r2 = responses * responses
    out += [responses * r2 / (r2 + tau * tau) for tau in shrink_taus]
    return out


def potentials(pix: Tensor, x_prev: Tensor, responses: Tensor, shrink_taus: Sequence[float] = ()
               ) -> tuple[Tensor, Tensor, Tensor, Tensor]:
    """``a, m, b, g`` from per-pixel leaf parameters ``pix`` ``(N, P, H, W)`` (module docstring)."""
    j = responses.shape[1]
    a = torch.exp(pix[:, 0:1])
    m = pix[:, 1:2] + pix[:, 2:3] * x_prev
    b = torch.exp(pix[:, 3 : 3 + j])
    g = None
    for q, phi in enumerate(response_basis(responses, shrink_taus)):
        term = pix[:, 3 + (q + 1) * j : 3 + (q + 2) * j] * phi
        g = term if g is None else g + term
    return a, m, b, g


def spread_leaf_params(table: Tensor, leaf: Tensor) -> Tensor:
    """Leaf table ``(L, P)`` -> per-pixel parameters ``(N, P, H, W)`` for leaf indices ``(N, H, W)``."""
    return table[leaf].permute(0, 3, 1, 2)


@dataclass
class RTFStage:
    """One RTF: a tree, a leaf table ``(leaves, 3 + 3J)`` and the data weight ``log_lam`` (at ``sigma_train``)."""

    tree: RegressionTree
    table: Tensor
    log_lam: Tensor
    shrink_taus: tuple[float, ...] = ()

    def __post_init__(self):
        self.shrink_taus = tuple(float(t) for t in self.shrink_taus)
        if self.table.ndim != 2 or self.table.shape[0] != self.tree.leaves:
            raise InputError(f"rtf: leaf table {tuple(self.table.shape)} does not match a depth-{self.tree.depth} tree")

    def pixel_params(self, features: Tensor) -> Tensor:
        """``(N, P, H, W)``: every pixel's leaf parameters."""
        table = self.table.to(device=features.device, dtype=features.dtype)
        return spread_leaf_params(table, self.tree.leaf_index(features))

    def solve(self, data: DataTerm, x_prev: Tensor, filters: Tensor, lam_scale: Tensor | float = 1.0,
              pix: Tensor | None = None, log_lam: Tensor | None = None, rtol: float = 1e-5,
              max_iter: int = 400) -> Tensor:
        """This stage's MAP given the previous estimate (``pix``/``log_lam`` override the stored ones)."""
        responses = filter_responses(x_prev, filters)
        if pix is None:
            pix = self.pixel_params(rtf_features(x_prev, data))
        a, m, b, g = potentials(pix, x_prev, responses, self.shrink_taus)
        log_lam = self.log_lam if log_lam is None else log_lam
        scale = torch.as_tensor(lam_scale, dtype=x_prev.dtype, device=x_prev.device)
        lam = torch.exp(log_lam.to(device=x_prev.device, dtype=x_prev.dtype)) * scale
        return gcrf_map(data, lam, a, m, b, g, filters, rtol=rtol, max_iter=max_iter)


@dataclass
class RTFModel:
    """A cascade of :class:`RTFStage`; ``sigma_train`` the noise level (0..1) it was trained for."""

    stages: list[RTFStage]
    filters: Tensor = field(default_factory=rtf_filters)
    sigma_train: float = 0.01
    meta: dict = field(default_factory=dict)

    @property
    def depths(self) -> list[int]:
        return [s.tree.depth for s in self.stages]

    @classmethod
    def stationary(cls, lam: float, b: float, a: float = 1e-6, sigma_train: float = 0.01) -> "RTFModel":
        """One depth-0 stage with ``g = 0``: the Wiener deconvolution (examples and tests)."""
        j = rtf_filters().shape[0]
        row = torch.zeros(1, n_params(j), dtype=torch.float64)
        row[0, 0] = math.log(a)
        row[0, 3 : 3 + j] = math.log(b)
        return cls([RTFStage(RegressionTree.stump(), row, torch.tensor(math.log(lam), dtype=torch.float64))],
                   sigma_train=sigma_train)

    def run(self, data: DataTerm, sigma, stages: int | None = None, return_all: bool = False,
            rtol: float = 1e-5, max_iter: int = 400, on_stage=None):
        """The cascade on the observation of ``data`` (circular, ``(N, 1, H, W)``, 0..1, noise ``sigma``);
        ``on_stage(t, x)`` sees each stage's output."""
        y = data.observation()
        sigma = torch.as_tensor(sigma, dtype=y.dtype, device=y.device).reshape(-1)
        lam_scale = (self.sigma_train / sigma.clamp_min(1e-6)) ** 2
        filters = self.filters.to(device=y.device, dtype=y.dtype)
        x, outs = y, []
        for t, st in enumerate(self.stages[: len(self.stages) if stages is None else int(stages)]):
            x = st.solve(data, x, filters, lam_scale, rtol=rtol, max_iter=max_iter)
            if on_stage is not None:
                on_stage(t, x)
            outs.append(x)
        return outs if return_all else x

    # -------------------------------------------------------------------------- file
    def save(self, path) -> Path:
        arrays = {"filters": self.filters.detach().double().numpy()}
        for t, st in enumerate(self.stages):
            arrays[f"feature{t}"] = st.tree.feature.numpy().astype(np.int64)
            arrays[f"threshold{t}"] = st.tree.threshold.double().numpy()
            arrays[f"table{t}"] = st.table.detach().double().numpy()
            arrays[f"log_lam{t}"] = np.array(float(st.log_lam))
            arrays[f"shrink_taus{t}"] = np.array(st.shrink_taus, dtype=np.float64)
        meta = dict(self.meta, stages=len(self.stages), sigma_train=self.sigma_train, features=list(FEATURE_NAMES),
                    format="podm-rtf/1")
        return save_npz(path, meta, **arrays)

    @classmethod
    def load(cls, path) -> "RTFModel":
        _, meta = load_npz(path, "rtf", ())
        if meta.get("format") != "podm-rtf/1" or "stages" not in meta:
            raise InputError(f"rtf: {path} is not a podm RTF model file (format podm-rtf/1)")
        n = int(meta["stages"])
        keys = ["filters"] + [f"{k}{t}" for t in range(n) for k in ("feature", "threshold", "table", "log_lam",
                                                                       "shrink_taus")]
        f, _ = load_npz(path, "rtf", keys)
        stages = []
        for t in range(n):
            tree = RegressionTree(torch.from_numpy(f[f"feature{t}"].astype(np.int64)),
                                  torch.from_numpy(f[f"threshold{t}"].astype(np.float64)))
            if tree.feature.numel() and not (0 <= int(tree.feature.min()) and int(tree.feature.max()) < len(FEATURE_NAMES)):
                raise InputError(f"rtf: {path}: stage {t} splits on an unknown feature")
            taus = tuple(float(v) for v in f[f"shrink_taus{t}"].ravel())
            table = torch.from_numpy(f[f"table{t}"].astype(np.float64))
            if table.ndim != 2 or table.shape[1] != n_params(f["filters"].shape[0], taus):
                raise InputError(f"rtf: {path}: stage {t} leaf table {tuple(table.shape)} does not fit "
                                 f"{f['filters'].shape[0]} filters and {len(taus)} shrinkers")
            stages.append(RTFStage(tree, table, torch.tensor(float(f[f"log_lam{t}"]), dtype=torch.float64), taus))
        sigma_train = float(meta["sigma_train"])
        meta = {k: v for k, v in meta.items() if k not in ("stages", "sigma_train", "features", "format")}
        return cls(stages, torch.from_numpy(f["filters"].astype(np.float64)), sigma_train, meta)
