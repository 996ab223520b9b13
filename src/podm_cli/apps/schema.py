"""Structured-config schemas (dataclasses in Hydra's ConfigStore).

Each YAML of a typed group starts with ``defaults: [_schema, _self_]`` so values are type-checked
and unknown keys are errors: ``podm eval operator.boundry=liu`` fails with one clear line.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import Enum
from typing import Any, Dict, List, Optional

from hydra.core.config_store import ConfigStore


class BlurMode(str, Enum):
    circular = "circular"
    valid = "valid"


class Boundary(str, Enum):
    liu = "liu"  # Liu & Jia 2008 smooth wrap-around extension
    edgetaper = "edgetaper"
    replicate = "replicate"
    adjust = "adjust"  # valid data: re-estimate the unobserved border from the current estimate every step


@dataclass
class OperatorConfig:
    """Blur physics. In ``podm eval`` each protocol fixes ``mode``; ``boundary`` is how methods treat
    ``valid`` data (extend the observation before FFT-based solves)."""

    mode: BlurMode = BlurMode.circular
    boundary: Boundary = Boundary.liu
    edgetaper_iterations: int = 3
    adjust_start: str = "edgetaper"  # boundary=adjust: the first observation (edgetaper | liu | replicate)
    adjust_after: int = 0  # boundary=adjust: stages that keep the first observation before adjusting
    fast_fft: bool = True


@dataclass
class DataConfig:
    """Where datasets and weights live; ``null`` means $PODM_DATA, then the project's ``data/``."""

    root: Optional[str] = None


@dataclass
class PathsConfig:
    output_root: str = "outputs"
    sweep_root: str = "multirun"


@dataclass
class DatasetConfig:
    """One evaluation protocol (DESIGN §3); a protocol's name never changes meaning."""

    name: str = "levin"
    sigma: float = 0.01
    seed: int = 0
    limit: Optional[int] = None


@dataclass
class EvalConfig:
    methods: Optional[List[str]] = None  # null: every method in method_cfg
    datasets: List[str] = field(default_factory=lambda: ["levin_valid_whole", "sun"])
    limit: Optional[int] = None
    resume: bool = False
    device: str = "auto"
    batch_size: int = 8
    seed: int = 0
    dtype: str = "float32"
    report: bool = True
    method_cfg: Dict[str, Any] = field(default_factory=dict)
    operator: Any = None
    data: Any = None
    paths: Any = None


_GROUP_SCHEMAS = {
    "operator": OperatorConfig,
    "data": DataConfig,
    "paths": PathsConfig,
    "dataset": DatasetConfig,
}
_PRIMARY_SCHEMAS = {"_eval_schema": EvalConfig}


def register_schemas() -> None:
    """Store the schemas in Hydra's ConfigStore (idempotent)."""
    cs = ConfigStore.instance()
    for group, node in _GROUP_SCHEMAS.items():
        cs.store(group=group, name="_schema", node=node)
    for name, node in _PRIMARY_SCHEMAS.items():
        cs.store(name=name, node=node)
