"""FFT helpers: fast transform sizes and the optical transfer function of a blur kernel.

Convention (shared with :mod:`podm_cli.physics.blur`): a kernel ``k`` of size ``(kh, kw)`` has its
centre at ``(kh // 2, kw // 2)`` (MATLAB's ``psf2otf`` convention).  :func:`psf2otf` zero-pads the
kernel to the image size and rolls that centre to ``(0, 0)``, so multiplying ``rfft2(x)`` by the OTF is
the circular convolution ``(k * x)[i] = sum_a k[a] x[i - a + c]`` with ``c = (kh // 2, kw // 2)``.
"""

from __future__ import annotations

import functools

import torch

from podm_cli.errors import InputError

__all__ = ["next_fast_len", "psf2otf"]


@functools.lru_cache(maxsize=4096)
def _is_7_smooth(m: int) -> bool:
    for p in (2, 3, 5, 7):
        while m % p == 0:
            m //= p
    return m == 1


def next_fast_len(n: int) -> int:
    """Smallest ``2^a 3^b 5^c 7^d`` that is ``>= n`` (a size pocketfft/cuFFT transform quickly).

    >>> [next_fast_len(n) for n in (1, 11, 255, 281, 1031)]
    [1, 12, 256, 288, 1050]
    """
    n = int(n)
    if n < 1:
        raise InputError(f"FFT size must be a positive integer, got {n}")
    m = n
    while not _is_7_smooth(m):  # 7-smooth numbers are dense: the gap is tiny for image sizes
        m += 1
    return m


def psf2otf(kernel: torch.Tensor, shape: tuple[int, int]) -> torch.Tensor:
    """Real-FFT optical transfer function of ``kernel`` for images of size ``shape = (H, W)``.

    ``kernel`` is ``(kh, kw)`` or batched ``(..., kh, kw)`` (e.g. ``(N, 1, kh, kw)``), real.  The result
    has shape ``(..., H, W // 2 + 1)`` and the complex dtype matching the kernel's real dtype, so it
    broadcasts against ``torch.fft.rfft2`` of an ``(N, C, H, W)`` batch.

    >>> k = torch.zeros(3, 3, dtype=torch.float64); k[1, 1] = 1.0
    >>> bool(torch.allclose(psf2otf(k, (8, 8)), torch.ones(8, 5, dtype=torch.complex128)))
    True
    """
    if kernel.ndim < 2:
        raise InputError(f"kernel must have at least 2 dimensions, got shape {tuple(kernel.shape)}")
    if not kernel.is_floating_point():
        kernel = kernel.to(torch.get_default_dtype())
    H, W = int(shape[0]), int(shape[1])
    kh, kw = kernel.shape[-2:]
    if kh > H or kw > W:
        raise InputError(f"kernel {kh}x{kw} is larger than the image/transform size {H}x{W}")
    padded = kernel.new_zeros(*kernel.shape[:-2], H, W)
    padded[..., :kh, :kw] = kernel
    padded = torch.roll(padded, shifts=(-(kh // 2), -(kw // 2)), dims=(-2, -1))
    return torch.fft.rfft2(padded)
