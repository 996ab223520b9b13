"""The interface of a designed prior ``g``: a value per image and a proximal operator.

``prox(v, step)`` returns ``argmin_x step * g(x) + 1/2 ||x - v||^2`` (exactly, or as documented by the
prior when no closed form exists). ``step`` is a float or a per-image tensor ``(N,)``; it multiplies the
prior's own weight ``lam``, so ``prox(v, 1 / L)`` is ``prox_{g/L}(v)`` as used by proximal-gradient
methods. Images are batched ``(N, C, H, W)``; ``value`` returns a float64-free tensor ``(N,)`` in the
input's dtype.
"""

from __future__ import annotations

from torch import Tensor

__all__ = ["NoPrior", "Prior", "per_image_step"]


def per_image_step(step, v: Tensor) -> Tensor | float:
    """``step`` as a float, or as a tensor broadcastable against ``v`` (N, 1, 1, 1)."""
    if isinstance(step, Tensor):
        s = step.to(device=v.device, dtype=v.dtype)
        if s.ndim == 0:
            return s
        return s.reshape(-1, *([1] * (v.ndim - 1)))
    return float(step)


class Prior:
    """Base class: ``g(x) = lam * r(x)``. Subclasses implement :meth:`value` and :meth:`prox`."""

    name: str = "prior"
    lam: float = 0.0

    def value(self, x: Tensor) -> Tensor:
        """``g(x)`` per image: ``(N,)``."""
        raise NotImplementedError

    def prox(self, v: Tensor, step=1.0) -> Tensor:
        """``prox_{step * g}(v)``, same shape as ``v``."""
        raise NotImplementedError

    @property
    def exact_prox(self) -> bool:
        """Whether :meth:`prox` is the exact proximal map (closed form) or an inner-iteration estimate."""
        return True

    def __call__(self, x: Tensor) -> Tensor:
        return self.value(x)

    def __repr__(self) -> str:
        fields = {k: v for k, v in vars(self).items() if not k.startswith("_")}
        inner = ", ".join(f"{k}={v!r}" for k, v in fields.items())
        return f"{type(self).__name__}({inner})"


class NoPrior(Prior):
    """``g = 0``: value 0, prox = identity (ablation: no designed prior)."""

    name = "none"

    def __init__(self, lam: float = 0.0):
        self.lam = 0.0

    def value(self, x: Tensor) -> Tensor:
        return x.new_zeros(x.shape[0])

    def prox(self, v: Tensor, step=1.0) -> Tensor:
        return v
