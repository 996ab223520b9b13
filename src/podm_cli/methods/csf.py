"""The CSF method (cascade of shrinkage fields, Schmidt & Roth, CVPR 2014): a trained
:class:`~podm_cli.models.csf.CSFModel` (the model and the maths: :mod:`podm_cli.models.csf`) run on a
:class:`~podm_cli.physics.DataTerm`.

Which model: the authors' public ``.mat`` files (``csf_official``, ``source = "official model"``) or podm's
own trained for 1 % noise (``csf``, ``csf_5x5``, ``source = "recomputed (CSF trained by podm)"``;
:mod:`podm_cli.training.csf`).  Each stage is one Fourier solve of the data term, so ``valid`` data are
handled by the data term's boundary rule (extended once, or adjusted every stage); the authors edgetapered
between stages instead.
"""

from __future__ import annotations

from pathlib import Path

from torch import Tensor

from podm_cli.errors import InputError
from podm_cli.methods.base import Method, Requirements
from podm_cli.models.csf import CSFModel, run_cascade
from podm_cli.paths import resolve_model_path
from podm_cli.physics import DataTerm

__all__ = ["CSF"]


class CSF(Method):
    """Cascade of shrinkage fields (Schmidt & Roth 2014), non-blind deconvolution.

    Parameters (paper symbols: Schmidt & Roth 2014)
    ----------
    model
        A podm ``.npz`` (``scripts/train_csf.py``) or an authors' ``.mat``; ``asset:<name>`` = a model
        shipped in the package (``podm_cli/assets/<name>``); ``None`` = :func:`default_csf_path`.  A relative
        ``.mat`` path is taken under the data root (``weights/csf/table3/csf_pw.mat`` for ``csf_official``).
    stages
        Run only the first ``stages`` stages (the paper's ``T``; ``None``: all).  The data weights
        ``lambda_t``, filters ``f_ti`` and shrinkage functions ``psi_ti`` are the model's (learned).
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
        data_root: str | None = None,
    ):
        super().__init__()
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
        self._root = data_root  # where a relative model path is read from (None: the locator's choice)

    def _resolve(self, root: Path | None) -> Path:
        """The model file: :func:`~podm_cli.paths.resolve_model_path` under the constructor's root, else ``root``."""
        return resolve_model_path(self.model_path, root if self._root is None else self._root,
                                  default="asset:csf_pw_sigma1.npz")

    def missing(self, data_root: Path) -> str | None:
        p = self._resolve(data_root)
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

    def restore(self, data: DataTerm, sigma: Tensor, on_stage=None) -> Tensor:
        return run_cascade(self.model, data, self.stages or self.model.stages, on_stage=on_stage)
