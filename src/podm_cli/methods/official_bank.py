"""Where a method's official IRCNN bank (25 grey CNN denoisers) comes from; shared by IRCNN and PODM.

The bank is named by ``weights`` (``None``: the official Keras folder ``weights/ircnn_gray_keras`` under
the data root; or a folder of ``net{i}.hdf5`` / an ``ircnn_gray.pth``), resolved by
:func:`podm_cli.paths.resolve_model_path` against the constructor's ``data_root`` (``None``: the
locator's choice). :meth:`OfficialBank.missing` only looks: it checks the very files the bank will be
loaded from and changes nothing.

>>> from podm_cli.methods.ircnn import IRCNN
>>> m = IRCNN(data_root="/nowhere")
>>> print(m.missing("/elsewhere"))  # the constructor's root is where the bank will be read from
ircnn needs weights/ircnn_gray_keras/net1.hdf5 and 24 more file(s) under /nowhere; run `podm data fetch weights`
>>> m.data_root
'/nowhere'
"""

from __future__ import annotations

import os
from pathlib import Path

import torch

from podm_cli.nets.bank import DenoiserBank
from podm_cli.nets.weights import KERAS_RELPATH
from podm_cli.paths import resolve_model_path

__all__ = ["OfficialBank"]


class OfficialBank:
    """Mixin: a lazily loaded official denoiser bank, its ``missing`` check and ``.to(device)``.

    The host calls :meth:`_init_bank` (``weights``, ``data_root``, an optional preloaded bank) and lists the
    bank in ``requirements.files``. A host with another way to denoise overrides :meth:`_needs_bank`. Put it
    before :class:`~podm_cli.methods.base.Method` in the bases (its ``missing`` calls Method's).
    """

    name: str

    def _init_bank(
        self, weights: str | os.PathLike | None, data_root: str | os.PathLike | None, bank: DenoiserBank | None
    ) -> None:
        self.weights = None if weights in (None, "", "null") else weights
        self.data_root = data_root
        self._bank = bank
        self._device: torch.device | None = None

    def _needs_bank(self) -> bool:
        return self._bank is None

    def _root(self, data_root: str | os.PathLike | None) -> str | os.PathLike | None:
        """The constructor's root when it was given one (the bank is loaded from there), else ``data_root``."""
        return self.data_root if self.data_root is not None else data_root

    def _weights_path(self, data_root: str | os.PathLike | None = None) -> Path:
        return resolve_model_path(self.weights, self._root(data_root), default=KERAS_RELPATH)

    def missing(self, data_root: Path) -> str | None:
        """As :meth:`Method.missing`, for the bank this method will load (no side effects)."""
        if not self._needs_bank():
            return None
        root = self._root(data_root)
        if self.weights is None:
            return super().missing(root)  # type: ignore[misc]  # Method.missing: every bank file
        p = self._weights_path(root)
        return None if p.exists() else f"{self.name} needs its weights {p}; run `podm data fetch weights`"

    @property
    def bank(self) -> DenoiserBank:
        """The denoiser bank, loaded on first use (from :meth:`_weights_path`)."""
        if self._bank is None:
            p = self._weights_path()
            bank = DenoiserBank.from_pth(p) if p.is_file() else DenoiserBank.from_keras_dir(p)
            self._bank = bank.to(self._device) if self._device is not None else bank
        return self._bank

    def to(self, device: torch.device | str):
        self._device = torch.device(device)
        if self._bank is not None:
            self._bank.to(self._device)
        return self
