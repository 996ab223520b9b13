"""`podm train` (Hydra app; configs/train.yaml): RPODM trained end to end with Lightning.

The app only maps the config onto plain objects (:class:`~podm_cli.training.datamodule.BlurPairsDataModule`,
:class:`~podm_cli.training.module.RPODMModule`, a Lightning ``Trainer``), fits, exports the compact weights
(``<run dir>/<export>``, from the best checkpoint) and returns the best ``val/psnr`` for sweepers.
"""

from __future__ import annotations

import logging
import re
import warnings
from pathlib import Path

from hydra.core.hydra_config import HydraConfig
from omegaconf import DictConfig, OmegaConf

from podm_cli.errors import PodmError

log = logging.getLogger(__name__)


def model_kwargs(cfg: DictConfig, root) -> dict:
    """RPODM's keyword arguments from the ``model``, ``denoiser`` and ``prior`` groups."""
    m = OmegaConf.to_container(cfg.model, resolve=True)
    m.pop("name", None)
    return {
        **m,
        "denoiser": OmegaConf.to_container(cfg.denoiser, resolve=True),
        "prior": OmegaConf.to_container(cfg.prior, resolve=True),
        "data_root": str(root),
    }


def _callbacks(cfg: DictConfig, ckpt_dir: Path) -> list:
    from lightning.pytorch.callbacks import LearningRateMonitor, ModelCheckpoint, RichProgressBar

    c = OmegaConf.to_container(cfg.callbacks, resolve=True)
    out = [ModelCheckpoint(dirpath=ckpt_dir, **c.get("model_checkpoint", {}))]
    if c.get("lr_monitor"):
        out.append(LearningRateMonitor(logging_interval="step"))
    if c.get("rich_progress"):

        class StepProgressBar(RichProgressBar):
            """Lightning's bar reads "Epoch 1/-2" when training runs for max_steps (max_epochs=-1)."""

            def _get_train_description(self, current_epoch: int) -> str:
                max_epochs = self.trainer.max_epochs
                text = f"Epoch {current_epoch}" + (f"/{max_epochs - 1}" if max_epochs and max_epochs > 0 else "")
                if self.trainer.max_steps and self.trainer.max_steps > 0:
                    text += f" (step {self.trainer.global_step}/{self.trainer.max_steps})"
                return text

        out.append(StepProgressBar())
    return out


def _logger(cfg: DictConfig):
    from lightning.pytorch.loggers import CSVLogger, TensorBoardLogger

    if cfg.get("logger") is None:
        return False
    kinds = {"tensorboard": TensorBoardLogger, "csv": CSVLogger}
    return [kinds[k](**OmegaConf.to_container(v, resolve=True)) for k, v in cfg.logger.items() if k in kinds]


def check_checkpoint(path) -> None:
    """Refuse, before any training, a ``ckpt_path`` that is missing, not a torch file, holds anything but
    tensors and plain containers (a pickled payload is never executed: the load is ``weights_only``), or
    is not a Lightning checkpoint."""
    import torch

    from podm_cli.apps.errors import strip_ansi

    p = Path(path)
    if not p.is_file():
        raise PodmError(f"ckpt_path {p} does not exist" if not p.exists() else f"ckpt_path {p} is not a file")
    with open(p, "rb") as fh:
        magic = fh.read(4)
    if not (magic.startswith(b"PK\x03\x04") or magic[:1] == b"\x80"):  # torch's zip format, or a legacy pickle
        raise PodmError(f"ckpt_path {p} cannot be used: not a torch checkpoint file (neither a torch zip archive "
                        f"nor a pickle stream)")
    try:
        with warnings.catch_warnings():  # torch warns about pickle protocols before refusing the file
            warnings.simplefilter("ignore")
            ckpt = torch.load(p, map_location="cpu", weights_only=True)
    except Exception as exc:  # noqa: BLE001 - whatever torch/pickle says, the file is unusable
        text = strip_ansi(str(exc))
        refused = re.search(r"Unsupported global: GLOBAL ([\w.]+)", text)
        if refused or "weights_only" in text.lower() or "weights only" in text.lower():
            what = f" ({refused.group(1)})" if refused else ""
            reason = f"it holds Python objects{what} or pickle instructions that a safe load refuses (podm never unpickles code)"
        else:
            first = next((line.strip() for line in text.splitlines() if line.strip()), type(exc).__name__)
            reason = f"not a torch checkpoint file ({first})"
        raise PodmError(f"ckpt_path {p} cannot be used: {reason}") from None
    if not isinstance(ckpt, dict) or "state_dict" not in ckpt:
        raise PodmError(f"ckpt_path {p} is not a Lightning checkpoint (no state_dict): pass a .ckpt that "
                        f"podm train wrote in <run dir>/checkpoints/ (an exported rpodm.pt is for podm eval)")


