"""A bank of noise-level-specific denoisers (the 25 IRCNN grey networks), queried by noise level.

Net ``i`` (0-based) of the official bank is trained for ``sigma_i = 2 (i + 1) / 255``. For a requested
``sigma`` the bank uses the net that IRCNN's own code uses: MATLAB ``loadmodel``
(``n = min(25, max(ceil(s / 2), 1))`` with ``s = 255 sigma``, cszn/IRCNN) and KAIR/DPIR
(``ceil(s / 2) - 1`` as the 0-based index), i.e. the first net whose training level is ``>= sigma``,
clipped to the bank. (So ``s = 13`` uses the sigma-14 net and ``s = 7.65`` the sigma-8 net.) A tolerance
of 1e-6 on the 0..255 scale keeps ``s = 14`` on the sigma-14 net despite float rounding of ``14 / 255 * 255``.
For a bank with other training levels the same rule (first level ``>= sigma``, else the last) applies.

Example::

    >>> import torch
    >>> from podm_cli.nets.ircnn import IRCNNDenoiser
    >>> bank = DenoiserBank([IRCNNDenoiser(channels=4) for _ in range(25)])
    >>> [bank.index_for(s / 255) for s in (0.5, 2, 2.01, 7.65, 13, 14, 49, 80)]
    [0, 0, 1, 3, 6, 6, 24, 24]
    >>> bank.denoise(torch.rand(3, 1, 16, 16), torch.tensor([0.01, 0.05, 0.2])).shape
    torch.Size([3, 1, 16, 16])
"""

from __future__ import annotations

import itertools
import math
import os
from collections.abc import Sequence
from pathlib import Path

import torch
from torch import Tensor, nn

from podm_cli.errors import InputError
from podm_cli.nets.weights import (
    IRCNN_COUNT,
    KERAS_RELPATH,
    export_ircnn_pth,
    load_ircnn_pth,
    load_keras_ircnn_dir,
)

__all__ = ["DenoiserBank", "bank_index", "default_keras_dir", "official_sigmas", "to_255"]

_TOL_255 = 1e-6


def to_255(sigma) -> float:
    """A noise level on [0, 1] on the 0..255 scale the networks were trained and named on (the one place
    outside the networks' own files where podm converts).

    >>> to_255(13 / 255)
    13.0
    """
    return float(sigma) * 255.0


def official_sigmas(count: int = IRCNN_COUNT) -> tuple[float, ...]:
    """Training noise levels of the official bank on the [0, 1] scale: ``2 (i + 1) / 255``."""
    return tuple(2.0 * (i + 1) / 255.0 for i in range(count))


def bank_index(sigma: float, sigmas: Sequence[float] | None = None) -> int:
    """0-based index of the net for noise level ``sigma`` ([0, 1]) in a bank trained at ``sigmas``
    (default: the official 25): the first level ``>= sigma`` (1e-6 tolerance on 0..255), else the last."""
    levels = official_sigmas() if sigmas is None else sigmas
    s = to_255(sigma)
    if not math.isfinite(s):
        raise InputError(f"denoiser noise level must be finite, got {sigma}")
    for i, t in enumerate(levels):
        if to_255(t) >= s - _TOL_255:
            return i
    return len(levels) - 1


def default_keras_dir(root: str | os.PathLike | None = None) -> Path:
    """``<data root>/weights/ircnn_gray_keras`` (data root from :func:`podm_cli.data.locator.data_root`)."""
    from podm_cli.data.locator import data_root

    return data_root(root) / KERAS_RELPATH


