"""FDN (Fourier Deconvolution Network; Kruse, Rother & Schmidt, ICCV 2017) with the authors' released weights.

The cascade itself is :class:`podm_cli.models.fdn.FDN`; the weights (BSD-2) are read from
``<data root>/weights/fdn/<set>/`` by :mod:`podm_cli.models.fdn_weights` (``podm data fetch weights``).

Boundaries: on ``valid`` data FDN does what it was trained with -- ``y`` padded with replicated edges to
the data term's grid and edgetapered (3 times) at the first stage, the boundary adjusted with the current
estimate at every later stage (``adjust=True``) -- whatever ``operator.boundary`` says; ``circular`` data are
solved on their own grid.  Colour images are restored channel by channel (the CNN sees one channel at a time).

The noise MLP was trained on a noise range (``config.json``: 1..3/255 or 0.1..12.75/255); a ``sigma``
outside it is clamped to the range (the MLP is not meant to extrapolate).  ``weights="auto"`` (the default)
therefore takes the set made for the batch's noise: ``sigma_1.0-3.0`` (the authors' benchmark model) when
every sigma of the batch lies in its range, ``sigma_0.1-12.75`` otherwise.
"""

from __future__ import annotations

import os
from pathlib import Path

import torch
from torch import Tensor

from podm_cli.errors import InputError
from podm_cli.methods.base import BoundaryHandling, Method, Requirements, StageHook
from podm_cli.models.fdn import TAPERS
from podm_cli.models.fdn_weights import FDN_RELPATH, FDN_SETS, fdn_files, load_fdn, load_fdn_config
from podm_cli.paths import data_root as locate_data_root
from podm_cli.physics import DataTerm

__all__ = ["AUTO", "FDNMethod"]

#: ``weights=AUTO``: the narrow set where the batch's noise lies in its range, else the wide one.
AUTO = "auto"
_NARROW, _WIDE = FDN_SETS


class FDNMethod(Method):
    """FDN, non-blind deconvolution with the authors' weights.

    Args:
        weights: ``auto`` (default: ``sigma_1.0-3.0`` where the batch's sigma lies in [1, 3]/255, the range it
            was trained on, ``sigma_0.1-12.75`` otherwise), one of the two sets by name, or a folder holding
            a weight set (``config.json`` and the ``.hdf5`` files).
        finetuned: the jointly fine-tuned 10-stage cascade (default) or the greedily trained stages.
        stages: number of stages (1..10; ``None`` = all). The fine-tuned weights were trained as a 10-stage
            cascade: fewer stages with ``finetuned=True`` truncate it (docs/fdn.md measures it).
        adjust: on ``valid`` data, adjust the boundary with the current estimate at every stage after the
            first (default, as trained); ``False`` = the edgetapered observation throughout (the paper's
            ablation).
        data_root: data root for a named weight set (default: the locator's choice; ``build_method`` passes
            the app's ``data.root``).

    Only the blur ``mode`` of :meth:`with_boundary` applies; FDN's boundary handling is its own.
    """

    name = "fdn"
    source = "official weights (FDN, Kruse et al. 2017)"

    def __init__(
        self,
        weights: str = AUTO,
        finetuned: bool = True,
        stages: int | None = None,
        adjust: bool = True,
        data_root: str | os.PathLike | None = None,
        name: str | None = None,
        source: str | None = None,
    ):
        super().__init__()
        self.weights = str(weights)
        self.finetuned = bool(finetuned)
        self.adjust = bool(adjust)
        self.stages = None if stages in (None, "null") else int(stages)
        if self.stages is not None and not 1 <= self.stages <= 10:
            raise InputError(f"fdn: stages must be 1..10 or null, got {stages}")
        if name:
            self.name = str(name)
        if source:
            self.source = str(source)
        self.data_root = data_root
        self.boundary_handling = self._own_boundary("circular")
        if self.weights in (*FDN_SETS, AUTO):
            sets = FDN_SETS if self.weights == AUTO else (self.weights,)
            self.requirements = Requirements(
                files=tuple(f for name in sets for f in fdn_files(name, self.finetuned, self.stages or 10)),
                fetch="weights",
                notes=("FDN weights of Kruse et al. 2017 (BSD-2)",),
            )
        self._nets: dict[str, tuple[torch.nn.Module, tuple[float, float]]] = {}
        self._narrow_range: tuple[float, float] | None = None
        self._device: torch.device | None = None

    def _own_boundary(self, mode: str) -> BoundaryHandling:
        """What FDN was trained with: replicate + edgetaper (3x) at t = 0, then boundary adjustment."""
        return BoundaryHandling(mode=mode, boundary="adjust" if self.adjust else "edgetaper",
                                taper_iterations=TAPERS, start="edgetaper")

    def with_boundary(self, **changes) -> "FDNMethod":
        """Only ``mode`` is taken; the other operator settings do not apply to FDN (see the class doc)."""
        self.boundary_handling = self._own_boundary(changes.get("mode", self.boundary_handling.mode))
        return self

    def _folder(self, weights: str) -> Path:
        """A weight set's folder: a named set under the constructor's data root (else the locator's)."""
        if weights not in FDN_SETS:
            return Path(weights).expanduser()
        return locate_data_root(self.data_root) / FDN_RELPATH / weights

    def missing(self, data_root: Path) -> str | None:
        """As :meth:`Method.missing`, under the constructor's data root when one was given (no side effects)."""
        root = Path(self.data_root if self.data_root is not None else data_root)
        if self.weights in (*FDN_SETS, AUTO):
            return super().missing(root)
        folder = self._folder(self.weights)
        return None if (folder / "config.json").is_file() else f"{self.name} needs an FDN weight set in {folder}"

    def weight_set(self, sigma: Tensor) -> str:
        """The weight set that restores a batch with noise levels ``sigma`` (on [0, 1]).

        With ``weights="auto"``: ``sigma_1.0-3.0`` when every level lies in the range its ``config.json``
        gives (the authors' benchmark model, trained for exactly these), else ``sigma_0.1-12.75``.
        """
        if self.weights != AUTO:
            return self.weights
        if self._narrow_range is None:
            self._narrow_range = tuple(load_fdn_config(self._folder(_NARROW))["sigma_range"])
        lo, hi = self._narrow_range
        s255 = sigma.detach().double() * 255.0
        inside = bool(((s255 >= lo - 1e-6) & (s255 <= hi + 1e-6)).all())
        return _NARROW if inside else _WIDE

    def weights_for(self, sigma: float) -> str | None:
        return self.weight_set(torch.tensor([float(sigma)]))

    def net(self, weights: str) -> tuple[torch.nn.Module, tuple[float, float]]:
        """The imported cascade of a weight set and its noise range on 0..255 (each loaded on first use)."""
        if weights not in self._nets:
            net, cfg = load_fdn(self._folder(weights), finetuned=self.finetuned, stages=self.stages)
            self._nets[weights] = (net.to(self._device) if self._device is not None else net,
                                   tuple(cfg["sigma_range"]))
        return self._nets[weights]

    def to(self, device: torch.device | str) -> "FDNMethod":
        self._device = torch.device(device)
        for net, _ in self._nets.values():
            net.to(self._device)
        return self

    def restore(self, data: DataTerm, sigma: Tensor, on_stage: StageHook | None = None) -> Tensor:
        net, (lo, hi) = self.net(self.weight_set(sigma))
        return net.run(data, sigma.clamp(lo / 255.0, hi / 255.0), on_stage)
