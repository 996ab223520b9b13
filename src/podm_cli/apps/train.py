"""`podm train` (Hydra app; configs/train.yaml). RPODM training lands with issue #5."""

from __future__ import annotations

from omegaconf import DictConfig

from podm_cli.errors import PodmError


def main(cfg: DictConfig) -> None:
    raise PodmError(
        "podm train is not implemented yet (tracked in issue #5); its config is ready: podm train --cfg job"
    )
