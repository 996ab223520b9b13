"""The one interface every deconvolution method implements: ``method(y, kernel, sigma) -> x``.

A method restores a batch of blurred images ``y`` (N, C, H, W) in [0, 1] given the blur kernel
(``(kh, kw)`` for the batch or ``(N, 1, kh, kw)`` per item) and the noise level ``sigma`` (a float or a
(N,) tensor, on the [0, 1] scale). Methods solve the *circular* problem in :meth:`restore_circular`;
:meth:`__call__` handles ``valid`` observations by extending ``y`` (Liu-Jia wrap-around, edgetaper or
replicate padding), solving circularly and cropping back, so every method treats boundaries alike.

Example::

    >>> import torch
    >>> from podm_cli.methods.base import Method
    >>> class Identity(Method):
    ...     name = "identity"
    ...     def restore_circular(self, y, kernel, sigma):
    ...         return y
    >>> Identity()(torch.rand(1, 1, 32, 32), torch.ones(3, 3) / 9, 0.01).shape
    torch.Size([1, 1, 32, 32])
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import torch
from torch import Tensor


def channels_as_batch(y: Tensor, kernel: Tensor, sigma: Tensor, who: str):
    """Single-channel view of an ``(N, C, H, W)`` batch for methods that restore channel by channel:
    ``(y' (N*C, 1, H, W), kernel (per item repeated per channel), sigma (N*C,))`` in float64 for float64
    input, float32 otherwise. Reshape results back with ``x.reshape(y.shape)``.

    >>> sigma = torch.tensor([1.0, 2.0])
    >>> yy, k, s = channels_as_batch(torch.rand(2, 3, 8, 8), torch.ones(3, 3) / 9, sigma, "demo")
    >>> tuple(yy.shape), tuple(k.shape), s.tolist()
    ((6, 1, 8, 8), (3, 3), [1.0, 1.0, 1.0, 2.0, 2.0, 2.0])
    """
    if y.ndim != 4:
        from podm_cli.errors import InputError

        raise InputError(f"{who}: y must be (N, C, H, W), got {tuple(y.shape)}")
    work = torch.float64 if y.dtype == torch.float64 else torch.float32
    n, c, h, w = y.shape
    k = kernel.to(work)
    if k.ndim == 4 and c > 1:
        k = k.repeat_interleave(c, dim=0)
    return y.to(work).reshape(n * c, 1, h, w), k, sigma.to(work).repeat_interleave(c)


@dataclass(frozen=True)
class Requirements:
    """What a method needs; ``podm eval`` uses it to say clearly why a method was skipped."""

    files: tuple[str, ...] = ()  # paths relative to the data root (weights); missing -> skipped
    fetch: str = "weights"  # `podm data fetch <fetch>` obtains them
    prefers_gpu: bool = False  # runs on CPU, but slowly
    notes: tuple[str, ...] = field(default_factory=tuple)


class Method:
    """Base class of all methods (plain Python: no Hydra, no training code).

    Subclasses set ``name`` (registry key), ``source`` (how the numbers are produced, written to
    results.json) and implement :meth:`restore_circular`.
    """

    name: str = "method"
    source: str = "recomputed"
    requirements: Requirements = Requirements()
    #: Peak working memory per pixel of the extended (padded) image and per channel, bytes, on CPU: what
    #: ``podm deblur tile=auto`` budgets with (``python scripts/bench.py --memory-per-pixel`` measures it).
    bytes_per_pixel: float = 1000.0
    #: Optional ``stage_callback(index, x)``: methods with stages (IRCNN's iterations, PODM's stages) report
    #: each stage's estimate through :meth:`_emit_stage`, cropped like the result (``podm deblur
    #: save_stages=true``). ``None`` (default) costs nothing.
    stage_callback = None
    _stage_crop: tuple[slice, slice] | None = None

    def __init__(self, mode: str = "circular", boundary: str = "liu", edgetaper_iterations: int = 3):
        self.mode = mode
        self.boundary = boundary
        self.edgetaper_iterations = edgetaper_iterations

    # -- to implement -------------------------------------------------------------------------
    def restore_circular(self, y: Tensor, kernel: Tensor, sigma: Tensor) -> Tensor:
        """Restore ``y`` assuming a circular (periodic) blur; returns a tensor shaped like ``y``."""
        raise NotImplementedError

    # -- shared -------------------------------------------------------------------------------
    def missing(self, data_root: Path) -> str | None:
        """``None`` when the method can run with this data root, else one line saying why not."""
        absent = [rel for rel in self.requirements.files if not (Path(data_root) / rel).exists()]
        if absent:
            return (
                f"{self.name} needs {absent[0]}"
                + (f" and {len(absent) - 1} more file(s)" if len(absent) > 1 else "")
                + f" under {data_root}; run `podm data fetch {self.requirements.fetch}`"
            )
        return None

    def _emit_stage(self, index: int, x: Tensor) -> None:
        """Hand stage ``index``'s estimate (the circular-domain iterate) to :attr:`stage_callback`, if set."""
        if self.stage_callback is not None:
            crop = self._stage_crop
            self.stage_callback(index, x if crop is None else x[..., crop[0], crop[1]])

    def _stage_hook(self):
        """``_emit_stage`` as a solver ``callback(index, x, record)``, or ``None`` when nobody listens."""
        return None if self.stage_callback is None else (lambda index, x, _record: self._emit_stage(index, x))

    def to(self, device: torch.device | str) -> "Method":
        """Move learned parameters (if any) to ``device``; returns ``self``."""
        return self

    @torch.no_grad()
    def __call__(self, y: Tensor, kernel: Tensor, sigma: float | Tensor, mode: str | None = None) -> Tensor:
        mode = mode or self.mode
        sigma_t = torch.as_tensor(sigma, dtype=y.dtype, device=y.device).reshape(-1)
        if sigma_t.numel() == 1:
            sigma_t = sigma_t.expand(y.shape[0])
        kernel = kernel.to(device=y.device, dtype=y.dtype)
        if mode == "circular":
            self._stage_crop = None
            return self.restore_circular(y, kernel, sigma_t)
        if mode != "valid":
            raise ValueError(f"unknown blur mode {mode!r} (circular | valid)")
        from podm_cli.physics import extend_for_deconv

        y_ext, crop = extend_for_deconv(
            y, kernel, method=self.boundary, taper_iterations=self.edgetaper_iterations
        )
        self._stage_crop = crop
        x_ext = self.restore_circular(y_ext, kernel, sigma_t)
        return x_ext[..., crop[0], crop[1]].contiguous()
