"""A small residual UNet denoiser (``scales`` resolutions, residual blocks, additive skips).

Widths double per scale (``channels``, ``2 channels``, ``4 channels`` for 3 scales); downsampling is a
stride-2 conv, upsampling a stride-2 transposed conv, and skips are added (as in DRUNet) rather than
concatenated. Inputs of any size work: they are replicate-padded to a multiple of ``2**(scales-1)`` and
cropped back. Output is residual: ``denoised = x - net(x)``.

Example::

    >>> import torch
    >>> ResUNet(channels=8, scales=3)(torch.rand(2, 1, 30, 21)).shape
    torch.Size([2, 1, 30, 21])
"""

from __future__ import annotations

import torch.nn.functional as F
from torch import Tensor, nn

__all__ = ["ResUNet"]


class _ResBlock(nn.Module):
    def __init__(self, c: int):
        super().__init__()
        self.conv1 = nn.Conv2d(c, c, 3, padding=1)
        self.conv2 = nn.Conv2d(c, c, 3, padding=1)

    def forward(self, x: Tensor) -> Tensor:
        return x + self.conv2(F.relu(self.conv1(x)))


class ResUNet(nn.Module):
    """Residual UNet with ``scales`` resolutions and ``blocks`` residual blocks per scale."""

    def __init__(
        self,
        in_channels: int = 1,
        out_channels: int | None = None,
        channels: int = 32,
        scales: int = 3,
        blocks: int = 1,
    ):
        super().__init__()
        if scales < 1:
            raise ValueError(f"ResUNet needs scales >= 1, got {scales}")
        out_channels = in_channels if out_channels is None else out_channels
        self.scales = int(scales)
        widths = [channels * 2**s for s in range(scales)]
        self.head = nn.Conv2d(in_channels, widths[0], 3, padding=1)
        self.enc = nn.ModuleList(nn.Sequential(*[_ResBlock(w) for _ in range(blocks)]) for w in widths[:-1])
        self.down = nn.ModuleList(nn.Conv2d(widths[s], widths[s + 1], 2, stride=2) for s in range(scales - 1))
        self.bottom = nn.Sequential(*[_ResBlock(widths[-1]) for _ in range(blocks)])
        self.up = nn.ModuleList(
            nn.ConvTranspose2d(widths[s + 1], widths[s], 2, stride=2) for s in range(scales - 1)
        )
        self.dec = nn.ModuleList(nn.Sequential(*[_ResBlock(w) for _ in range(blocks)]) for w in widths[:-1])
        self.tail = nn.Conv2d(widths[0], out_channels, 3, padding=1)

    def residual(self, x: Tensor) -> Tensor:
        h, w = x.shape[-2:]
        m = 2 ** (self.scales - 1)
        ph, pw = (-h) % m, (-w) % m
        z = F.pad(x, (0, pw, 0, ph), mode="replicate") if (ph or pw) else x
        z = self.head(z)
        skips = []
        for s in range(self.scales - 1):
            z = self.enc[s](z)
            skips.append(z)
            z = self.down[s](z)
        z = self.bottom(z)
        for s in reversed(range(self.scales - 1)):
            z = self.dec[s](self.up[s](z) + skips[s])
        return self.tail(z)[..., :h, :w]

    def forward(self, x: Tensor) -> Tensor:
        return x - self.residual(x)
