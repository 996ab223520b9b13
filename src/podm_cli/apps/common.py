"""Small helpers shared by the Hydra apps (config values -> plain Python/torch values)."""

from __future__ import annotations

from collections.abc import Mapping

import torch
from omegaconf import OmegaConf

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


#: What neither ``operator`` nor a method's ``operator.per_method`` entry sets (``with_boundary`` keywords).
BOUNDARY_DEFAULTS = {"boundary": "liu", "taper_iterations": 3, "start": "edgetaper", "adjust_after": 0}
#: ``operator`` key -> ``Method.with_boundary`` keyword.
_BOUNDARY_KEYS = {"boundary": "boundary", "edgetaper_iterations": "taper_iterations", "adjust_start": "start",
                  "adjust_after": "adjust_after"}
_RULES = ("liu", "edgetaper", "replicate", "adjust")


def boundary_settings(operator) -> dict:
    """The ``operator`` group's boundary settings, for ``build_method(boundary=...)``.

    ``Method.with_boundary`` keywords, ``None`` where the group leaves a value to the method; ``boundary``
    may be ``auto`` (each method's own rule) and ``per_method`` holds each method's own settings (same
    keywords). :func:`method_boundary` turns them into one method's settings.

    >>> from omegaconf import OmegaConf
    >>> op = OmegaConf.create({"boundary": "auto", "edgetaper_iterations": None, "adjust_start": None,
    ...                        "adjust_after": None, "per_method": {"tv": {"boundary": "adjust", "adjust_after": 2}}})
    >>> s = boundary_settings(op)
    >>> method_boundary(s, "tv")
    {'boundary': 'adjust', 'taper_iterations': 3, 'start': 'edgetaper', 'adjust_after': 2}
    >>> method_boundary(s, "hl")["boundary"]  # not listed: liu
    'liu'
    >>> method_boundary({**s, "boundary": "edgetaper"}, "tv")  # an explicit rule holds for every method
    {'boundary': 'edgetaper', 'taper_iterations': 3, 'start': 'edgetaper', 'adjust_after': 0}
    """
    own = operator.get("per_method") or {}
    if OmegaConf.is_config(own):
        own = OmegaConf.to_container(own, resolve=True)
    return {
        **_boundary_keywords({key: operator.get(key) for key in _BOUNDARY_KEYS}, "operator"),
        "per_method": {str(name): _boundary_keywords(entry, f"operator.per_method.{name}")
                       for name, entry in own.items()},
    }


def method_boundary(settings: Mapping, name: str) -> dict:
    """``Method.with_boundary`` keywords for method ``name`` from :func:`boundary_settings`.

    ``boundary=auto``: the method's ``per_method`` entry (``liu`` when it has none), where the ``operator``
    values that are set (not ``None``) win; any other ``boundary`` holds for every method, with
    ``BOUNDARY_DEFAULTS`` for what the group leaves unset.
    """
    explicit = {k: v for k, v in settings.items() if k != "per_method" and v is not None}
    own = (settings.get("per_method") or {}).get(name, {}) if explicit.get("boundary", "auto") == "auto" else {}
    if explicit.get("boundary") == "auto":
        del explicit["boundary"]
    return {**BOUNDARY_DEFAULTS, **own, **explicit}


def describe_boundary(handling) -> str:
    """One line for a :class:`~podm_cli.methods.base.BoundaryHandling` on ``valid`` data (results, tables).

    >>> from podm_cli.methods.base import BoundaryHandling
    >>> describe_boundary(BoundaryHandling(boundary="adjust", adjust_after=2))
    'adjust (start edgetaper, after 2 stages)'
    >>> describe_boundary(BoundaryHandling(boundary="edgetaper"))
    'edgetaper (3 iterations)'
    """
    if handling.boundary == "adjust":
        return f"adjust (start {handling.start}, after {int(handling.adjust_after)} stages)"
    if handling.boundary == "edgetaper" or handling.extension == "edgetaper":
        return f"{handling.boundary} ({int(handling.taper_iterations)} iterations)"
    return str(handling.boundary)


def _boundary_keywords(entry, where: str) -> dict:
    """``operator``-style keys (``boundary``, ``edgetaper_iterations``, ``adjust_start``, ``adjust_after``) ->
    ``with_boundary`` keywords; an unknown key or rule is one line."""
    out = {}
    for key, value in dict(entry or {}).items():
        if key not in _BOUNDARY_KEYS:
            raise PodmError(f"{where}: unknown key '{key}' ({' | '.join(_BOUNDARY_KEYS)})")
        if value is None:
            out[_BOUNDARY_KEYS[key]] = None
        elif key == "boundary":
            rule = config_value(value)
            allowed = ("auto", *_RULES) if where == "operator" else _RULES
            if rule not in allowed:
                raise PodmError(f"{where}.boundary: unknown rule '{rule}' ({' | '.join(allowed)})")
            out["boundary"] = rule
        elif key == "adjust_start":
            out["start"] = config_value(value)
        else:
            out[_BOUNDARY_KEYS[key]] = int(value)
    return out
