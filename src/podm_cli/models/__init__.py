"""Trainable models (plain ``nn.Module``s, no Lightning, no Hydra): RPODM's unrolled cascade."""

from podm_cli.models.rpodm import RPODM

__all__ = ["RPODM"]
