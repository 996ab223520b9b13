"""RTF: a cascade of regression tree fields for non-blind deblurring (Schmidt et al., CVPR 2013, after
Jancsary et al.'s regression tree fields, CVPR/ECCV 2012), reimplemented from the papers and trained by podm.

The model and its inference live in :mod:`podm_cli.models.rtf` (Gaussian CRFs whose potentials are chosen per
pixel by regression trees; MAP = one preconditioned CG solve per stage); the training in
:mod:`podm_cli.training.rtf` (``scripts/train_rtf.py``, docs/rtf.md). No public model or code of the
authors is used (their code's licence forbids it), so results are labelled
``recomputed (RTF reimplemented and trained by podm)``.

Each stage's MAP is a CG solve, which cannot follow a changing observation: the cascade runs on the data
term's first observation (``y``; ``valid`` data extended once by the boundary rule), circularly on the
grid, channel by channel.
"""

from __future__ import annotations

from pathlib import Path

from torch import Tensor

from podm_cli.errors import InputError
from podm_cli.methods.base import Method
from podm_cli.models.rtf import RTFModel
from podm_cli.paths import resolve_model_path
from podm_cli.physics import DataTerm

__all__ = ["RTF"]


class RTF(Method):
    """Regression-tree-field cascade.

    Parameters (paper symbols: Schmidt et al. 2013)
    ----------
    model
        A podm RTF ``.npz`` (``scripts/train_rtf.py``); ``asset:<name>`` = one shipped in the package;
        ``None`` = :func:`podm_cli.models.rtf.default_rtf_path`.  The data weights (the CRF's ``lambda`` per
        stage, scaled by ``(sigma_train / sigma)^2``) and the trees' potentials are the model's (learned).
    stages
        Run only the first ``stages`` stages (the cascade's depth; ``None``: all).
    cg_rtol, cg_max_iter
        CG stopping rule of each stage's MAP solve (relative residual, iteration cap).
    """

    name = "rtf"
    bytes_per_pixel = 1000.0  # measured 770-880 (scripts/bench.py --memory-per-pixel)
    source = "recomputed (RTF reimplemented and trained by podm)"

    def __init__(self, model: str | None = None, stages: int | None = None, cg_rtol: float = 1e-5,
                 cg_max_iter: int = 400, source: str | None = None):
        super().__init__()
        self.model_path = model
        self.stages = None if stages is None else int(stages)
        if self.stages is not None and self.stages < 1:
            raise InputError(f"rtf: stages must be >= 1 or null, got {stages}")
        if not (0 < float(cg_rtol) < 1) or int(cg_max_iter) < 1:
            raise InputError(f"rtf: need 0 < cg_rtol < 1 and cg_max_iter >= 1, got {cg_rtol}, {cg_max_iter}")
        self.cg_rtol, self.cg_max_iter = float(cg_rtol), int(cg_max_iter)
        if source:
            self.source = str(source)
        self._model: RTFModel | None = None

    def _path(self) -> Path:
        return resolve_model_path(self.model_path, default="asset:rtf_sigma1.npz")

    def missing(self, data_root: Path) -> str | None:
        p = self._path()
        return None if p.is_file() else f"rtf needs its model {p}; see scripts/train_rtf.py (docs/rtf.md)"

    @property
    def model(self) -> RTFModel:
        if self._model is None:
            self._model = RTFModel.load(self._path())
            if self.stages is not None and self.stages > len(self._model.stages):
                raise InputError(f"rtf: model has {len(self._model.stages)} stages, asked for {self.stages}")
        return self._model

    def restore(self, data: DataTerm, sigma: Tensor, on_stage=None) -> Tensor:
        phi = data.observation()
        n, c = phi.shape[:2]
        kernel = data.kernel.repeat_interleave(c, dim=0) if data.kernel.ndim == 4 and c > 1 else data.kernel
        channels = DataTerm.build(phi.reshape(n * c, 1, *data.grid), kernel)  # circular on the grid
        emit = None if on_stage is None else (lambda t, x: on_stage(t, x.reshape(phi.shape)))
        x = self.model.run(channels, sigma.repeat_interleave(c), self.stages, rtol=self.cg_rtol,
                           max_iter=self.cg_max_iter, on_stage=emit)
        return x.reshape(phi.shape)
