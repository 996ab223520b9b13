"""Measurement noise: reproducible per-image Gaussian noise and 8-bit (or n-bit) quantisation.

Noise is always drawn on the CPU in float64 from a seeded :class:`torch.Generator` and then cast and moved
to ``x``'s dtype and device, so the same seed gives the same noise on CPU and CUDA, and in float32 and
float64 (up to float32 rounding).
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence

import torch

from podm_cli.errors import InputError

__all__ = ["add_gaussian_noise", "image_seed", "quantize"]


def image_seed(name: str, base_seed: int = 0) -> int:
    """A seed derived from an image's name, stable across processes and machines (unlike ``hash()``).

    >>> image_seed("im01_ker01") == image_seed("im01_ker01"), image_seed("a") != image_seed("b")
    (True, True)
    """
    digest = hashlib.sha256(f"{int(base_seed)}:{name}".encode()).digest()
    return int.from_bytes(digest[:8], "little") & ((1 << 63) - 1)


def _gaussian(shape, seed: int | None, generator: torch.Generator | None) -> torch.Tensor:
    if generator is None and seed is not None:
        generator = torch.Generator(device="cpu").manual_seed(int(seed))
    return torch.randn(tuple(shape), generator=generator, dtype=torch.float64, device="cpu")


def add_gaussian_noise(
    x: torch.Tensor,
    sigma,
    seed: int | Sequence[int] | None = None,
    generator: torch.Generator | None = None,
) -> torch.Tensor:
    """Return ``x + sigma * n`` with ``n ~ N(0, 1)`` i.i.d. (``x`` on [0, 1]; ``sigma = 0.01`` is 1 %).

    ``seed``: an int (one generator for the whole tensor) or a sequence of ints, one per batch item
    (``len(seed) == x.shape[0]``), so that an image's noise does not depend on which batch it is in --
    pass ``[image_seed(name) for name in names]``.  ``generator``: a CPU generator to draw from instead
    (its state advances).  With neither, torch's global RNG is used (not reproducible).
    ``sigma`` is a float or one value per batch item.

    >>> x = torch.zeros(2, 1, 4, 4)
    >>> a = add_gaussian_noise(x, 0.01, seed=[1, 2]); b = add_gaussian_noise(x[1:], 0.01, seed=[2])
    >>> bool(torch.equal(a[1:], b))
    True
    """
    if seed is not None and generator is not None:
        raise InputError("pass either seed or generator, not both")
    if generator is not None and generator.device.type != "cpu":
        raise InputError("noise is drawn on the CPU for reproducibility: pass a CPU torch.Generator")
    sig = torch.as_tensor(sigma, dtype=torch.float64)
    if sig.ndim > 1 or (sig.ndim == 1 and x.ndim > 0 and sig.numel() not in (1, x.shape[0])):
        raise InputError(f"sigma must be a number or one value per batch item, got shape {tuple(sig.shape)}")
    if not torch.isfinite(sig).all() or (sig < 0).any():
        raise InputError(f"noise sigma must be finite and >= 0, got {sigma}")
    if isinstance(seed, Sequence) and not isinstance(seed, (str, bytes)):
        if x.ndim == 0 or len(seed) != x.shape[0]:
            raise InputError(f"need one seed per batch item ({x.shape[0] if x.ndim else 0}), got {len(seed)}")
        noise = torch.stack([_gaussian(x.shape[1:], s, None) for s in seed])
    else:
        noise = _gaussian(x.shape, seed, generator)
    if sig.ndim == 1:
        sig = sig.reshape(-1, *([1] * (x.ndim - 1)))
    return x + (sig * noise).to(device=x.device, dtype=x.dtype)


def quantize(x: torch.Tensor, bits: int = 8) -> torch.Tensor:
    """Clip to [0, 1] and round to the ``2**bits`` levels ``j / (2**bits - 1)`` (halves round up, as a
    conversion to uint8 does).

    >>> quantize(torch.tensor([-0.2, 0.3, 0.5, 1.7]), bits=1).tolist()
    [0.0, 0.0, 1.0, 1.0]
    """
    if int(bits) < 1 or int(bits) > 32:
        raise InputError(f"bits must be in 1..32, got {bits}")
    levels = float(2 ** int(bits) - 1)
    return torch.floor(x.clamp(0.0, 1.0) * levels + 0.5) / levels
