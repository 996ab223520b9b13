"""``build_prior(name, **kw)``: a prior from its config (``configs/prior/*.yaml``)."""

from __future__ import annotations

import inspect

from podm_cli.errors import InputError
from podm_cli.priors.base import NoPrior, Prior
from podm_cli.priors.hyper_laplacian import LpGradient
from podm_cli.priors.lp import LpDCT
from podm_cli.priors.tv import TV

__all__ = ["PRIORS", "build_prior"]

PRIORS: dict[str, type[Prior]] = {
    "lp_dct": LpDCT,
    "hyper_laplacian": LpGradient,
    "lp_gradient": LpGradient,
    "tv": TV,
    "none": NoPrior,
}


def build_prior(name: str | None = None, **kw) -> Prior:
    """Build a prior by name (``lp_dct``, ``hyper_laplacian`` / ``lp_gradient``, ``tv``, ``none``).

    Keyword arguments are the config keys; keys a prior does not use (e.g. ``gst_iterations`` for
    ``tv``) are ignored, unknown names raise :class:`~podm_cli.errors.InputError`.

    >>> build_prior("lp_dct", p=0.8, lam=1e-4, gst_iterations=2)
    LpDCT(p=0.8, lam=0.0001, gst_iterations=2)
    >>> build_prior(**{"name": "none"})
    NoPrior(lam=0.0)
    """
    if isinstance(name, Prior):
        return name
    key = "none" if name is None else str(name).lower()
    if key not in PRIORS:
        raise InputError(f"unknown prior {name!r} (choose from {', '.join(PRIORS)})")
    cls = PRIORS[key]
    params = inspect.signature(cls.__init__).parameters
    return cls(**{k: v for k, v in kw.items() if k in params and k != "self"})
