"""The LightningModule that trains RPODM end to end (plain arguments; the train app maps Hydra config to them).

Loss on the last stage (``l1`` | ``mse`` | ``charbonnier``); with ``warmup="greedy"`` the first
``warmup_steps`` steps train stage by stage (stage ``l`` for ``warmup_steps / stages`` steps, loss on its own
output, later stages not run), then everything jointly. Adam with two learning rates (the networks'
``lr`` and ``scalar_lr`` for the per-stage scalars mu, lambda, step, alpha and the mu hyper-network,
which live on a log/softplus scale and would barely move at a network's rate) and a per-step cosine schedule.

Logged: ``train/loss``, ``val/psnr``, ``val/ssim``, ``val/psnr_stage{l}``, learned ``stage/mu{l}`` (at 1 %
noise), ``stage/lam{l}`` and, with TensorBoard, sample images (blurred | restored | sharp).
"""

from __future__ import annotations

import math

import lightning as L
import torch
from torch import Tensor, nn

from podm_cli.errors import InputError
from podm_cli.methods.base import BoundaryHandling
from podm_cli.models import RPODM
from podm_cli.physics import DataTerm

__all__ = ["LOSSES", "RPODMModule", "greedy_stages", "restoration_loss"]

LOSSES = ("l1", "mse", "charbonnier")


def restoration_loss(name: str, x: Tensor, ref: Tensor, eps: float = 1e-3) -> Tensor:
    """Mean ``l1`` | ``mse`` | ``charbonnier`` (``sqrt((x - ref)^2 + eps^2)``) loss."""
    if name == "l1":
        return (x - ref).abs().mean()
    if name == "mse":
        return ((x - ref) ** 2).mean()
    if name == "charbonnier":
        return torch.sqrt((x - ref) ** 2 + eps**2).mean()
    raise InputError(f"unknown loss {name!r} (choose from {', '.join(LOSSES)})")


