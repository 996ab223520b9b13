"""Cascade of Shrinkage Fields (CSF; Schmidt & Roth, CVPR 2014): the model and its inference.

Each stage ``t`` takes the previous estimate ``x`` to

    X_t = (lam_t conj(K) Phi + sum_i conj(F_ti) F[psi_ti(f_ti * x)]) / (lam_t |K|^2 + sum_i |F_ti|^2),

``F_ti`` the transfer function of filter ``f_ti``, ``K`` that of the blur and ``Phi`` the observation of a
:class:`~podm_cli.physics.DataTerm` (``y``; ``valid`` data extended or boundary-adjusted), and ``psi_ti`` a
shrinkage function, an RBF mixture ``psi(v) = sum_j w_j exp(-gamma/2 (v - mu_j)^2)`` on equidistant means
(the authors' 53 means -260:10:260, gamma = 0.01).  It is the closed-form minimiser of
``lam/2 ||K x - y||^2 + 1/2 sum_i ||f_i * x - psi_i(f_i * x_prev)||^2``: with ``psi = 0`` it is the Wiener
(Tikhonov) deconvolution ``lam conj(K) Y / (lam |K|^2 + sum |F_i|^2)``, with ``psi(v) = a v`` its fixed point is
the Wiener deconvolution with regulariser ``(1 - a) sum |F_i|^2 / lam``.  The cascade starts from
``x_0 = data.initial()``.  Dividing by ``lam_t``, a stage is
:meth:`~podm_cli.physics.DataTerm.solve_quadratic` with weight ``1 / lam_t`` and
``reg_sq = sum_i |F_ti|^2`` (:func:`csf_stage`).

The authors' models work on 0..255 images; podm's estimates are on [0, 1], so the shrinkage functions are
applied at that scale: ``psi(v)`` becomes ``psi(SCALE v) / SCALE`` (the rest of a stage is linear).

Two kinds of model, one class (:class:`CSFModel`):

* the authors' public model files (``weights/csf/table*/csf_*.mat``, MATLAB v5 struct ``model`` with
  ``nfilters, sigma, is_deblurring, nstages, lambda, f{i, t}, shrink{i, t}.{precision, means, weights}``):
  :meth:`CSFModel.from_mat`.  ``table3/csf_pw.mat`` is the deblurring model (pairwise, 3 stages, trained for
  sigma = 0.5/255) -> method ``csf_official``;
* podm's own models trained for 1 % noise (:mod:`podm_cli.training.csf`, ``scripts/train_csf.py``,
  docs/csf.md), ``.npz`` (:meth:`CSFModel.save`/:meth:`CSFModel.load`) -> method ``csf``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from torch import Tensor

from podm_cli.errors import InputError
from podm_cli.npzfile import load_npz, save_npz
from podm_cli.paths import asset_path
from podm_cli.physics import DataTerm, psf2otf

__all__ = [
    "SCALE",
    "CSFModel",
    "csf_stage",
    "dct_filters",
    "filter_otfs",
    "default_csf_path",
    "fit_rbf_weights",
    "pairwise_filters",
    "rbf_shrink",
    "run_cascade",
]

SCALE = 255.0  # the authors' models work on 0..255 images


def default_csf_path(name: str = "csf_pw_sigma1.npz") -> Path:
    """A CSF model shipped in the package (``podm_cli/assets/<name>``)."""
    return asset_path(name)


def rbf_shrink(v: Tensor, weights: Tensor, mu0: float, step: float, precision: float, truncate: int = 6) -> Tensor:
    """``psi_i(v_i) = sum_j w_ij exp(-precision/2 (v_i - mu_j)^2)`` with ``mu_j = mu0 + j step``.

    ``v``: ``(N, F, H, W)``; ``weights``: ``(F, M)``.  Only the ``2 truncate`` means nearest to each value
    enter the sum (the rest weigh below ``exp(-precision/2 (truncate step)^2)``: 1.5e-8 for the authors'
    gamma = 0.01, step = 10, truncate = 6), so the cost is ``O(truncate)`` per value, not ``O(M)``;
    differentiable in ``v`` and ``weights``.
    """
    nf, m = weights.shape
    t = torch.floor((v.detach() - mu0) / step).long()
    base = (torch.arange(nf, device=v.device) * m).reshape(1, nf, 1, 1)
    flat = weights.reshape(-1)
    out = torch.zeros_like(v)
    for o in range(-truncate + 1, truncate + 1):
        j = t + o
        valid = (j >= 0) & (j < m)
        jc = j.clamp(0, m - 1)
        d = v - (mu0 + jc.to(v.dtype) * step)
        w = flat[base + jc]  # index backward accumulates into (F * M) values only
        out = out + torch.where(valid, w * torch.exp(-0.5 * precision * d * d), torch.zeros_like(d))
    return out


def fit_rbf_weights(target, means: Tensor, precision: float, lo: float, hi: float, ridge: float = 1e-6) -> Tensor:
    """Least-squares RBF weights ``(M,)`` making ``psi`` approximate ``target(v)`` on ``[lo, hi]``."""
    v = torch.linspace(lo, hi, 2001, dtype=torch.float64)
    phi = torch.exp(-0.5 * precision * (v[:, None] - means.double()[None]) ** 2)
    a = phi.T @ phi + ridge * torch.eye(means.numel(), dtype=torch.float64)
    return torch.linalg.solve(a, phi.T @ target(v))


@dataclass
class CSFModel:
    """A trained cascade: per stage ``lam (T,)``, filters ``(T, F, kh, kw)``, RBF weights ``(T, F, M)``, and
    the shared equidistant means ``mu0 + j step`` (``j < M``) and ``precision``; images on 0..255."""

    lam: Tensor
    filters: Tensor
    weights: Tensor
    mu0: float = -260.0
    step: float = 10.0
    precision: float = 0.01
    sigma: float | None = None  # noise level (0..255) the model was trained for
    meta: dict = field(default_factory=dict)

    def __post_init__(self):
        t = self.lam.shape[0]
        if self.filters.ndim != 4 or self.weights.ndim != 3 or self.filters.shape[:2] != self.weights.shape[:2] \
                or self.filters.shape[0] != t:
            raise InputError(f"csf: inconsistent model shapes: lam {tuple(self.lam.shape)}, filters "
                             f"{tuple(self.filters.shape)}, weights {tuple(self.weights.shape)}")

    @property
    def stages(self) -> int:
        return int(self.lam.shape[0])

    @property
    def means(self) -> Tensor:
        return self.mu0 + self.step * torch.arange(self.weights.shape[-1], dtype=torch.float64)

    # -------------------------------------------------------------------------- official .mat
    @classmethod
    def from_mat(cls, path) -> "CSFModel":
        """Read the authors' MATLAB v5 ``model`` struct (see the module docstring)."""
        import scipy.io

        path = Path(path)
        if not path.is_file():
            raise InputError(f"csf: no such model file {path}")
        try:
            mat = scipy.io.loadmat(path, squeeze_me=False, struct_as_record=False)
        except Exception as e:  # scipy raises MatReadError, ValueError, OSError, ... on foreign files
            raise InputError(f"csf: cannot read {path} as a MATLAB v5 file ({type(e).__name__}: {e})") from None
        try:
            m = mat["model"][0, 0]
            nstages, nfilters = int(np.ravel(m.nstages)[0]), int(np.ravel(m.nfilters)[0])
            lam = np.ravel(getattr(m, "lambda")).astype(np.float64)
            f, s = m.f, m.shrink
            shapes = {np.asarray(f[i, t]).shape for i in range(nfilters) for t in range(nstages)}
            kh, kw = max(a for a, _ in shapes), max(b for _, b in shapes)
            filters = np.zeros((nstages, nfilters, kh, kw))
            weights, means0, prec = [], None, None
            for t in range(nstages):
                wt = []
                for i in range(nfilters):
                    fi = np.asarray(f[i, t], dtype=np.float64)
                    oy, ox = (kh - fi.shape[0]) // 2, (kw - fi.shape[1]) // 2
                    filters[t, i, oy : oy + fi.shape[0], ox : ox + fi.shape[1]] = fi
                    sh = s[i, t]
                    means = np.ravel(sh.means).astype(np.float64)
                    p = float(np.ravel(sh.precision)[0])
                    if means0 is None:
                        means0, prec = means, p
                    elif not (np.array_equal(means, means0) and p == prec):
                        raise InputError(f"csf: {path}: shrinkage functions with different means are not supported")
                    wt.append(np.ravel(sh.weights).astype(np.float64))
                weights.append(wt)
            sigma = float(np.ravel(m.sigma)[0])
            deblur = bool(np.ravel(m.is_deblurring)[0]) if hasattr(m, "is_deblurring") else False
        except InputError:
            raise
        except (KeyError, AttributeError, IndexError, ValueError, TypeError, OSError) as e:
            raise InputError(f"csf: {path} is not a shrinkage-fields model file ({type(e).__name__}: {e})") from None
        steps = np.diff(means0)
        if lam.size != nstages or not np.allclose(steps, steps[0]):
            raise InputError(f"csf: {path}: need one lambda per stage and equidistant means")
        return cls(torch.from_numpy(lam), torch.from_numpy(filters), torch.tensor(np.array(weights)),
                   float(means0[0]), float(steps[0]), float(prec), sigma,
                   {"source": str(path.name), "is_deblurring": deblur})

    # -------------------------------------------------------------------------- podm .npz
    def save(self, path) -> Path:
        return save_npz(
            path, self.meta, lam=self.lam.detach().double().numpy(), filters=self.filters.detach().float().numpy(),
            weights=self.weights.detach().float().numpy(),
            grid=np.array([self.mu0, self.step, self.precision, -1.0 if self.sigma is None else self.sigma]))

    @classmethod
    def load(cls, path) -> "CSFModel":
        path = Path(path)
        if path.suffix.lower() == ".mat":
            return cls.from_mat(path)
        f, meta = load_npz(path, "csf", ("lam", "filters", "weights", "grid"),
                           not_npz="is neither an .npz archive (CSFModel.save) nor a .mat file")
        lam, filters, weights = (torch.from_numpy(f[k].astype(np.float64)) for k in ("lam", "filters", "weights"))
        mu0, step, prec, sigma = (float(v) for v in f["grid"])
        return cls(lam, filters, weights, mu0, step, prec, None if sigma < 0 else sigma, meta)


