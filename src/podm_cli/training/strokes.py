"""Procedural stroke images: high-contrast painted strokes on a smooth background.

BSDS500 crops, podm's training images, are mostly texture. Levin et al.'s test images are not: two of the
four (a drawing with text, a painted face) are smooth regions crossed by dark, sharp-edged strokes, and there,
at high noise, podm's RPODM deconvolved less than IRCNN (docs/training.md, "High noise on Levin's images").
These images are drawn from a seed, so they add that kind of content without any test image: as a validation
proxy (``scripts/rpodm_validation.py --strokes``, which reproduces Levin's smaller margin over IRCNN) and as a
training share (``train_data.stroke_fraction``; tried: the model learned them, Levin did not follow).

* background: a grey level in [0.45, 0.75] plus three octaves of bicubic-upsampled Gaussian noise (cells of
  1/3, 1/6 and 1/12 of the side, amplitudes 0.25, 0.12, 0.05), clipped to [0.05, 0.95];
* ``strokes`` quadratic Bezier curves with random control points, half-width 1-5 px, painted with an
  anti-aliased edge (one pixel of linear ramp); three in four are dark (value in [0, 0.25]), the rest light
  (in [0.75, 0.95]);
* rendered at twice the size and averaged 2 x 2, as a camera's pixels integrate light.

>>> x = stroke_image(48, seed=0)
>>> tuple(x.shape), bool(0 <= x.min() and x.max() <= 1), bool(torch.equal(x, stroke_image(48, seed=0)))
((1, 48, 48), True, True)
"""

from __future__ import annotations

import torch
from torch import Tensor

__all__ = ["stroke_image"]

_SUPERSAMPLE = 2
_CURVE_POINTS = 96


def stroke_image(size: int, seed: int, strokes: int = 14) -> Tensor:
    """A ``(1, size, size)`` float32 stroke image on [0, 1], the same for the same ``seed``."""
    gen = torch.Generator().manual_seed(int(seed))
    side = int(size) * _SUPERSAMPLE
    rand = lambda: float(torch.rand((), generator=gen))  # noqa: E731
    background = torch.full((1, 1, side, side), 0.45 + 0.3 * rand())
    for cells, amplitude in ((3, 0.25), (6, 0.12), (12, 0.05)):
        noise = torch.randn(1, 1, cells, cells, generator=gen)
        background += amplitude * torch.nn.functional.interpolate(noise, size=(side, side), mode="bicubic",
                                                                  align_corners=False)
    img = background[0, 0].clamp(0.05, 0.95)
    rows = torch.arange(side, dtype=torch.float32)[:, None]
    cols = torch.arange(side, dtype=torch.float32)[None, :]
    t = torch.linspace(0, 1, _CURVE_POINTS)[:, None]
    for _ in range(int(strokes)):
        p = torch.rand(3, 2, generator=gen) * side
        curve = (1 - t) ** 2 * p[0] + 2 * (1 - t) * t * p[1] + t**2 * p[2]
        half_width = (1.0 + 4.0 * rand()) * _SUPERSAMPLE
        value = 0.25 * rand() if rand() < 0.75 else 0.75 + 0.2 * rand()
        # the stroke only touches its bounding box (plus its width): distances there only
        lo = (curve.amin(0) - half_width - 1).floor().clamp(0, side - 1).long()
        hi = (curve.amax(0) + half_width + 2).ceil().clamp(1, side).long()
        r, c = rows[lo[0] : hi[0]], cols[:, lo[1] : hi[1]]
        dist2 = torch.full((len(r), c.shape[1]), float("inf"))
        for y, x in curve.tolist():
            dist2 = torch.minimum(dist2, (r - y) ** 2 + (c - x) ** 2)
        cover = (half_width - dist2.sqrt()).clamp(0, 1)
        patch = img[lo[0] : hi[0], lo[1] : hi[1]]
        img[lo[0] : hi[0], lo[1] : hi[1]] = patch * (1 - cover) + value * cover
    return torch.nn.functional.avg_pool2d(img[None, None], _SUPERSAMPLE)[0].float()