class DenoiserBank(nn.Module):
    """Denoisers indexed by training noise level; :meth:`denoise` picks one per batch item.

    Args:
        nets: the networks, ordered by increasing training noise level; each maps ``x -> denoised x``.
        sigmas: their training levels on the [0, 1] scale (default: the official ``2 (i + 1) / 255``).

    The nets run in their own dtype (float32 for the imported weights): inputs are cast to it and the
    result cast back to the input's dtype. Move the bank with ``.to(device)``. The nets' weights are kept
    in ``channels_last`` memory format (faster convolutions); state dicts are unaffected.
    """

    def __init__(self, nets: Sequence[nn.Module], sigmas: Sequence[float] | None = None):
        super().__init__()
        if len(nets) == 0:
            raise InputError("a denoiser bank needs at least one network")
        self.nets = nn.ModuleList(nets)
        sig = official_sigmas(len(nets)) if sigmas is None else tuple(float(s) for s in sigmas)
        if len(sig) != len(nets) or any(b <= a for a, b in itertools.pairwise(sig)):
            raise InputError("bank sigmas must be increasing, one per network")
        self.sigmas: tuple[float, ...] = sig
        # channels_last: the 64-channel 3x3 convs run ~1.4x faster on CPU (oneDNN), same numbers.
        self.nets.to(memory_format=torch.channels_last)
        self.eval()

    # -- construction ----------------------------------------------------------------------------------
    @classmethod
    def from_keras_dir(cls, path: str | os.PathLike | None = None, count: int = IRCNN_COUNT) -> DenoiserBank:
        """The official bank from ``net1.hdf5 .. net25.hdf5`` (default: ``<data root>/weights/ircnn_gray_keras``)."""
        return cls(load_keras_ircnn_dir(default_keras_dir() if path is None else path, count))

    @classmethod
    def from_pth(cls, path: str | os.PathLike) -> DenoiserBank:
        """A bank from a ``.pth`` in the public ``ircnn_gray.pth`` layout (loaded weights-only)."""
        nets = load_ircnn_pth(path)
        return cls(nets)

    def to_pth(self, path: str | os.PathLike) -> Path:
        """Write the bank in the ``ircnn_gray.pth`` layout (``{'0': state_dict, ...}``)."""
        return export_ircnn_pth(list(self.nets), path)

    # -- selection -------------------------------------------------------------------------------------
    def __len__(self) -> int:
        return len(self.nets)

    @property
    def sigmas255(self) -> tuple[float, ...]:
        return tuple(to_255(s) for s in self.sigmas)

    def index_for(self, sigma: float) -> int:
        """0-based index of the net used for noise level ``sigma`` ([0, 1] scale); see the module doc."""
        return bank_index(sigma, self.sigmas)

    def net_for(self, sigma: float) -> nn.Module:
        """The network :meth:`denoise` would use for ``sigma``."""
        return self.nets[self.index_for(sigma)]

    # -- inference -------------------------------------------------------------------------------------
    def denoise(self, x: Tensor, sigma) -> Tensor:
        """Denoise a batch ``x`` (N, C, H, W) at ``sigma``: a float, or one value per item ((N,) tensor).

        Items that map to the same net run together. Autograd is left to the caller (wrap in
        ``torch.no_grad()`` for inference).
        """
        if x.ndim != 4:
            raise InputError(f"denoise expects (N, C, H, W), got shape {tuple(x.shape)}")
        sig = torch.as_tensor(sigma, dtype=torch.float64).reshape(-1).tolist()
        if len(sig) not in (1, x.shape[0]):
            raise InputError(f"need one sigma or one per batch item ({x.shape[0]}), got {len(sig)}")
        idx = [self.index_for(s) for s in sig]
        p = next(self.nets[idx[0]].parameters())
        xin = x.to(dtype=p.dtype, device=p.device).contiguous(memory_format=torch.channels_last)
        if len(set(idx)) == 1:
            out = self.nets[idx[0]](xin)
        else:
            out = torch.empty_like(xin)
            for i in sorted(set(idx)):
                sel = torch.tensor([j for j, k in enumerate(idx) if k == i], device=xin.device)
                out[sel] = self.nets[i](xin[sel])
        return out.to(dtype=x.dtype, device=x.device).contiguous()

    def forward(self, x: Tensor, sigma) -> Tensor:
        return self.denoise(x, sigma)
