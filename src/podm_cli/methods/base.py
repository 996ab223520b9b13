"""The one interface every deconvolution method implements: ``method(y, kernel, sigma, on_stage=None) -> x``.

A method restores a batch of blurred images ``y`` (N, C, H, W) in [0, 1] given the blur kernel
(``(kh, kw)`` for the batch or ``(N, 1, kh, kw)`` per item) and the noise level ``sigma`` (a float or a
(N,) tensor, on the [0, 1] scale). The base class builds the data term once per call
(:class:`~podm_cli.physics.DataTerm`, from ``y``, the kernel and the method's :class:`BoundaryHandling`) and
hands it to the subclass's :meth:`Method.restore`, which returns the estimate on the data term's grid; the
base crops it (``data.output``) and crops every stage estimate reported through ``on_stage`` the same way.
Boundary handling is one value per method (:attr:`Method.boundary_handling`, set by whoever builds the
method with :meth:`Method.with_boundary`), never constructor arguments of each method.

Example::

    >>> import torch
    >>> from podm_cli.methods.base import Method
    >>> class Wiener(Method):
    ...     name = "wiener"
    ...     def restore(self, data, sigma, on_stage=None):
    ...         x = data.prox(data.initial(), 1e-2)          # one regularised inverse filter on the grid
    ...         if on_stage is not None:
    ...             on_stage(0, x)
    ...         return x
    >>> seen = []
    >>> m = Wiener().with_boundary(boundary="edgetaper")
    >>> m(torch.rand(1, 1, 32, 30), torch.ones(3, 3) / 9, 0.01, mode="valid",
    ...   on_stage=lambda i, x: seen.append(tuple(x.shape))).shape, seen
    (torch.Size([1, 1, 32, 30]), [(1, 1, 32, 30)])
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path

import torch
from torch import Tensor

from podm_cli.errors import InputError
from podm_cli.physics import BOUNDARIES, DATA_MODES, START_RULES, DataTerm

__all__ = ["BoundaryHandling", "Method", "Requirements", "StageHook"]

#: ``on_stage(index, x)``: stage ``index``'s estimate, already cropped like the method's result.
StageHook = Callable[[int, Tensor], None]


@dataclass(frozen=True)
class Requirements:
    """What a method needs; ``podm eval`` uses it to say clearly why a method was skipped."""

    files: tuple[str, ...] = ()  # paths relative to the data root (weights); missing -> skipped
    fetch: str = "weights"  # `podm data fetch <fetch>` obtains them
    prefers_gpu: bool = False  # runs on CPU, but slowly
    notes: tuple[str, ...] = field(default_factory=tuple)


@dataclass(frozen=True)
class BoundaryHandling:
    """How a method treats the blur's boundary (the ``operator`` config group).

    ``mode``: the blur a call assumes when it does not say (``circular`` | ``valid``). For ``valid`` data,
    ``boundary``: ``liu`` | ``edgetaper`` | ``replicate`` (extend ``y`` once) or ``adjust`` (re-estimate the
    unobserved border from the current estimate at every Fourier step); ``taper_iterations``: edgetaper's;
    ``start``: ``adjust``'s first observation (``edgetaper`` | ``liu`` | ``replicate``); ``adjust_after``:
    stages that keep that first observation before adjusting starts.

    >>> BoundaryHandling(boundary="adjust").extension
    'edgetaper'
    """

    mode: str = "circular"
    boundary: str = "liu"
    taper_iterations: int = 3
    start: str = "edgetaper"
    adjust_after: int = 0

    def __post_init__(self):
        if self.mode not in DATA_MODES:
            raise InputError(f"blur mode must be one of {DATA_MODES}, got {self.mode!r}")
        if self.boundary not in BOUNDARIES:
            raise InputError(f"boundary must be one of {BOUNDARIES}, got {self.boundary!r}")
        if self.start not in START_RULES:
            raise InputError(f"boundary start rule must be one of {START_RULES}, got {self.start!r}")
        if int(self.taper_iterations) < 0:
            raise InputError(f"edgetaper iterations must be >= 0, got {self.taper_iterations}")

    @property
    def extension(self) -> str:
        """The rule that extends ``y`` once: ``boundary``, or ``start`` for ``adjust``."""
        return self.start if self.boundary == "adjust" else self.boundary

    def data_term(self, y: Tensor, kernel: Tensor, mode: str | None = None) -> DataTerm:
        """The :class:`~podm_cli.physics.DataTerm` of one call (``mode`` overrides :attr:`mode`)."""
        return DataTerm.build(y, kernel, mode=mode or self.mode, boundary=self.boundary,
                              taper_iterations=int(self.taper_iterations), start=self.start,
                              adjust_after=int(self.adjust_after))


class Method:
    """Base class of all methods (plain Python: no Hydra, no training code).

    Subclasses set ``name`` (registry key), ``source`` (how the numbers are produced, written to
    results.json) and implement :meth:`restore`.
    """

    name: str = "method"
    source: str = "recomputed"
    requirements: Requirements = Requirements()
    #: Class default; an instance gets its own with :meth:`with_boundary`.
    boundary_handling: BoundaryHandling = BoundaryHandling()
    #: Peak working memory per pixel of the extended (padded) image and per channel, bytes, on CPU: what
    #: ``podm deblur tile=auto`` budgets with (``python scripts/bench.py --memory-per-pixel`` measures it).
    bytes_per_pixel: float = 1000.0
    #: Factor on the given noise level when the kernel is known only approximately (captured blurs, estimated
    #: kernels): the kernel's error adds to the noise the data step must absorb. 1 = trust the given sigma.
    approximate_kernel_sigma_scale: float = 1.0

    # -- to implement -------------------------------------------------------------------------
    def restore(self, data: DataTerm, sigma: Tensor, on_stage: StageHook | None = None) -> Tensor:
        """Restore ``data`` (noise levels ``sigma`` (N,) on [0, 1]); return the estimate on ``data.grid``.

        ``on_stage(index, x)`` (when given) receives stage estimates on the grid; the base class crops them.
        """
        raise NotImplementedError(f"{type(self).__name__} does not implement restore(data, sigma, on_stage)")

    # -- configuration --------------------------------------------------------------------------
    def with_boundary(self, **changes) -> Method:
        """Set this method's :class:`BoundaryHandling` fields (``mode``, ``boundary``, ``taper_iterations``,
        ``start``, ``adjust_after``); returns ``self``."""
        self.boundary_handling = replace(self.boundary_handling, **changes)
        return self

    @property
    def boundary(self) -> str:
        """``boundary_handling.boundary``; assigning it is ``with_boundary(boundary=...)``."""
        return self.boundary_handling.boundary

    @boundary.setter
    def boundary(self, value: str) -> None:
        self.with_boundary(boundary=value)

    @property
    def mode(self) -> str:
        """``boundary_handling.mode`` (read-only shortcut)."""
        return self.boundary_handling.mode

    @property
    def edgetaper_iterations(self) -> int:
        """``boundary_handling.taper_iterations`` (read-only shortcut)."""
        return int(self.boundary_handling.taper_iterations)

    def input_sigma(self, sigma: float | Tensor, kernel: str = "exact") -> float | Tensor:
        """The noise level to restore with: ``sigma`` for an ``exact`` kernel, times
        :attr:`approximate_kernel_sigma_scale` for an ``approximate`` one (``podm eval`` passes its protocol's).

        >>> m = Method(); m.approximate_kernel_sigma_scale = 3.0
        >>> m.input_sigma(0.01), round(m.input_sigma(0.01, "approximate"), 6)
        (0.01, 0.03)
        """
        if kernel not in ("exact", "approximate"):
            raise InputError(f"kernel must be exact or approximate, got {kernel!r}")
        return sigma * self.approximate_kernel_sigma_scale if kernel == "approximate" else sigma

    def weights_for(self, sigma: float) -> str | None:
        """Which of its weight sets the method restores noise level ``sigma`` with (``None``: one for all).

        >>> Method().weights_for(0.01) is None
        True
        """
        return None

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

    def to(self, device: torch.device | str) -> Method:
        """Move learned parameters (if any) to ``device``; returns ``self``."""
        return self

    @torch.no_grad()
    def __call__(self, y: Tensor, kernel: Tensor, sigma: float | Tensor, mode: str | None = None,
                 on_stage: StageHook | None = None) -> Tensor:
        """Restore ``y``; ``mode`` (``circular`` | ``valid``) overrides ``boundary_handling.mode`` for this
        call (``podm eval`` passes the protocol's); ``on_stage(index, x)`` receives cropped stage estimates."""
        sigma_t = torch.as_tensor(sigma, dtype=y.dtype, device=y.device).reshape(-1)
        if sigma_t.numel() == 1:
            sigma_t = sigma_t.expand(y.shape[0])
        data = self.boundary_handling.data_term(y, kernel.to(device=y.device, dtype=y.dtype), mode)
        hook = None if on_stage is None else (lambda index, x: on_stage(index, data.output(x)))
        return data.output(self.restore(data, sigma_t, hook))
