"""Random camera-shake kernels (training pairs, benchmarks): a random walk with inertia, drawn on a grid.

>>> k = random_motion_kernel(15, generator=0)
>>> tuple(k.shape), round(float(k.sum()), 6)
((15, 15), 1.0)
"""

from __future__ import annotations

import math

import numpy as np
import torch

from podm_cli.errors import InputError
from podm_cli.kernels.files import validate_kernel

__all__ = ["random_motion_kernel"]


def random_motion_kernel(size: int = 25, length=None, generator=None, *, n_steps: int | None = None,
                         inertia: float | None = None, impulse_prob: float = 0.005, impulse_strength: float = 2.0,
                         jitter: float = 0.15, blur_sigma: float = 0.5) -> torch.Tensor:
    """A random camera-shake kernel ``(size, size)`` (float64, sums to 1, centre of mass at the centre).

    The trajectory is a random walk with inertia, in the spirit of Boracchi & Foi (2012) and
    Chakrabarti (2016): the velocity is an AR(1) (Ornstein-Uhlenbeck) process
    ``v[t+1] = inertia * v[t] + sqrt(1 - inertia^2) * n[t]`` with, at rate ``impulse_prob``, an extra
    kick of ``impulse_strength`` (abrupt shakes); its integral is scaled to the arc length ``length``,
    perturbed by sub-pixel ``jitter`` (tremor), shrunk if needed to fit the support, centred so that its
    centre of mass sits at ``(size // 2, size // 2)`` (the kernel centre of the contract), rasterised with
    bilinear splatting (equal exposure per sample) and optionally smoothed by a Gaussian of
    ``blur_sigma`` px (0 disables it).

    Parameters
    ----------
    size
        Support size in pixels (>= 3).
    length
        Arc length of the trajectory in pixels: a number, a ``(low, high)`` range drawn uniformly, or
        None for ``(0.2 * size, size)``.  It is reduced when the path would not fit in the support.
    generator
        ``torch.Generator``, an ``int`` seed, or None (torch's global generator): the same seed gives the
        same kernel.
    n_steps
        Trajectory samples (default ``max(64, 8 * size)``).
    inertia
        Per-sample AR(1) coefficient of the velocity; default ``exp(-4 / n_steps)`` (the velocity stays
        correlated over about a quarter of the exposure, so paths are smooth with a few turns).
    impulse_prob, impulse_strength
        Per-sample probability and size (in units of the velocity's standard deviation) of abrupt kicks.
    jitter
        Standard deviation (px) of the per-sample tremor added to the scaled path.
    blur_sigma
        Standard deviation (px) of the final Gaussian smoothing; 0 disables it.
    """
    size = int(size)
    if size < 3:
        raise InputError(f"random kernel size must be at least 3, got {size}")
    steps = int(n_steps) if n_steps is not None else max(64, 8 * size)
    if inertia is None:
        inertia = math.exp(-4.0 / steps)  # velocity correlation time: a quarter of the exposure
    if not 0.0 <= inertia < 1.0:
        raise InputError(f"inertia must be in [0, 1), got {inertia}")
    if isinstance(generator, (int, np.integer)) and not isinstance(generator, bool):
        generator = torch.Generator().manual_seed(int(generator))
    elif generator is not None and not isinstance(generator, torch.Generator):
        raise InputError(f"generator must be a torch.Generator, an int seed or None, got {type(generator)}")

    def rand(*shape) -> np.ndarray:
        return torch.rand(shape, generator=generator, dtype=torch.float64).numpy()

    def randn(*shape) -> np.ndarray:
        return torch.randn(shape, generator=generator, dtype=torch.float64).numpy()

    # All random numbers are drawn up front, in a fixed order, so a seed fully determines the kernel.
    u_len, noise, kick_u, kick_dir, tremor = rand(1), randn(steps, 2), rand(steps), randn(steps, 2), \
        randn(steps, 2)

    if length is None:
        length = (0.2 * size, float(size))
    if isinstance(length, (tuple, list)):
        lo, hi = (float(v) for v in length)
        length = lo + (hi - lo) * float(u_len[0])
    length = float(length)
    if not length >= 0.0:
        raise InputError(f"kernel length must be >= 0, got {length}")

    # Velocity: stationary AR(1) per axis plus occasional impulses; position = cumulative sum.
    drive = math.sqrt(1.0 - inertia ** 2) * noise + (kick_u < impulse_prob)[:, None] * impulse_strength * kick_dir
    vel = np.empty_like(drive)
    vel[0] = noise[0]  # start in the stationary law N(0, 1)
    for t in range(1, steps):
        vel[t] = inertia * vel[t - 1] + drive[t]
    pos = np.concatenate([np.zeros((1, 2)), np.cumsum(vel, axis=0)[:-1]])
    arc = float(np.linalg.norm(np.diff(pos, axis=0), axis=1).sum())
    pos = pos * (length / arc if arc > 0 else 0.0) + jitter * tremor

    # Centre of mass at the kernel centre; shrink about it until the path (plus the blur margin) fits.
    centre = float(size // 2)
    dev = pos - pos.mean(axis=0)
    margin = 1.0 if blur_sigma > 0 else 0.0
    lo_room, hi_room = centre - margin, (size - 1) - margin - centre
    scale = 1.0
    for axis in range(2):
        dmin, dmax = float(dev[:, axis].min()), float(dev[:, axis].max())
        if dmin < 0:
            scale = min(scale, lo_room / -dmin)
        if dmax > 0:
            scale = min(scale, hi_room / dmax)
    pts = centre + scale * dev

    # Bilinear splatting: each sample spreads its unit exposure over its 4 neighbouring pixels, which
    # keeps the centre of mass exact.
    k = np.zeros((size, size))
    i0 = np.clip(np.floor(pts).astype(np.int64), 0, size - 2)
    frac = pts - i0
    for di in (0, 1):
        for dj in (0, 1):
            wgt = (frac[:, 0] if di else 1 - frac[:, 0]) * (frac[:, 1] if dj else 1 - frac[:, 1])
            np.add.at(k, (i0[:, 0] + di, i0[:, 1] + dj), wgt)
    k = np.clip(k, 0.0, None)

    if blur_sigma > 0:
        from scipy.ndimage import gaussian_filter

        k = gaussian_filter(k, blur_sigma, mode="constant", truncate=3.0)
    return validate_kernel(k, name="random motion kernel")
