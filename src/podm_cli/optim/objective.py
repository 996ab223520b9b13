"""The nonconvex deconvolution objective ``Psi(x) = f(x) + g(x)`` (DESIGN §2), batched and per image.

``f(x) = 1/2 ||k * x - y||^2`` with a *circular* blur (``podm_cli.physics`` conventions: true convolution
kernel, centre ``(kh // 2, kw // 2)``), ``g`` a :class:`podm_cli.priors.Prior`. Everything is computed with
``rfft2``: ``grad f(x) = K^T (K x - y)``, whose Lipschitz constant is ``max |K_hat|^2``; for a
non-negative kernel summing to 1, ``|K_hat| <= sum k = 1`` with equality at DC, so ``L_f = 1`` and the
step ``1 / L = 1`` of the PODM authors is exactly the largest classical proximal-gradient step.
"""

from __future__ import annotations

import torch
from torch import Tensor

from podm_cli.physics import psf2otf
from podm_cli.priors.base import NoPrior, Prior

__all__ = ["Deconvolution", "as_item_tensor", "item_norm"]


def item_norm(t: Tensor) -> Tensor:
    """Euclidean norm of each batch item: ``(N, ...) -> (N,)``."""
    return t.reshape(t.shape[0], -1).norm(dim=1)


def as_item_tensor(value, like: Tensor) -> Tensor:
    """A float or ``(N,)`` tensor as ``(N, 1, 1, 1)`` (or a 0-d tensor) in ``like``'s dtype/device."""
    t = torch.as_tensor(value, dtype=like.dtype, device=like.device)
    if t.ndim == 0 or t.numel() == 1:
        return t.reshape(())
    return t.reshape(-1, *([1] * (like.ndim - 1)))


class Deconvolution:
    """``Psi = f + g`` for a batch of observations ``y`` (N, C, H, W) and a kernel ((kh, kw) or (N, 1, kh, kw)).

    Example:
        >>> import torch
        >>> from podm_cli.priors import LpDCT
        >>> y = torch.rand(2, 1, 16, 16, dtype=torch.float64)
        >>> problem = Deconvolution(y, torch.ones(3, 3, dtype=torch.float64) / 9, LpDCT())
        >>> problem.f(y).shape, float(problem.lipschitz().max())
        (torch.Size([2]), 1.0)
    """

    def __init__(self, y: Tensor, kernel: Tensor, prior: Prior | None = None):
        if y.ndim != 4:
            raise ValueError(f"y must be (N, C, H, W), got {tuple(y.shape)}")
        self.y = y
        self.prior = prior if prior is not None else NoPrior()
        self.shape = (int(y.shape[-2]), int(y.shape[-1]))
        self.otf = psf2otf(kernel.to(device=y.device, dtype=y.dtype), self.shape)
        self.otf_sq = self.otf.real**2 + self.otf.imag**2
        self.y_hat = torch.fft.rfft2(y)
        self.kty_hat = torch.conj(self.otf) * self.y_hat

    # -- operators -------------------------------------------------------------------------------
    def A(self, x: Tensor) -> Tensor:
        """``k * x`` (circular)."""
        return torch.fft.irfft2(torch.fft.rfft2(x) * self.otf, s=self.shape)

    def A_adjoint(self, r: Tensor) -> Tensor:
        """``K^T r`` (circular correlation)."""
        return torch.fft.irfft2(torch.fft.rfft2(r) * torch.conj(self.otf), s=self.shape)

    # -- objective -------------------------------------------------------------------------------
    def f(self, x: Tensor) -> Tensor:
        """``1/2 ||k * x - y||^2`` per image ``(N,)``."""
        return 0.5 * (self.A(x) - self.y).flatten(1).pow(2).sum(1)

    def grad_f(self, x: Tensor) -> Tensor:
        """``K^T (K x - y)``."""
        return torch.fft.irfft2(self.otf_sq * torch.fft.rfft2(x) - self.kty_hat, s=self.shape)

    def g(self, x: Tensor) -> Tensor:
        """The prior's value per image."""
        return self.prior.value(x)

    def psi(self, x: Tensor) -> Tensor:
        """``Psi(x) = f(x) + g(x)`` per image ``(N,)``."""
        return self.f(x) + self.g(x)

    def lipschitz(self) -> Tensor:
        """Lipschitz constant of ``grad f`` per kernel: ``max |K_hat|^2`` (``(N,)`` or 0-d)."""
        if self.otf_sq.ndim == 2:
            return self.otf_sq.max()
        return self.otf_sq.flatten(1).max(dim=1).values

    # -- steps -----------------------------------------------------------------------------------
    def solve_fidelity(self, x_a: Tensor, mu) -> Tensor:
        """F module: ``argmin_x f(x) + mu/2 ||x - x_a||^2``, i.e. ``(conj(K) Y + mu X_A) / (|K|^2 + mu)``.

        ``mu`` > 0 is a float or a per-image ``(N,)`` tensor.
        """
        m = as_item_tensor(mu, x_a)
        return torch.fft.irfft2((self.kty_hat + m * torch.fft.rfft2(x_a)) / (self.otf_sq + m), s=self.shape)

    def prox_gradient(self, x: Tensor, step) -> Tensor:
        """One proximal-gradient step ``prox_{step g}(x - step grad f(x))``."""
        s = as_item_tensor(step, x)
        return self.prior.prox(x - s * self.grad_f(x), _step_arg(step, x))


def _step_arg(step, x: Tensor):
    """The step as the prior expects it: a float, or a flat ``(N,)`` tensor."""
    if isinstance(step, Tensor) and step.numel() > 1:
        return step.reshape(-1).to(device=x.device, dtype=x.dtype)
    return float(step)