def greedy_stages(step: int, warmup_steps: int, stages: int) -> int:
    """Stages run at ``step`` of a greedy warm-up: one more every ``ceil(warmup_steps / stages)`` steps, all
    of them from ``warmup_steps`` on.

    >>> [greedy_stages(s, 6, 3) for s in range(8)]
    [1, 1, 2, 2, 3, 3, 3, 3]
    """
    if warmup_steps <= 0 or step >= warmup_steps:
        return stages
    return min(stages, step // max(1, math.ceil(warmup_steps / stages)) + 1)


class RPODMModule(L.LightningModule):
    """Args: ``model`` (RPODM keyword arguments), optimisation settings, ``mode`` (circular | valid) and, for
    ``valid`` data, ``boundary``: a rule name or ``Method.with_boundary`` keywords (``boundary``,
    ``taper_iterations``, ``start``, ``adjust_after``). The batch's :class:`~podm_cli.physics.DataTerm` is
    built with them, exactly as the ``rpodm`` method builds it, so ``boundary="adjust"`` (the observation
    re-estimated from the current estimate at every F step) is trained through."""

    def __init__(self, model: dict, lr: float = 1e-4, scalar_lr: float = 1e-2, weight_decay: float = 0.0,
                 scheduler: str = "cosine", loss: str = "l1", warmup: str = "none", warmup_steps: int = 0,
                 max_steps: int = 1000, mode: str = "circular", boundary: str | dict = "liu", compile: bool = False,
                 sample_images: int = 4):
        super().__init__()
        if loss not in LOSSES:
            raise InputError(f"unknown loss {loss!r} (choose from {', '.join(LOSSES)})")
        if warmup not in ("none", "greedy"):
            raise InputError(f"warmup must be none or greedy, got {warmup!r}")
        if scheduler not in ("cosine", "none"):
            raise InputError(f"scheduler must be cosine or none, got {scheduler!r}")
        self.save_hyperparameters()
        self.model = RPODM(**model)
        self.restore_fn = torch.compile(self.model.restore) if compile else self.model.restore
        self._val: list[Tensor] = []

    # -- restoration -----------------------------------------------------------------------------------
    def data_term(self, y: Tensor, kernel: Tensor, mode: str | None = None) -> DataTerm:
        """The batch's data term (``kernel``: ``(N, 1, kh, kw)``; ``mode`` overrides the module's)."""
        rule = self.hparams.boundary
        rule = {"boundary": rule} if isinstance(rule, str) else dict(rule)
        return BoundaryHandling(mode=self.hparams.mode, **rule).data_term(y, kernel, mode)

    @staticmethod
    def batch_mode(batch: dict) -> str | None:
        """``"circular"`` for a batch of circular pairs mixed into valid training (``circular_fraction``),
        else None (the module's mode)."""
        flags = batch.get("circular")
        if flags is None or not bool(flags.any()):
            return None
        if not bool(flags.all()):
            raise ValueError("a training batch mixes circular and valid pairs (batch_size must match the data's)")
        return "circular"

    def restore(self, y: Tensor, kernel: Tensor, sigma: Tensor, stages: int | None = None,
                mode: str | None = None) -> list[Tensor]:
        """Every stage's estimate (up to ``stages``) for a batch, cropped back to ``y``'s pixels."""
        data = self.data_term(y, kernel, mode)
        outs = self.restore_fn(data, sigma, return_stages=True, stages=stages)
        return [data.output(o) for o in outs]

    def active_stages(self) -> int:
        """Stages trained at the current step (all, except during greedy warm-up)."""
        h = self.hparams
        if h.warmup != "greedy":
            return self.model.stages
        return greedy_stages(self.global_step, h.warmup_steps, self.model.stages)

    # -- steps -----------------------------------------------------------------------------------------
    def training_step(self, batch: dict, batch_idx: int) -> Tensor:
        active = self.active_stages()
        x = self.restore(batch["blurred"], batch["kernel"], batch["sigma"], stages=active,
                         mode=self.batch_mode(batch))[-1]
        loss = restoration_loss(self.hparams.loss, x, batch["sharp"])
        self.log("train/loss", loss, prog_bar=True, batch_size=len(x))
        if self.hparams.warmup == "greedy":
            self.log("train/active_stages", float(active), batch_size=len(x))
        return loss

    def validation_step(self, batch: dict, batch_idx: int) -> None:
        from podm_cli.metrics import psnr, ssim

        outs = self.restore(batch["blurred"], batch["kernel"], batch["sigma"])
        ref = batch["sharp"].double()
        per_stage = torch.stack([psnr(o.clamp(0, 1).double(), ref) for o in outs], 1)  # (N, stages)
        s = ssim(outs[-1].clamp(0, 1).double(), ref)
        self._val.append(torch.cat([per_stage, s[:, None]], 1).cpu())
        if batch_idx == 0 and self.hparams.sample_images:
            self._log_images(batch, outs[-1])

    def on_validation_epoch_end(self) -> None:
        if not self._val:
            return
        v = torch.cat(self._val).mean(0)
        self._val.clear()
        self.log("val/psnr", float(v[-2]), prog_bar=True, sync_dist=True)
        self.log("val/ssim", float(v[-1]), sync_dist=True)
        for i, p in enumerate(v[:-1].tolist()):
            self.log(f"val/psnr_stage{i + 1}", p, sync_dist=True)
        for key, values in self.model.stage_parameters().items():
            tag = key.replace("@1%", "")
            for i, val in enumerate(values):
                self.log(f"stage/{tag}{i + 1}", float(val), sync_dist=True)

    def _log_images(self, batch: dict, x: Tensor) -> None:
        from lightning.pytorch.loggers import TensorBoardLogger

        if not isinstance(self.logger, TensorBoardLogger):
            return
        n = min(int(self.hparams.sample_images), len(x))
        y = batch["blurred"][:n]
        if y.shape[-1] != x.shape[-1]:
            y = nn.functional.interpolate(y, size=x.shape[-2:], mode="nearest")
        grid = torch.cat([y, x[:n], batch["sharp"][:n]], -1).clamp(0, 1)
        self.logger.experiment.add_images("val/blurred_restored_sharp", grid, self.global_step)

    # -- optimisation ----------------------------------------------------------------------------------
    def configure_optimizers(self):
        h = self.hparams
        # the hyper-network predicts log-mu offsets, so it learns at the scalars' rate
        nets = [p for n, p in self.model.named_parameters() if p.requires_grad and n.startswith("denoisers")]
        scalars = [p for n, p in self.model.named_parameters() if p.requires_grad and not n.startswith("denoisers")]
        groups = [{"params": nets, "lr": h.lr, "weight_decay": h.weight_decay}]
        if scalars:
            groups.append({"params": scalars, "lr": h.scalar_lr, "weight_decay": 0.0})
        opt = torch.optim.Adam(groups)
        if h.scheduler == "none":
            return opt
        sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=max(1, int(h.max_steps)), eta_min=0.0)
        return {"optimizer": opt, "lr_scheduler": {"scheduler": sched, "interval": "step"}}
