"""Schedules of the denoiser-driven solvers: denoiser levels per stage and the Fourier-step weight ``rho``.

Every noise level here is on the [0, 1] scale (the networks' 0..255 scale exists only inside
:mod:`podm_cli.nets`). One rule serves IRCNN, PODM, RPODM and the convergence study:

* :func:`denoiser_levels` -- ``stages`` levels from ``first`` to ``last``, log-spaced (or linear);
* :func:`hqs_rho` -- IRCNN's coupling of the Fourier-step weight to the denoiser level,
  ``rho_l = (max(sigma, MIN_NOISE_SIGMA)^2 / rho_divisor) / s_l^2`` (Zhang et al. 2017's
  ``mu = lambda sigma^2 / s^2`` with ``lambda = 1 / rho_divisor``; the demo's ``lamda = sigma^2 / 3``);
* :func:`ircnn_schedule` -- both together, as IRCNN (and the study's "IRCNN" curve) runs them;
* :func:`rpodm_levels` -- RPODM's stage levels (one stage: the last level);
* :func:`at_stage` -- a schedule entry by stage index, the last one held beyond the schedule.

>>> [round(s * 255, 2) for s in denoiser_levels(4, 48 / 255, 6 / 255)]
[48.0, 24.0, 12.0, 6.0]
>>> levels, rho = ircnn_schedule(torch.tensor([0.01]), stages=3, first=49 / 255, last=13 / 255)
>>> [round(v * 255, 2) for v in levels.tolist()]
[49.0, 25.24, 13.0]
>>> round(float(rho[0, 0]), 9) == round(0.01**2 / 3 / (49 / 255) ** 2, 9)
True
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
from torch import Tensor

from podm_cli.errors import InputError

__all__ = [
    "IRCNN_LAST_LEVEL",
    "IRCNN_SIGMA_SCALE",
    "IRCNN_SIGMA_SCALE_APPROXIMATE_KERNEL",
    "MIN_NOISE_SIGMA",
    "SPACINGS",
    "at_stage",
    "denoiser_levels",
    "hqs_rho",
    "ircnn_schedule",
    "rpodm_levels",
]

#: Lower bound on the measurement noise level in ``rho`` (DPIR's 0.255/255): a noise-free input must not
#: make ``rho`` zero (an unregularised inverse filter).
MIN_NOISE_SIGMA = 0.255 / 255.0
#: IRCNN's last denoiser level: the demo's 13/255, best on BSDS500-train data (docs/ircnn_floor.md).
IRCNN_LAST_LEVEL = 13.0 / 255.0
#: IRCNN's default factor on the given noise level in ``rho``: the demo's 1, right for an exactly known kernel
#: (the synthetic protocols). With a kernel known only approximately (captured blurs, estimated kernels) 2 was
#: best on captured-blur-like data disjoint from every test set (valid blur, 8-bit, approximate kernel, the
#: adjusted boundary after 10 stages that podm eval gives IRCNN; docs/noise_level.md):
#: ``IRCNN_SIGMA_SCALE_APPROXIMATE_KERNEL``, applied by ``Method.input_sigma`` where a protocol's kernel is
#: approximate (``levin_real``).
IRCNN_SIGMA_SCALE = 1.0
IRCNN_SIGMA_SCALE_APPROXIMATE_KERNEL = 2.0
SPACINGS = ("log", "linear")


def denoiser_levels(stages: int, first: float, last: float, spacing: str = "log") -> list[float]:
    """``stages`` levels from ``first`` to ``last`` (same scale as given; one stage: ``[first]``).

    >>> denoiser_levels(3, 0.3, 0.1, "linear")
    [0.3, 0.2, 0.1]
    """
    stages = int(stages)
    if stages < 1:
        raise InputError(f"stages must be >= 1, got {stages}")
    if not (first > 0 and last > 0):
        raise InputError(f"denoiser levels must be > 0, got {first}, {last}")
    if stages == 1:
        return [float(first)]
    if spacing == "log":
        a, b = math.log(first), math.log(last)
        return [math.exp(a + (b - a) * i / (stages - 1)) for i in range(stages)]
    if spacing == "linear":
        return [first + (last - first) * i / (stages - 1) for i in range(stages)]
    raise InputError(f"spacing must be one of {SPACINGS}, got {spacing!r}")


def rpodm_levels(stages: int, first: float, last: float) -> list[float]:
    """RPODM's stage levels: :func:`denoiser_levels` (log), except that a single stage uses ``last``.

    >>> [round(s * 255, 2) for s in rpodm_levels(3, 49 / 255, 7.65 / 255)], rpodm_levels(1, 0.2, 0.03)
    ([49.0, 19.36, 7.65], [0.03])
    """
    return [float(last)] if int(stages) == 1 else denoiser_levels(stages, first, last, "log")


def _noise(sigma) -> Tensor:
    sig = torch.as_tensor(sigma, dtype=torch.float64).reshape(-1)
    if not torch.isfinite(sig).all() or (sig < 0).any():
        raise InputError(f"noise sigma must be finite and >= 0, got {sig.tolist()}")
    return sig


def hqs_rho(sigma, levels: Sequence[float] | Tensor, rho_divisor: float) -> Tensor:
    """``rho (N, stages)``: ``(max(sigma, MIN_NOISE_SIGMA)^2 / rho_divisor) / level^2``; ``sigma`` (N,) or
    a float, ``levels`` on [0, 1]; float64 on the CPU (move it where the solver runs)."""
    if not rho_divisor > 0:
        raise InputError(f"rho_divisor must be > 0, got {rho_divisor}")
    lv = torch.as_tensor(levels, dtype=torch.float64).reshape(-1)
    lam = _noise(sigma).clamp_min(MIN_NOISE_SIGMA) ** 2 / float(rho_divisor)
    return lam[:, None] / lv[None, :] ** 2


def ircnn_schedule(sigma, stages: int = 30, first: float = 49.0 / 255.0, last: float = IRCNN_LAST_LEVEL,
                   rho_divisor: float = 3.0) -> tuple[Tensor, Tensor]:
    """IRCNN's HQS schedule for noise levels ``sigma`` (N,): ``(levels (stages,), rho (N, stages))``.

    Levels log-spaced from ``first`` to ``last`` (the demo: 49/255 to 13/255, 30 iterations), ``rho`` by
    :func:`hqs_rho` with the demo's ``rho_divisor = 3``. Everything on [0, 1], float64.
    """
    if not (0 < last <= first):
        raise InputError(f"need 0 < last <= first denoiser level, got {first} and {last}")
    levels = torch.tensor(denoiser_levels(stages, first, last, "log"), dtype=torch.float64)
    return levels, hqs_rho(sigma, levels, rho_divisor)


def at_stage(schedule, index: int, like: Tensor | None = None):
    """Entry ``index`` of a schedule: a callable ``schedule(index)``, a sequence (last entry held beyond
    its end) or a constant. Tensors come back on ``like``'s device/dtype, ``(N,)`` ones flattened.

    >>> at_stage([1.0, 2.0], 5), at_stage(0.3, 2), at_stage(lambda i: i * 2, 3)
    (2.0, 0.3, 6)
    """
    if callable(schedule):
        value = schedule(index)
    elif isinstance(schedule, (list, tuple)):
        value = schedule[min(index, len(schedule) - 1)]
    elif isinstance(schedule, Tensor) and schedule.ndim == 2:  # (N, stages)
        value = schedule[:, min(index, schedule.shape[1] - 1)]
    else:
        value = schedule
    if isinstance(value, Tensor):
        if like is not None:
            value = value.to(device=like.device, dtype=like.dtype)
        if value.numel() > 1:
            value = value.reshape(-1)
    return value
