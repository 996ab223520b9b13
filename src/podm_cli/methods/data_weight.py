"""Data-fidelity weights of the classical variational methods (:mod:`~podm_cli.methods.tv`,
:mod:`~podm_cli.methods.hl`): one ``lam`` per image, optionally rescaled with the noise level.

The Fourier steps and difference operators these methods use live in :mod:`podm_cli.physics`
(:class:`~podm_cli.physics.DataTerm`, :mod:`podm_cli.physics.differences`).
"""

from __future__ import annotations

import torch
from torch import Tensor

from podm_cli.errors import InputError
from podm_cli.optim.schedules import MIN_NOISE_SIGMA
from podm_cli.physics import item_weight

__all__ = ["data_weight", "noise_scaled"]


def noise_scaled(
    weight: float, sigma_ref: float | None, sigma: Tensor, who: str, power: float = 1.5
) -> Tensor | float:
    """Data weight for noise levels ``sigma`` (``(N,)``): ``weight`` itself if ``sigma_ref`` is None, else
    ``weight * (sigma_ref / max(sigma, MIN_NOISE_SIGMA))^power`` per image, i.e. ``weight`` is the value at
    noise level ``sigma_ref``.  MAP reasoning (likelihood weight ``1 / sigma^2`` at a fixed prior weight)
    gives ``power = 2``; the TV/HL sweep (``docs/tv_hl_weights.md``) found the best weights at 2 % noise to
    be ``2^-1.5`` times those at 1 %, hence the default 1.5.

    A noise level below :data:`~podm_cli.optim.schedules.MIN_NOISE_SIGMA` (0.255/255, about the rounding
    noise of an 8-bit image, 1/(255 sqrt 12) = 0.29/255) counts as that floor, so a clean or noise-free
    input (sigma 0) gets a large but finite weight (about 32 times the 1 % one) instead of an unregularised
    inverse filter.

    >>> noise_scaled(1000.0, 0.01, torch.tensor([0.01, 0.04]), "tv").tolist()
    [1000.0, 125.0]
    >>> noise_scaled(1000.0, 0.01, torch.tensor([0.0]), "tv").tolist() == noise_scaled(
    ...     1000.0, 0.01, torch.tensor([MIN_NOISE_SIGMA]), "tv").tolist()
    True
    """
    if sigma_ref is None:
        return weight
    sigma = torch.as_tensor(sigma).reshape(-1)
    if not torch.isfinite(sigma).all() or (sigma < 0).any():
        raise InputError(f"{who}: noise-adaptive weights (sigma_ref set) need finite sigma >= 0, got "
                         f"{sigma.tolist()}")
    return weight * (sigma_ref / sigma.clamp_min(MIN_NOISE_SIGMA)) ** power


def data_weight(value, like: Tensor, who: str) -> Tensor:
    """``value`` (a float or ``(N,)``) as a per-image ``(N, 1, 1, 1)`` tensor in ``like``'s dtype, checked
    finite and > 0.

    >>> data_weight(2.0, torch.zeros(3, 1, 4, 4), "tv").shape
    torch.Size([3, 1, 1, 1])
    """
    t = item_weight(value, like)
    if t.ndim == 0:
        t = t.expand(like.shape[0]).reshape(-1, *([1] * (like.ndim - 1)))
    if t.shape[0] != like.shape[0]:
        raise InputError(f"{who}: expected a scalar or {like.shape[0]} data weights, got {t.shape[0]}")
    if not torch.isfinite(t).all() or (t <= 0).any():
        raise InputError(f"{who}: data weight lam must be finite and > 0, got {t.flatten().tolist()}")
    return t
