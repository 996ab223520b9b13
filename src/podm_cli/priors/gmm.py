"""Zero-mean Gaussian-mixture patch prior (Zoran & Weiss 2011, the prior of EPLL), learned by EM.

Patches are ``p x p`` (default 8 x 8) grey patches with their mean (DC) removed.  A DC-free patch lies in the
``d = p^2 - 1`` dimensional subspace orthogonal to the constant patch; the mixture is fitted *in that
subspace*, with coordinates ``z = B^T x`` where ``B`` (``p^2 x d``) holds the orthonormal 2-D DCT basis
without its DC vector (:func:`dc_free_basis`).  This keeps every covariance full rank without a fake
variance along DC (which would inflate the likelihood by a constant that depends on the regulariser).

Model: ``p(z) = sum_k pi_k N(z; 0, Sigma_k)``.

EM with covariance regularisation.  The M-step is

    N_k = sum_n r_nk,   pi_k = N_k / N,   Sigma_k = (sum_n r_nk z_n z_n^T + psi I) / N_k,

the exact maximiser of the *penalised* log-likelihood

    J(theta) = sum_n log p(z_n) - psi / 2 sum_k tr(Sigma_k^{-1})

(an improper inverse-Wishart prior on each covariance).  EM therefore increases ``J`` at every iteration
(it is a MAP-EM); :func:`fit_gmm` records both ``J / N`` and the plain mean log-likelihood.  ``psi`` keeps
components with few patches from collapsing: their covariance is at least ``psi / N_k``.

Initialisation (:func:`kmeanspp_init`): k-means++ seeding on a subsample with the *sign-invariant* distance
``min(||z - c||^2, ||z + c||^2)`` (a zero-mean Gaussian gives ``z`` and ``-z`` the same density), every
subsample patch assigned to its nearest seed, each component's covariance and weight from its cluster.

Everything is batched torch (float32 by default, CPU or CUDA): the E-step is one ``(n, d) @ (d, K d)``
matmul per chunk: with ``u_n`` the upper triangle of ``z_n z_n^T``, ``z^T Sigma_k^{-1} z = u_n . q_k``
(``q_k`` the precision's upper triangle, off-diagonals doubled), so the E-step is ``U @ Q``
(``(n, d(d+1)/2) @ (d(d+1)/2, K)``) and the M-step's scatter matrices ``R^T @ U`` on the same ``U``.

Usage::

    z = patches_to_dcfree(sample_patches(files, 500_000))       # (n, 63)
    gmm, history = fit_gmm(z, components=200, iterations=30)
    gmm.save("gmm_8x8_200.npz"); GaussianMixture.load("gmm_8x8_200.npz")
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from torch import Tensor

from podm_cli.errors import InputError
from podm_cli.npzfile import load_npz, save_npz

__all__ = [
    "EMRecord",
    "GaussianMixture",
    "dc_free_basis",
    "em_step",
    "fit_gmm",
    "kmeanspp_init",
    "outer_triu",
    "patches_to_dcfree",
    "sample_patches",
]

_LOG_2PI = math.log(2.0 * math.pi)


def dc_free_basis(patch: int = 8, dtype=torch.float64) -> Tensor:
    """``(patch^2, patch^2 - 1)`` orthonormal basis of the DC-free patches (2-D DCT without DC).

    Patches are flattened row-major (``x.reshape(-1)`` of a ``(patch, patch)`` block).

    >>> b = dc_free_basis(4)
    >>> b.shape, bool(torch.allclose(b.T @ b, torch.eye(15, dtype=b.dtype))), float(b.sum(0).abs().max()) < 1e-12
    (torch.Size([16, 15]), True, True)
    """
    from podm_cli.priors.lp import dct_matrix

    d = dct_matrix(int(patch), dtype=torch.float64)
    full = torch.kron(d, d)  # rows: 2-D DCT basis patches, row 0 = DC
    return full[1:].T.contiguous().to(dtype)


def patches_to_dcfree(x: Tensor, basis: Tensor | None = None) -> Tensor:
    """Flattened patches ``(n, p^2)`` -> DC-free coordinates ``(n, p^2 - 1)`` (``B^T x``: DC dropped)."""
    if basis is None:
        basis = dc_free_basis(int(round(math.sqrt(x.shape[-1]))))
    return x @ basis.to(device=x.device, dtype=x.dtype)


def sample_patches(files, n: int, patch: int = 8, seed: int = 0) -> Tensor:
    """``n`` grey (BT.601 luma) ``patch x patch`` patches, flattened ``(n, patch^2)`` float32, taken at
    uniformly random positions, the same number from each image file (seeded)."""
    from podm_cli.imageio import read_image

    files = list(files)
    if not files:
        raise InputError("sample_patches: no image files")
    rng = np.random.default_rng(seed)
    per = -(-int(n) // len(files))
    out = []
    for f in files:
        x, _ = read_image(f, mode="gray")
        img = x[0]
        h, w = img.shape
        ys = rng.integers(0, h - patch + 1, per)
        xs = rng.integers(0, w - patch + 1, per)
        idx = torch.arange(patch)
        rows = torch.as_tensor(ys)[:, None, None] + idx[None, :, None]
        cols = torch.as_tensor(xs)[:, None, None] + idx[None, None, :]
        out.append(img[rows, cols].reshape(per, -1))
    allp = torch.cat(out)
    keep = torch.as_tensor(rng.permutation(allp.shape[0])[: int(n)])
    return allp[keep].contiguous()


# ----------------------------------------------------------------------------------------- model


@dataclass
class GaussianMixture:
    """Zero-mean Gaussian mixture in the DC-free patch coordinates.

    ``weights`` ``(K,)`` (sum 1), ``covs`` ``(K, d, d)``; ``patch`` the patch side (``d = patch^2 - 1``).
    Cholesky factors, inverse factors and log-determinants are derived lazily and cached per dtype/device.
    """

    weights: Tensor
    covs: Tensor
    patch: int = 8
    meta: dict = field(default_factory=dict)
    _cache: dict = field(default_factory=dict, repr=False)

    def __post_init__(self):
        k, d = self.weights.shape[0], self.patch**2 - 1
        if self.covs.shape != (k, d, d):
            raise InputError(f"gmm: covariances must be ({k}, {d}, {d}), got {tuple(self.covs.shape)}")

    @property
    def components(self) -> int:
        return int(self.weights.shape[0])

    @property
    def dim(self) -> int:
        return self.patch**2 - 1

    def to(self, device=None, dtype=None) -> "GaussianMixture":
        return GaussianMixture(self.weights.to(device=device, dtype=dtype), self.covs.to(device=device, dtype=dtype),
                               self.patch, dict(self.meta))

    def _factors(self, dtype, device):
        key = (dtype, str(device))
        if key not in self._cache:
            covs = self.covs.to(device=device, dtype=torch.float64)
            chol = torch.linalg.cholesky(covs)
            eye = torch.eye(self.dim, dtype=torch.float64, device=device).expand_as(covs)
            linv = torch.linalg.solve_triangular(chol, eye, upper=False)  # L^{-1}
            logdet = 2.0 * torch.log(torch.diagonal(chol, dim1=-2, dim2=-1)).sum(-1)
            prec = linv.transpose(1, 2) @ linv  # Sigma^{-1}
            iu = _triu(self.dim, device)
            scale = torch.where(iu[0] == iu[1], 1.0, 2.0).to(torch.float64)
            prec_tri = (prec[:, iu[0], iu[1]] * scale).T.contiguous()  # (d(d+1)/2, K)
            self._cache[key] = (prec_tri.to(dtype), logdet, linv)
        return self._cache[key]

    def _const(self, like: Tensor) -> Tensor:
        _, logdet, _ = self._factors(like.dtype, like.device)
        return (torch.log(self.weights.to(device=like.device, dtype=torch.float64)) - 0.5 * logdet
                - 0.5 * self.dim * _LOG_2PI).to(like.dtype)

    def component_log_prob_outer(self, outer: Tensor) -> Tensor:
        """:meth:`component_log_prob` from the outer products' upper triangles (:func:`outer_triu`):
        ``z^T Sigma_k^{-1} z = outer . prec_tri_k`` is one ``(n, d(d+1)/2) @ (d(d+1)/2, K)`` matmul."""
        prec_tri = self._factors(outer.dtype, outer.device)[0]
        return self._const(outer) - 0.5 * (outer @ prec_tri).clamp_min(0)

    def component_log_prob(self, z: Tensor, chunk: int = 4096) -> Tensor:
        """``log pi_k + log N(z_n; 0, Sigma_k)`` as ``(n, K)`` (in ``z``'s dtype)."""
        return torch.cat([self.component_log_prob_outer(outer_triu(z[s : s + chunk]))
                          for s in range(0, z.shape[0], chunk)])

    def log_prob(self, z: Tensor, chunk: int = 4096) -> Tensor:
        """``log p(z_n)`` per patch, ``(n,)``."""
        return torch.cat([torch.logsumexp(self.component_log_prob(z[s : s + chunk]), dim=1)
                          for s in range(0, z.shape[0], chunk)])

    def penalty(self, psi: float) -> float:
        """``psi / 2 sum_k tr(Sigma_k^{-1})`` (the regulariser of :func:`fit_gmm`'s objective)."""
        _, _, linv = self._factors(torch.float64, self.covs.device)
        return 0.5 * psi * float((linv * linv).sum())

    def eig(self, device=None, dtype=torch.float32) -> tuple[Tensor, Tensor]:
        """``(eigenvalues (K, d), eigenvectors (K, d, d))`` of the covariances (float64 eigh, cast)."""
        key = ("eig", dtype, str(device))
        if key not in self._cache:
            vals, vecs = torch.linalg.eigh(self.covs.to(device=device, dtype=torch.float64))
            self._cache[key] = (vals.clamp_min(0).to(dtype), vecs.to(dtype))
        return self._cache[key]

    # ------------------------------------------------------------------------------ persistence
    def save(self, path) -> Path:
        """Write an ``.npz``: weights (float32), covariance upper triangles (float32), patch size, meta."""
        d = self.dim
        iu = torch.triu_indices(d, d)
        tri = self.covs.to(torch.float64)[:, iu[0], iu[1]].to(torch.float32).numpy()
        return save_npz(path, self.meta, weights=self.weights.to(torch.float32).numpy(), cov_triu=tri,
                        patch=np.int64(self.patch))

    @classmethod
    def load(cls, path) -> "GaussianMixture":
        """Read what :meth:`save` wrote (float64 in memory); bad files raise :class:`InputError`."""
        f, meta = load_npz(path, "gmm", ("weights", "cov_triu", "patch"),
                           not_npz="is not an .npz archive (write it with GaussianMixture.save)")
        weights = torch.from_numpy(f["weights"].astype(np.float64))
        tri = torch.from_numpy(f["cov_triu"].astype(np.float64))
        patch = int(f["patch"])
        d = patch**2 - 1
        if tri.ndim != 2 or tri.shape[1] != d * (d + 1) // 2 or tri.shape[0] != weights.shape[0]:
            raise InputError(f"gmm: {path} has inconsistent shapes (weights {tuple(weights.shape)}, "
                             f"cov_triu {tuple(tri.shape)}, patch {patch})")
        iu = torch.triu_indices(d, d)
        covs = torch.zeros(tri.shape[0], d, d, dtype=torch.float64)
        covs[:, iu[0], iu[1]] = tri
        covs = covs + torch.triu(covs, diagonal=1).transpose(1, 2)
        if not (torch.isfinite(covs).all() and torch.isfinite(weights).all()):
            raise InputError(f"gmm: {path} holds non-finite values")
        return cls(weights / weights.sum(), covs, patch, meta)

    @classmethod
    def single_gaussian(cls, z: Tensor, psi: float = 0.0, patch: int = 8) -> "GaussianMixture":
        """The maximum-likelihood zero-mean Gaussian (one component) of ``z``."""
        z64 = z.to(torch.float64)
        cov = (z64.T @ z64 + psi * torch.eye(z.shape[1], dtype=torch.float64)) / z.shape[0]
        return cls(torch.ones(1, dtype=torch.float64), cov[None], patch)


# ----------------------------------------------------------------------------------------- EM


_TRIU: dict = {}


def _triu(d: int, device) -> Tensor:
    key = (d, str(device))
    if key not in _TRIU:
        _TRIU[key] = torch.triu_indices(d, d, device=device)
    return _TRIU[key]


def outer_triu(z: Tensor) -> Tensor:
    """Upper triangles (row-major, diagonal included) of the outer products ``z_n z_n^T``: ``(n, d(d+1)/2)``."""
    n, d = z.shape
    iu = _triu(d, z.device)
    return (z[:, :, None] * z[:, None, :]).reshape(n, d * d).index_select(1, iu[0] * d + iu[1])


def _sign_invariant_d2(z: Tensor, z2: Tensor, c: Tensor) -> Tensor:
    """``min(||z - c_j||^2, ||z + c_j||^2)`` for every row of ``z`` and ``c`` -> ``(n, m)``."""
    return (z2[:, None] + (c * c).sum(1)[None, :] - 2.0 * (z @ c.T).abs()).clamp_min(0)


def kmeanspp_init(z: Tensor, components: int, psi: float, seed: int = 0, subsample: int = 100_000,
                  patch: int = 8) -> GaussianMixture:
    """k-means++ seeding (sign-invariant distance) on a subsample, then per-cluster covariances."""
    n = z.shape[0]
    if n < components:
        raise InputError(f"gmm: need at least {components} patches, got {n}")
    g = torch.Generator().manual_seed(int(seed))
    sub = z[torch.randperm(n, generator=g)[: min(subsample, n)]].to(torch.float64)
    m = sub.shape[0]
    z2 = (sub * sub).sum(1)
    centres = [int(torch.randint(m, (1,), generator=g))]
    dmin = _sign_invariant_d2(sub, z2, sub[centres[-1]][None])[:, 0]
    for _ in range(components - 1):
        total = float(dmin.sum())
        if total <= 0:
            idx = int(torch.randint(m, (1,), generator=g))
        else:
            idx = int(torch.multinomial(dmin / total, 1, generator=g))
        centres.append(idx)
        dmin = torch.minimum(dmin, _sign_invariant_d2(sub, z2, sub[idx][None])[:, 0])
    c = sub[centres]
    labels = torch.cat([_sign_invariant_d2(sub[s : s + 8192], z2[s : s + 8192], c).argmin(1)
                        for s in range(0, m, 8192)])
    d = z.shape[1]
    counts = torch.bincount(labels, minlength=components).to(torch.float64)
    scatter = torch.zeros(components, d, d, dtype=torch.float64)
    scatter.index_add_(0, labels, sub[:, :, None] * sub[:, None, :])
    nk = counts.clamp_min(1.0)
    covs = (scatter + psi * torch.eye(d, dtype=torch.float64)) / nk[:, None, None]
    weights = (counts + 1.0) / (counts + 1.0).sum()
    return GaussianMixture(weights, covs, patch)


@dataclass
class EMRecord:
    """One EM iteration: ``loglik`` mean log p(z) under the parameters *entering* the iteration,
    ``objective`` the penalised ``J / N`` at those parameters, ``seconds`` wall time of the iteration."""

    iteration: int
    loglik: float
    objective: float
    seconds: float


def em_step(z: Tensor, gmm: GaussianMixture, psi: float, chunk: int = 4096) -> tuple[GaussianMixture, float]:
    """One EM iteration on ``z`` (``(n, d)``, any float dtype); returns ``(new gmm, mean loglik of gmm)``.

    The E-step and M-step statistics are accumulated chunk by chunk (float64 accumulators).
    """
    n, d = z.shape
    k = gmm.components
    iu = _triu(d, z.device)
    nk = torch.zeros(k, dtype=torch.float64, device=z.device)
    s_tri = torch.zeros(k, iu.shape[1], dtype=torch.float64, device=z.device)
    ll = 0.0
    # responsibilities underflow: denormals slow the CPU matmuls ~2x. Flushing them is process-wide in
    # torch, so it is switched on for this step only (torch's default, off, is restored after).
    torch.set_flush_denormal(True)
    try:
        for s in range(0, n, chunk):
            outer = outer_triu(z[s : s + chunk])  # (c, d(d+1)/2): used by the E- and the M-step
            logp = gmm.component_log_prob_outer(outer)
            lse = torch.logsumexp(logp, dim=1, keepdim=True)
            ll += float(lse.sum(dtype=torch.float64))
            r = torch.exp(logp - lse)  # (c, K)
            nk += r.sum(0, dtype=torch.float64)
            s_tri += (r.T @ outer).to(torch.float64)
    finally:
        torch.set_flush_denormal(False)
    covs = torch.zeros(k, d, d, dtype=torch.float64, device=z.device)
    covs[:, iu[0], iu[1]] = s_tri
    covs = covs + torch.triu(covs, diagonal=1).transpose(1, 2)
    covs = (covs + psi * torch.eye(d, dtype=torch.float64, device=z.device)) / nk.clamp_min(1e-3)[:, None, None]
    weights = nk / nk.sum()
    return GaussianMixture(weights, covs, gmm.patch, dict(gmm.meta)), ll / n


def fit_gmm(
    z: Tensor,
    components: int = 200,
    iterations: int = 30,
    psi: float = 1e-3,
    seed: int = 0,
    init: GaussianMixture | None = None,
    start_iteration: int = 0,
    chunk: int = 4096,
    max_seconds: float | None = None,
    callback=None,
    patch: int = 8,
) -> tuple[GaussianMixture, list[EMRecord]]:
    """EM for a zero-mean GMM on DC-free patch coordinates ``z`` (``(n, d)``).

    ``init``: resume from a mixture (else :func:`kmeanspp_init`).  ``callback(gmm, record)`` after every
    iteration (checkpointing); ``max_seconds`` stops early (after a whole iteration).  Returns the final
    mixture (its ``meta['history']`` holds the records) and the list of :class:`EMRecord`.
    """
    if psi < 0 or components < 1 or iterations < 0:
        raise InputError(f"gmm: need psi >= 0, components >= 1, iterations >= 0 (got {psi}, {components}, {iterations})")
    gmm = init if init is not None else kmeanspp_init(z, components, psi, seed=seed, patch=patch)
    history: list[EMRecord] = []
    t_start = time.time()
    for it in range(start_iteration, start_iteration + iterations):
        t0 = time.time()
        new, ll = em_step(z, gmm, psi, chunk=chunk)
        rec = EMRecord(it, ll, ll - gmm.penalty(psi) / z.shape[0], time.time() - t0)
        history.append(rec)
        gmm = new
        if callback is not None:
            callback(gmm, rec)
        if max_seconds is not None and time.time() - t_start > max_seconds:
            break
    return gmm, history
