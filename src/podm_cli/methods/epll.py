"""EPLL deconvolution (Zoran & Weiss, ICCV 2011): Expected Patch Log-Likelihood under a Gaussian-mixture
patch prior, optimised by half-quadratic splitting.

    min_x  lam / (2 sigma^2) ||k * x - y||^2 - sum_i log p(P_i x),

``P_i`` extracting every overlapping ``8 x 8`` patch (circularly: each pixel lies in exactly 64 patches) and
``p`` the zero-mean GMM of :mod:`podm_cli.priors.gmm` on the DC-free patch coordinates.  With auxiliary
patches ``z_i`` and ``beta`` growing along a schedule (configurable: the EPLL paper's
``(1 / sigma^2) x [1, 4, 8, 16, 32, 64]``, :data:`PAPER_BETAS`, or the default :data:`DEFAULT_BETAS`
``(1 / sigma^2) x [0.005, 0.01, ..., 0.32]``, which is the authors' deblurring demo ``50 x [1, 2, ..., 64]`` at
1 % noise and far better for deblurring on the tuning set, docs/epll.md), from ``x = y``:

1. **z-step**, per patch, approximate MAP under the *best* component: with ``v = B^T P_i x`` (DC-free
   coordinates, the DC ``m_i`` kept aside) and ``s = 1 / beta``,
   ``k* = argmax_k log pi_k + log N(v; 0, Sigma_k + s I)`` and the Wiener filter
   ``z_i = B Sigma_k* (Sigma_k* + s I)^{-1} v + m_i`` (:func:`patch_map`);
2. **x-step**, ``(lam/sigma^2 K^T K + beta sum_i P_i^T P_i) x = lam/sigma^2 K^T y + beta sum_i P_i^T z_i``;
   ``sum_i P_i^T P_i = 64 I`` circularly, so with ``lam`` in units of ``64`` (the authors' ``lambda`` is
   ``patchSize^2 / sigma^2``) it is the data term's proximal step
   ``X = (conj(K) Y + rho A) / (|K|^2 + rho)`` (:meth:`~podm_cli.physics.DataTerm.prox`) with
   ``rho = beta sigma^2 / lam`` and ``A`` the overlap average of the restored patches (unfold/fold).

The patches live on the data term's grid (``y``, or ``valid`` data extended, or boundary-adjusted: the
observation of each x-step follows the estimate), like every other podm method.  The GMM is podm's own (``scripts/train_gmm.py``, docs/epll.md):
the authors' GMM file is not available here, so results are labelled ``recomputed (GMM trained by podm)``.
"""

from __future__ import annotations

from pathlib import Path

import torch
import torch.nn.functional as F
from torch import Tensor

from podm_cli.errors import InputError
from podm_cli.methods.base import Method
from podm_cli.paths import asset_path, resolve_model_path
from podm_cli.physics import DataTerm
from podm_cli.priors.gmm import GaussianMixture, _triu, dc_free_basis, outer_triu

__all__ = ["DEFAULT_BETAS", "EPLL", "PAPER_BETAS", "circular_fold", "circular_unfold", "default_gmm_path", "patch_map"]

PAPER_BETAS = (1.0, 4.0, 8.0, 16.0, 32.0, 64.0)  # x 1/sigma^2: the EPLL paper's (denoising) schedule
# x 1/sigma^2: the authors' deblurring demo (beta = 50 x [1, 2, ..., 64] at sigma = 0.01), noise-adaptive;
# chosen on the tuning set (docs/epll.md: 28.86 dB against 21.72 dB for PAPER_BETAS).
DEFAULT_BETAS = (0.005, 0.01, 0.02, 0.04, 0.08, 0.16, 0.32)


def default_gmm_path() -> Path:
    """The GMM shipped in the package (``podm_cli/assets/gmm_8x8_200.npz``)."""
    return asset_path("gmm_8x8_200.npz")


def circular_unfold(x: Tensor, patch: int) -> Tensor:
    """Every ``patch x patch`` patch of ``x`` (``(H, W)``) with circular wrap: ``(H W, patch^2)``, the patch
    whose top-left pixel is ``(i, j)`` in row ``i W + j``."""
    h, w = x.shape
    xp = F.pad(x[None, None], (0, patch - 1, 0, patch - 1), mode="circular")
    return F.unfold(xp, patch)[0].T


