"""DnCNN (Zhang, Zuo, Chen, Meng & Zhang, "Beyond a Gaussian Denoiser", IEEE TIP 2017): ``depth`` 3x3
convolutions, 64 channels; conv+ReLU, then ``depth - 2`` x (conv+BN+ReLU), then conv; residual output
``denoised = x - net(x)``.

Parameters live in ``self.model`` (a flat ``nn.Sequential``), so the state-dict keys follow the module
order: with batch norm ``model.0`` conv, ``model.2`` conv, ``model.3`` BN, ``model.5`` conv, ...; without
it (``batch_norm=False``, e.g. after :meth:`DnCNN.fold_batchnorm`) ``model.0``, ``model.2``, ...,
``model.{2 * (depth - 1)}`` -- the layout of plain PyTorch DnCNN state dicts such as KAIR's
``dncnn_25.pth`` (17 convs, BN already folded into the convs). :meth:`DnCNN.from_state_dict` infers
depth, width, channels and whether BN is present from the keys.

Example::

    >>> import torch
    >>> net = DnCNN(depth=5, channels=16).eval()
    >>> x = torch.rand(1, 1, 24, 24)
    >>> folded = net.fold_batchnorm()
    >>> bool(torch.allclose(net(x), folded(x), atol=1e-5)), folded.batch_norm
    (True, False)
"""

from __future__ import annotations

import copy
import re
from collections.abc import Mapping

import torch
from torch import Tensor, nn

__all__ = ["DnCNN"]


class DnCNN(nn.Module):
    """DnCNN with optional batch norm, residual output.

    Args:
        in_channels: image channels.
        out_channels: defaults to ``in_channels``.
        channels: hidden feature channels (64).
        depth: number of convolutions (17 for the sigma-specific grey models).
        batch_norm: BN after each middle convolution (training); ``False`` for folded/inference models.
    """

    def __init__(
        self,
        in_channels: int = 1,
        out_channels: int | None = None,
        channels: int = 64,
        depth: int = 17,
        batch_norm: bool = True,
    ):
        super().__init__()
        if depth < 2:
            raise ValueError(f"DnCNN needs depth >= 2, got {depth}")
        out_channels = in_channels if out_channels is None else out_channels
        self.in_channels, self.out_channels = int(in_channels), int(out_channels)
        self.channels, self.depth, self.batch_norm = int(channels), int(depth), bool(batch_norm)
        layers: list[nn.Module] = [nn.Conv2d(in_channels, channels, 3, padding=1), nn.ReLU(inplace=True)]
        for _ in range(depth - 2):
            layers.append(nn.Conv2d(channels, channels, 3, padding=1))
            if batch_norm:
                layers.append(nn.BatchNorm2d(channels, eps=1e-4, momentum=0.05))
            layers.append(nn.ReLU(inplace=True))
        layers.append(nn.Conv2d(channels, out_channels, 3, padding=1))
        self.model = nn.Sequential(*layers)

    def forward(self, x: Tensor) -> Tensor:
        return x - self.model(x)

    # -- state dicts ----------------------------------------------------------------------------------
    @classmethod
    def from_state_dict(cls, state: Mapping[str, Tensor], strict: bool = True) -> DnCNN:
        """Build a DnCNN shaped like ``state`` (keys ``[module.]model.<i>.<param>``) and load it."""
        state = _strip_prefixes(state)
        convs = sorted(
            {
                int(m.group(1))
                for k, v in state.items()
                if (m := re.fullmatch(r"(\d+)\.weight", k)) and v.ndim == 4
            }
        )
        if len(convs) < 2:
            raise ValueError("not a DnCNN state dict: need >= 2 conv weights under model.<i>.weight")
        first, last = state[f"{convs[0]}.weight"], state[f"{convs[-1]}.weight"]
        has_bn = any(k.endswith("running_mean") for k in state)
        net = cls(
            in_channels=first.shape[1],
            out_channels=last.shape[0],
            channels=first.shape[0],
            depth=len(convs),
            batch_norm=has_bn,
        )
        net.model.load_state_dict(state, strict=strict)
        return net

    @torch.no_grad()
    def fold_batchnorm(self) -> DnCNN:
        """A BN-free copy computing the same function in eval mode (BN folded into the preceding conv)."""
        if not self.batch_norm:
            return copy.deepcopy(self)
        out = DnCNN(self.in_channels, self.out_channels, self.channels, self.depth, batch_norm=False)
        out = out.to(device=next(self.parameters()).device, dtype=next(self.parameters()).dtype)
        src = list(self.model)
        dst_convs = [m for m in out.model if isinstance(m, nn.Conv2d)]
        j = 0
        for i, m in enumerate(src):
            if not isinstance(m, nn.Conv2d):
                continue
            w, b = m.weight.clone(), (m.bias.clone() if m.bias is not None else torch.zeros(m.out_channels))
            nxt = src[i + 1] if i + 1 < len(src) else None
            if isinstance(nxt, nn.BatchNorm2d):
                scale = nxt.weight / torch.sqrt(nxt.running_var + nxt.eps)
                w = w * scale.reshape(-1, 1, 1, 1)
                b = (b - nxt.running_mean) * scale + nxt.bias
            dst_convs[j].weight.copy_(w)
            dst_convs[j].bias.copy_(b)
            j += 1
        return out.train(self.training)


def _strip_prefixes(state: Mapping[str, Tensor]) -> dict[str, Tensor]:
    """Keys relative to the Sequential: drop ``module.`` (DataParallel) and ``model.`` prefixes."""
    out = {}
    for k, v in state.items():
        for prefix in ("module.", "model."):
            k = k.removeprefix(prefix)
        out[k] = v
    return out
