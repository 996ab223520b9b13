"""Fourier Deconvolution Network (FDN; Kruse, Rother & Schmidt, ICCV 2017), reimplemented in PyTorch.

A cascade of ``T`` stages; stage ``t`` maps the estimate ``x_t`` (images on [0, 1]) to

    x_{t+1} = F^-1[ (lam_t conj(K) F(phi_t) + F(c_t(x_t))) / (lam_t |K|^2 + sum_i |F(f_ti)|^2) ]

which is the paper's update with ``w_t = 1 / lam_t``:

* ``c_t`` -- a CNN on the replicate-padded estimate (20 px each side, cropped again afterwards): five 3x3
  convolutions of 32 channels with ELU, then one 3x3 convolution to 1 channel, linear; zero ``same`` padding
  inside;
* ``lam_t = w_t(sigma)^-1`` -- an MLP of the noise level: input ``1 / s^2`` with ``s = 255 sigma`` (sigma on
  [0, 1]), three dense layers of 16 with ELU, one dense output with softplus;
* ``f_ti`` -- 24 learned 5x5 filters, each a linear combination (``filter_weights``, 24x24) of the 24 non-DC
  2-D DCT atoms;
* ``phi_t`` -- the observation with boundary adjustment (:class:`~podm_cli.physics.DataTerm`, ``boundary=
  "adjust"``): at ``t = 0`` the blurred image ``y`` padded with replicated edges to the data term's grid
  (``next_fast_len(h + kh - 1)`` by ``next_fast_len(w + kw - 1)``, ``y`` centred) and edgetapered three
  times; for ``t > 0``, ``phi_t = P0 y + (1 - M) (k * x_t)``: ``y`` where it was observed, the circular blur
  of the current estimate elsewhere.

The cascade starts from ``x_0 = phi_0``; the result is the grid's crop aligned with ``y``.  (The authors'
code used the grid ``h + kh - 1`` exactly and, inside ``M``, the edgetapered rather than the raw ``y``;
docs/fdn.md measures the difference.)

Example::

    >>> import torch
    >>> net = FDN([FDNStage() for _ in range(2)])
    >>> k = torch.ones(5, 5) / 25
    >>> y = torch.rand(1, 1, 24, 24)
    >>> tuple(net(y, k, torch.tensor([1.5 / 255])).shape)
    (1, 1, 24, 24)
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from podm_cli.errors import InputError
from podm_cli.physics.data_term import DataTerm, item_weight
from podm_cli.physics.fft import psf2otf

__all__ = ["CNN_PAD", "FDN", "FDNStage", "FILTER_SIZE", "TAPERS", "dct_atoms"]

FILTER_SIZE = 5  # the learned filters are 5x5
CNN_PAD = 20  # replicate padding around the CNN's input, cropped after it
TAPERS = 3  # edgetaper iterations on the padded observation at t = 0


def dct_atoms(size: int = FILTER_SIZE, dtype=torch.float64) -> Tensor:
    """The ``size^2 - 1`` non-DC orthonormal 2-D DCT atoms, ``(size^2 - 1, size, size)``.

    Atom ``j`` (``j = 0 .. size^2 - 2``) is basis index ``i = j + 1``; with ``c_n`` the orthonormal DCT-II
    vector of frequency ``n``, atom ``i`` is ``c_(i mod size)`` along rows times ``c_(i div size)`` along
    columns: ``A_i[a, b] = c_(i % size)(a) c_(i // size)(b)`` (the layout the released weights combine).

    >>> a = dct_atoms(5)  # a[0] is i = 1: the first cosine down the rows, constant along each row
    >>> tuple(a.shape), bool(torch.allclose(a[0], a[0][:, :1].expand(5, 5))), bool(torch.allclose(a[4], a[4][:1]))
    ((24, 5, 5), True, True)
    """
    n = torch.arange(size, dtype=dtype)
    freq = torch.arange(size, dtype=dtype)
    c = torch.cos(math.pi * (2 * n[None, :] + 1) * freq[:, None] / (2 * size))  # c[f, n]
    c = c * torch.where(freq == 0, math.sqrt(1.0 / size), math.sqrt(2.0 / size))[:, None]
    idx = torch.arange(1, size * size)
    return c[idx % size][:, :, None] * c[idx // size][:, None, :]


class FDNStage(nn.Module):
    """One FDN stage: the CNN ``c_t``, the noise MLP ``lam_t`` and the 24 filter combinations."""

    def __init__(self, channels: int = 32, depth: int = 6, hidden: int = 16, mlp_depth: int = 3):
        super().__init__()
        widths = [1] + [channels] * (depth - 1) + [1]
        self.convs = nn.ModuleList(nn.Conv2d(a, b, 3, padding=1) for a, b in zip(widths[:-1], widths[1:]))
        dims = [1] + [hidden] * mlp_depth + [1]
        self.dense = nn.ModuleList(nn.Linear(a, b) for a, b in zip(dims[:-1], dims[1:]))
        nf = FILTER_SIZE * FILTER_SIZE - 1
        self.filter_weights = nn.Parameter(torch.eye(nf))
        self.register_buffer("atoms", dct_atoms(FILTER_SIZE, torch.float32), persistent=False)

    def regularizer(self, x: Tensor) -> Tensor:
        """``c_t(x)``: the CNN on each channel of ``x`` (``(N, C, H, W)``) replicate-padded by 20 px, cropped
        back; computed in the parameters' dtype, returned in ``x``'s."""
        v = x.reshape(-1, 1, *x.shape[-2:]).to(self.filter_weights.dtype)
        v = F.pad(v, (CNN_PAD,) * 4, mode="replicate")
        for i, conv in enumerate(self.convs):
            v = conv(v)
            if i < len(self.convs) - 1:
                v = F.elu(v)
        return v[..., CNN_PAD:-CNN_PAD, CNN_PAD:-CNN_PAD].reshape(x.shape).to(x.dtype)

    def weight(self, sigma: Tensor) -> Tensor:
        """``lam_t`` ``(N,)`` for noise levels ``sigma`` ``(N,)`` on [0, 1] (the MLP reads ``1 / (255 sigma)^2``)."""
        v = (1.0 / (255.0 * sigma) ** 2).reshape(-1, 1).to(self.filter_weights.dtype)
        for i, layer in enumerate(self.dense):
            v = layer(v)
            v = F.elu(v) if i < len(self.dense) - 1 else F.softplus(v)
        return v.reshape(-1)

    def filters(self) -> Tensor:
        """The 24 learned 5x5 filters ``(24, 5, 5)``: ``filters[j] = sum_i filter_weights[i, j] atoms[i]``."""
        return torch.einsum("iab,ij->jab", self.atoms.to(self.filter_weights.dtype), self.filter_weights)

    def filter_spectrum(self, shape: tuple[int, int]) -> Tensor:
        """``sum_i |F(f_i)|^2`` on an ``H x W`` grid, half spectrum ``(H, W // 2 + 1)``."""
        otf = psf2otf(self.filters(), shape)
        return (otf.real**2 + otf.imag**2).sum(0)

    def forward(self, x: Tensor, data: DataTerm, sigma: Tensor, adjust: bool = True) -> Tensor:
        """``x_{t+1}`` from ``x_t`` (``(N, C, H, W)`` on ``data.grid``): the closed-form Fourier step
        ``data.solve_quadratic`` with ``extra = F(c_t(x)) / lam_t``, ``weight = 1 / lam_t`` and the filters'
        spectrum; ``adjust``: the observation is boundary-adjusted with ``x`` (``data.observation(x)``)."""
        lam = self.weight(sigma).to(x.dtype)
        inv = 1.0 / lam
        extra_hat = torch.fft.rfft2(self.regularizer(x)) * item_weight(inv, x)
        reg_sq = self.filter_spectrum(data.grid).to(x.dtype)
        return data.solve_quadratic(extra_hat, inv, reg_sq, x=x if adjust else None)


class FDN(nn.Module):
    """The cascade: ``FDN(stages)(y, kernel, sigma)`` restores ``y`` (``(N, C, h, w)``, [0, 1], each channel
    alone).

    ``mode="valid"`` (default): ``y`` is a ``valid`` blur (real photographs) and is padded, edgetapered and
    boundary-adjusted as in the module docstring (``adjust=False``: edgetapered only); ``mode="circular"``:
    ``y`` is a circular blur, the grid is ``y``'s own and ``phi_t = y`` throughout.  ``on_stage(t, x)``
    (optional) receives every stage's estimate, cropped like the result.
    """

    def __init__(self, stages: Sequence[FDNStage]):
        super().__init__()
        if not stages:
            raise InputError("fdn: a cascade needs at least one stage")
        self.stages = nn.ModuleList(stages)

    def forward(self, y: Tensor, kernel: Tensor, sigma: Tensor, mode: str = "valid", adjust: bool = True,
                on_stage: Callable[[int, Tensor], None] | None = None) -> Tensor:
        sigma = torch.as_tensor(sigma, dtype=y.dtype, device=y.device).reshape(-1).expand(y.shape[0])
        data = DataTerm.build(y, kernel, mode=mode, boundary="adjust" if adjust else "edgetaper",
                              taper_iterations=TAPERS, start="edgetaper")
        hook = None if on_stage is None else (lambda t, x: on_stage(t, data.output(x)))
        return data.output(self.run(data, sigma, hook))

    def run(self, data: DataTerm, sigma: Tensor, on_stage: Callable[[int, Tensor], None] | None = None) -> Tensor:
        """The cascade on a built data term; returns ``x_T`` on ``data.grid`` (``on_stage``: grid estimates).
        Every stage after the first adjusts the boundary when the data term does (``boundary="adjust"``)."""
        x = data.initial()
        for t, stage in enumerate(self.stages):
            x = stage(x, data, sigma, adjust=t > 0)
            if on_stage is not None:
                on_stage(t, x)
        return x
