"""Evaluation: per-image PSNR/SSIM under a named protocol's :class:`Scoring` (border, best shift).

Example:
    >>> import torch
    >>> from podm_cli.evaluation import Scoring, score
    >>> ref = torch.zeros(1, 1, 16, 16)
    >>> p, s = score(ref + 0.1, ref, Scoring())
    >>> f"{p.item():.2f}"
    '20.00'
"""

from podm_cli.evaluation.metrics import (
    SSIM_K1,
    SSIM_K2,
    SSIM_SIGMA,
    SSIM_WINDOW,
    Scores,
    Scoring,
    best_shift,
    psnr,
    score,
    score_details,
    ssim,
)

__all__ = [
    "SSIM_K1",
    "SSIM_K2",
    "SSIM_SIGMA",
    "SSIM_WINDOW",
    "Scores",
    "Scoring",
    "best_shift",
    "psnr",
    "score",
    "score_details",
    "ssim",
]
