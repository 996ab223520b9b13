"""LightningDataModule: random training pairs (:class:`~podm_cli.training.pairs.BlurPairs`) and fixed
validation pairs, from the HDF5 cache written by ``podm data prepare`` when it exists (fast start, no JPEG
decoding) or straight from the image folders."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import lightning as L
import torch
from torch.utils.data import DataLoader

from podm_cli.training.pairs import BlurPairs, KernelPool, ValidationPairs, load_schelten, training_images

__all__ = ["BlurPairsDataModule"]


class BlurPairsDataModule(L.LightningDataModule):
    """Args mirror ``train_data`` in ``configs/train.yaml``: ``crop``, ``batch_size``, ``num_workers``,
    ``sigma`` (number or ``[low, high]``), ``sigma_spacing`` (``linear`` | ``log`` over the range), ``quantize``, ``kernel_size``, ``real_kernel_fraction``,
    ``circular_fraction`` (valid data: that fraction of training batches are circular pairs),
    ``kernel_error`` (None or ``{fraction, blur, noise}``: training pairs whose model kernel is only approximate),
    ``val_sigma_spacing`` (the validation ladder's spacing; None = ``sigma_spacing``), ``val_kernel_error``
    (validation pairs with approximate kernels; None = exact kernels, comparable between runs), ``intensity``
    (None or ``[low, high]``: training crops' grey levels multiplied by a factor drawn uniformly in it),
    ``stroke_fraction`` (that fraction of training items are procedural stroke images),
    ``samples_per_epoch``, ``train_images`` / ``val_images`` (limits), ``val_crop``; ``mode`` is the
    operator (circular | valid); ``data_root`` the data locator's root; ``cache`` an HDF5 file or None."""

    def __init__(self, data_root, mode: str = "circular", crop: int = 128, batch_size: int = 8,
                 num_workers: int = 0, sigma: float | Sequence[float] = 0.01, quantize: bool = False,
                 kernel_size: int = 31, real_kernel_fraction: float = 0.5, samples_per_epoch: int = 2000,
                 train_images: int | None = None, val_images: int | None = 16, val_crop: int = 128,
                 cache: str | None = None, seed: int = 0, sigma_spacing: str = "linear",
                 circular_fraction: float = 0.0, kernel_error: dict | None = None,
                 val_sigma_spacing: str | None = None, val_kernel_error: dict | None = None,
                 intensity: Sequence[float] | None = None, stroke_fraction: float = 0.0):
        super().__init__()
        self.save_hyperparameters()
        self.train_set: BlurPairs | None = None
        self.val_set: ValidationPairs | None = None

    def _images(self, split: str, limit):
        h = self.hparams
        if h.cache and Path(h.cache).is_file():
            from podm_cli.training.cache import read_cache

            images = read_cache(h.cache, split)
            images = images if limit is None else images[: int(limit)]
            return [im for _, im in images]
        return [im for _, im in training_images(h.data_root, split, limit)]

    def setup(self, stage: str | None = None) -> None:
        if self.train_set is not None:
            return
        h = self.hparams
        pool = KernelPool(load_schelten(h.data_root, h.kernel_size), h.kernel_size, h.real_kernel_fraction)
        self.train_set = BlurPairs(self._images("train", h.train_images), pool, h.crop, h.samples_per_epoch,
                                   h.sigma, h.mode, h.quantize, h.seed, h.sigma_spacing,
                                   h.circular_fraction, h.batch_size, h.kernel_error, h.intensity,
                                   h.stroke_fraction)
        self.val_set = ValidationPairs(self._images("val", h.val_images), pool, h.val_crop, h.sigma, h.mode,
                                       h.quantize, sigma_spacing=h.val_sigma_spacing or h.sigma_spacing,
                                       kernel_error=h.val_kernel_error)

    def train_dataloader(self) -> DataLoader:
        # a new stream of pairs every epoch (Trainer(reload_dataloaders_every_n_epochs=1)); resuming restores
        # the epoch, so a resumed run does not replay the pairs it has seen
        epoch = self.trainer.current_epoch if self.trainer is not None else 0
        self.train_set.set_epoch(epoch)
        h = self.hparams
        return DataLoader(self.train_set, batch_size=h.batch_size, shuffle=False, num_workers=h.num_workers,
                          drop_last=True, persistent_workers=False, generator=torch.Generator().manual_seed(h.seed))

    def val_dataloader(self) -> DataLoader:
        return DataLoader(self.val_set, batch_size=self.hparams.batch_size, shuffle=False,
                          num_workers=self.hparams.num_workers)
