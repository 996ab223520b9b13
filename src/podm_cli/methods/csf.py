"""Cascade of Shrinkage Fields (CSF; Schmidt & Roth, CVPR 2014) for non-blind deconvolution.

Each stage ``t`` takes the previous estimate ``x`` (images on the 0..255 scale, as the authors' models) to

    X_t = (lam_t conj(K) Y + sum_i conj(F_ti) F[psi_ti(f_ti * x)]) / (lam_t |K|^2 + sum_i |F_ti|^2),

``F_ti`` the transfer function of filter ``f_ti``, ``K`` that of the blur (circular), and ``psi_ti`` a
shrinkage function, an RBF mixture ``psi(v) = sum_j w_j exp(-gamma/2 (v - mu_j)^2)`` on equidistant means
(the authors' 53 means -260:10:260, gamma = 0.01).  It is the closed-form minimiser of
``lam/2 ||K x - y||^2 + 1/2 sum_i ||f_i * x - psi_i(f_i * x_prev)||^2``: with ``psi = 0`` it is the Wiener
(Tikhonov) deconvolution ``lam conj(K) Y / (lam |K|^2 + sum |F_i|^2)``, with ``psi(v) = a v`` its fixed point is
the Wiener deconvolution with regulariser ``(1 - a) sum |F_i|^2 / lam``.  The cascade starts from ``x_0 = y``.

Two kinds of model, one class (:class:`CSFModel`):

* the authors' public model files (``weights/csf/table*/csf_*.mat``, MATLAB v5 struct ``model`` with
  ``nfilters, sigma, is_deblurring, nstages, lambda, f{i, t}, shrink{i, t}.{precision, means, weights}``):
  :meth:`CSFModel.from_mat`.  ``table3/csf_pw.mat`` is the deblurring model (pairwise, 3 stages, trained for
  sigma = 0.5/255) -> method ``csf_official``, ``source = "official model"``;
* podm's own models trained for 1 % noise (``scripts/train_csf.py``, docs/csf.md), ``.npz``
  (:meth:`CSFModel.save`/:meth:`CSFModel.load`) -> method ``csf``, ``source = "recomputed (CSF trained by podm)"``.

``valid`` observations are extended once by the base class (Liu-Jia or edgetaper) and solved circularly;
the authors edgetapered between stages instead.
"""

from __future__ import annotations

from pathlib import Path

import torch
from torch import Tensor

from podm_cli.errors import InputError
from podm_cli.methods.base import Method, Requirements, channels_as_batch
from podm_cli.models.csf import SCALE, CSFModel, default_csf_path, run_cascade

__all__ = ["CSF"]


class CSF(Method):
    """Cascade of shrinkage fields (Schmidt & Roth 2014), non-blind deconvolution.

    Parameters
    ----------
    model
        A podm ``.npz`` (``scripts/train_csf.py``) or an authors' ``.mat``; ``asset:<name>`` = a model
        shipped in the package (``podm_cli/assets/<name>``); ``None`` = :func:`default_csf_path`.  A relative
        ``.mat`` path is taken under the data root (``weights/csf/table3/csf_pw.mat`` for ``csf_official``).
    stages
        Run only the first ``stages`` stages (``None``: all).
    source
        What results.json says about the numbers (set by the configs).
    """

    name = "csf"
    source = "recomputed (CSF trained by podm)"

    def __init__(
        self,
        model: str | None = None,
        stages: int | None = None,
        source: str | None = None,
        name: str | None = None,
        mode: str = "circular",
        boundary: str = "liu",
        edgetaper_iterations: int = 3,
    ):
        super().__init__(mode=mode, boundary=boundary, edgetaper_iterations=edgetaper_iterations)
        self.model_path = model
        self.stages = None if stages is None else int(stages)
        if self.stages is not None and self.stages < 1:
            raise InputError(f"csf: stages must be >= 1 or null, got {stages}")
        if source:
            self.source = str(source)
        if name:
            self.name = str(name)
        if model and not Path(model).is_absolute() and Path(model).suffix.lower() == ".mat":
            self.requirements = Requirements(files=(str(model),), fetch="weights")
        self._model: CSFModel | None = None
        self._root: Path | None = None

    def _resolve(self, root: Path | None) -> Path:
        if not self.model_path:
            return default_csf_path()
        if str(self.model_path).startswith("asset:"):
            return default_csf_path(str(self.model_path)[len("asset:"):])
        p = Path(self.model_path).expanduser()
        if not p.is_absolute() and p.suffix.lower() == ".mat":
            from podm_cli.data.locator import data_root

            return Path(root if root is not None else data_root(None)) / p
        return p

    def missing(self, data_root: Path) -> str | None:
        self._root = Path(data_root)
        p = self._resolve(self._root)
        if not p.is_file():
            hint = "podm data fetch weights" if p.suffix == ".mat" else "scripts/train_csf.py (docs/csf.md)"
            return f"{self.name} needs its model {p}; see {hint}"
        return None

    @property
    def model(self) -> CSFModel:
        if self._model is None:
            self._model = CSFModel.load(self._resolve(self._root))
            if self.stages is not None and self.stages > self._model.stages:
                raise InputError(f"csf: model has {self._model.stages} stages, asked for {self.stages}")
        return self._model

    def restore_circular(self, y: Tensor, kernel: Tensor, sigma: Tensor) -> Tensor:
        model = self.model
        yy, k, _ = channels_as_batch(y, kernel, sigma, "csf")
        with torch.no_grad():
            x = run_cascade(model, yy * SCALE, k, self.stages)
        return (x / SCALE).reshape(y.shape).to(y.dtype)
