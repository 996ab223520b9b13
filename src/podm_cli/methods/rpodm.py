"""RPODM (Liu et al., NeurIPS 2018): the relaxed PODM cascade with end-to-end trained stages.

Runs a model trained by ``podm train`` (:class:`podm_cli.models.RPODM`, exported by
:func:`podm_cli.models.rpodm_weights.export_weights`). The default weights are podm's noise-adaptive model for
real data (``src/podm_cli/assets/rpodm_adjust.pt``: ``podm train +experiment=realistic_cpu`` on ``valid``
blurs extended by edgetaper, noise in [1, 8]/255 and 8-bit rounding, then ``+experiment=realistic_adjust_cpu``
with the adjusted F step trained through and a quarter of circular batches); the first stage
(``rpodm_real.pt``, edgetaper) is the method ``rpodm_edgetaper`` and the earlier circular-only model for the
``levin`` protocol ``rpodm_levin`` (``weights=asset:rpodm_levin.pt``). Command,
hardware, wall time and validation curves: docs/training.md. Any other export: ``weights=PATH``. Files are
read with ``torch.load(weights_only=True)``.

Colour images go channel by channel through the grey stages; ``valid`` data go through the model's
:meth:`~podm_cli.models.RPODM.restore` with the call's :class:`~podm_cli.physics.DataTerm` (any boundary
rule, ``adjust`` included).
"""

from __future__ import annotations

import os
from pathlib import Path

import torch
from torch import Tensor

from podm_cli.methods.base import Method, Requirements
from podm_cli.paths import asset_path, resolve_model_path

__all__ = ["DEFAULT_WEIGHTS", "RPODMMethod", "default_weights_path"]

DEFAULT_WEIGHTS = "rpodm_adjust.pt"


def default_weights_path() -> Path:
    """The committed default model (noise-adaptive, trained on realistic ``valid`` pairs)."""
    return asset_path(DEFAULT_WEIGHTS)


class RPODMMethod(Method):
    """RPODM with trained weights.

    Paper symbols (Liu et al. 2018, relaxed PODM): the stages ``l = 1..N`` (``stages`` in the model config),
    ``A_l`` the stage denoiser (first / last level ``denoiser_levels``, on [0, 1]), ``F_l``'s weight the
    paper's ``mu_l`` (here ``rho_l = model.rho(sigma)``; parameter ``log_mu`` and config keys ``mu_mode``,
    ``final_mu_scale`` keep the paper's letter because trained weights files store them), ``G_l``'s
    ``lambda``, step ``gamma = 1/L`` and ``alpha`` (``g_lam``, ``g_step``, ``g_alpha``).

    Args:
        weights: an exported ``.pt`` (``podm train`` writes ``<run dir>/rpodm.pt``) or ``asset:NAME``;
            ``None`` = podm's default model (``rpodm_adjust.pt``).
        clip: clip the estimate to [0, 1].
        name: the row's name (``rpodm_levin``, ``rpodm_edgetaper`` for the earlier models' configs).
    """

    name = "rpodm"
    source = "recomputed (RPODM trained by podm)"
    requirements = Requirements(prefers_gpu=True, notes=("podm's own trained weights (docs/training.md)",))

    def __init__(self, weights: str | os.PathLike | None = None, clip: bool = True, name: str | None = None):
        super().__init__()
        if name:
            self.name = str(name)
        self.weights = None if weights in (None, "", "null") else weights
        self.clip = bool(clip)
        self._model = None
        self._device = torch.device("cpu")

    @property
    def weights_path(self) -> Path:
        return resolve_model_path(self.weights, default=f"asset:{DEFAULT_WEIGHTS}")

    def missing(self, data_root: Path) -> str | None:
        p = self.weights_path
        return None if p.is_file() else f"{self.name} needs its trained weights {p} (train them: podm train +experiment=realistic)"

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

    def restore(self, data, sigma: Tensor, on_stage=None) -> Tensor:
        model = self.model
        dtype = next(model.parameters()).dtype
        outs = model.restore(data.to(dtype=dtype), sigma.to(dtype), return_stages=on_stage is not None)
        if isinstance(outs, list):
            for i, o in enumerate(outs):
                on_stage(i, o)
            outs = outs[-1]
        x = outs.to(data.y.dtype)
        return x.clamp(0.0, 1.0) if self.clip else x