def filter_otfs(filters: Tensor, shape, dtype, device) -> Tensor:
    """``(F, H, W//2+1)`` transfer functions of ``filters`` ``(F, kh, kw)`` (centre ``(kh//2, kw//2)``)."""
    return psf2otf(filters.to(device=device, dtype=dtype)[None], shape)[0]


def csf_stage(x: Tensor, data: DataTerm, lam, fotf: Tensor, shrink, stage: int = 0) -> Tensor:
    """Stage ``stage`` of a cascade on ``x`` (``(N, C, H, W)`` on ``data.grid``, [0, 1] scale): data weight
    ``lam`` (float or 0-d tensor), ``fotf`` ``(F, H, W//2+1)`` filter OTFs, ``shrink(v)`` applied to the filter
    responses ``v`` ``(N C, F, H, W)`` (on the model's 0..255 scale: ``v`` is ``SCALE`` times the responses of
    ``x``)."""
    n, c = x.shape[:2]
    shape = data.grid
    v = torch.fft.irfft2(torch.fft.rfft2(x)[:, :, None] * fotf, s=shape)  # (N, C, F, H, W)
    z = shrink(SCALE * v.reshape(n * c, *v.shape[2:])).reshape(v.shape) / SCALE
    weight = 1.0 / lam
    extra = weight * (torch.conj(fotf) * torch.fft.rfft2(z)).sum(2)
    return data.solve_quadratic(extra, weight, (fotf.real**2 + fotf.imag**2).sum(0), x=data.estimate(x, stage))


