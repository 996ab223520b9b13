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
    auto = "auto"  # each method's own rule (operator.per_method; liu for a method not listed there)
    liu = "liu"  # Liu & Jia 2008 smooth wrap-around extension
    edgetaper = "edgetaper"
    replicate = "replicate"
    adjust = "adjust"  # valid data: re-estimate the unobserved border from the current estimate every step


@dataclass
class OperatorConfig:
    """Blur physics. ``mode`` is what ``podm train`` synthesises (``podm eval``'s protocols fix their own
    mode and ``podm deblur``'s photos are always ``valid``: both ignore it); ``boundary`` is how methods
    treat ``valid`` data (extend the observation before FFT-based solves): ``auto`` takes each method's own
    rule from ``per_method`` (method name -> ``boundary`` / ``edgetaper_iterations`` / ``adjust_start`` /
    ``adjust_after``), any other value is that rule for every method. ``adjust_start`` / ``adjust_after``
    left ``null`` mean the method's own (``auto``) or ``edgetaper`` / ``0``."""

    mode: BlurMode = BlurMode.circular
    boundary: Boundary = Boundary.auto
    edgetaper_iterations: Optional[int] = None  # null: the method's own (auto), else 3
    adjust_start: Optional[str] = None  # boundary=adjust: the first observation (edgetaper | liu | replicate)
    adjust_after: Optional[int] = None  # boundary=adjust: stages that keep the first observation before adjusting
    per_method: Dict[str, Any] = field(default_factory=dict)  # boundary=auto: method name -> its settings


@dataclass
class DataConfig:
    """Where datasets and weights live; ``null`` means $PODM_DATA, then the project's ``data/``."""

    root: Optional[str] = None


@dataclass
class PathsConfig:
    output_root: str = "outputs"
    sweep_root: str = "multirun"


@dataclass
class EvalConfig:
    methods: Optional[List[str]] = None  # null: the suite's methods
    datasets: Optional[List[str]] = None  # null: the suite's datasets
    suite: str = "cpu"
    suites: Dict[str, Any] = field(default_factory=dict)
    limit: Optional[int] = None
    sigma: Any = None  # null: each protocol's own noise level; a level on [0, 1] or a list of them (a sweep)
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
}
_PRIMARY_SCHEMAS = {"_eval_schema": EvalConfig}


def register_schemas() -> None:
    """Store the schemas in Hydra's ConfigStore (idempotent)."""
    cs = ConfigStore.instance()
    for group, node in _GROUP_SCHEMAS.items():
        cs.store(group=group, name="_schema", node=node)
    for name, node in _PRIMARY_SCHEMAS.items():
        cs.store(name=name, node=node)