def circular_fold(p: Tensor, shape: tuple[int, int], patch: int) -> Tensor:
    """Adjoint of :func:`circular_unfold`: sums every patch back into an ``(H, W)`` image (wrapping)."""
    h, w = shape
    out = F.fold(p.T[None], (h + patch - 1, w + patch - 1), patch)[0, 0]
    res = out[:h, :w].clone()
    res[:, : patch - 1] += out[:h, w:]
    res[: patch - 1, :] += out[h:, :w]
    res[: patch - 1, : patch - 1] += out[h:, w:]
    return res


def _noisy_log_probs(gmm: GaussianMixture, vals: Tensor, vecs: Tensor, noise_var: float, dtype, device):
    """``(prec_tri (d(d+1)/2, K), const (K,))`` for ``N(0, Sigma_k + noise_var I)``."""
    inv = 1.0 / (vals.double() + noise_var)  # (K, d)
    v64 = vecs.double()
    prec = (v64 * inv[:, None, :]) @ v64.transpose(1, 2)
    d = gmm.dim
    iu = _triu(d, device)
    scale = torch.where(iu[0] == iu[1], 1.0, 2.0).to(torch.float64)
    prec_tri = (prec[:, iu[0], iu[1]] * scale).T.contiguous().to(dtype)
    const = (torch.log(gmm.weights.to(device=device, dtype=torch.float64)) + 0.5 * torch.log(inv).sum(1)
             - 0.5 * d * torch.log(torch.tensor(2.0 * torch.pi, dtype=torch.float64))).to(dtype)
    return prec_tri, const


def patch_map(v: Tensor, gmm: GaussianMixture, noise_var: float, chunk: int = 8192) -> tuple[Tensor, Tensor]:
    """EPLL's approximate per-patch MAP: ``(z, labels)`` for DC-free patch coordinates ``v`` (``(n, d)``)
    observed with white noise of variance ``noise_var``.

    ``labels[n] = argmax_k log pi_k + log N(v_n; 0, Sigma_k + noise_var I)`` and
    ``z_n = Sigma_k (Sigma_k + noise_var I)^{-1} v_n`` for ``k = labels[n]`` (the Wiener filter of the chosen
    component).
    """
    if not noise_var > 0:
        raise InputError(f"epll: patch noise variance must be > 0, got {noise_var}")
    vals, vecs = gmm.eig(device=v.device, dtype=v.dtype)
    prec_tri, const = _noisy_log_probs(gmm, vals, vecs, noise_var, v.dtype, v.device)
    labels = torch.cat([
        (const - 0.5 * (outer_triu(v[s : s + chunk]) @ prec_tri)).argmax(1) for s in range(0, v.shape[0], chunk)
    ])
    gain = vals / (vals + noise_var)  # (K, d)
    z = torch.empty_like(v)
    order = torch.argsort(labels)
    counts = torch.bincount(labels, minlength=gmm.components).tolist()
    start = 0
    for k, c in enumerate(counts):
        if c == 0:
            continue
        idx = order[start : start + c]
        start += c
        u = vecs[k]
        z[idx] = ((v[idx] @ u) * gain[k]) @ u.T
    return z, labels


