"""The nonconvex deconvolution objective ``Psi(x) = f(x) + g(x)``, batched and per image.

``f`` is the data term of a :class:`~podm_cli.physics.DataTerm` (circular ``1/2 ||k * x - y||^2``, or for
``valid`` data ``1/2 ||M(k * x) - P0 y||^2`` on the data term's grid), ``g`` a :class:`podm_cli.priors.Prior`.
``grad f`` is ``K^T M (K x - P0 y)``, whose Lipschitz constant is at most ``max |K_hat|^2``; for a
non-negative kernel summing to 1, ``|K_hat| <= sum k = 1`` with equality at DC, so ``L_f <= 1`` and the
step ``1 / L = 1`` of the PODM authors is the largest classical proximal-gradient step.
"""

from __future__ import annotations

from torch import Tensor

from podm_cli.physics import DataTerm, item_weight
from podm_cli.priors.base import NoPrior, Prior

__all__ = ["Deconvolution", "item_norm"]


def item_norm(t: Tensor) -> Tensor:
    """Euclidean norm of each batch item: ``(N, ...) -> (N,)``."""
    return t.reshape(t.shape[0], -1).norm(dim=1)


class Deconvolution:
    """``Psi = f + g`` for a data term and a prior.

    Example:
        >>> import torch
        >>> from podm_cli.priors import LpDCT
        >>> y = torch.rand(2, 1, 16, 16, dtype=torch.float64)
        >>> problem = Deconvolution.circular(y, torch.ones(3, 3, dtype=torch.float64) / 9, LpDCT())
        >>> problem.f(y).shape, float(problem.lipschitz().max())
        (torch.Size([2]), 1.0)
    """

    def __init__(self, data: DataTerm, prior: Prior | None = None):
        self.data = data
        self.prior = prior if prior is not None else NoPrior()

    @classmethod
    def circular(cls, y: Tensor, kernel: Tensor, prior: Prior | None = None) -> Deconvolution:
        """``Psi`` of a circular blur of ``y`` (N, C, H, W) by ``kernel`` ((kh, kw) or (N, 1, kh, kw))."""
        return cls(DataTerm.build(y, kernel), prior)

    @property
    def y(self) -> Tensor:
        """The first estimate on the grid (``data.initial()``: ``y`` for circular data)."""
        return self.data.initial()

    # -- objective -------------------------------------------------------------------------------
    def A(self, x: Tensor) -> Tensor:
        """``k * x`` (circular on the grid)."""
        return self.data.blur(x)

    def f(self, x: Tensor) -> Tensor:
        """The data term per image ``(N,)``."""
        return self.data.f(x)

    def grad_f(self, x: Tensor) -> Tensor:
        """``K^T M (K x - P0 y)``."""
        return self.data.grad_f(x)

    def g(self, x: Tensor) -> Tensor:
        """The prior's value per image."""
        return self.prior.value(x)

    def psi(self, x: Tensor) -> Tensor:
        """``Psi(x) = f(x) + g(x)`` per image ``(N,)``."""
        return self.f(x) + self.g(x)

    def lipschitz(self) -> Tensor:
        """Lipschitz bound of ``grad f`` per kernel (``(N,)`` or 0-d)."""
        return self.data.lipschitz()

    # -- steps -----------------------------------------------------------------------------------
    def prox_gradient(self, x: Tensor, step) -> Tensor:
        """One proximal-gradient step ``prox_{step g}(x - step grad f(x))``."""
        s = item_weight(step, x)
        return self.prior.prox(x - s * self.grad_f(x), _step_arg(step, x))


def _step_arg(step, x: Tensor):
    """The step as the prior expects it: a float, or a flat ``(N,)`` tensor."""
    if isinstance(step, Tensor) and step.numel() > 1:
        return step.reshape(-1).to(device=x.device, dtype=x.dtype)
    return float(step)
