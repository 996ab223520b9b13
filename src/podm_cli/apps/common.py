"""Small helpers shared by the Hydra apps (config values -> plain Python/torch values)."""

from __future__ import annotations

import torch

from podm_cli.errors import PodmError


def resolve_device(name: str) -> str:
    """``auto`` -> ``cuda`` when available else ``cpu``; an unavailable CUDA device is a user error."""
    if name == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise PodmError(f"device={name} requested but CUDA is not available (use device=cpu or auto)")
    try:
        return str(torch.device(name))
    except RuntimeError as exc:
        raise PodmError(f"invalid device '{name}' (auto | cpu | cuda | cuda:N)") from exc


def resolve_dtype(name: str) -> torch.dtype:
    dtypes = {"float32": torch.float32, "float64": torch.float64}
    if name not in dtypes:
        raise PodmError(f"invalid dtype '{name}' (float32 | float64)")
    return dtypes[name]


def config_value(value) -> str:
    """A structured-config enum (``operator.mode``, ``operator.boundary``) or plain string as a string."""
    return str(getattr(value, "value", value))


def boundary_settings(operator) -> dict:
    """``Method.with_boundary`` keyword arguments from the ``operator`` config group."""
    return {
        "boundary": config_value(operator.boundary),
        "taper_iterations": int(operator.edgetaper_iterations),
        "start": config_value(operator.get("adjust_start", "edgetaper")),
        "adjust_after": int(operator.get("adjust_after", 0)),
    }