class EPLL(Method):
    """EPLL non-blind deconvolution with a zero-mean 8x8 GMM patch prior (half-quadratic splitting).

    Parameters (paper symbols: Zoran & Weiss 2011 and the authors' deblurring demo)
    ----------
    gmm
        ``.npz`` written by :meth:`podm_cli.priors.gmm.GaussianMixture.save`; ``None`` = the GMM shipped
        with podm (trained by ``scripts/train_gmm.py``, docs/epll.md).
    betas, beta_unit
        The splitting weights (the paper's ``beta`` schedule): ``beta = b / sigma^2``
        (``beta_unit="inv_sigma2"``) or ``beta = b`` (``"absolute"``) for each ``b``.
        Default :data:`DEFAULT_BETAS` (the authors' deblurring demo, ``50 x [1, 2, 4, ..., 64]`` absolute at
        sigma = 0.01, made noise-adaptive); the EPLL paper's ``[1, 4, 8, 16, 32, 64]`` (:data:`PAPER_BETAS`)
        is its denoising schedule and deblurs poorly (docs/epll.md).
    inner_iterations
        z/x alternations per beta (the authors' demo: 1).
    lam
        Data-fidelity weight in units of ``patch^2 / sigma^2`` (the paper's ``lambda``; the authors' value
        ``patchSize^2 / sigma^2`` is 1.0 here).
    noise_floor
        Floor on the noise level used to set ``beta`` (noise-free inputs).
    chunk
        Patches per matrix product (memory).

    The estimate after each beta step is a stage (``on_stage``).
    """

    name = "epll"
    source = "recomputed (GMM trained by podm)"

    def __init__(
        self,
        gmm: str | None = None,
        betas=DEFAULT_BETAS,
        beta_unit: str = "inv_sigma2",
        inner_iterations: int = 1,
        lam: float = 1.0,
        noise_floor: float = 1e-3,
        chunk: int = 8192,
    ):
        super().__init__()
        betas = [float(b) for b in betas]
        if not betas or any(not b > 0 for b in betas):
            raise InputError(f"epll: betas must be a non-empty list of positive numbers, got {betas}")
        if int(inner_iterations) < 1 or not lam > 0 or not noise_floor > 0 or int(chunk) < 1:
            raise InputError(f"epll: need inner_iterations >= 1, lam > 0, noise_floor > 0, chunk >= 1 "
                             f"(got {inner_iterations}, {lam}, {noise_floor}, {chunk})")
        self.gmm_path = resolve_model_path(gmm, default="asset:gmm_8x8_200.npz")
        if beta_unit not in ("inv_sigma2", "absolute"):
            raise InputError(f"epll: beta_unit must be 'inv_sigma2' or 'absolute', got {beta_unit!r}")
        self.betas = betas
        self.beta_unit = beta_unit
        self.inner_iterations = int(inner_iterations)
        self.lam = float(lam)
        self.noise_floor = float(noise_floor)
        self.chunk = int(chunk)
        self._gmm: GaussianMixture | None = None

    def missing(self, data_root: Path) -> str | None:
        if not self.gmm_path.is_file():
            return f"epll needs its GMM {self.gmm_path}; train it with scripts/train_gmm.py (docs/epll.md)"
        return None

    @property
    def gmm(self) -> GaussianMixture:
        if self._gmm is None:
            self._gmm = GaussianMixture.load(self.gmm_path)
        return self._gmm

    def _patch_average(self, x: Tensor, beta: float, basis: Tensor) -> Tensor:
        """The z-step of one image ``x`` (``(H, W)``): every patch restored under the GMM for noise variance
        ``1 / beta``, folded back and averaged (``(H, W)``)."""
        p = self.gmm.patch
        patches = circular_unfold(x, p)
        dc = patches.mean(1, keepdim=True)
        z, _ = patch_map(patches @ basis, self.gmm, 1.0 / beta, self.chunk)
        return circular_fold(z @ basis.T + dc, tuple(x.shape), p) / (p * p)

    def restore(self, data: DataTerm, sigma: Tensor, on_stage=None) -> Tensor:
        gmm = self.gmm
        p = gmm.patch
        h, w = data.grid
        if h < p or w < p:
            raise InputError(f"epll: image {h}x{w} is smaller than the {p}x{p} patches")
        x = data.initial()
        work = x.dtype
        basis = dc_free_basis(p, work).to(x.device)
        s2 = sigma.to(dtype=torch.float64, device="cpu").clamp_min(self.noise_floor).pow(2).tolist()
        stage = 0
        for b in self.betas:
            beta = [b / v if self.beta_unit == "inv_sigma2" else b for v in s2]  # per image
            rho = torch.tensor([bn * v / self.lam for bn, v in zip(beta, s2)], dtype=work, device=x.device)
            for _ in range(self.inner_iterations):
                avg = torch.stack([
                    torch.stack([self._patch_average(x[n, c], beta[n], basis) for c in range(x.shape[1])])
                    for n in range(x.shape[0])
                ])
                x = data.prox(avg, rho, x=data.estimate(x, stage))
            if on_stage is not None:
                on_stage(stage, x)
            stage += 1
        return x
