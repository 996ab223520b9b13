"""RTF: a cascade of regression tree fields for non-blind deblurring (Schmidt et al., CVPR 2013, after
Jancsary et al.'s regression tree fields, CVPR/ECCV 2012), reimplemented from the papers and trained by podm.

The model and its inference live in :mod:`podm_cli.models.rtf` (Gaussian CRFs whose potentials are chosen per
pixel by regression trees; MAP = one preconditioned CG solve per stage); the training in
:mod:`podm_cli.models.rtf_train` (``scripts/train_rtf.py``, docs/rtf.md). No public model or code of the
authors is used (their code's licence forbids it), so results are labelled
``recomputed (RTF reimplemented and trained by podm)``.

``valid`` observations are extended once by the base class (Liu-Jia wrap-around) and solved circularly,
like every other podm method; colour images are restored channel by channel.
"""

from __future__ import annotations

from pathlib import Path

from torch import Tensor

from podm_cli.errors import InputError
from podm_cli.methods.base import Method, channels_as_batch
from podm_cli.models.rtf import RTFModel
from podm_cli.paths import resolve_model_path

__all__ = ["RTF"]


class RTF(Method):
    """Regression-tree-field cascade.

    Parameters
    ----------
    model
        A podm RTF ``.npz`` (``scripts/train_rtf.py``); ``asset:<name>`` = one shipped in the package;
        ``None`` = :func:`podm_cli.models.rtf.default_rtf_path`.
    stages
        Run only the first ``stages`` stages (``None``: all).
    rtol, max_iter
        CG stopping rule per stage (relative residual, iteration cap).
    """

    name = "rtf"
    bytes_per_pixel = 1000.0  # measured 770-880 (scripts/bench.py --memory-per-pixel)
    source = "recomputed (RTF reimplemented and trained by podm)"

    def __init__(self, model: str | None = None, stages: int | None = None, rtol: float = 1e-5,
                 max_iter: int = 400, source: str | None = None, mode: str = "circular", boundary: str = "liu",
                 edgetaper_iterations: int = 3):
        super().__init__(mode=mode, boundary=boundary, edgetaper_iterations=edgetaper_iterations)
        self.model_path = model
        self.stages = None if stages is None else int(stages)
        if self.stages is not None and self.stages < 1:
            raise InputError(f"rtf: stages must be >= 1 or null, got {stages}")
        if not (0 < float(rtol) < 1) or int(max_iter) < 1:
            raise InputError(f"rtf: need 0 < rtol < 1 and max_iter >= 1, got rtol={rtol}, max_iter={max_iter}")
        self.rtol, self.max_iter = float(rtol), int(max_iter)
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

    def restore_circular(self, y: Tensor, kernel: Tensor, sigma: Tensor) -> Tensor:
        model = self.model
        yy, k, s = channels_as_batch(y, kernel, sigma, "rtf")
        outs = model.run(yy, k, s, self.stages, return_all=True, rtol=self.rtol, max_iter=self.max_iter)
        for i, x in enumerate(outs):
            self._emit_stage(i, x.reshape(y.shape).to(y.dtype))
        return outs[-1].reshape(y.shape).to(y.dtype)
