"""RPODM (Liu et al., NeurIPS 2018): the relaxed PODM cascade with end-to-end trained stages.

Runs a model trained by ``podm train`` (:class:`podm_cli.models.RPODM`, exported by
:func:`podm_cli.models.rpodm_weights.export_weights`). The default weights are podm's own model for the ``levin``
protocol (``src/podm_cli/assets/rpodm_levin.pt``, trained by ``podm train +experiment=levin_cpu``; command,
hardware, wall time and validation curve in docs/training.md). Any other export: ``weights=PATH``. Files are
read with ``torch.load(weights_only=True)``.

Colour images go channel by channel through the grey stages; ``valid`` data are extended like every other
method's (:class:`~podm_cli.methods.base.Method`).
"""

from __future__ import annotations

import os
from pathlib import Path

import torch
from torch import Tensor

from podm_cli.errors import InputError
from podm_cli.methods.base import Method, Requirements
from podm_cli.paths import asset_path, resolve_model_path

__all__ = ["DEFAULT_WEIGHTS", "RPODMMethod", "default_weights_path"]

DEFAULT_WEIGHTS = "rpodm_levin.pt"


def default_weights_path() -> Path:
    """The committed model trained by podm for the ``levin`` protocol."""
    return asset_path(DEFAULT_WEIGHTS)


class RPODMMethod(Method):
    """RPODM with trained weights.

    Args:
        weights: an exported ``.pt`` (``podm train`` writes ``<run dir>/rpodm.pt``); ``None`` = podm's model
            for ``levin``.
        clip: clip the estimate to [0, 1].
        mode, boundary, edgetaper_iterations: see :class:`~podm_cli.methods.base.Method`.
    """

    name = "rpodm"
    source = "recomputed (RPODM trained by podm)"
    requirements = Requirements(prefers_gpu=True, notes=("podm's own trained weights (docs/training.md)",))

    def __init__(self, weights: str | os.PathLike | None = None, clip: bool = True, mode: str = "circular",
                 boundary: str = "liu", edgetaper_iterations: int = 3):
        super().__init__(mode=mode, boundary=boundary, edgetaper_iterations=edgetaper_iterations)
        self.weights = None if weights in (None, "", "null") else weights
        self.clip = bool(clip)
        self._model = None
        self._device = torch.device("cpu")

    @property
    def weights_path(self) -> Path:
        return resolve_model_path(self.weights, default=f"asset:{DEFAULT_WEIGHTS}")

    def missing(self, data_root: Path) -> str | None:
        p = self.weights_path
        return None if p.is_file() else f"rpodm needs its trained weights {p} (train them: podm train +experiment=levin)"

    @property
    def model(self):
        if self._model is None:
            from podm_cli.models.rpodm_weights import load_weights

            self._model = load_weights(self.weights_path, self._device)
        return self._model

    @property
    def trained_for(self) -> dict:
        """What the weights were trained for (operator, noise level) and how (``provenance``)."""
        from podm_cli.models.rpodm_weights import read_weights_file

        blob = read_weights_file(self.weights_path)
        return {**blob.get("trained_for", {}), **blob.get("provenance", {})}

    def to(self, device: torch.device | str) -> RPODMMethod:
        self._device = torch.device(device)
        if self._model is not None:
            self._model.to(self._device)
        return self

    def restore_circular(self, y: Tensor, kernel: Tensor, sigma: Tensor) -> Tensor:
        if y.ndim != 4:
            raise InputError(f"RPODM expects (N, C, H, W), got shape {tuple(y.shape)}")
        model = self.model
        dtype = next(model.parameters()).dtype
        outs = model(y.to(dtype), kernel.to(dtype), sigma.to(dtype), return_stages=self.stage_callback is not None)
        if isinstance(outs, list):
            for i, o in enumerate(outs):
                self._emit_stage(i, o)
            outs = outs[-1]
        x = outs.to(y.dtype)
        return x.clamp(0.0, 1.0) if self.clip else x
