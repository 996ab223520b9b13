"""RPODM: the relaxed PODM cascade ``x^l = G_l(F_l(A_l(x^{l-1})))``, ``x^0 = y``, trained end to end.

One stage, for a blurred ``y = k * x + n`` with noise level ``sigma`` (the physics is a
:class:`~podm_cli.physics.DataTerm`: circular, or ``valid`` with any boundary rule):

* **A** (learned prior): a denoiser network, ``x_A = D_l(x^{l-1})``. Per stage an independent network
  (default; each initialised from the official IRCNN bank at the stage's noise level ``s_l``, log-spaced
  from ``denoiser_levels[0]`` to ``denoiser_levels[1]`` on [0, 1]), or one shared noise-conditioned network fed
  ``s_l`` as an extra input map (``share_denoiser=True``). With ``noise_input=True`` every per-stage network
  is also fed the *input* noise level ``sigma`` as an extra map (:class:`NoiseConditioned`, zero-initialised),
  so one model can follow the noise of its input (with ``mu_mode="hypernet"`` the F weights follow it too).
* **F** (fidelity, theta_H): ``x_F = argmin_x 1/2 ||k * x - y||^2 + rho_l/2 ||x - x_A||^2``
  (``data.prox``; the paper's ``mu``). ``rho_l = (sigma^2 / 3) * exp(t_l)`` with ``t_l`` learned per stage
  (parameter ``log_mu``, initialised to IRCNN's ``1 / s_{l+1}^2``, so ``A_l`` then ``F_l`` start as IRCNN's
  denoiser then its next half-quadratic step,
  and the last ``F`` weighted ``final_mu_scale`` times more), or ``t_l + h(log sigma, l)``
  with a small hyper-network ``h`` (``mu_mode="hypernet"``, last layer zero-initialised).
* **G** (optimality module, relaxed): one proximal-gradient step on ``Psi + alpha/2 ||x - x^{l-1}||^2``,
  ``x_G = prox_{lam_l g}(x_F - s_l [grad f(x_F) + alpha_l (x_F - x^{l-1})])`` (``data.grad_f``: for
  ``valid`` data the true masked data term), with ``g`` from the
  ``prior=`` group (lp-DCT, hyper-Laplacian, TV; ``none`` drops G) and ``lam_l, s_l, alpha_l > 0`` learned
  (``learn_prior=True``) from the authors' constants (lam 1e-4, step 1/L = 1, alpha 1e-3).

``forward(y, kernel, sigma)`` solves the circular problem; :meth:`RPODM.restore` takes any
:class:`~podm_cli.physics.DataTerm` (that is how :class:`podm_cli.methods.rpodm.RPODMMethod` handles ``valid``
data). Everything is batched, on any device, with one kernel per
batch item; ``checkpoint_stages=True`` recomputes each stage in the backward pass (memory for many
stages on big crops).

Example::

    >>> import torch
    >>> from podm_cli.models import RPODM
    >>> model = RPODM(stages=2, denoiser={"name": "ircnn", "channels": 8, "pretrained": None})
    >>> y, k = torch.rand(2, 1, 32, 32), torch.full((2, 1, 5, 5), 1 / 25)
    >>> model(y, k, torch.tensor([0.01, 0.02])).shape
    torch.Size([2, 1, 32, 32])
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence

import torch
from torch import Tensor, nn
from torch.utils.checkpoint import checkpoint

from podm_cli.errors import InputError
from podm_cli.nets.bank import to_255
from podm_cli.optim.schedules import MIN_NOISE_SIGMA, rpodm_levels
from podm_cli.physics import DataTerm
from podm_cli.priors import build_prior

__all__ = ["RPODM", "NoiseConditioned"]

MU_MODES = ("per_stage", "hypernet")
#: ``noise_input`` maps ``sigma`` (on [0, 1]) as ``sigma * 255 / 10``: 0.1 at 1/255, 1.0 at 10/255.
NOISE_INPUT_SCALE = 25.5


class NoiseConditioned(nn.Module):
    """A denoiser fed ``[x, scale * s * ones]``: told a noise level ``s`` (the stage's, for one network shared
    by every stage; the input's, for noise-adaptive per-stage networks).

    Built from a plain grey denoiser whose first convolution is widened by one input channel (zero weights,
    so a pretrained net starts out exactly as it was). ``scale`` brings the level map to order one
    (Adam moves a weight by about the learning rate per step, so a map of values near 0.01 would barely
    change the output).
    """

    def __init__(self, net: nn.Module, scale: float = 1.0):
        super().__init__()
        first = next(m for m in net.modules() if isinstance(m, nn.Conv2d))
        wide = nn.Conv2d(
            first.in_channels + 1,
            first.out_channels,
            first.kernel_size,
            stride=first.stride,
            padding=first.padding,
            dilation=first.dilation,
            bias=first.bias is not None,
        )
        with torch.no_grad():
            wide.weight.zero_()
            wide.weight[:, : first.in_channels] = first.weight
            if first.bias is not None:
                wide.bias.copy_(first.bias)
        _replace_module(net, first, wide)
        self.net = net
        self.in_channels = first.in_channels
        self.scale = float(scale)

    def forward(self, x: Tensor, level: Tensor) -> Tensor:
        # IRCNN/DnCNN predict the noise: denoised = x - body([x, s]); the wrapped net subtracts its own
        # input, which here includes the level map, so rebuild the residual form explicitly.
        level = (self.scale * level).reshape(-1, 1, 1, 1).to(x)
        cond = torch.cat([x, level.expand(x.shape[0], 1, *x.shape[-2:])], dim=1)
        out = self.net(cond)
        return out[:, : self.in_channels] if out.shape[1] > self.in_channels else out


def _replace_module(root: nn.Module, old: nn.Module, new: nn.Module) -> None:
    for name, child in root.named_children():
        if child is old:
            setattr(root, name, new)
            return
        _replace_module(child, old, new)


def _softplus_inv(v: float) -> float:
    return v + math.log(-math.expm1(-v))


class RPODM(nn.Module):
    """The unrolled, trainable PODM cascade (see the module docstring).

    Args:
        stages: number of stages ``N``.
        denoiser: the ``denoiser=`` config as a dict (``name``, ``pretrained``, architecture keys), passed to
            :func:`podm_cli.nets.factory.build_stage_denoisers`.
        prior: the ``prior=`` config as a dict (``name``, ``p``, ``lam``, ...); ``lam`` initialises G's weight.
        denoiser_levels: ``(first, last)`` denoiser noise levels on [0, 1] (49/255, 7.65/255).
        sigma_schedule: deprecated: the same on 0..255 (weights files written before the rename).
        share_denoiser: one noise-conditioned network for all stages instead of one per stage.
        noise_input: feed each per-stage network the input noise level (noise-adaptive stages).
        noise_range: ``(low, high)`` the learned noise inputs (the networks' noise map, the hyper-network's
            ``log sigma``) are clamped to: the range the model was trained on, so a noise level outside it
            is treated as the nearest one seen instead of an extrapolation (F's ``sigma^2`` scaling is not
            clamped). ``None``: no clamp.
        mu_mode: ``per_stage`` | ``hypernet``.
        learn_prior: learn G's ``lam, step, alpha`` (else they stay at their initial values).
        alpha, step: G's initial ``alpha`` and gradient step ``1/L``.
        checkpoint_stages: gradient checkpointing per stage.
        final_mu_scale: the last stage's initial F weight relative to IRCNN's (see ``__init__``).
        data_root: where ``pretrained: official`` finds the bank.
    """

    def __init__(
        self,
        stages: int = 8,
        denoiser: Mapping | None = None,
        prior: Mapping | None = None,
        denoiser_levels: Sequence[float] = (49.0 / 255.0, 7.65 / 255.0),
        share_denoiser: bool = False,
        noise_input: bool = False,
        noise_range: Sequence[float] | None = None,
        mu_mode: str = "per_stage",
        learn_prior: bool = True,
        alpha: float = 1e-3,
        step: float = 1.0,
        checkpoint_stages: bool = False,
        final_mu_scale: float = 1e4,
        data_root=None,
        in_channels: int = 1,
        sigma_schedule: Sequence[float] | None = None,
    ):
        super().__init__()
        if int(stages) < 1:
            raise InputError(f"RPODM needs stages >= 1, got {stages}")
        if mu_mode not in MU_MODES:
            raise InputError(f"mu_mode must be one of {', '.join(MU_MODES)}, got {mu_mode!r}")
        if sigma_schedule is not None:  # 0..255, as weights files written before the rename store it
            denoiser_levels = [float(s) / 255.0 for s in sigma_schedule]
        if len(denoiser_levels) != 2 or not (0 < float(denoiser_levels[1]) <= float(denoiser_levels[0])):
            raise InputError(f"denoiser_levels must be [first, last] with first >= last > 0, got {denoiser_levels}")
        self.stages = int(stages)
        self.in_channels = int(in_channels)
        self.share_denoiser = bool(share_denoiser)
        self.noise_input = bool(noise_input)
        self.noise_range = None if noise_range is None else (float(noise_range[0]), float(noise_range[1]))
        if self.noise_range is not None and not 0 < self.noise_range[0] <= self.noise_range[1]:
            raise InputError(f"noise_range must be [low, high] with 0 < low <= high, got {noise_range}")
        if self.share_denoiser and self.noise_input:
            raise InputError("noise_input is for per-stage denoisers (share_denoiser=false)")
        self.mu_mode = mu_mode
        self.checkpoint_stages = bool(checkpoint_stages)
        levels = rpodm_levels(self.stages, float(denoiser_levels[0]), float(denoiser_levels[1]))
        self.register_buffer("levels", torch.tensor(levels, dtype=torch.float32))
        self.denoisers = self._build_denoisers(dict(denoiser or {"name": "ircnn"}), levels, data_root)
        self.denoisers.to(memory_format=torch.channels_last)

        # F: log mu offsets. At initialisation stage l's F is IRCNN's HQS x-step that precedes the denoiser at
        # the NEXT level (rho = (sigma^2 / 3) / s_{l+1}^2), and the last F is weighted by
        # final_mu_scale x its rho, so the estimate is the last denoiser's output with a light data
        # correction, as in IRCNN (whose last operation is the denoiser). On BSDS500-train crops this starts
        # 8 stages at 30.97 dB against 28.74 dB for rho_l at stage l (IRCNN with 30 iterations: 31.03).
        offsets = [-2.0 * math.log(s) for s in levels[1:]]
        offsets.append(-2.0 * math.log(levels[-1]) + math.log(final_mu_scale))
        self.log_mu = nn.Parameter(torch.tensor(offsets))
        self.hypernet = None
        if mu_mode == "hypernet":
            self.hypernet = nn.Sequential(nn.Linear(2, 16), nn.Tanh(), nn.Linear(16, 1))
            nn.init.zeros_(self.hypernet[-1].weight)
            nn.init.zeros_(self.hypernet[-1].bias)

        # G: the designed prior with learned weight, step and alpha (positive through softplus)
        prior_cfg = dict(prior or {"name": "none"})
        lam0 = float(prior_cfg.pop("lam", 1e-4))
        self.prior = build_prior(**{**prior_cfg, "lam": 1.0})
        self.use_g = self.prior.name != "none"
        raw = lambda v: torch.full((self.stages,), _softplus_inv(v))
        self.g_lam = nn.Parameter(raw(lam0), requires_grad=bool(learn_prior) and self.use_g)
        self.g_step = nn.Parameter(raw(step), requires_grad=bool(learn_prior) and self.use_g)
        self.g_alpha = nn.Parameter(raw(alpha), requires_grad=bool(learn_prior) and self.use_g)
        self.train()  # the bank's networks come in eval mode

    # -- construction ----------------------------------------------------------------------------------
    def _build_denoisers(self, cfg: dict, levels: list[float], data_root) -> nn.ModuleList:
        from podm_cli.nets.factory import build_denoiser, build_stage_denoisers

        name = cfg.pop("name", "ircnn")
        pretrained = cfg.pop("pretrained", None)
        cfg.pop("sigma", None)
        if self.share_denoiser:
            mid = levels[len(levels) // 2]
            net = build_denoiser(name, pretrained=pretrained, sigma=mid, data_root=data_root, **cfg)
            return nn.ModuleList([NoiseConditioned(net)])
        nets = build_stage_denoisers(name, list(levels), pretrained=pretrained, data_root=data_root, **cfg)
        if self.noise_input:
            return nn.ModuleList([NoiseConditioned(net, scale=NOISE_INPUT_SCALE) for net in nets])
        return nets

    # -- learned quantities ----------------------------------------------------------------------------
    def rho(self, sigma: Tensor) -> Tensor:
        """F's weights ``rho`` (the paper's ``mu``), ``(N, stages)``, for noise levels ``sigma`` (N,) on [0, 1]."""
        sig = sigma.reshape(-1, 1).to(self.log_mu).clamp_min(MIN_NOISE_SIGMA)
        log_mu = self.log_mu[None, :].expand(sig.shape[0], -1)
        if self.hypernet is not None:
            pos = torch.linspace(0, 1, self.stages, device=sig.device, dtype=sig.dtype)
            seen = self.seen_noise(sig)
            feats = torch.stack([torch.log(to_255(1.0) * seen).expand(-1, self.stages), pos.expand(sig.shape[0], -1)], -1)
            log_mu = log_mu + self.hypernet(feats).squeeze(-1)
        return sig**2 / 3.0 * torch.exp(log_mu)

    def seen_noise(self, sigma: Tensor) -> Tensor:
        """``sigma`` clamped to ``noise_range`` (what the learned noise inputs are given)."""
        return sigma if self.noise_range is None else sigma.clamp(*self.noise_range)

    def stage_parameters(self) -> dict[str, list[float]]:
        """Learned scalars per stage, for logging: ``rho`` at sigma = 1 %, G's ``lam``, ``step``, ``alpha``."""
        with torch.no_grad():
            rho = self.rho(torch.tensor([0.01], device=self.log_mu.device))[0]
            out = {"rho@1%": rho.tolist()}
            if self.use_g:
                for key, p in (("lam", self.g_lam), ("step", self.g_step), ("alpha", self.g_alpha)):
                    out[key] = nn.functional.softplus(p).tolist()
        return out

    # -- forward ---------------------------------------------------------------------------------------
    def denoise(self, index: int, x: Tensor, sigma: Tensor | None = None) -> Tensor:
        """Stage ``index``'s denoiser on ``x`` (``sigma``, ``(N,)``: the input noise, for ``noise_input``)."""
        n, c, h, w = x.shape
        split = self.in_channels == 1 and c > 1
        xin = x.reshape(n * c, 1, h, w) if split else x
        xin = xin.contiguous(memory_format=torch.channels_last)
        if self.share_denoiser:
            out = self.denoisers[0](xin, self.levels[index].expand(xin.shape[0]))
        elif self.noise_input:
            if sigma is None:
                raise InputError("this RPODM is noise-adaptive: pass the input noise level sigma")
            level = self.seen_noise(sigma.reshape(-1).expand(n))
            out = self.denoisers[index](xin, level.repeat_interleave(c) if split else level)
        else:
            out = self.denoisers[index](xin)
        return out.reshape(n, c, h, w).contiguous()

    def _stage(self, index: int, x: Tensor, data: DataTerm, rho: Tensor, sigma: Tensor):
        x_a = self.denoise(index, x, sigma)
        # F and G in full precision even under bf16/fp16 autocast (FFTs and the DCT need it)
        with torch.autocast(device_type=x.device.type, enabled=False):
            return self._fidelity_and_optimality(index, x, x_a.to(x.dtype), data, rho)

    def _fidelity_and_optimality(self, index, x, x_a, data: DataTerm, rho):
        spectrum = data.prox_hat(x_a, rho[:, index].to(x.dtype), x=data.estimate(x_a, index))  # of x_F
        x_f = torch.fft.irfft2(spectrum, s=data.grid)
        if not self.use_g:
            return x_f
        sp = nn.functional.softplus
        lam, step, alpha = sp(self.g_lam[index]), sp(self.g_step[index]), sp(self.g_alpha[index])
        grad_f = data.grad_f(x_f, x_hat=spectrum)  # from x_F's spectrum: no extra FFT of x_F
        v = x_f - step * (grad_f + alpha * (x_f - x))
        return self.prior.prox(v, step * lam)

    def forward(self, y: Tensor, kernel: Tensor, sigma: Tensor, return_stages: bool = False,
                stages: int | None = None):
        """Restore ``y`` (N, C, H, W) blurred circularly by ``kernel`` ((kh, kw) or (N, 1, kh, kw)) with noise
        ``sigma`` ((N,) or a float, on [0, 1]). Returns the last stage, or every stage's output as a list;
        ``stages`` runs only the first stages (greedy warm-up)."""
        if y.ndim != 4:
            raise InputError(f"RPODM expects (N, C, H, W), got shape {tuple(y.shape)}")
        return self.restore(DataTerm.build(y, kernel), sigma, return_stages, stages)

    def restore(self, data: DataTerm, sigma: Tensor, return_stages: bool = False, stages: int | None = None):
        """As :meth:`forward` for any data term; the estimates are on ``data.grid`` (crop with
        ``data.output``)."""
        y = data.initial()
        n = y.shape[0]
        sigma = torch.as_tensor(sigma, dtype=y.dtype, device=y.device).reshape(-1).expand(n)
        rho = self.rho(sigma)
        x, outs = y, []
        for i in range(self.stages if stages is None else min(int(stages), self.stages)):
            if self.checkpoint_stages and torch.is_grad_enabled():
                x = checkpoint(self._stage, i, x, data, rho, sigma, use_reentrant=False)
            else:
                x = self._stage(i, x, data, rho, sigma)
            outs.append(x)
        return outs if return_stages else x
