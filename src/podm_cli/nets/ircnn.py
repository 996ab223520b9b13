"""The IRCNN denoiser (Zhang, Zuo, Gu & Zhang, "Learning Deep CNN Denoiser Prior for Image Restoration",
CVPR 2017): seven dilated 3x3 convolutions (dilations 1, 2, 3, 4, 3, 2, 1), 64 channels, ReLU between
them, no batch norm. The network predicts the noise, so ``denoised = x - net(x)``.

Parameters live in ``self.model`` (an ``nn.Sequential`` of conv, ReLU, conv, ...), so the state-dict
keys are ``model.0.weight``, ``model.0.bias``, ``model.2.weight``, ... ``model.12.bias`` -- the layout the
public PyTorch ``ircnn_gray.pth`` uses for each of its 25 sub-state-dicts (see :mod:`podm_cli.nets.weights`).

Example::

    >>> import torch
    >>> net = IRCNNDenoiser()
    >>> net(torch.rand(2, 1, 20, 24)).shape
    torch.Size([2, 1, 20, 24])
    >>> IRCNNDenoiser.receptive_field()
    33
"""

from __future__ import annotations

from collections.abc import Sequence

from torch import Tensor, nn

__all__ = ["IRCNN_DILATIONS", "IRCNNDenoiser"]

#: The dilation of each 3x3 convolution, input to output.
IRCNN_DILATIONS: tuple[int, ...] = (1, 2, 3, 4, 3, 2, 1)


class IRCNNDenoiser(nn.Module):
    """IRCNN denoiser: ``x - body(x)`` with ``body`` = dilated 3x3 convs with ReLU between (no BN).

    Args:
        in_channels: image channels (1 for grey, 3 for colour).
        out_channels: defaults to ``in_channels`` (the residual has the image's shape).
        channels: feature channels of the hidden layers (64 in the paper).
        dilations: one dilation per convolution; padding = dilation keeps the size ("same" padding
            with zeros, as Keras ``padding='same'`` and MatConvNet do for odd kernels).
    """

    def __init__(
        self,
        in_channels: int = 1,
        out_channels: int | None = None,
        channels: int = 64,
        dilations: Sequence[int] = IRCNN_DILATIONS,
    ):
        super().__init__()
        dilations = tuple(int(d) for d in dilations)
        if len(dilations) < 2 or min(dilations) < 1:
            raise ValueError(f"IRCNN needs >= 2 convolutions with dilations >= 1, got {dilations}")
        out_channels = in_channels if out_channels is None else out_channels
        self.in_channels, self.out_channels, self.channels = (
            int(in_channels),
            int(out_channels),
            int(channels),
        )
        self.dilations = dilations
        layers: list[nn.Module] = []
        for i, d in enumerate(dilations):
            cin = in_channels if i == 0 else channels
            cout = out_channels if i == len(dilations) - 1 else channels
            layers.append(nn.Conv2d(cin, cout, 3, padding=d, dilation=d, bias=True))
            if i < len(dilations) - 1:
                layers.append(nn.ReLU(inplace=True))
        self.model = nn.Sequential(*layers)

    @property
    def convs(self) -> list[nn.Conv2d]:
        """The convolutions, input to output."""
        return [m for m in self.model if isinstance(m, nn.Conv2d)]

    @classmethod
    def receptive_field(cls, dilations: Sequence[int] = IRCNN_DILATIONS) -> int:
        """Side of the receptive field in pixels (``1 + 2 * sum(dilations)`` for 3x3 kernels)."""
        return 1 + 2 * sum(int(d) for d in dilations)

    def residual(self, x: Tensor) -> Tensor:
        """The predicted noise ``net(x)``."""
        return self.model(x)

    def forward(self, x: Tensor) -> Tensor:
        return x - self.model(x)

    def extra_repr(self) -> str:
        return f"dilations={self.dilations}"
