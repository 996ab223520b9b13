"""Training throughput of the Lightning loop against a plain PyTorch loop on the same model and batches
(``make bench``): the Lightning overhead should stay under 5 %.

Both loops train :class:`~podm_cli.training.module.RPODMModule`'s RPODM (random initialisation, so no weights
are needed) on the same synthetic pairs (random images, random-walk kernels), with Adam, the cosine
schedule and gradient clipping, and time the same steps after a warm-up (Lightning: from the first timed
batch's start to the last one's end, so set-up and tear-down are not counted against it).

Example::

    >>> r = compare_loops(stages=1, crop=16, batch_size=2, steps=2, warmup=1, channels=4)
    >>> sorted(r)
    ['lightning_samples_per_s', 'overhead_percent', 'plain_samples_per_s', 'setting']
"""

from __future__ import annotations

import time

import torch
from torch.utils.data import DataLoader

from podm_cli.training.module import RPODMModule, restoration_loss
from podm_cli.training.pairs import BlurPairs, KernelPool

__all__ = ["compare_loops"]


def _loader(crop: int, batch_size: int, samples: int) -> DataLoader:
    images = [torch.rand(1, crop + 32, crop + 32, generator=torch.Generator().manual_seed(i)) for i in range(8)]
    pairs = BlurPairs(images, KernelPool([], kernel_size=15, real_fraction=0.0), crop=crop, length=samples)
    return DataLoader(pairs, batch_size=batch_size, shuffle=False, num_workers=0, drop_last=True)


def _module(stages: int, channels: int, steps: int) -> RPODMModule:
    torch.manual_seed(0)
    model = {"stages": stages, "denoiser": {"name": "ircnn", "channels": channels, "pretrained": None},
             "prior": {"name": "lp_dct", "lam": 1e-4}}
    return RPODMModule(model, max_steps=steps)


def _plain(stages, channels, crop, batch_size, steps, warmup) -> float:
    module = _module(stages, channels, steps + warmup)
    opt = module.configure_optimizers()
    optimizer, sched = opt["optimizer"], opt["lr_scheduler"]["scheduler"]
    module.train()
    start = None
    for i, batch in enumerate(_loader(crop, batch_size, (steps + warmup) * batch_size)):
        if i == warmup:
            start = time.perf_counter()
        x = module.model(batch["blurred"], batch["kernel"], batch["sigma"])
        loss = restoration_loss("l1", x, batch["sharp"])
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(module.parameters(), 0.01)
        optimizer.step()
        sched.step()
    return steps * batch_size / (time.perf_counter() - start)


def _lightning(stages, channels, crop, batch_size, steps, warmup) -> float:
    import lightning as L

    class Clock(L.Callback):
        def __init__(self):
            self.start = self.end = None

        def on_train_batch_start(self, trainer, pl_module, batch, batch_idx):
            if batch_idx == warmup:
                self.start = time.perf_counter()

        def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx):
            self.end = time.perf_counter()

    clock = Clock()
    trainer = L.Trainer(accelerator="cpu", devices=1, max_steps=steps + warmup, logger=False,
                        enable_checkpointing=False, enable_progress_bar=False, enable_model_summary=False,
                        gradient_clip_val=0.01, limit_val_batches=0, callbacks=[clock])
    trainer.fit(_module(stages, channels, steps + warmup), train_dataloaders=_loader(crop, batch_size, (steps + warmup) * batch_size))
    return steps * batch_size / (clock.end - clock.start)


def compare_loops(stages: int = 4, crop: int = 64, batch_size: int = 4, steps: int = 20, warmup: int = 3,
                  channels: int = 64) -> dict:
    """Samples per second of both loops and the Lightning overhead in percent."""
    plain = _plain(stages, channels, crop, batch_size, steps, warmup)
    light = _lightning(stages, channels, crop, batch_size, steps, warmup)
    return {
        "setting": f"RPODM {stages} stages, {channels} channels, {crop}px crops, batch {batch_size}, {steps} steps",
        "plain_samples_per_s": plain,
        "lightning_samples_per_s": light,
        "overhead_percent": 100.0 * (plain / light - 1.0),
    }
