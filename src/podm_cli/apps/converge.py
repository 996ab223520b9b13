"""`podm converge` (Hydra app; configs/converge.yaml)."""

from __future__ import annotations

from omegaconf import DictConfig

from podm_cli.errors import PodmError

ISSUE = {"train": 5, "converge": 4, "deblur": 8}["converge"]


def main(cfg: DictConfig) -> None:
    raise PodmError(f"podm converge is not implemented yet (tracked in issue #{ISSUE}); its config is ready: podm converge --cfg job")