def _one_log_stream() -> None:
    """Hydra already prints each log line and writes it to train.log: drop Lightning's own console handlers
    (which repeat every line as ``INFO: ...`` on stderr), its adverts for other products and a
    deprecation warning of its own internals."""
    import logging

    for name in ("lightning", "lightning.pytorch", "lightning.fabric"):
        lg = logging.getLogger(name)
        for handler in list(lg.handlers):
            if type(handler) is logging.StreamHandler:
                lg.removeHandler(handler)
        lg.propagate = True
    for name in ("lightning.pytorch.utilities.rank_zero", "lightning.fabric.utilities.rank_zero"):
        logging.getLogger(name).addFilter(lambda record: "Tip:" not in record.getMessage())
    warnings.filterwarnings("ignore", message=r".*isinstance\(treespec, LeafSpec\)")


def main(cfg: DictConfig) -> float:
    if cfg.ckpt_path is not None:  # before the slow imports and any data loading
        check_checkpoint(cfg.ckpt_path)
    import lightning as L
    import torch

    from podm_cli.apps.common import boundary_settings, config_value, method_boundary
    from podm_cli.data.locator import data_root
    from podm_cli.models.rpodm_weights import export_weights
    from podm_cli.training.cache import default_cache_path
    from podm_cli.training.datamodule import BlurPairsDataModule
    from podm_cli.training.module import RPODMModule

    _one_log_stream()
    out_dir = Path(HydraConfig.get().runtime.output_dir)
    root = data_root(cfg.data.root)
    mode = config_value(cfg.operator.mode)
    boundary = method_boundary(boundary_settings(cfg.operator), "rpodm")  # auto: rpodm's own rule
    L.seed_everything(cfg.seed, workers=True, verbose=False)
    td = OmegaConf.to_container(cfg.train_data, resolve=True)
    cache = td.pop("cache") or default_cache_path()
    datamodule = BlurPairsDataModule(str(root), mode=mode, cache=str(cache), seed=cfg.seed, **td)
    kwargs = model_kwargs(cfg, root)
    trainer_cfg = OmegaConf.to_container(cfg.trainer, resolve=True)
    if cfg.optim.scheduler == "cosine" and int(trainer_cfg.get("max_steps") or -1) <= 0:
        raise PodmError("optim.scheduler=cosine runs over trainer.max_steps: set trainer.max_steps > 0")
    module = RPODMModule(
        kwargs, lr=cfg.optim.lr, scalar_lr=cfg.optim.scalar_lr, weight_decay=cfg.optim.weight_decay,
        scheduler=cfg.optim.scheduler, loss=cfg.loss, warmup=cfg.warmup, warmup_steps=cfg.warmup_steps,
        max_steps=trainer_cfg["max_steps"], mode=mode, boundary=boundary, compile=cfg.compile,
    )
    init = cfg.get("init_weights")
    if init and cfg.ckpt_path is None:  # a resumed run takes everything from its checkpoint
        from podm_cli.models.rpodm_weights import initialise_from
        from podm_cli.paths import resolve_model_path

        report = initialise_from(module.model, resolve_model_path(init))
        log.info("initialised from %s: %d tensors copied, new: %s", init, len(report["copied"]),
                 ", ".join(sorted({k.split(".")[0] for k in report["kept"]})) or "none")
    trainer = L.Trainer(
        **trainer_cfg,
        default_root_dir=str(out_dir),
        logger=_logger(cfg),
        callbacks=_callbacks(cfg, out_dir / "checkpoints"),
        reload_dataloaders_every_n_epochs=1,
        enable_model_summary=False,
    )
    trainer.fit(module, datamodule=datamodule, ckpt_path=cfg.ckpt_path, weights_only=True)

    ckpt_cb = trainer.checkpoint_callback
    best = ckpt_cb.best_model_path if ckpt_cb is not None else ""
    if best and Path(best).is_file() and trainer.is_global_zero:
        state = torch.load(best, map_location="cpu", weights_only=True)["state_dict"]
        module.load_state_dict(state)
    score = trainer.callback_metrics.get(cfg.optimized_metric)
    best_score = float(ckpt_cb.best_model_score) if ckpt_cb is not None and ckpt_cb.best_model_score is not None else (
        float(score) if score is not None else float("nan"))
    if cfg.export and trainer.is_global_zero:
        kwargs.pop("data_root", None)
        path = export_weights(
            module.model, kwargs, out_dir / cfg.export,
            trained_for={"mode": mode, "sigma": td["sigma"], "sigma_spacing": td.get("sigma_spacing", "linear"),
                         "quantize": td["quantize"], "kernel_size": td["kernel_size"],
                         **({"kernel_error": td["kernel_error"]} if td.get("kernel_error") else {}),
                         **({"intensity": td["intensity"]} if td.get("intensity") else {}),
                         **({"stroke_fraction": td["stroke_fraction"]} if td.get("stroke_fraction") else {}),
                         **({"val_sigma_spacing": td["val_sigma_spacing"]} if td.get("val_sigma_spacing") else {}),
                         **({"boundary": boundary, "circular_fraction": td.get("circular_fraction", 0.0)}
                            if mode == "valid" else {})},
            provenance={"command": "podm train " + " ".join(HydraConfig.get().overrides.task),
                        "steps": int(trainer.global_step), "best_val_psnr": best_score,
                        "checkpoint": str(best)},
        )
        print(f"podm train: best val/psnr {best_score:.3f} dB; weights -> {path}")
    return best_score