def run_cascade(model: CSFModel, data: DataTerm, stages: int | None = None, lam=None, filters=None,
                weights=None, x0: Tensor | None = None, on_stage=None, return_all: bool = False):
    """The cascade on the observation of ``data`` (estimates on ``data.grid``, [0, 1] scale) from ``x0``
    (default ``data.initial()``), differentiable in ``lam``/``filters``/``weights`` (overrides of the
    model's, used in training; their first axis is the stage).  Runs ``stages`` stages (default: every
    one given); ``on_stage(t, x)`` sees each stage's output.  Returns the last stage (or every stage's)."""
    lam = model.lam if lam is None else lam
    filters = model.filters if filters is None else filters
    weights = model.weights if weights is None else weights
    n_st = int(lam.shape[0]) if stages is None else int(stages)
    x = data.initial() if x0 is None else x0
    outs = []
    for t in range(n_st):
        fotf = filter_otfs(filters[t], data.grid, x.dtype, x.device)
        w = weights[t].to(x.dtype)
        shrink = lambda v, w=w: rbf_shrink(v, w, model.mu0, model.step, model.precision)
        x = csf_stage(x, data, lam[t].to(x.dtype), fotf, shrink, t)
        if on_stage is not None:
            on_stage(t, x)
        outs.append(x)
    return outs if return_all else x


def dct_filters(size: int) -> Tensor:
    """The ``size^2 - 1`` non-DC 2-D DCT atoms ``(size^2 - 1, size, size)`` (5x5 CSF initialisation)."""
    from podm_cli.priors.lp import dct_matrix

    d = dct_matrix(size)
    atoms = torch.einsum("ai,bj->abij", d, d).reshape(size * size, size, size)
    return atoms[1:]


def pairwise_filters() -> Tensor:
    """``[1, -1]`` horizontal and vertical, as ``(2, 3, 3)`` (the authors' pairwise model)."""
    f = torch.zeros(2, 3, 3, dtype=torch.float64)
    f[0, 1, 1], f[0, 1, 2] = 1.0, -1.0
    f[1, 1, 1], f[1, 2, 1] = 1.0, -1.0
    return f

