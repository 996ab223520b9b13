"""Evaluation: the runner over protocol datasets, per-image records, reports and studies.

The metrics themselves (PSNR, SSIM, border discard, shift alignment, :class:`~podm_cli.metrics.Scoring`)
live at the bottom layer in :mod:`podm_cli.metrics`, so data, solvers and training can use them too.
"""
